// Tiled family, grouped configuration (issue 9): convolutions with a narrow side, where an MMA tile would be mostly
// empty: narrow groups (not depthwise), and first layers (3 input channels). Every output costs C/groups * R * S FMAs
// (72 for grouped_g32), so these kernels are FFMA-bound when each operand is read from DRAM once and each
// shared-memory load feeds several FMAs.
//
// Forward and backward-data (one kernel, conv_kernel): a block owns one group, a tile of tp x tq outputs of nb
// images (the images' pixels flattened into one list) and every output channel of the group (at most kMaxOut). It
// walks the group's reduction channels (C/groups of x for the forward, K/groups of grad_output for backward-data) in
// chunks of rc (one chunk when they fit the shared-memory budget; r50_conv1's backward-data reduces over 64), and
// per chunk stages
//   - the input tile with its halo for the chunk's channels, converted to fp32, channel-planar ([image][channel]
//     [row][pitch]) whatever the tensor's layout, so that threads reading neighbouring pixels of one channel hit
//     distinct banks (in NHWC the plane size is padded so that the staging stores spread over the banks too);
//   - the chunk's filters as fp32, tap-major: wsm[tap][output channel], output channels padded to the register block.
// Each thread computes a register block of kCh (8, or 4 when the group has at most 4 output channels: an RGB first
// layer's backward-data) output channels x kBlockPix (7) pixels, kept in registers across the chunks: per reduction
// tap, one broadcast read of kCh filter values and 7 pixel reads feed 7 * kCh FFMAs. A thread's pixels are strided by
// the number of pixel blocks, so the 32 lanes of a warp read 32 neighbouring pixels (conflict-free, coalesced
// NCHW stores); channels-last stores write a thread's channels of a pixel as 16- (or 8-) byte vectors where aligned.
//
// Backward-data by stride phase (no atomics, no wasted taps): grad_input rows h = a + sh * i of one phase a receive
// grad_output row i + (a + ph - r*dh) / sh from exactly the taps r with a + ph - r*dh divisible by sh, the same taps
// for the whole phase. Those taps form an arithmetic progression r_first + j * step (step = sh / gcd(sh, dh)), so
// the tap loop is the forward's with other steps: at stride 1 it is the correlation with the flipped filter. A
// block owns a tile of the phases' sub-grids: every phase at once (up to kMaxMergedPhases: stride 2 x 2), each phase
// on its own warps, all reading one staged grad_output tile that starts at the phases' smallest shift (a quarter of
// the staging of one phase per block: r50_conv1's backward-data), or one phase when there are more; a phase no tap
// reaches writes zeros.
//
// Backward-weight (wgrad_kernel): grad_weight[g*K/g + k, c, r, s] = sum over n, p, q. A block owns a chunk of the
// group's (k, c*R*S + r*S + s) register blocks (8 filters x 8 taps per thread) and walks its split's share of the
// (image, tile) pairs, staging the input tile with halo and the grad_output tile (fp32); `lanes` threads share
// each register block, taking every lanes-th position. At the end the lanes' sums are added by a fixed shuffle
// tree, the block's totals go to its split's row of the workspace, and finish_splits (common/reduce.cuh) adds the
// rows in split order: bit-identical run to run.
//
// All arithmetic is FP32 FFMA (exact fp32, so it serves allow_tf32 both ways; fp16/bf16 accumulate in fp32). Staging
// is synchronous (load, convert, store): these convolutions do R*S*(output channels) FMAs per staged element, so
// staging is a small share of the instructions, and the fp32 copy saves a conversion per FMA operand for fp16/bf16.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include "common/conv_params.h"
#include "common/dtype.cuh"
#include "common/index.cuh"
#include "common/launch.cuh"
#include "common/reduce.cuh"
#include "tiled/depthwise.cuh"  // dense_reason, max_shared_memory, allow_shared_memory, floor_div, round_up

namespace conv2d_ext {
namespace grp {

constexpr int kBlockCh = 8;            // backward-weight: output channels per thread (register block)
constexpr int kBlockPix = 7;           // output pixels per thread: 7 divides the 56 / 28 / 14 / 7 wide images of
                                       // ResNeXt-style networks, so their tiles leave no thread idle
constexpr int kBlockTaps = 8;          // backward-weight: filter taps per thread
constexpr int kMaxThreads = 256;       // threads per block, at most
constexpr int kMinBlocks = 2;          // blocks per SM the register allocation must allow (<= 128 registers)
constexpr int kWgradBatch = 4;         // backward-weight: loads in flight per lane while staging (at 8 it spills)
constexpr int kMaxOut = 64;            // forward and backward-data: output channels per group (K/groups, C/groups), at most
constexpr int kMaxWgradChannels = 32;  // backward-weight: C/groups at most (its K/groups: kMaxOut)
constexpr int kMaxPositions = 1024;    // backward-weight: output positions per tile, at most
constexpr int64_t kSmemBudget = 72 * 1024;  // planned shared memory per block: three blocks fit an H100 SM
constexpr int kMaxMergedPhases = 4;    // backward-data: blocks hold every stride phase up to this many (stride 2 x 2)
constexpr int kPhaseWords = 12;        // backward-data: per-phase geometry (PhaseGeom) after the tap offsets

enum class Role : int { kForward = 0, kBackwardData = 1, kBackwardWeight = 2 };

using dw::floor_div;
using dw::round_up;

// Largest dynamic shared memory a block of p's GPU may opt in to.
inline int64_t max_shared_memory_for(const ConvParams& p) { return dw::max_shared_memory(p.sm); }

// ---- Host: plans.

// Staged tile geometry (fp32 words): rows x cols in planes of `plane` words (pitch = cols between rows). In NHWC the
// staging stores of a warp take (pixel, channel) pairs, channel fastest: the plane is padded to about 32 / channels
// words mod 32 so that those stores land in distinct banks.
inline int64_t plane_words(bool nhwc, int64_t rows, int64_t pitch, int64_t channels) {
  const int64_t words = rows * pitch;
  if (!nhwc || channels <= 1) return words;
  const int64_t want = (32 + std::min<int64_t>(channels, 32) - 1) / std::min<int64_t>(channels, 32) % 32;
  return words + ((want - words % 32) % 32 + 32) % 32;
}

// First contributing tap and the step between contributing taps of backward-data phase `a` along one dimension:
// taps r in [0, R) with (a + pad - r * dil) divisible by stride. n = 0 when none.
struct PhaseTaps {
  int first = 0, step = 1, n = 0;
  int shift_step = 0;  // rows of grad_output between consecutive contributing taps: step * dil / stride
  int last_shift = 0;  // (a + pad - last * dil) / stride: the smallest shift (the staged origin's offset)
  CONV2D_EXT_HOST_DEVICE int first_shift() const { return last_shift + (n > 0 ? n - 1 : 0) * shift_step; }
};

CONV2D_EXT_HOST_DEVICE inline PhaseTaps phase_taps(int a, int pad, int R, int dil, int stride) {
  PhaseTaps t;
  int g = stride, d = dil;  // gcd(stride, dil)
  while (d != 0) { const int m = g % d; g = d; d = m; }
  t.step = stride / g;
  t.first = R;
  for (int r = 0; r < (R < t.step ? R : t.step); ++r)
    if (((int64_t(a) + pad - int64_t(r) * dil) % stride + stride) % stride == 0) { t.first = r; break; }
  t.n = t.first < R ? (R - 1 - t.first) / t.step + 1 : 0;
  t.shift_step = int(int64_t(t.step) * dil / stride);
  const int last = t.first + (t.n > 0 ? t.n - 1 : 0) * t.step;
  t.last_shift = t.n > 0 ? int(floor_div(int64_t(a) + pad - int64_t(last) * dil, stride)) : 0;
  return t;
}

// The grad_output rows (or columns) every phase of one dimension reads beyond its tile: max first shift - min last
// shift over the phases with contributing taps, and that min (the staged origin of a block holding all the phases).
struct PhaseSpan {
  int span = 0, min_last = 0;
};

CONV2D_EXT_HOST_DEVICE inline PhaseSpan phase_span(int pad, int R, int dil, int stride) {
  PhaseSpan out;
  bool any = false;
  int hi = 0;
  for (int a = 0; a < stride; ++a) {
    const PhaseTaps t = phase_taps(a, pad, R, dil, stride);
    if (t.n == 0) continue;
    if (!any || t.last_shift < out.min_last) out.min_last = t.last_shift;
    if (!any || t.first_shift() > hi) hi = t.first_shift();
    any = true;
  }
  out.span = any ? hi - out.min_last : 0;
  return out;
}

// Forward / backward-data plan: a tile of tp x tq outputs (of the output grid, or of one stride phase's sub-grid
// for backward-data) of nb images, one group per block.
struct Plan {
  int red = 0, out = 0;  // reduction and output channels per group: C/g and K/g (forward), K/g and C/g (backward-data)
  int ch = 0;            // output channels per register block (the kernel's kCh): 8, or 4 when out <= 4
  int ocb = 0, ocp = 0;  // register blocks of ch output channels, and ocb * ch
  int rc = 0, rchunks = 0;  // reduction channels staged at a time, and the chunks: ceil(red / rc)
  int tp = 0, tq = 0, nb = 0;
  int rows = 0, cols = 0, pitch = 0, plane = 0, slot = 0;  // staged input; slot = rc * plane (one image)
  int taps = 0;          // filter table rows: rc * R * S (backward-data uses those of its phases, at most as many)
  int npb = 0;           // pixel blocks: ceil(nb * tp * tq / kBlockPix)
  int mphases = 1;       // backward-data: stride phases per block (all of them when at most kMaxMergedPhases: the
                         // staged grad_output tile serves every phase), threads of one phase: tpp (a warp multiple)
  int tpp = 0;
  int threads = 0;
  int wsm_offset = 0;    // floats before the filter table (16-byte aligned); backward-data's tap offsets follow it
  int64_t oh = 0, ow = 0;                 // output grid (backward-data: the largest phase's sub-grid)
  int64_t tiles_p = 0, tiles_q = 0, phases = 1, phase_blocks = 1, chunks = 0, blocks = 0;
  int64_t smem = 0;      // 0: no plan
};

// Does a backward-data block hold every stride phase (a plan's `merged`)? Stride 2 x 2 or fewer phases, but not 1.
inline bool holds_all_phases(const ConvParams& p, bool dgrad) {
  const int64_t phases = int64_t(p.stride_h) * p.stride_w;
  return dgrad && phases > 1 && phases <= kMaxMergedPhases;
}

// Output channels per register block for a group of `out` output channels.
inline int64_t block_channels(int64_t out) { return out <= 4 ? 4 : 8; }

// The plan of tp x tq outputs of nb images with rc reduction channels staged at a time; smem = 0: no plan.
inline Plan conv_plan(const ConvParams& p, bool dgrad, int64_t tp, int64_t tq, int64_t nb, int64_t rc,
                      bool merged = false) {
  Plan t;
  const int64_t phases = dgrad ? int64_t(p.stride_h) * p.stride_w : 1;
  merged = merged && holds_all_phases(p, dgrad);
  const bool nhwc = p.channels_last;
  const int64_t cpg = p.C_per_group(), kpg = p.K_per_group();
  const int64_t red = dgrad ? kpg : cpg, out = dgrad ? cpg : kpg;
  const int64_t ch = block_channels(out);
  const int64_t ocb = (out + ch - 1) / ch;
  rc = std::max<int64_t>(1, std::min(rc, red));
  int64_t rows, cols;
  if (merged) {  // every phase's taps read the one staged tile
    rows = tp + phase_span(p.pad_h, int(p.R), p.dil_h, p.stride_h).span;
    cols = tq + phase_span(p.pad_w, int(p.S), p.dil_w, p.stride_w).span;
  } else if (dgrad) {
    rows = tp + (p.R - 1) * p.dil_h / p.stride_h;
    cols = tq + (p.S - 1) * p.dil_w / p.stride_w;
  } else {
    rows = (tp - 1) * p.stride_h + (p.R - 1) * p.dil_h + 1;
    cols = (tq - 1) * p.stride_w + (p.S - 1) * p.dil_w + 1;
  }
  if (rows > (1 << 14) || cols > (1 << 14)) return t;
  const int64_t plane = plane_words(nhwc, rows, cols, rc);
  const int64_t slot = rc * plane, taps = rc * p.R * p.S;
  if (nb * slot + taps * ocb * ch > (int64_t(1) << 22)) return t;  // far past any GPU's shared memory
  const int64_t npb = (nb * tp * tq + kBlockPix - 1) / kBlockPix;
  const int64_t mphases = merged ? phases : 1;
  const int64_t threads = mphases * round_up(ocb * npb, 32);
  if (threads > kMaxThreads) return t;
  t.red = int(red);
  t.out = int(out);
  t.ch = int(ch);
  t.ocb = int(ocb);
  t.ocp = int(ocb * ch);
  t.rc = int(rc);
  t.rchunks = int((red + rc - 1) / rc);
  t.tp = int(tp);
  t.tq = int(tq);
  t.nb = int(nb);
  t.rows = int(rows);
  t.cols = int(cols);
  t.pitch = int(cols);
  t.plane = int(plane);
  t.slot = int(slot);
  t.taps = int(taps);
  t.npb = int(npb);
  t.mphases = int(mphases);
  t.tpp = int(threads / mphases);
  t.threads = int(threads);
  t.wsm_offset = int(round_up(nb * slot, 4));
  t.oh = dgrad ? (p.H + p.stride_h - 1) / p.stride_h : p.P;
  t.ow = dgrad ? (p.W + p.stride_w - 1) / p.stride_w : p.Q;
  t.phases = phases;
  t.phase_blocks = phases / mphases;
  t.tiles_p = (t.oh + tp - 1) / tp;
  t.tiles_q = (t.ow + tq - 1) / tq;
  t.chunks = (p.N + nb - 1) / nb;
  t.blocks = t.tiles_p * t.tiles_q * t.phase_blocks * t.chunks;
  // backward-data: + the tap offsets and the phases' geometry (dynamic: a kernel with static shared memory cannot opt
  // in to the device's whole dynamic maximum)
  t.smem = (int64_t(t.wsm_offset) + taps * t.ocp + (dgrad ? taps + kMaxMergedPhases * kPhaseWords : 0)) * 4;
  return t;
}

// The plan of tp x tq outputs of nb images staging as many reduction channels at a time as `limit` bytes allow (in
// chunks of balanced sizes); smem = 0 when not even one fits.
inline Plan fitted_conv_plan(const ConvParams& p, bool dgrad, int64_t tp, int64_t tq, int64_t nb, int64_t limit,
                             bool merged) {
  const int64_t red = dgrad ? p.K_per_group() : p.C_per_group();
  Plan t = conv_plan(p, dgrad, tp, tq, nb, red, merged);
  if (t.smem > 0 && t.smem <= limit) return t;
  const Plan one = conv_plan(p, dgrad, tp, tq, nb, 1, merged);
  if (one.smem == 0 || one.smem > limit || red == 1) return Plan{};
  const int64_t per_channel = std::max<int64_t>(1, conv_plan(p, dgrad, tp, tq, nb, 2, merged).smem - one.smem);
  int64_t rc = std::max<int64_t>(1, std::min<int64_t>(red, 1 + (limit - one.smem) / per_channel));
  t = conv_plan(p, dgrad, tp, tq, nb, rc, merged);
  while (rc > 1 && (t.smem == 0 || t.smem > limit)) t = conv_plan(p, dgrad, tp, tq, nb, --rc, merged);
  const int64_t chunks = (red + rc - 1) / rc;
  const Plan balanced = conv_plan(p, dgrad, tp, tq, nb, (red + chunks - 1) / chunks, merged);
  return balanced.smem > 0 && balanced.smem <= limit ? balanced : t;
}

// Tile columns: the whole row up to 64, else balanced chunks of at most 32.
inline int64_t tile_cols(int64_t ow) {
  if (ow <= 64) return std::max<int64_t>(ow, 1);
  const int64_t n = (ow + 31) / 32;
  return (ow + n - 1) / n;
}

// The smallest plan (one row of one image, one reduction channel at a time): what can_implement checks against the
// GPU's shared memory.
inline Plan smallest_conv_plan(const ConvParams& p, bool dgrad) {
  const int64_t ow = dgrad ? (p.W + p.stride_w - 1) / p.stride_w : p.Q;
  int64_t tq = tile_cols(ow);
  Plan t = conv_plan(p, dgrad, 1, tq, 1, 1);
  while ((t.smem == 0 || t.smem > max_shared_memory_for(p)) && tq > 1) {
    tq = (tq + 1) / 2;
    t = conv_plan(p, dgrad, 1, tq, 1, 1);
  }
  return t;
}

// The launch plan: among tiles of up to kMaxThreads register blocks within kSmemBudget, the one with the least
// estimated time: instructions per block (7 * ch FFMA + ~15 others per thread and tap, ~10 per staged element, ~6
// per staged filter value, ~1000 per chunk of reduction channels for its two barriers) times the blocks each SM runs
// one after another (waves x resident blocks).
inline Plan make_conv_plan(const ConvParams& p, bool dgrad, int sms) {
  const int64_t ow = dgrad ? (p.W + p.stride_w - 1) / p.stride_w : p.Q;
  const int64_t oh = dgrad ? (p.H + p.stride_h - 1) / p.stride_h : p.P;
  const int64_t tq = tile_cols(ow);
  const int64_t limit = std::min<int64_t>(kSmemBudget, max_shared_memory_for(p));
  // Taps a thread visits per reduction channel: all R x S in the forward, its phase's (about R x S / phases) in
  // backward-data.
  const double thread_taps = double(p.R * p.S) / (dgrad ? double(p.stride_h) * p.stride_w : 1.0);
  // Backward-data takes a plan holding every phase when one exists (a quarter of the staging at stride 2 x 2:
  // r50_conv1), else one phase per block.
  Plan best;
  double best_time = 0;
  for (int merged = holds_all_phases(p, dgrad) ? 1 : 0; merged >= 0 && best.smem == 0; --merged)
  for (int64_t nb = 1; nb <= std::min<int64_t>(p.N, 32); ++nb) {
    for (int64_t tp = 1; tp <= oh; ++tp) {
      const Plan t = fitted_conv_plan(p, dgrad, tp, tq, nb, limit, merged != 0);
      if (t.smem == 0) break;  // too many threads or too much shared memory: so do taller tiles
      const double per_block = double(t.threads) * t.rc * thread_taps * t.rchunks * (7.0 * t.ch + 15.0) +
                               double(nb) * t.slot * t.rchunks * 10.0 + double(t.taps) * t.rchunks * t.ocp * 6.0 +
                               1000.0 * t.rchunks + 1000.0;
      const int64_t resident = std::max<int64_t>(
          1, std::min<int64_t>({232448 / (t.smem + 1024), 2048 / t.threads,
                                65536 / (int64_t(t.threads) * 128), 32}));
      const int64_t blocks = t.blocks * p.groups;
      const int64_t waves = (blocks + sms * resident - 1) / (sms * resident);
      const double time = double(waves) * resident * per_block;
      if (best.smem == 0 || time < best_time || (time == best_time && t.smem < best.smem)) best = t, best_time = time;
    }
  }
  if (best.smem == 0) best = smallest_conv_plan(p, dgrad);
  return best;
}

// Backward-weight plan.
struct WPlan {
  int tp = 0, tq = 0;
  int rows = 0, cols = 0, pitch = 0, xplane = 0;  // staged input: C/g planes of rows x cols (pitch = cols)
  int kpad = 0;          // staged grad_output channels: K/g rounded up to kBlockCh (zeros past K/g)
  int gstride = 0;       // words per position of the staged grad_output, [position][channel]: kpad, or kpad + 4
                         // when kpad / 4 is even, so that a quarter warp's 16-byte reads hit distinct banks
  int ftaps = 0;         // C/g * R * S: one filter's taps
  int kb = 0, tb = 0;    // register blocks: filters / 8, taps / 8
  int wchunk = 0, wchunks = 0, lanes = 0, threads = 0;
  int goffset = 0, toffset = 0;  // floats before the grad_output tile, before the position table
  int64_t tiles_p = 0, tiles_q = 0, items = 0;
  int64_t smem = 0;
  int64_t splits = 1;
};

inline WPlan wgrad_plan_for(const ConvParams& p, int64_t tp, int64_t tq) {
  WPlan t;
  const bool nhwc = p.channels_last;
  const int64_t cpg = p.C_per_group(), kpg = p.K_per_group();
  const int64_t rows = (tp - 1) * p.stride_h + (p.R - 1) * p.dil_h + 1;
  const int64_t cols = (tq - 1) * p.stride_w + (p.S - 1) * p.dil_w + 1;
  if (rows > (1 << 14) || cols > (1 << 14)) return t;
  const int64_t xplane = plane_words(nhwc, rows, cols, cpg);
  const int64_t kpad = round_up(kpg, kBlockCh);
  const int64_t gstride = kpad / 4 % 2 == 0 ? kpad + 4 : kpad;
  const int64_t ftaps = cpg * p.R * p.S;
  const int64_t kb = kpad / kBlockCh, tb = (ftaps + kBlockTaps - 1) / kBlockTaps;
  if (cpg * xplane + tp * tq * (gstride + 1) > (int64_t(1) << 22)) return t;
  const int64_t wblocks = kb * tb;
  int64_t lanes = 32;
  while (lanes > 1 && wblocks * lanes > kMaxThreads) lanes /= 2;
  const int64_t wchunk = std::min<int64_t>(wblocks, kMaxThreads / lanes);
  t.tp = int(tp);
  t.tq = int(tq);
  t.rows = int(rows);
  t.cols = int(cols);
  t.pitch = int(cols);
  t.xplane = int(xplane);
  t.kpad = int(kpad);
  t.gstride = int(gstride);
  t.ftaps = int(ftaps);
  t.kb = int(kb);
  t.tb = int(tb);
  t.wchunk = int(wchunk);
  t.wchunks = int((wblocks + wchunk - 1) / wchunk);
  t.lanes = int(lanes);
  t.threads = int(round_up(wchunk * lanes, 32));
  t.goffset = int(round_up(cpg * xplane, 4));
  t.toffset = int(t.goffset + tp * tq * gstride);
  t.tiles_p = (p.P + tp - 1) / tp;
  t.tiles_q = (p.Q + tq - 1) / tq;
  t.items = p.N * t.tiles_p * t.tiles_q;
  t.smem = (int64_t(t.toffset) + tp * tq) * 4;
  return t;
}

// Tiles of the whole row (up to 64 columns) and as many rows as kMaxPositions and the shared-memory budget allow;
// smem = 0 when even one column does not fit. `sms` > 0: also the splits (4 blocks per SM).
inline WPlan make_wgrad_plan(const ConvParams& p, int sms) {
  const int64_t limit = std::min<int64_t>(kSmemBudget, max_shared_memory_for(p));
  int64_t tq = tile_cols(p.Q);
  int64_t tp = std::max<int64_t>(1, std::min<int64_t>(p.P, kMaxPositions / tq));
  tp = (p.P + (p.P + tp - 1) / tp - 1) / ((p.P + tp - 1) / tp);  // balanced over the height
  WPlan t;
  for (;;) {
    t = wgrad_plan_for(p, tp, tq);
    if (t.smem > 0 && t.smem <= limit) break;
    if (tp > 1) tp = (tp + 1) / 2;
    else if (tq > 1) tq = (tq + 1) / 2;
    else {
      if (!(t.smem > 0 && t.smem <= max_shared_memory_for(p))) t.smem = 0;
      break;
    }
  }
  if (t.smem > 0 && sms > 0) {
    const int64_t xblocks = int64_t(p.groups) * t.wchunks;
    const int64_t wanted = (int64_t(4) * sms + xblocks - 1) / xblocks;
    t.splits = std::max<int64_t>(1, std::min<int64_t>({wanted, t.items, 65535}));
  }
  return t;
}

// ---- Host: can_implement.

// Why the grouped kernels cannot run `role` of `p`, or "".
inline std::string can_implement(const ConvParams& p, Role role) {
  if (p.groups == p.C && p.groups > 1) return "depthwise (groups == input channels) runs on tiled:depthwise";
  if (p.dtype == DType::kFloat64) return "float64 runs on the direct family";
  if (role == Role::kBackwardWeight) {
    if (p.C_per_group() > kMaxWgradChannels || p.K_per_group() > kMaxOut)
      return "backward-weight of more than 32 input or 64 output channels per group: GEMM-shaped, not narrow";
  } else if ((role == Role::kForward ? p.K_per_group() : p.C_per_group()) > kMaxOut) {
    return role == Role::kForward ? "more than 64 output channels per group (K/groups): GEMM-shaped, not narrow"
                                  : "more than 64 input channels per group (C/groups): GEMM-shaped, not narrow";
  }
  if (p.groups > 65535) return "more than 65535 groups";
  const int64_t kLimit = int64_t(1) << 30;  // tile origins and extents are int
  if (p.H >= kLimit || p.W >= kLimit || p.P >= kLimit || p.Q >= kLimit) return "a spatial size of 2^30 or more";
  if (p.pad_h >= kLimit || p.pad_w >= kLimit || (p.P - 1) * p.stride_h >= kLimit ||
      (p.Q - 1) * p.stride_w >= kLimit || (p.R - 1) * p.dil_h >= kLimit || (p.S - 1) * p.dil_w >= kLimit)
    return "padding, strided output extent or dilated filter extent of 2^30 or more";
  std::string why = dw::dense_reason(p, p.x_stride, p.C, p.H, p.W, "the input");
  if (why.empty()) why = dw::dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");
  if (!why.empty()) return why;
  if (role == Role::kBackwardWeight) {
    if (make_wgrad_plan(p, 0).smem == 0)
      return "its smallest tile needs more shared memory than this GPU gives a block";
    return "";
  }
  const Plan t = smallest_conv_plan(p, role == Role::kBackwardData);
  if (t.smem == 0 || t.smem > max_shared_memory_for(p))
    return "its filters and smallest tile need more shared memory than this GPU gives a block";
  // Blocks: phases x images x tiles, on grid.x.
  if (t.blocks >= (int64_t(1) << 31)) return "too many tiles for one grid";
  return "";
}

// ---- Device.

// src[i] as fp32 where `ok`, else 0, for 16-bit elements: loaded unconditionally (src[0] where not ok) and selected
// after. With `ok ? to_acc(src[i]) : 0` nvcc 13.0 branched around each load and its conversion in stage's NCHW loop,
// so a batch of them ran one round trip a load (session 20: r50_conv1 16-bit NCHW backward-data 1.25-1.34 -> 0.98
// ms). fp32 keeps the predicated load (no conversion to wait for); so does the backward-weight's staging (stage's
// kOverlap false: overlapped, its 16-bit NCHW kernels spill) and the NHWC loop (its loads were not serialised; made
// unconditional they ran 3% slower).
template <typename T>
__device__ __forceinline__ float load_or_zero(const T* __restrict__ src, int64_t i, bool ok) {
  const float x = to_acc(src[ok ? i : 0]);
  return ok ? x : 0.0f;
}

// Stages nb images' tile (channels nch, `valid_ch` of them real, the rest zero) of src (N x SC x srows x scols,
// dense in the layout; channel cbase + c) from (row0, col0) as fp32: dst[i * slot + c * plane + r * pitch + x * cstep].
// Zero outside the tensor. Warps take (image, channel, row) rows (NCHW, lanes along the row) or (image, row)
// rows (NHWC, lanes along (column, channel), channel fastest).
template <typename T, bool kNHWC, int kBatch = 8, bool kOverlap = true>
__device__ __forceinline__ void stage(float* dst, const T* __restrict__ src, int64_t n0, int64_t N, int64_t SC,
                                      int64_t cbase, int valid_ch, int nch, int srows, int scols, int row0, int col0,
                                      int rows, int cols, int pitch, int plane, int nb, int slot,
                                      int cstep = 1) {
  // Each lane issues kBatch loads before it stores any of them: the loads of a warp are then in flight together
  // instead of one L2 round trip after another (the stores to shared memory would otherwise keep them in order).
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (kNHWC) {
    const int per_row = cols * nch;
    const int dcol = 32 / nch, dc = 32 % nch;
    for (int task = warp; task < nb * rows; task += warps) {
      const int nbi = task / rows, r = task - nbi * rows;
      const int64_t n = n0 + nbi;
      const int h = row0 + r;
      const bool row_ok = n < N && h >= 0 && h < srows;
      const T* row_src = src + (row_ok ? ((n * srows + h) * int64_t(scols)) * SC + cbase : 0);
      float* row_dst = dst + nbi * slot + r * pitch;
      int col = lane / nch, c = lane - col * nch;
      for (int e0 = lane; e0 < per_row; e0 += 32 * kBatch) {
        float v[kBatch];
        int at[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
          const int w = col0 + col;
          const bool ok = e0 + 32 * b < per_row && row_ok && c < valid_ch && w >= 0 && w < scols;
          v[b] = ok ? to_acc(row_src[int64_t(w) * SC + c]) : 0.0f;  // (not serialised here: nvcc predicates them)
          at[b] = e0 + 32 * b < per_row ? c * plane + col * cstep : -1;
          c += dc;
          col += dcol;
          if (c >= nch) c -= nch, ++col;
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b)
          if (at[b] >= 0) row_dst[at[b]] = v[b];
      }
    }
  } else {
    // kBatch (image, channel, row) rows per warp at a time, lanes along the row; a row's (image, channel, row) by
    // multiply-shift division (two integer divisions per element cost as much as a grouped tile's FMAs).
    const int tasks = nb * nch * rows;
    const FastDivmod by_rows(static_cast<unsigned>(rows)), by_nch(static_cast<unsigned>(nch));
    for (int t0 = warp; t0 < tasks; t0 += kBatch * warps)
      for (int x = lane; x < cols; x += 32) {
        const int w = col0 + x;
        float v[kBatch];
        int at[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
          const int task = t0 + b * warps;
          unsigned rest, ur, unbi, uc;
          by_rows.divmod(static_cast<unsigned>(task), rest, ur);
          by_nch.divmod(rest, unbi, uc);
          const int r = static_cast<int>(ur), c = static_cast<int>(uc), nbi = static_cast<int>(unbi);
          const int64_t n = n0 + nbi;
          const int h = row0 + r;
          const bool ok = task < tasks && n < N && c < valid_ch && h >= 0 && h < srows && w >= 0 && w < scols;
          if constexpr (kOverlap && sizeof(T) == 2)
            v[b] = load_or_zero(src, ((n * SC + cbase + c) * srows + h) * int64_t(scols) + w, ok);
          else  // the index inside the branch: computed before it, the backward-weight kernels spill
            v[b] = ok ? to_acc(src[((n * SC + cbase + c) * srows + h) * int64_t(scols) + w]) : 0.0f;
          at[b] = task < tasks ? nbi * slot + c * plane + r * pitch + x * cstep : -1;
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b)
          if (at[b] >= 0) dst[at[b]] = v[b];
      }
  }
}

// Stores kCh (8 or 4) consecutive channels of one pixel (channels-last) as 16-byte vectors (8-byte ones for four
// 16-bit values) when `dst` is aligned to them.
template <typename T, int kCh>
__device__ __forceinline__ bool store_vector(T* dst, const float (&v)[kCh]) {
  static_assert(kCh == 4 || kCh == 8, "register blocks of 4 or 8 channels");
  constexpr int kBytes = kCh * sizeof(T) < 16 ? kCh * int(sizeof(T)) : 16;
  if (reinterpret_cast<uintptr_t>(dst) % kBytes != 0) return false;
  if constexpr (sizeof(T) == 4) {
#pragma unroll
    for (int k = 0; k < kCh; k += 4) reinterpret_cast<float4*>(dst)[k / 4] = make_float4(v[k], v[k + 1], v[k + 2], v[k + 3]);
  } else {
    using Vec = std::conditional_t<kCh == 8, uint4, uint2>;
    union { T h[kCh]; Vec u; } pack;
#pragma unroll
    for (int k = 0; k < kCh; ++k) pack.h[k] = from_acc<T>(v[k]);
    *reinterpret_cast<Vec*>(dst) = pack.u;
  }
  return true;
}

// Where block `b` of a conv plan lies: its images n0 .. n0 + nb - 1, its first stride phase (0 for the forward;
// phases = stride_h * stride_w, phase = a_h * stride_w + a_w; a block holds t.mphases of them) and first output row
// and column of its tile.
struct TileAt {
  int64_t n0;
  int phase0, row0, col0;
};

__device__ __forceinline__ TileAt tile_at(const Plan& t, int64_t b) {
  TileAt a;
  const int tile_q = static_cast<int>(b % t.tiles_q);
  b /= t.tiles_q;
  const int tile_p = static_cast<int>(b % t.tiles_p);
  b /= t.tiles_p;
  a.phase0 = static_cast<int>(b % t.phase_blocks) * t.mphases;
  a.n0 = (b / t.phase_blocks) * t.nb;
  a.row0 = tile_p * t.tp;
  a.col0 = tile_q * t.tq;
  return a;
}

// One backward-data phase's taps in a block: tap (ch, i, j), i < nr, j < ns, is filter tap (first_r + i * tap_r,
// first_s + j * tap_s) and reads staged (ch, base_r + i * step_r, base_c + j * step_c) relative to its pixel's
// origin; cum: the taps (per reduction channel) of the block's earlier phases (its rows of the filter table start at
// nch * cum).
struct PhaseGeom {
  int nr, ns, first_r, tap_r, first_s, tap_s, base_r, step_r, base_c, step_c, cum, pad_;
};
static_assert(sizeof(PhaseGeom) == kPhaseWords * 4, "kPhaseWords");

// Phase (a_h, a_w)'s geometry when the block's staged tile starts min_last_r rows and min_last_c columns of
// grad_output past its tile's origin.
__device__ __forceinline__ PhaseGeom phase_geom(const ConvParams& p, int a_h, int a_w, int min_last_r,
                                                int min_last_c) {
  const PhaseTaps th = phase_taps(a_h, p.pad_h, int(p.R), p.dil_h, p.stride_h);
  const PhaseTaps tw = phase_taps(a_w, p.pad_w, int(p.S), p.dil_w, p.stride_w);
  PhaseGeom g;
  g.nr = th.n, g.ns = tw.n;
  g.first_r = th.first, g.tap_r = th.step, g.first_s = tw.first, g.tap_s = tw.step;
  g.base_r = th.first_shift() - min_last_r, g.step_r = -th.shift_step;
  g.base_c = tw.first_shift() - min_last_c, g.step_c = -tw.shift_step;
  g.cum = 0, g.pad_ = 0;
  return g;
}

// Forward (kDgrad false: x -> y) or backward-data (kDgrad true: grad_output -> grad_input), as at the top, with
// register blocks of kCh output channels (t.ch). One register block per thread; in backward-data the block's
// t.mphases stride phases each take t.tpp consecutive threads (whole warps), all reading the one staged tile.
template <typename T, bool kNHWC, bool kDgrad, int kCh>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks) conv_kernel(const ConvParams p, const Plan t) {
  // Loads in flight per lane while staging: 4 where 8 would spill beside the accumulators (8 x 7 fp32 NCHW).
  constexpr int kStageBatch = kCh == 8 && !kNHWC ? 4 : 8;  // at 8 these spill (16-bit: since their loads overlap)
  extern __shared__ __align__(16) unsigned char smem[];
  float* const xs = reinterpret_cast<float*>(smem);
  float* const wsm = xs + t.wsm_offset;
  int* const toff = reinterpret_cast<int*>(wsm + t.taps * t.ocp);  // backward-data: staged offset of each tap
  PhaseGeom* const geom = reinterpret_cast<PhaseGeom*>(toff + t.taps);  // backward-data: the block's phases

  const T* __restrict__ src = static_cast<const T*>(kDgrad ? p.y : p.x);
  T* __restrict__ dst = static_cast<T*>(kDgrad ? p.x : p.y);
  const T* __restrict__ bias = kDgrad ? nullptr : static_cast<const T*>(p.bias);
  const T* __restrict__ wt = static_cast<const T*>(p.w);
  const int64_t kpg = p.K_per_group();
  const int64_t g = blockIdx.y;
  const int64_t src_ch = kDgrad ? p.K : p.C, dst_ch = kDgrad ? p.C : p.K;
  const int64_t src_base = g * t.red, dst_base = g * t.out;
  const int src_rows = int(kDgrad ? p.P : p.H), src_cols = int(kDgrad ? p.Q : p.W);
  const int dst_rows = int(kDgrad ? p.H : p.P), dst_cols = int(kDgrad ? p.W : p.Q);
  const int R = int(p.R), S = int(p.S);

  const TileAt a = tile_at(t, blockIdx.x);
  const int row0 = a.row0, col0 = a.col0;
  const int64_t n0 = a.n0;
  const int my_phase = kDgrad ? int(threadIdx.x) / t.tpp : 0;  // among the block's phases
  const int item = int(threadIdx.x) - my_phase * t.tpp;

  // The staged tile's origin and, in backward-data, each phase's taps (geom) and this thread's phase's rows of the
  // filter table (from nch * my_cum, nch * my_taps of them). The staged origin: the smallest shift over the block's
  // phases (a block of one phase: that phase's), so that every tap's offset is >= 0.
  int srow0, scol0, psh, psw, my_cum = 0, my_taps = R * S, block_taps = R * S;
  if (kDgrad) {
    int min_last_r = 0, min_last_c = 0;
    if (t.mphases > 1) {  // all the phases
      min_last_r = phase_span(p.pad_h, R, p.dil_h, p.stride_h).min_last;
      min_last_c = phase_span(p.pad_w, S, p.dil_w, p.stride_w).min_last;
    } else {
      min_last_r = phase_taps(a.phase0 / p.stride_w, p.pad_h, R, p.dil_h, p.stride_h).last_shift;
      min_last_c = phase_taps(a.phase0 % p.stride_w, p.pad_w, S, p.dil_w, p.stride_w).last_shift;
    }
    block_taps = 0;
    for (int q = 0; q < t.mphases; ++q) {
      const int phase = a.phase0 + q;
      PhaseGeom pg = phase_geom(p, phase / p.stride_w, phase % p.stride_w, min_last_r, min_last_c);
      pg.cum = block_taps;
      if (q == my_phase) my_cum = block_taps, my_taps = pg.nr * pg.ns;
      if (int(threadIdx.x) == q) geom[q] = pg;
      block_taps += pg.nr * pg.ns;
    }
    srow0 = row0 + min_last_r;
    scol0 = col0 + min_last_c;
    psh = 1;
    psw = 1;
  } else {
    srow0 = row0 * p.stride_h - p.pad_h;
    scol0 = col0 * p.stride_w - p.pad_w;
    psh = p.stride_h;
    psw = p.stride_w;
  }

  // This thread's register block: output channels ob * kCh .. + kCh - 1, pixels pb + j * npb of the tile.
  const int tile_pix = t.tp * t.tq, total = t.nb * tile_pix;
  const bool active = item < t.ocb * t.npb;
  const int ob = active ? item / t.npb : 0, pb = active ? item - ob * t.npb : 0;
  float acc[kCh][kBlockPix];
#pragma unroll
  for (int k = 0; k < kCh; ++k) {
    const int o = ob * kCh + k;
    const float init = bias != nullptr && o < t.out ? to_acc(bias[dst_base + o]) : 0.0f;
#pragma unroll
    for (int j = 0; j < kBlockPix; ++j) acc[k][j] = init;
  }

  for (int c0 = 0; c0 < t.red; c0 += t.rc) {  // the chunks of reduction channels
    const int nch = min(t.rc, t.red - c0);
    __syncthreads();  // the previous chunk's reads are done (the first time: geom is written)
    // Filter table: wsm[tap * ocp + o], o the output channel (zero past the group's). Forward: tap = (ch * R + r) *
    // S + s for the chunk's channel c0 + ch. Backward-data: each phase's taps (ch, i, j) in turn from row nch * cum.
    const int ntaps = nch * block_taps;
    for (int e = threadIdx.x; e < ntaps * t.ocp; e += blockDim.x) {
      const int tap = e / t.ocp, o = e - tap * t.ocp;
      int ch, r, s;
      if constexpr (kDgrad) {
        int q = 0;
        while (q + 1 < t.mphases && tap >= nch * geom[q + 1].cum) ++q;
        const PhaseGeom& pg = geom[q];
        const int local = tap - nch * pg.cum, nrns = pg.nr * pg.ns;
        ch = local / nrns;
        const int ij = local - ch * nrns, i = ij / pg.ns, j = ij - i * pg.ns;
        r = pg.first_r + i * pg.tap_r, s = pg.first_s + j * pg.tap_s;
        if (o == 0) toff[tap] = ch * t.plane + (pg.base_r + i * pg.step_r) * t.pitch + pg.base_c + j * pg.step_c;
      } else {
        ch = tap / (R * S);
        const int rs = tap - ch * (R * S);
        r = rs / S, s = rs - r * S;
      }
      float v = 0.0f;
      if (o < t.out) {
        const int64_t k = kDgrad ? g * kpg + c0 + ch : g * kpg + o, c = kDgrad ? o : c0 + ch;
        v = to_acc(wt[k * p.w_stride[0] + c * p.w_stride[1] + r * p.w_stride[2] + s * p.w_stride[3]]);
      }
      wsm[e] = v;
    }
    stage<T, kNHWC, kStageBatch>(xs, src, n0, p.N, src_ch, src_base + c0, nch, nch, src_rows, src_cols, srow0, scol0,
                                 t.rows, t.cols, t.pitch, t.plane, t.nb, t.slot);
    __syncthreads();
    if (!active) continue;

    int off[kBlockPix];  // the pixels' staged origins (computed per chunk: not live through the staging)
#pragma unroll
    for (int j = 0; j < kBlockPix; ++j) {
      const int q = pb + j * t.npb;
      off[j] = 0;
      if (q < total) {
        const int nbi = q / tile_pix, rem = q - nbi * tile_pix;
        const int i = rem / t.tq, jj = rem - i * t.tq;
        off[j] = nbi * t.slot + i * psh * t.pitch + jj * psw;
      }
    }
    const float* wp = wsm + nch * my_cum * t.ocp + ob * kCh;
    // One tap: a broadcast read of kCh filter values, 7 pixel reads, 7 * kCh FFMAs.
    auto tap_fma = [&](int to) {
      float wk[kCh];
#pragma unroll
      for (int k = 0; k < kCh; k += 4) {
        const float4 w4 = *reinterpret_cast<const float4*>(wp + k);
        wk[k] = w4.x, wk[k + 1] = w4.y, wk[k + 2] = w4.z, wk[k + 3] = w4.w;
      }
      wp += t.ocp;
      float v[kBlockPix];
#pragma unroll
      for (int jx = 0; jx < kBlockPix; ++jx) v[jx] = xs[off[jx] + to];
#pragma unroll
      for (int k = 0; k < kCh; ++k)
#pragma unroll
        for (int jx = 0; jx < kBlockPix; ++jx) acc[k][jx] = fmaf(wk[k], v[jx], acc[k][jx]);
    };
    if constexpr (kDgrad) {  // the phase's taps from the table (their geometry kept out of registers)
      const int first = nch * my_cum, last = first + nch * my_taps;
#pragma unroll 2
      for (int tap = first; tap < last; ++tap) tap_fma(toff[tap]);
    } else {  // (c, r, s): offsets from the loop counters and the kernel parameters
      for (int ch = 0; ch < nch; ++ch)
        for (int i = 0; i < R; ++i) {
          const int row_off = ch * t.plane + i * p.dil_h * t.pitch;
#pragma unroll 2
          for (int j = 0; j < S; ++j) tap_fma(row_off + j * p.dil_w);
        }
    }
  }
  if (!active) return;

  // Decoded again (not kept live through the tap loop).
  const TileAt at_ = tile_at(t, blockIdx.x);
  const int phase = at_.phase0 + (kDgrad ? int(threadIdx.x) / t.tpp : 0);
  const int a_h = kDgrad ? phase / p.stride_w : 0, a_w = kDgrad ? phase % p.stride_w : 0;
  const int out_rows = kDgrad ? (dst_rows - a_h + p.stride_h - 1) / p.stride_h : dst_rows;  // the phase's grid
  const int out_cols = kDgrad ? (dst_cols - a_w + p.stride_w - 1) / p.stride_w : dst_cols;
#pragma unroll
  for (int j = 0; j < kBlockPix; ++j) {
    const int q = pb + j * t.npb;
    if (q >= total) continue;
    const int nbi = q / tile_pix, rem = q - nbi * tile_pix;
    const int i = rem / t.tq, jj = rem - i * t.tq;
    const int64_t n = at_.n0 + nbi;
    const int orow = at_.row0 + i, ocol = at_.col0 + jj;
    if (n >= p.N || orow >= out_rows || ocol >= out_cols) continue;
    const int64_t h = kDgrad ? a_h + int64_t(orow) * p.stride_h : orow;
    const int64_t w = kDgrad ? a_w + int64_t(ocol) * p.stride_w : ocol;
    const int64_t ch0 = dst_base + ob * kCh;
    if (kNHWC) {
      T* at = dst + ((n * dst_rows + h) * dst_cols + w) * dst_ch + ch0;
      float v[kCh];
#pragma unroll
      for (int k = 0; k < kCh; ++k) v[k] = acc[k][j];
      if (ob * kCh + kCh <= t.out && store_vector<T, kCh>(at, v)) continue;
#pragma unroll
      for (int k = 0; k < kCh; ++k)
        if (ob * kCh + k < t.out) at[k] = from_acc<T>(acc[k][j]);
    } else {
#pragma unroll
      for (int k = 0; k < kCh; ++k)
        if (ob * kCh + k < t.out) dst[((n * dst_ch + ch0 + k) * dst_rows + h) * dst_cols + w] = from_acc<T>(acc[k][j]);
    }
  }
}

template <typename T, bool kNHWC, bool kDgrad, int kCh>
void launch_conv_kernel(const ConvParams& p, const Plan& t, cudaStream_t stream) {
  constexpr auto kernel = conv_kernel<T, kNHWC, kDgrad, kCh>;
  dw::allow_shared_memory<kernel>(t.smem);
  kernel<<<dim3(static_cast<unsigned>(t.blocks), static_cast<unsigned>(p.groups)), t.threads, t.smem, stream>>>(p, t);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Forward or backward-data of `p` (can_implement(p, role) is "").
template <bool kDgrad>
void launch_conv(const ConvParams& p, cudaStream_t stream) {
  if (p.N == 0) return;  // an empty batch: nothing to launch (a grid of 0 is an error)
  const Plan t = make_conv_plan(p, kDgrad, num_sms());
  TORCH_CHECK(t.smem > 0 && t.blocks > 0, "conv2d_ext: tiled:grouped: no tile plan for this problem");
  dispatch_float_dtype(p.dtype, "tiled:grouped", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (t.ch == 4) {
      if (p.channels_last) launch_conv_kernel<T, true, kDgrad, 4>(p, t, stream);
      else launch_conv_kernel<T, false, kDgrad, 4>(p, t, stream);
    } else {
      if (p.channels_last) launch_conv_kernel<T, true, kDgrad, 8>(p, t, stream);
      else launch_conv_kernel<T, false, kDgrad, 8>(p, t, stream);
    }
  });
}

// ---- Backward-weight.

// Writes the total of grad_weight element e = k * ftaps + (c * R + r) * S + s.
template <typename T>
struct StoreWeight {
  T* w;
  int64_t k_stride, c_stride, r_stride, s_stride;
  int R, S, ftaps;
  __device__ __forceinline__ void operator()(int64_t e, float total) const {
    const int64_t k = e / ftaps;
    const int tap = static_cast<int>(e - k * ftaps);
    const int c = tap / (R * S), rs = tap - c * (R * S);
    const int r = rs / S, s = rs - r * S;
    w[k * k_stride + c * c_stride + r * r_stride + s * s_stride] = from_acc<T>(total);
  }
};

// Block (group * wchunks + chunk of register blocks, split): the split's (image, tile) pairs, as at the top.
template <typename T, bool kNHWC>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    wgrad_kernel(const ConvParams p, const WPlan t, SplitOutput<float, StoreWeight<T>> out) {
  extern __shared__ __align__(16) unsigned char smem[];
  float* const xs = reinterpret_cast<float*>(smem);
  float* const gs = xs + t.goffset;                           // [position][gstride]
  int* const pos_off = reinterpret_cast<int*>(xs + t.toffset);  // position -> its window's origin in xs
  pdl_launch_dependents();  // finish_splits may start its blocks (they wait for this grid to complete)

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ dy = static_cast<const T*>(p.y);
  const int64_t cpg = p.C_per_group(), kpg = p.K_per_group();
  const int64_t g = blockIdx.x / t.wchunks;
  const int wc = static_cast<int>(blockIdx.x % t.wchunks);
  const int lane = threadIdx.x % t.lanes, wl = threadIdx.x / t.lanes;
  const int wb = wc * t.wchunk + wl;
  const bool active = wl < t.wchunk && wb < t.kb * t.tb;
  const int kb = active ? wb / t.tb : 0, tb = active ? wb - (wb / t.tb) * t.tb : 0;
  const int RS = static_cast<int>(p.R * p.S), S = static_cast<int>(p.S);
  const int H = static_cast<int>(p.H), W = static_cast<int>(p.W), P = static_cast<int>(p.P), Q = static_cast<int>(p.Q);

  const int npos = t.tp * t.tq;
  for (int pos = threadIdx.x; pos < npos; pos += blockDim.x) {
    const int i = pos / t.tq, j = pos - i * t.tq;
    pos_off[pos] = i * p.stride_h * t.pitch + j * p.stride_w;
  }

  float acc[kBlockCh][kBlockTaps];
#pragma unroll
  for (int k = 0; k < kBlockCh; ++k)
#pragma unroll
    for (int m = 0; m < kBlockTaps; ++m) acc[k][m] = 0.0f;

  const int64_t per_image = t.tiles_p * t.tiles_q;
  for (int64_t item = blockIdx.y; item < t.items; item += gridDim.y) {
    const int64_t n = item / per_image;
    const int rest = static_cast<int>(item - n * per_image);
    const int row0 = (rest / static_cast<int>(t.tiles_q)) * t.tp;
    const int col0 = (rest % static_cast<int>(t.tiles_q)) * t.tq;
    __syncthreads();  // the previous tile's reads are done (and pos_off is written)
    stage<T, kNHWC, kWgradBatch, false>(xs, x, n, p.N, p.C, g * cpg, static_cast<int>(cpg), static_cast<int>(cpg), H,
                                        W, row0 * p.stride_h - p.pad_h, col0 * p.stride_w - p.pad_w, t.rows, t.cols,
                                        t.pitch, t.xplane, 1, 0);
    stage<T, kNHWC, kWgradBatch, false>(gs, dy, n, p.N, p.K, g * kpg, static_cast<int>(kpg), t.kpad, P, Q, row0, col0,
                                        t.tp, t.tq, t.tq * t.gstride, 1, 1, 0, t.gstride);
    __syncthreads();
    if (active) {
      // This thread's 8 taps (c, r, s) as offsets into the staged input (0 past the filter: computed, never
      // stored); recomputed per tile so that they are not live across the staging.
      int toff[kBlockTaps];
#pragma unroll
      for (int m = 0; m < kBlockTaps; ++m) {
        const int tap = tb * kBlockTaps + m;
        toff[m] = 0;
        if (tap < t.ftaps) {
          const int c = tap / RS, rs = tap - c * RS;
          const int r = rs / S, s = rs - r * S;
          toff[m] = c * t.xplane + r * p.dil_h * t.pitch + s * p.dil_w;
        }
      }
      const float* gk = gs + kb * kBlockCh;
      // Only the tile's positions inside P x Q: those past it have zero gradient, but the staged inputs they meet
      // can lie inside the image, and 0 x inf would put a NaN in a tap PyTorch keeps finite.
      const int rows_in = min(t.tp, P - row0), cols_in = min(t.tq, Q - col0);
      for (int pos = lane; pos < rows_in * t.tq; pos += t.lanes) {
        if (cols_in < t.tq && pos % t.tq >= cols_in) continue;  // a right-edge tile: columns past Q
        const int xo = pos_off[pos];
        const float4 g0 = *reinterpret_cast<const float4*>(gk + pos * t.gstride);
        const float4 g1 = *reinterpret_cast<const float4*>(gk + pos * t.gstride + 4);
        const float gv[kBlockCh] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
        float xv[kBlockTaps];
#pragma unroll
        for (int m = 0; m < kBlockTaps; ++m) xv[m] = xs[xo + toff[m]];
#pragma unroll
        for (int k = 0; k < kBlockCh; ++k)
#pragma unroll
          for (int m = 0; m < kBlockTaps; ++m) acc[k][m] = fmaf(gv[k], xv[m], acc[k][m]);
      }
    }
  }

  // The lanes of a register block add their sums by a fixed shuffle tree (lanes is a power of 2 dividing 32, and
  // a register block's lanes are consecutive threads of one warp); lane 0 puts the totals.
#pragma unroll
  for (int k = 0; k < kBlockCh; ++k)
#pragma unroll
    for (int m = 0; m < kBlockTaps; ++m) {
      float v = acc[k][m];
      for (int offset = t.lanes / 2; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset, t.lanes);
      const int kk = kb * kBlockCh + k, tap = tb * kBlockTaps + m;
      if (active && lane == 0 && kk < kpg && tap < t.ftaps) out.put((g * kpg + kk) * t.ftaps + tap, v);
    }
}

}  // namespace grp
}  // namespace conv2d_ext
