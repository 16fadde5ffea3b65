// Tiled family, depthwise configuration (groups == C, any channel multiplier M = K / C): the machinery its three
// passes share. Depthwise convolutions do 2 * R * S flops per output element, so they are memory-bound; these
// kernels are written to read each input byte from DRAM about once, coalesced, with many bytes in flight.
//
// A block walks a contiguous range of tiles (persistent grid) with two shared-memory buffers: while it computes one
// tile, the cp.async copies of its next tile are in flight. A tile is
//   - a tp x tq block of output pixels of one image, for ct "base" channels (ct input channels of the forward,
//     ct grad_input channels of the backward-data);
//   - the input pixels those outputs read, halo included (stride and dilation aware), staged in shared memory in
//     the tensor's own layout and dtype: [channel][row][pitch] for NCHW, [row][col][channel] for NHWC. Pixels
//     outside the tensor are zero (cp.async zero-fill), so the padding costs nothing.
// Copies are 16, 8 or 4 bytes (cp.async) along the contiguous dimension (a row in NCHW, a pixel's channels in
// NHWC) when the base pointer and that dimension's length allow; else single-element copies (2-byte types only).
// In NCHW the staged row starts at the copy-aligned column at or left of the tile's first input column; `shift`
// is the offset between them.
//
// Each thread computes a register block of Rows x Cols outputs of one channel: threads of a warp take
// consecutive columns (NCHW) or consecutive channels (NHWC), so their shared-memory reads hit distinct banks and
// their global stores are coalesced. Weights are staged per channel chunk in shared memory as fp32 and, on the
// specialised path (3x3, 5x5, 7x7 at stride 1, dilation 1), kept in registers; there each input row segment is read
// once from shared memory into registers and used for every output row and filter tap it meets. All arithmetic is
// FP32 FFMA (fp16/bf16 converted on read), output in the input's dtype.
//
// Backward-data is the same kernel with grad_output as the staged input: grad_input pixel h receives
// grad_output row p = (h + ph - r*dh) / sh for each tap r where that division is exact (a gather, no atomics); at
// stride 1 that is a correlation with the flipped filter. Each grad_input channel c sums the M grad_output channels
// c*M .. c*M + M-1. Backward-weight (depthwise_backward_weight.cu) stages an input tile and a grad_output tile and
// reduces their products per filter tap.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include "common/conv_params.h"
#include "common/cp_async.cuh"
#include "common/dtype.cuh"
#include "common/launch.cuh"
#include "common/tma.cuh"

namespace conv2d_ext {
namespace dw {

constexpr int kMaxThreads = 256;  // threads per block, at most
constexpr int kMinBlocks = 2;     // blocks per SM the register allocation must allow
constexpr int kStages = 3;        // forward / backward-data: staged tiles per block (two in flight while one computes)
constexpr int64_t kStagesSmem = 75 * 1024;  // ... when they fit this (three blocks per SM), else two
// Blocks per SM the register allocation allows for the forward / backward-data kernel of a kR x kS filter (0: the
// general path): the 3x3 forward kernels fit 64 registers (backward-data, which reloads its filter per channel, 80
// without spills), so three or four blocks per SM keep more copies in flight.
template <int kR, bool kDgrad> struct ConvMinBlocks {
  static constexpr int value = kR == 3 ? (kDgrad ? 3 : 4) : kMinBlocks;
};
constexpr int kTapChunk = 9;      // backward-weight, general path: filter taps reduced per block
constexpr int64_t kSmemBudget = 96 * 1024;  // planned shared memory per block, so that two blocks fit on an SM

// Output columns per thread: NCHW threads take one column each (a warp reads 32 consecutive words); NHWC threads
// take two neighbouring pixels of one channel (the input columns they share are read once), four on the fp16/bf16
// 5x5 and 7x7 path of every pass (kR: the specialised filter size, 0 otherwise; kElem: bytes per element), where the
// kS - 1 extra input columns per row cost more than the accumulators (7x7 channels-last: 10 loads per 28 FFMA a row
// instead of 8 per 14). fp32 keeps two: its tiles of four-column blocks do not fit two blocks per SM.
template <bool kNHWC, int kR = 0, int kElem = 2> struct Cols {
  static constexpr int value = kNHWC ? (kR >= 5 && kElem == 2 ? 4 : 2) : 1;
};

// Output rows per thread (register block): eight; seven on the four-column path, whose feature maps are mostly
// multiples of seven (56, 28, 14, 7: whole register blocks) and whose rounds then divide the work over a full grid
// evenly. Session 19, H200, depthwise_7x7 channels-last bf16 forward with eight: 1344 rounds of register blocks over
// 264 blocks, at most six a block against 5.09 on average (ncu: SMs active 85% of the time).
constexpr int rows_for_cols(int cols) { return cols == 4 ? 7 : 8; }
template <bool kNHWC, int kR = 0, int kElem = 2> struct Rows {
  static constexpr int value = rows_for_cols(Cols<kNHWC, kR, kElem>::value);
};

// The four-column kernels of every pass have a variant for tiles of exactly this many staged channels (known at
// compile time: a staged row's pixels at immediate offsets, one address per row instead of one per load).
constexpr int kFixedChannels = 32;
constexpr int kDynamicWarps = kMaxThreads / 32;  // conv_kernel_dynamic's warps

enum class Role : int { kForward = 0, kBackwardData = 1, kBackwardWeight = 2 };

CONV2D_EXT_HOST_DEVICE inline int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// The same in 32 bits (device code: a 64-bit division is a subroutine of about a hundred instructions).
CONV2D_EXT_HOST_DEVICE inline int floor_div32(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// One staged tile in shared memory (one of the two buffers).
struct Staged {
  int rows = 0, cols = 0;  // staged rows and columns (the most any tile needs)
  int pitch = 0;           // NCHW: elements between staged rows (cols + alignment slack, a multiple of vec); NHWC: cols
  int channels = 0;        // staged channels
  int vec = 1;             // elements per copy
  bool async = true;       // cp.async copies of vec elements, else synchronous single-element copies
  int elems = 0;           // elements of one buffer (a multiple of 16 bytes)
};

// The launch plan of one pass: tile shape, staged tiles, threads, shared memory. Computed on the host from the
// problem alone (can_implement and launch compute the same plan); passed to the kernels by value.
struct Plan {
  int tp = 0, tq = 0;  // output rows and columns of a tile (multiples of Rows and Cols)
  int ct = 0;          // base channels per tile (of C)
  int cout = 0;        // output channels per tile: ct * M (forward, backward-weight) or ct (backward-data)
  int wsets = 0;       // filters (output channels k) per tile: ct * M
  int threads = 0;
  int64_t tiles_p = 0, tiles_q = 0, chunks = 0, tiles = 0;  // tiles = chunks * N * tiles_p * tiles_q
  Staged in;    // x (forward, backward-weight) or grad_output (backward-data)
  Staged grad;  // backward-weight: grad_output
  int64_t smem = 0;  // dynamic shared memory bytes
  bool fast = false; // 3x3, 5x5 or 7x7 at stride 1 and dilation 1: the specialised kernels
  int stages = 2;     // staged tiles per block (buffers of `in`; backward-weight: 2 of `in` and of `grad`)
  bool tma = false;   // forward / backward-data: `in` staged by the copy engine (with_tma), one mbarrier a buffer
  bool dynamic = false;  // ... and register blocks handed out at run time (with_dynamic, conv_kernel_dynamic)
  bool tma_store = false;  // ... and stored by the copy engine through a stage per warp (with_dynamic)
};

// ---- Host: the plan.

inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// The largest part when n is split into as few parts of at most `most` as possible, as evenly as possible.
inline int64_t balanced_part(int64_t n, int64_t most) {
  const int64_t parts = (n + most - 1) / most;
  return (n + parts - 1) / parts;
}

// Elements per copy from `base`, whose contiguous runs are `run` elements of `elem` bytes: the widest of 16, 8 and
// 4 bytes that the pointer and the run length allow (the copies of a run then never straddle its end). `async`
// comes back false for 2-byte types that allow none (synchronous element copies).
inline int copy_elems(const void* base, int64_t run, int elem, bool* async) {
  *async = true;
  for (int bytes : {16, 8, 4}) {
    const int e = bytes / elem;
    if (reinterpret_cast<uintptr_t>(base) % bytes == 0 && run % e == 0) return e;
  }
  *async = false;
  return 1;
}

inline Staged make_staged(bool nhwc, int64_t rows, int64_t cols, int64_t channels, int vec, bool async, int elem) {
  Staged s;
  s.rows = static_cast<int>(rows);
  s.cols = static_cast<int>(cols);
  s.pitch = static_cast<int>(nhwc ? cols : round_up(cols + vec - 1, vec));
  s.channels = static_cast<int>(channels);
  s.vec = vec;
  s.async = async;
  s.elems = static_cast<int>(round_up(channels * rows * s.pitch, 16 / elem));
  return s;
}

inline bool specialised(const ConvParams& p) {
  const bool unit = p.stride_h == 1 && p.stride_w == 1 && p.dil_h == 1 && p.dil_w == 1;
  return unit && p.R == p.S && (p.R == 3 || p.R == 5 || p.R == 7);
}

// Cols of the kernel that runs `p` (any pass).
inline int cols_per_thread(const ConvParams& p) {
  if (!p.channels_last) return Cols<false>::value;
  if (!specialised(p) || (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16)) return Cols<true>::value;
  return p.R == 7 ? Cols<true, 7>::value : p.R == 5 ? Cols<true, 5>::value : Cols<true, 3>::value;
}

// Rows of the kernel that runs `p` (any pass).
inline int rows_per_thread(const ConvParams& p) { return rows_for_cols(cols_per_thread(p)); }

// Staged input rows for `tp` output rows (columns alike): the forward window extent; backward-data: the
// grad_output rows p = (h + ph - r*dh) / sh that grad_input rows h0 .. h0 + tp - 1 gather from, for any h0.
inline int64_t staged_extent(Role role, int64_t tp, int64_t R, int64_t stride, int64_t dil) {
  if (role == Role::kBackwardData) return ((R - 1) * dil + stride - 1 + tp - 1) / stride + 1;
  return (tp - 1) * stride + (R - 1) * dil + 1;
}

// The plan of `role` for tiles of tp x tq outputs and ct base channels; smem = 0 when it cannot be built.
// At most `threads` threads (0: kMaxThreads).
inline Plan plan_for(const ConvParams& p, Role role, int tp, int tq, int64_t ct, int vec_in, bool async_in,
                     int vec_grad, bool async_grad, int64_t threads = 0) {
  const bool nhwc = p.channels_last, dgrad = role == Role::kBackwardData, wgrad = role == Role::kBackwardWeight;
  const int elem = p.element_bytes();
  const int cols_per_thread = dw::cols_per_thread(p);
  const int64_t M = p.K / p.C;
  Plan t;
  const int64_t rows = staged_extent(role, tp, p.R, p.stride_h, p.dil_h);
  const int64_t cols = staged_extent(role, tq, p.S, p.stride_w, p.dil_w);
  const int64_t cin = dgrad ? ct * M : ct, cout = dgrad ? ct : ct * M;
  // Keep every tile-local index far inside int (and impossible tiles out of the shared-memory arithmetic).
  if (rows > (1 << 16) || cols > (1 << 16) || cin > (1 << 16) || cout > (1 << 16)) return t;
  if (cin * rows * (cols + 16) > (int64_t(1) << 22)) return t;  // far past any GPU's shared memory
  t.tp = tp;
  t.tq = tq;
  t.ct = static_cast<int>(ct);
  t.cout = static_cast<int>(cout);
  t.wsets = static_cast<int>(ct * M);
  t.in = make_staged(nhwc, rows, cols, cin, vec_in, async_in, elem);
  const int64_t blocks = int64_t(tp / rows_per_thread(p)) * (tq / cols_per_thread);  // register blocks of a channel
  int64_t smem = 2 * int64_t(t.in.elems) * elem;
  if (wgrad) {
    t.grad = make_staged(nhwc, tp, tq, cout, vec_grad, async_grad, elem);
    smem += 2 * int64_t(t.grad.elems) * elem;
    if (cout > kMaxThreads) return t;
    const int64_t per_channel =  // threads per output channel
        std::min<int64_t>(blocks, (threads > 0 ? threads : kMaxThreads) / cout);
    t.threads = static_cast<int>(cout * per_channel);
    smem = std::max<int64_t>(smem, int64_t(t.threads + 1) * 4);  // the final reduction's scratch
  } else {
    t.threads = static_cast<int>(std::min<int64_t>(threads > 0 ? threads : kMaxThreads, round_up(cout * blocks, 32)));
    smem += int64_t(t.wsets) * p.R * p.S * 4;  // fp32 weights of the chunk
    // A third buffer where it keeps three blocks per SM (the large 7x7 channels-last tiles keep two and two blocks).
    if (smem + int64_t(t.in.elems) * elem <= kStagesSmem) {
      smem += int64_t(t.in.elems) * elem;
      t.stages = kStages;
    }
  }
  const int64_t out_h = dgrad ? p.H : p.P, out_w = dgrad ? p.W : p.Q;
  t.tiles_p = (out_h + tp - 1) / tp;
  t.tiles_q = (out_w + tq - 1) / tq;
  t.chunks = (p.C + ct - 1) / ct;
  t.tiles = t.chunks * p.N * t.tiles_p * t.tiles_q;
  t.fast = specialised(p);
  t.smem = smem;
  return t;
}

// Shared memory a plan may take so that two blocks fit an SM: half the SM's (the largest a block may opt in to, plus
// the 1 KB the system takes per block) less 1 KB, or kSmemBudget where that is more.
inline int64_t smem_budget(int64_t max_smem) {
  return std::min(max_smem, std::max(kSmemBudget, (max_smem + 1024) / 2 - 1024));
}

// The plan for `p`: tiles of about kMaxThreads register blocks, shrunk until they fit `budget` bytes of shared
// memory (no more than the GPU gives a block); smem = 0 when even the smallest tile does not fit.
//   NCHW: a tile spans up to 64 output columns (balanced over the width) and as many register blocks of Rows rows
//   as fill the block; channels fill the rest (small images take several channels per tile).
//   NHWC: a chunk of channels (a multiple of the copy width, about 32-64 lanes, dividing C when it can) times
//   Rows x Cols pixel blocks in rounds of whole row blocks (the width balanced over the image), two rounds a tile
//   (one for backward-weight); where that does not fit, as many blocks as fill the block, as square as the image
//   allows, shrunk.
inline Plan make_plan(const ConvParams& p, Role role, int64_t max_smem) {
  const bool nhwc = p.channels_last, dgrad = role == Role::kBackwardData, wgrad = role == Role::kBackwardWeight;
  const int elem = p.element_bytes();
  const int64_t M = p.K / p.C;
  // What each staged tensor allows for copies: x (forward, backward-weight) or grad_output.
  const void* in_ptr = dgrad ? p.y : p.x;
  const int64_t in_channels = dgrad ? p.K : p.C;
  bool async_in = false, async_grad = false;
  const int vec_in = copy_elems(in_ptr, nhwc ? in_channels : (dgrad ? p.Q : p.W), elem, &async_in);
  int vec_grad = 1;
  if (wgrad) vec_grad = copy_elems(p.y, nhwc ? p.K : p.Q, elem, &async_grad);
  const int64_t out_h = dgrad ? p.H : p.P, out_w = dgrad ? p.W : p.Q;
  const int64_t block_rows = rows_per_thread(p);  // of a register block
  const int64_t row_blocks = (out_h + block_rows - 1) / block_rows;
  const int64_t budget = smem_budget(max_smem);
  auto fits = [&](const Plan& t, int64_t limit) { return t.smem > 0 && t.smem <= limit; };

  if (!nhwc) {
    // Columns: up to 64 per tile, balanced; row blocks and channels fill kMaxThreads threads.
    int64_t tq = balanced_part(out_w, 64);
    int64_t rg = std::max<int64_t>(1, std::min<int64_t>(kMaxThreads / tq, row_blocks));
    rg = balanced_part(row_blocks, rg);  // balanced over the height
    const int64_t lanes = std::max<int64_t>(1, kMaxThreads / (rg * tq));  // output channels per tile
    int64_t ct = std::max<int64_t>(1, std::min<int64_t>(p.C, dgrad ? lanes : lanes / M));
    for (;;) {
      const Plan t = plan_for(p, role, int(rg * block_rows), int(tq), ct, vec_in, async_in, vec_grad, async_grad);
      if (fits(t, budget)) return t;
      if (ct > 1) ct = (ct + 1) / 2;
      else if (rg > 1) rg = (rg + 1) / 2;
      else if (tq > 1) tq = (tq + 1) / 2;
      else return fits(t, max_smem) ? t : Plan{};
    }
  }

  // NHWC. Base channels per tile: a multiple of every copy width; lanes (output channels) about 32-64.
  const int64_t unit = std::max(vec_in, vec_grad);
  const int64_t lanes_per_ct = dgrad ? 1 : M;
  int64_t ct = round_up(p.C, unit);
  if (p.C * lanes_per_ct > 64) {
    int64_t best = 0, best_waste = 0;
    for (int64_t c = unit; c <= round_up(p.C, unit) && c * lanes_per_ct <= 256; c += unit) {
      const int64_t waste = (p.C + c - 1) / c * c - p.C;
      const bool in_range = c * lanes_per_ct >= 32 && c * lanes_per_ct <= 64;
      const int64_t score = waste * 4 + (in_range ? 0 : 1 + std::abs(c * lanes_per_ct - 48) / 16);
      if (best == 0 || score < best_waste) best = c, best_waste = score;
    }
    ct = best > 0 ? best : unit;
  }
  const int64_t cols_per_thread = dw::cols_per_thread(p);
  const int64_t col_blocks = (out_w + cols_per_thread - 1) / cols_per_thread;
  // Register blocks per thread and tile (forward and backward-data): two, so that the per-tile work (staging, the
  // tile's index math, the filter staging) is shared. H200, depthwise_7x7 NHWC, ms for 1 / 2 / 3 with the earlier
  // square tiles of 8 x 2 blocks: bf16 forward 0.0652 / 0.0628 / 0.0580, backward-data 0.0700 / 0.0670 / 0.0616;
  // fp32 forward 0.0744 / 0.0729 / 0.0805 (sessions 16-17); session 18's rounds: see NOTES. TUNING (temporary):
  // CONV2D_EXT_DW_ITEMS (1-4).
  const char* env_items = std::getenv("CONV2D_EXT_DW_ITEMS");
  int64_t per_thread = 2;
  if (env_items != nullptr) per_thread = std::max(1, std::min(4, std::atoi(env_items)));
  if (wgrad) per_thread = 1;
  for (;;) {
    const int64_t lanes = ct * lanes_per_ct;
    {
      // First choice: a round of the block's threads (one register block each) covers whole row blocks of the tile,
      // bq column blocks (as many as kMaxThreads allow, balanced over the width) x `per_round` row blocks x the
      // lanes; a tile is per_thread rounds, its height balanced over the image's. Rounds past the image's last row
      // block are skipped whole, so only the last chunk's idle lanes cost time (session 18: 7x7 channels-last
      // 56 x 56 outputs, tiles of 2 x 7 register blocks and 224 threads, where 2 x 12 left 8 of the last tile
      // column's 12 idle). When it does not fit, the search below.
      const int64_t bq_max = std::max<int64_t>(1, kMaxThreads / lanes);
      const int64_t rq = balanced_part(col_blocks, bq_max);
      const int64_t per_round = std::min(row_blocks, std::max<int64_t>(1, kMaxThreads / (lanes * rq)));
      const int64_t rp = balanced_part(row_blocks, std::min(row_blocks, per_thread * per_round));
      const Plan t = plan_for(p, role, int(rp * block_rows), int(rq * cols_per_thread), ct, vec_in, async_in, vec_grad,
                              async_grad, std::min<int64_t>(kMaxThreads, round_up(lanes * rq * per_round, 32)));
      if (fits(t, budget)) return t;
    }
    const int64_t blocks = std::max<int64_t>(1, per_thread * kMaxThreads / lanes);  // register blocks per tile
    // bp x bq register blocks (bp*8 rows, bq*cols columns): as many as allowed, then the squarest.
    int64_t bp = 1, bq = 1;
    for (int64_t a = 1; a <= std::min(blocks, row_blocks); ++a) {
      const int64_t b = std::min(blocks / a, col_blocks);
      const bool more = a * b > bp * bq;
      const bool squarer = a * b == bp * bq && std::abs(a * block_rows - b * cols_per_thread) <
                                                   std::abs(bp * block_rows - bq * cols_per_thread);
      if (more || squarer) bp = a, bq = b;
    }
    for (;;) {
      const Plan t = plan_for(p, role, int(bp * block_rows), int(bq * cols_per_thread), ct, vec_in, async_in, vec_grad,
                              async_grad);
      if (fits(t, budget)) return t;
      if (bq > 1 && bq * cols_per_thread >= bp * block_rows) bq = (bq + 1) / 2;
      else if (bp > 1) bp = (bp + 1) / 2;
      else if (bq > 1) bq = (bq + 1) / 2;
      else break;
    }
    if (ct > unit) {
      ct = std::max(unit, round_up(ct / 2, unit));
      continue;
    }
    const Plan t = plan_for(p, role, block_rows, int(cols_per_thread), ct, vec_in, async_in, vec_grad, async_grad);
    return fits(t, max_smem) ? t : Plan{};
  }
}

// Largest dynamic shared memory a block may opt in to, by compute capability (CUDA programming guide, "Technical
// Specifications"): 227 KB on sm_90/sm_100, 163 KB on sm_80/sm_87, 99 KB otherwise.
inline int64_t max_shared_memory(int sm) {
  if (sm == 90 || sm == 100) return 232448;
  if (sm == 80 || sm == 87) return 166912;
  return 101376;
}

// ---- Host: staging by the copy engine (the default where a kernel exists; CONV2D_EXT_DW_TMA=0 turns it off).
//
// A channels-last forward / backward-data tile is one box of the staged tensor (x; grad_output for backward-data):
// [the chunk's channels][staged columns][staged rows][one image], innermost first, which a 4-D tensor map copies into
// the staged layout as it is, zeros outside the tensor (padding, the last chunk's channels past C). One thread issues
// each tile's copy; the block waits on that buffer's mbarrier instead of cp.async groups, and the staging loop
// (~12% of the 7x7 forward's instructions) goes. Only the kernels of 32 staged channels on the fp16/bf16 5x5 / 7x7
// path have the variant. Session 19 (H200, depthwise_7x7 channels-last, graph time): forward 0.0546 -> 0.0463 ms
// fp16 (0.0549 -> 0.0460 bf16), backward-data 0.0565 -> 0.0485 (0.0577 -> 0.0483).

inline bool tma_enabled() {
  const char* env = std::getenv("CONV2D_EXT_DW_TMA");
  return env == nullptr || env[0] != '0';
}

// A staged tile the copy engine can write as one box: 32 channels of 16-byte runs, box extents up to 256.
inline bool tma_box(const Staged& s) {
  return s.channels == kFixedChannels && s.async && s.vec == 8 && s.cols <= 256 && s.rows <= 256;
}

// `t` with its staged buffers 128-byte aligned (the copy engine's destinations) and one 8-byte barrier a buffer (the
// last 8 * t.stages bytes of t.smem, tma_barriers), when a TMA kernel exists for it (sm_90a build on compute
// capability 9.0, channels-last fp16/bf16 5x5 or 7x7 at stride 1, 32 staged channels, 16-byte copies; backward-
// weight: both tiles so) and it still fits two blocks per SM; else `t` as it is.
inline Plan with_tma(const ConvParams& p, Plan t, int64_t max_smem, Role role) {
#ifdef CONV2D_EXT_SM90A
  const bool wgrad = role == Role::kBackwardWeight;
  if (p.sm != 90 || cols_per_thread(p) != 4 || !tma_box(t.in) || (wgrad && !tma_box(t.grad))) return t;
  Plan u = t;
  u.in.elems = static_cast<int>(round_up(t.in.elems, 64));  // 128 bytes
  int64_t bytes;
  if (wgrad) {  // two buffers of each tile; the final reduction's scratch reuses them, never the barriers
    u.grad.elems = static_cast<int>(round_up(t.grad.elems, 64));
    bytes = 2 * (int64_t(u.in.elems) + u.grad.elems) * 2;
    if (int64_t(u.threads + 1) * 4 > bytes) return t;
  } else {  // the buffers, then the filter chunk
    bytes = int64_t(u.stages) * u.in.elems * 2 + (t.smem - int64_t(t.stages) * t.in.elems * 2);
  }
  u.smem = round_up(bytes, 8) + 8 * int64_t(u.stages);
  if (u.smem > smem_budget(max_smem)) return t;
  u.tma = true;
  return u;
#else
  (void)p;
  (void)max_smem;
  (void)role;
  return t;
#endif
}

// The tensor map of a channels-last tensor at `base` (channels x rows x cols per image) that TMA plans stage into
// `s`: dimensions (channels, columns, rows, images), one box per tile.
template <typename T>
CUtensorMap staged_map(const ConvParams& p, const Staged& s, const void* base, int64_t channels, int64_t rows,
                       int64_t cols) {
  CUtensorMap map{};
  const uint64_t e = sizeof(T), c = channels, h = rows, w = cols;
  const uint64_t dims[4] = {c, w, h, static_cast<uint64_t>(p.N)};
  const uint64_t strides[3] = {c * e, w * c * e, h * w * c * e};
  const uint32_t box[4] = {static_cast<uint32_t>(s.channels), static_cast<uint32_t>(s.cols),
                           static_cast<uint32_t>(s.rows), 1};
  const uint32_t step[4] = {1, 1, 1, 1};
  const auto dtype = std::is_same<T, float>::value    ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32
                     : std::is_same<T, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                      : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const char* why = encode_tensor_map_4d(&map, dtype, base, dims, strides, box, step, false);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: tiled:depthwise: ", why);
  return map;
}

// The tensor map of the forward's / backward-data's staged input (x, or grad_output for backward-data).
template <typename T, bool kDgrad>
CUtensorMap staged_in_map(const ConvParams& p, const Plan& t) {
  return staged_map<T>(p, t.in, kDgrad ? p.y : p.x, kDgrad ? p.K : p.C, kDgrad ? p.P : p.H, kDgrad ? p.Q : p.W);
}

// The copy-engine forward / backward-data tiles' register blocks handed out at run time (conv_kernel_dynamic): the
// default where with_dynamic admits the plan; CONV2D_EXT_DW_DYNAMIC=0 keeps conv_kernel's static items. Session 20
// (H200, depthwise_7x7 channels-last, graph time, ms): forward fp16 0.0381 -> 0.0357, bf16 0.0381 -> 0.0365;
// backward-data 0.0393 -> 0.0362, 0.0395 -> 0.0367.
inline bool dynamic_enabled() {
  const char* env = std::getenv("CONV2D_EXT_DW_DYNAMIC");
  return env == nullptr || env[0] != '0';
}

// `t` (a copy-engine plan of the forward or backward-data) for conv_kernel_dynamic: 32 channels a tile, one filter
// each (M = 1), items numbered in 32 bits, and the filter chunks of any block's range of tiles (two at most: a chunk
// holds at least as many tiles as any range) fitting beside the buffers with the counters; else `t` as it is.
inline Plan with_dynamic(const ConvParams& p, Plan t, int64_t max_smem, bool dgrad) {
  if (!t.tma || p.K != p.C || t.cout != kFixedChannels || t.in.channels != kFixedChannels) return t;
  const int64_t per_tile = (t.tp / rows_per_thread(p)) * (t.tq / cols_per_thread(p));
  if (t.tiles * per_tile + kMaxThreads / 32 >= (int64_t(1) << 31)) return t;  // the counter passes g1 by a warp each
  const int64_t blocks = std::min<int64_t>(t.tiles, num_sms());  // the fewest the grid can have
  if (p.N * t.tiles_p * t.tiles_q < (t.tiles + blocks - 1) / blocks + 1) return t;
  Plan u = t;
  const int64_t buffers = int64_t(t.stages) * t.in.elems * 2, filters = int64_t(t.wsets) * p.R * p.S * 4;
  const auto smem_with = [&](int64_t stages_bytes) {
    return round_up(buffers + stages_bytes + 2 * filters + 4 * (1 + int64_t(t.stages)), 8) + 8 * int64_t(t.stages);
  };
  u.smem = smem_with(0);
  if (u.smem > smem_budget(max_smem)) return t;
  u.dynamic = true;
  // The output by the copy engine (a 16-byte aligned output whose pixels are whole 16-byte units) where the warps'
  // stages fit too. CONV2D_EXT_DW_TMA_STORE=0 keeps the global stores (for comparisons; tested both ways).
  const char* env = std::getenv("CONV2D_EXT_DW_TMA_STORE");
  const int64_t stage_bytes = int64_t(kDynamicWarps) * rows_per_thread(p) * cols_per_thread(p) * kFixedChannels * 2;
  if ((env == nullptr || env[0] != '0') && smem_with(stage_bytes) <= smem_budget(max_smem) && (p.C * 2) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(dgrad ? p.x : p.y) % 16 == 0) {
    u.tma_store = true;
    u.smem = smem_with(stage_bytes);
  }
  // Warps take items, so the block's threads need not match the tile: eight warps, two blocks an SM, every scheduler
  // four (session 20, graph time, 7x7 forward fp16 ms at 160 / 192 / 224 / 256 threads: 0.0388 / 0.0366 / 0.0366 /
  // 0.0357; backward-data 0.0394 / 0.0373 / 0.0369 / 0.0362).
  u.threads = kMaxThreads;
  return u;
}

// "" when `stride` (n, c, h, w order) is dense in p's layout for an N x channels x rows x cols tensor; dimensions of
// size 1 may have any stride (the kernels never step along them).
inline std::string dense_reason(const ConvParams& p, const int64_t (&stride)[4], int64_t channels, int64_t rows,
                                int64_t cols, const char* what) {
  const int64_t size[4] = {p.N, channels, rows, cols};
  const int64_t nhwc[4] = {rows * cols * channels, 1, cols * channels, channels};
  const int64_t nchw[4] = {channels * rows * cols, rows * cols, cols, 1};
  const int64_t* dense = p.channels_last ? nhwc : nchw;
  for (int i = 0; i < 4; ++i)
    if (size[i] > 1 && stride[i] != dense[i]) return std::string(what) + " is not dense in its layout";
  return "";
}

// Why the depthwise kernels cannot run `role` of `p`, or "".
inline std::string can_implement(const ConvParams& p, Role role) {
  if (p.groups != p.C) return "not depthwise (groups != input channels)";
  if (p.dtype == DType::kFloat64) return "float64 runs on the direct family";
  if (p.sm < 80) return "needs compute capability 8.0 or newer (cp.async)";
  const int64_t kLimit = int64_t(1) << 30;  // tile origins and extents are int
  if (p.H >= kLimit || p.W >= kLimit || p.P >= kLimit || p.Q >= kLimit) return "a spatial size of 2^30 or more";
  if (p.stride_h >= kLimit || p.stride_w >= kLimit) return "a stride of 2^30 or more";  // floor_div32's range
  if (p.pad_h >= kLimit || p.pad_w >= kLimit || (p.P - 1) * p.stride_h >= kLimit ||
      (p.Q - 1) * p.stride_w >= kLimit || (p.R - 1) * p.dil_h >= kLimit || (p.S - 1) * p.dil_w >= kLimit)
    return "padding, strided output extent or dilated filter extent of 2^30 or more";
  if (p.K / p.C > 65535) return "a channel multiplier above 65535";
  std::string why = dense_reason(p, p.x_stride, p.C, p.H, p.W, "the input");
  if (why.empty()) why = dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");
  if (!why.empty()) return why;
  if (role == Role::kBackwardWeight && p.K / p.C > kMaxThreads)
    return "backward-weight takes channel multipliers up to 256";
  const Plan t = make_plan(p, role, max_shared_memory(p.sm));
  if (t.smem == 0)
    return "its smallest tile (filter extent with stride and dilation) needs more shared memory than this GPU gives "
           "a block";
  if (t.tiles >= (int64_t(1) << 31)) return "2^31 or more tiles (the kernels number them in 32 bits)";
  return "";
}

// Lets `kernel` use the device's largest opt-in dynamic shared memory (once per kernel and device).
template <auto kernel>
void allow_shared_memory(int64_t bytes) {
  if (bytes <= 48 * 1024) return;
  constexpr int kMaxDevices = 64;
  static std::once_flag once[kMaxDevices];
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  TORCH_CHECK(device < kMaxDevices, "conv2d_ext: tiled supports device indices below ", kMaxDevices);
  std::call_once(once[device], [device] {
    int most = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, most));
  });
}

// Blocks of `kernel` resident on the whole device at once with `threads` threads and `smem` bytes of dynamic shared
// memory each. The occupancy query is cached per kernel, device, block size and shared memory (few of each). The
// kernel's shared-memory limit is raised first: above 48 KB the query answers 0 blocks until it is (which counted as
// one block per SM: tiled:grouped_mma's TF32 backward-weight, 75 KB a block, ran half its splits until session 14).
template <auto kernel>
int64_t resident_blocks(int threads, int64_t smem) {
  allow_shared_memory<kernel>(smem);
  static std::mutex mutex;
  static std::unordered_map<int64_t, int> cache;
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  const int64_t key = (int64_t(device) << 48) | (int64_t(threads) << 32) | smem;
  int per_sm = 0;
  {
    const std::lock_guard<std::mutex> lock(mutex);
    const auto found = cache.find(key);
    if (found != cache.end()) {
      per_sm = found->second;
    } else {
      C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
      cache.emplace(key, per_sm);
    }
  }
  return int64_t(std::max(per_sm, 1)) * num_sms();
}

// Blocks of a persistent grid over `tiles` tiles: as many as are resident at once, never more than the tiles.
template <auto kernel>
unsigned persistent_blocks(const Plan& t) {
  return static_cast<unsigned>(std::min<int64_t>(t.tiles, resident_blocks<kernel>(t.threads, t.smem)));
}

// ---- Device.

// Where tile `tile` lies: its channel chunk, image, and first output row and column. Tiles are numbered with the
// chunk slowest (a block's consecutive tiles mostly share their filters) and the tile column fastest.
struct TileAt {
  int64_t chunk, n;
  int row, col;
};

// 32-bit divisions: can_implement keeps the tile count below 2^31.
__device__ __forceinline__ TileAt tile_at(const Plan& t, int64_t N, int64_t tile) {
  TileAt a;
  uint32_t x = static_cast<uint32_t>(tile);
  const uint32_t tq = x % static_cast<uint32_t>(t.tiles_q);
  x /= static_cast<uint32_t>(t.tiles_q);
  const uint32_t tp = x % static_cast<uint32_t>(t.tiles_p);
  x /= static_cast<uint32_t>(t.tiles_p);
  a.n = x % static_cast<uint32_t>(N);
  a.chunk = x / static_cast<uint32_t>(N);
  a.row = static_cast<int>(tp) * t.tp;
  a.col = static_cast<int>(tq) * t.tq;
  return a;
}

// A TMA plan's barriers (the last 8 * t.stages bytes of its shared memory), initialised by thread 0 (one arrival a
// phase: the thread that issues the buffer's copies); the caller synchronises the block before any use.
__device__ __forceinline__ uint64_t* tma_barriers(unsigned char* smem, const Plan& t) {
  uint64_t* const bars = reinterpret_cast<uint64_t*>(smem + t.smem - 8 * int64_t(t.stages));
  if (threadIdx.x == 0) {
    for (int b = 0; b < t.stages; ++b) mbarrier_init(&bars[b], 1);
    fence_barrier_init();
  }
  return bars;
}

// The tile after `a` in tile_at's numbering.
__device__ __forceinline__ TileAt next_tile(const Plan& t, int64_t N, TileAt a) {
  a.col += t.tq;
  if (a.col >= t.tiles_q * t.tq) {
    a.col = 0;
    a.row += t.tp;
    if (a.row >= t.tiles_p * t.tp) {
      a.row = 0;
      if (++a.n == N) a.n = 0, ++a.chunk;
    }
  }
  return a;
}

// Columns between a staged NCHW row's first element and the tile's first input column `col0` (0 for NHWC).
template <bool kNHWC>
__device__ __forceinline__ int stage_shift(const Staged& s, int col0) {
  return kNHWC ? 0 : col0 & (s.vec - 1);  // s.vec is a power of two: col0 - floor(col0 / vec) * vec
}

// Index of staged element (channel c, row, col) in its buffer; col counts from the tile's first input column.
template <bool kNHWC>
__device__ __forceinline__ int staged_index(const Staged& s, int c, int row, int col, int shift) {
  return kNHWC ? (row * s.cols + col) * s.channels + c : (c * s.rows + row) * s.pitch + col + shift;
}

__device__ __forceinline__ void cp_async_8(void* dst, const void* src, bool valid) {
#ifdef CONV2D_EXT_EMULATION
  emu::cp_async(dst, src, 8, valid);
#else
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 8 : 0));
#endif
}

__device__ __forceinline__ void cp_async_4(void* dst, const void* src, bool valid) {
#ifdef CONV2D_EXT_EMULATION
  emu::cp_async(dst, src, 4, valid);
#else
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 4 : 0));
#endif
}

// One copy of s.vec elements (zeros when !valid; `src` is then a valid address that is not read).
template <typename T>
__device__ __forceinline__ void copy(T* dst, const T* src, bool valid, const Staged& s) {
  if (!s.async) {
    *dst = valid ? *src : from_acc<T>(0.0f);
    return;
  }
  switch (s.vec * int(sizeof(T))) {
    case 16: cp_async_16(dst, src, valid); break;
    case 8: cp_async_8(dst, src, valid); break;
    default: cp_async_4(dst, src, valid); break;
  }
}

// Stages the tile whose element (c, r, x) is src[n, c_begin + c, row0 + r, col0 + x] (zero outside the tensor; src
// is N x channels x rows x cols, dense in the layout) into `dst`. Every thread of the block takes part; cp.async
// copies land after the caller's cp_async_wait.
template <typename T, bool kNHWC>
__device__ __forceinline__ void stage(T* dst, const Staged& s, const T* __restrict__ src, int64_t n,
                                      int64_t channels, int rows, int cols, int64_t c_begin, int row0, int col0) {
  const int E = s.vec;
  // Each thread's copies are id = threadIdx.x + i * blockDim.x; their coordinates advance by blockDim.x's (mixed
  // radix) digits with carries, not by divisions per copy.
  if (kNHWC) {
    // Copy id is (staged row r, column x, vector k of the pixel's channels): the staging is dense, so it lands at
    // dst + id * E; its source lies `off` elements past src (64-bit, advanced with the digits).
    const int per_pixel = s.channels / E;
    const int total = s.rows * s.cols * per_pixel;
    const int step_p = blockDim.x / per_pixel, step_k = blockDim.x - step_p * per_pixel;
    const int step_r = step_p / s.cols, step_x = step_p - step_r * s.cols;
    const int kmax = static_cast<int>(min(int64_t(per_pixel), (channels - c_begin) / E));  // vectors inside C
    const int64_t row_pitch = int64_t(cols) * channels;
    const int64_t off_step = step_r * row_pitch + int64_t(step_x) * channels + step_k * E;
    const int64_t k_carry = channels - int64_t(per_pixel) * E, x_carry = row_pitch - int64_t(s.cols) * channels;
    int pixel = threadIdx.x / per_pixel, k = threadIdx.x - pixel * per_pixel;
    int r = pixel / s.cols, x = pixel - r * s.cols;
    int64_t off = ((n * rows + row0 + r) * int64_t(cols) + col0 + x) * channels + c_begin + int64_t(k) * E;
#pragma unroll 2
    for (int id = threadIdx.x; id < total; id += blockDim.x) {
      const bool valid = static_cast<unsigned>(row0 + r) < static_cast<unsigned>(rows) &&
                         static_cast<unsigned>(col0 + x) < static_cast<unsigned>(cols) && k < kmax;
      copy(dst + id * E, valid ? src + off : src, valid, s);
      k += step_k, x += step_x, r += step_r, off += off_step;
      if (k >= per_pixel) k -= per_pixel, ++x, off += k_carry;
      if (x >= s.cols) x -= s.cols, ++r, off += x_carry;
    }
  } else {
    const int shift = stage_shift<false>(s, col0);
    const int first = col0 - shift;  // a multiple of E
    const int per_row = (shift + s.cols + E - 1) / E;
    const int total = s.channels * s.rows * per_row;
    const int step_cr = blockDim.x / per_row, step_k = blockDim.x - step_cr * per_row;
    const int step_c = step_cr / s.rows, step_r = step_cr - step_c * s.rows;
    int cr = threadIdx.x / per_row, k = threadIdx.x - cr * per_row;
    int c = cr / s.rows, r = cr - c * s.rows;
#pragma unroll 4
    for (int id = threadIdx.x; id < total; id += blockDim.x) {
      const int h = row0 + r, w = first + k * E;
      const int64_t ch = c_begin + c;
      const bool valid = h >= 0 && h < rows && w >= 0 && w < cols && ch < channels;
      const T* from = valid ? src + ((n * channels + ch) * rows + h) * int64_t(cols) + w : src;
      copy(dst + (c * s.rows + r) * s.pitch + k * E, from, valid, s);
      k += step_k, r += step_r, c += step_c;
      if (k >= per_row) k -= per_row, ++r;
      if (r >= s.rows) r -= s.rows, ++c;
    }
  }
}

// Stages `total` filter elements as fp32: wsm[e] = w[k, 0, r, s] for (k, r, s) = at(e), zero where k >= K. Each
// thread's loads are issued in batches of kBatch before its stores (one round trip a batch), unconditionally (of w[0]
// where k >= K) and selected after: with `cond ? to_acc(w[i]) : 0` nvcc 13.0 put each load and its conversion in a
// branch of its own, and a batch ran one round trip per load (session 20's SASS: 14 in a row per block).
// Consecutive threads write consecutive banks.
struct FilterTap {
  int64_t k;
  int r, s;
};
template <typename T, int kBatch, class At>
__device__ __forceinline__ void stage_filter_taps(float* wsm, const ConvParams& p, int total, At&& at) {
  const T* __restrict__ w = static_cast<const T*>(p.w);
  for (int e0 = threadIdx.x; e0 < total; e0 += kBatch * blockDim.x) {
    T v[kBatch];
    bool valid[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int e = e0 + b * blockDim.x;
      const FilterTap f = at(e);
      valid[b] = e < total && f.k < p.K;
      v[b] = w[valid[b] ? f.k * p.w_stride[0] + f.r * p.w_stride[2] + f.s * p.w_stride[3] : 0];
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (e0 + b * blockDim.x < total) wsm[e0 + b * blockDim.x] = valid[b] ? to_acc(v[b]) : 0.0f;
  }
}

// Stages filters k_begin .. k_begin + wsets - 1 (zero past K) as fp32, tap-major: wsm[tap * wsets + k - k_begin]
// (the 7x7 filters of a chunk of 32 channels are seven loads a thread).
template <typename T>
__device__ __forceinline__ void stage_weights(float* wsm, const ConvParams& p, int64_t k_begin, int wsets) {
  const int S = static_cast<int>(p.S);
  stage_filter_taps<T, 8>(wsm, p, wsets * static_cast<int>(p.R * p.S), [&](int e) {
    const int tap = e / wsets, kl = e - tap * wsets, r = tap / S;
    return FilterTap{k_begin + kl, r, tap - r * S};
  });
}

// stage_weights for the copy-engine dynamic kernel: `chunks` consecutive chunks of kFixedChannels filters from chunk
// `first` (one each, M = 1), R x S known at compile time, every load of a thread in one batch (two 7x7 chunks: 13
// loads a thread of 256).
template <typename T, int kR, int kS>
__device__ __forceinline__ void stage_chunk_filters(float* wsm, const ConvParams& p, int64_t first, int chunks) {
  constexpr int kPerChunk = kFixedChannels * kR * kS;
  stage_filter_taps<T, (2 * kPerChunk + kMaxThreads - 1) / kMaxThreads>(wsm, p, chunks * kPerChunk, [&](int e) {
    const int chunk = e / kPerChunk, in_chunk = e - chunk * kPerChunk;
    const int tap = in_chunk / kFixedChannels, kl = in_chunk % kFixedChannels, r = tap / kS;
    return FilterTap{(first + chunk) * kFixedChannels + kl, r, tap - r * kS};
  });
}

// First staged row (column) of a tile whose first output row (column) is `out0`: the forward window's top;
// backward-data: the first grad_output row that grad_input row out0 .. out0 + tp - 1 gather from.
template <bool kDgrad>
__device__ __forceinline__ int staged_origin(int out0, int stride, int pad, int64_t R, int dil) {
  // Each term and the stride are below 2^30 (can_implement), so floor_div32's operands fit 32 bits.
  if (kDgrad) return floor_div32(static_cast<int>(int64_t(out0) + pad - (R - 1) * dil), stride);
  return static_cast<int>(int64_t(out0) * stride - pad);
}

// Bytes of one staged tile.
template <typename T>
__device__ __forceinline__ uint32_t tile_bytes(const Staged& s) {
  return uint32_t(s.channels) * s.cols * s.rows * sizeof(T);
}

// The copy engine's copy of a channels-last staged tile (channels from c_begin, rows from row0, columns from col0 of
// image n; map: staged_map) into `dst`, completing tile_bytes(s) on `bar`.
template <typename T>
__device__ __forceinline__ void tma_copy_tile(T* dst, const CUtensorMap* map, uint64_t* bar, int64_t c_begin, int row0,
                                              int col0, int64_t n) {
  tma_load_4d(dst, map, bar, static_cast<int>(c_begin), col0, row0, static_cast<int>(n));
}

// One thread's copy of a staged tile into `dst` on `bar`, whose phase the same thread arms with the tile's bytes.
template <typename T>
__device__ __forceinline__ void tma_load_tile(T* dst, const Staged& s, const CUtensorMap* map, uint64_t* bar,
                                              int64_t c_begin, int row0, int col0, int64_t n) {
  mbarrier_arrive_expect_tx(bar, tile_bytes<T>(s));
  tma_copy_tile(dst, map, bar, c_begin, row0, col0, n);
}

// The specialised path's filter of output channel (chunk index) kl from the staged chunk (wsm[tap * wsets + kl]),
// flipped for backward-data.
template <bool kDgrad, int kR, int kS>
__device__ __forceinline__ void load_filter(float (&wr)[kR * kS], const float* wsm, int wsets, int kl) {
#pragma unroll
  for (int r = 0; r < kR; ++r)
#pragma unroll
    for (int s = 0; s < kS; ++s) {
      const int tap = kDgrad ? (kR - 1 - r) * kS + (kS - 1 - s) : r * kS + s;
      wr[r * kS + s] = wsm[tap * wsets + kl];
    }
}

// The specialised path's walk over a register block's staged input (every pass): staged rows x = 0 .. kRows + kR - 2
// from `base` (staged (i0, j0) of the thread's channel), each row's kCols + kS - 1 columns read once into registers
// and handed to row(x, v).
template <typename T, int kRows, int kCols, int kR, int kS, class Row>
__device__ __forceinline__ void for_staged_rows(const T* base, int row_step, int col_step, Row&& row) {
#pragma unroll
  for (int x = 0; x < kRows + kR - 1; ++x) {
    float v[kCols + kS - 1];
#pragma unroll
    for (int u = 0; u < kCols + kS - 1; ++u) v[u] = to_acc(base[x * row_step + u * col_step]);
    row(x, v);
  }
}

// The specialised path's FMAs of one register block: output (i, j) reads staged (i0 + i + r, j0 + j + s) for tap
// (r, s) of wr.
template <typename T, int kR, int kS, int kRows, int kCols>
__device__ __forceinline__ void fma_block(float (&acc)[kRows][kCols], const float (&wr)[kR * kS], const T* base,
                                          int row_step, int col_step) {
  for_staged_rows<T, kRows, kCols, kR, kS>(base, row_step, col_step, [&](int x, const float (&v)[kCols + kS - 1]) {
    // Taps outermost: consecutive FMAs update different accumulators (rows i, columns j).
#pragma unroll
    for (int s = 0; s < kS; ++s)
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        const int r = x - i;
        if (r < 0 || r >= kR) continue;
#pragma unroll
        for (int j = 0; j < kCols; ++j) acc[i][j] = fmaf(wr[r * kS + s], v[j + s], acc[i][j]);
      }
  });
}

// Stores the rows_left x cols_left of a register block that lie inside the output, `out` at its first element.
// Each row's stores step from the row's first by col_step (session 19: indexing each store from `out` cost about a
// dozen instructions of 64-bit index math and a branch per store, a sixth of the 7x7 body).
template <typename T, int kRows, int kCols>
__device__ __forceinline__ void store_block(T* out, const float (&acc)[kRows][kCols], int64_t row_step,
                                            int64_t col_step, int rows_left, int cols_left) {
  T* row = out;
#pragma unroll
  for (int i = 0; i < kRows; ++i, row += row_step) {
    T* o = row;
#pragma unroll
    for (int j = 0; j < kCols; ++j, o += col_step) {
      const T v = from_acc<T>(acc[i][j]);
      if (i < rows_left && j < cols_left) *o = v;
    }
  }
}

// Forward (kDgrad false: x -> y) or backward-data (kDgrad true: grad_output -> grad_input) of a depthwise
// convolution, on tiles as described at the top. kR x kS > 0: the specialised stride-1, dilation-1 path.
// kChannels > 0: the staged channels (t.in.channels), known at compile time so that the NHWC fast path addresses a
// staged row's pixels by immediate offsets (one address per row, not one per load).
// kTma: `in` staged by the copy engine through `map` (t.tma; see with_tma), else by cp.async.
template <typename T, bool kNHWC, bool kDgrad, int kR, int kS, int kChannels = 0, bool kTma = false>
__global__ void __launch_bounds__(kMaxThreads, ConvMinBlocks<kR, kDgrad>::value)
    conv_kernel(const ConvParams p, const Plan t, const __grid_constant__ CUtensorMap map) {
  constexpr bool kFast = kR > 0;
  constexpr int kCols = Cols<kNHWC, kR, int(sizeof(T))>::value;
  constexpr int kRows = Rows<kNHWC, kR, int(sizeof(T))>::value;
  constexpr int kTaps = kFast ? kR * kS : 1;
  extern __shared__ __align__(128) unsigned char smem[];  // 128: the copy engine's destinations
  T* const buffers = reinterpret_cast<T*>(smem);
  float* const wsm = reinterpret_cast<float*>(buffers + t.stages * t.in.elems);

  const T* __restrict__ src = static_cast<const T*>(kDgrad ? p.y : p.x);
  T* __restrict__ dst = static_cast<T*>(kDgrad ? p.x : p.y);
  const T* __restrict__ bias = kDgrad ? nullptr : static_cast<const T*>(p.bias);
  const int M = static_cast<int>(p.K / p.C);
  const int64_t src_channels = kDgrad ? p.K : p.C, out_channels = kDgrad ? p.C : p.K;
  const int src_rows = static_cast<int>(kDgrad ? p.P : p.H), src_cols = static_cast<int>(kDgrad ? p.Q : p.W);
  const int out_rows = static_cast<int>(kDgrad ? p.H : p.P), out_cols = static_cast<int>(kDgrad ? p.W : p.Q);
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int row_blocks = t.tp / kRows, col_blocks = t.tq / kCols;
  const int items = t.cout * row_blocks * col_blocks;
  // A thread's items are threadIdx.x + i * blockDim.x, as digits (d0 fastest, d1, d2): NHWC (channel co, column block
  // jb, row block ib), channel fastest so that a warp reads consecutive channels of a pixel; NCHW (jb, ib, co), column
  // fastest so that a warp reads consecutive columns of a row. They advance by blockDim.x's digits with carries.
  const int radix0 = kNHWC ? t.cout : col_blocks, radix1 = kNHWC ? col_blocks : row_blocks;
  const int step0 = blockDim.x % radix0, step1 = blockDim.x / radix0 % radix1, step2 = blockDim.x / radix0 / radix1;
  const int first0 = threadIdx.x % radix0, first1 = threadIdx.x / radix0 % radix1;
  const int first2 = threadIdx.x / radix0 / radix1;

  // kTma: one mbarrier a buffer, after the buffers and the filter chunk (with_tma's layout).
  uint64_t* bars = nullptr;
  if constexpr (kTma) {
    bars = tma_barriers(smem, t);
    if (threadIdx.x == 0) tma_prefetch_descriptor(&map);
    __syncthreads();
  }
  uint32_t phases = 0;  // kTma: bit b is the parity of buffer b's next completion

  auto issue = [&](int64_t tile, int buffer) {
    if (kTma && threadIdx.x != 0) return;
    const TileAt a = tile_at(t, p.N, tile);
    const int row0 = staged_origin<kDgrad>(a.row, p.stride_h, p.pad_h, p.R, p.dil_h);
    const int col0 = staged_origin<kDgrad>(a.col, p.stride_w, p.pad_w, p.S, p.dil_w);
    const int64_t c_begin = a.chunk * t.ct * (kDgrad ? M : 1);
    if constexpr (kTma) {
      tma_load_tile(buffers + buffer * t.in.elems, t.in, &map, &bars[buffer], c_begin, row0, col0, a.n);
    } else {
      stage<T, kNHWC>(buffers + buffer * t.in.elems, t.in, src, a.n, src_channels, src_rows, src_cols, c_begin, row0,
                      col0);
    }
  };

  float wr[kTaps];  // the specialised path's filter, in registers (flipped for backward-data)
  int cached = -1;  // the filter in wr (index into the staged chunk), -1 for none
  // The block's tiles: a contiguous range (gridDim.x <= t.tiles, so never empty), so that consecutive tiles mostly
  // share their channel chunk and filters, and neighbouring tiles' halos are still in L2.
  // t.stages buffers (2 or 3): tiles tile+1 .. tile+stages-1 are in flight while `tile` is computed.
  const int stages = t.stages;
  const int64_t end = (blockIdx.x + 1) * t.tiles / gridDim.x;
  int64_t tile = blockIdx.x * t.tiles / gridDim.x;
  for (int s = 0; s < stages - 1; ++s) {
    if (tile + s < end) issue(tile + s, s);
    if constexpr (!kTma) cp_async_commit();
  }
  int64_t weights_of = -1;  // the chunk whose filters are staged
  int slot = 0;             // the buffer of `tile`
  for (; tile < end; ++tile, slot = slot == stages - 1 ? 0 : slot + 1) {
    T* const current = buffers + slot * t.in.elems;
    // The buffer the last iteration computed (freed by its closing barrier) takes tile + stages - 1.
    const int ahead = slot == 0 ? stages - 1 : slot - 1;
    if constexpr (!kTma) {
      if (tile + stages - 1 < end) issue(tile + stages - 1, ahead);
      cp_async_commit();
    }
    const TileAt a = tile_at(t, p.N, tile);
    const bool restaged = a.chunk != weights_of;  // uniform over the block
    if (restaged) {  // the last iteration's barrier freed wsm
      stage_weights<T>(wsm, p, a.chunk * t.wsets, t.wsets);
      weights_of = a.chunk;
      cached = -1;
    }
    if constexpr (kTma) {
      mbarrier_wait(&bars[slot], phases >> slot & 1u);
      phases ^= 1u << slot;
      // The look-ahead copy goes out once this tile has landed, so that at the start every block's first tile
      // arrives before any second tile competes with it for DRAM (264 blocks x 44 KB each). Session 19, H200,
      // depthwise_7x7 channels-last forward fp16 / bf16: 0.0393 / 0.0397 ms issued before the wait, 0.0385 / 0.0390
      // after; backward-data 0.0403 -> 0.0392.
      if (tile + stages - 1 < end) issue(tile + stages - 1, ahead);
    } else if (stages == kStages) {
      cp_async_wait<kStages - 1>();
    } else {
      cp_async_wait<1>();
    }
    // The filter chunk (and, with cp.async, every thread's copies) visible to all; with the copy engine every
    // thread has waited for the tile itself, so only a new filter chunk needs the barrier.
    if (!kTma || restaged) __syncthreads();

    const int row0 = staged_origin<kDgrad>(a.row, p.stride_h, p.pad_h, p.R, p.dil_h);
    const int col0 = staged_origin<kDgrad>(a.col, p.stride_w, p.pad_w, p.S, p.dil_w);
    const int shift = stage_shift<kNHWC>(t.in, col0);
    // Backward-data: grad_input row a.row + i reads staged row (ah + i - r*dh) / sh when that is exact.
    const int ah = static_cast<int>(int64_t(a.row) + p.pad_h - int64_t(row0) * p.stride_h);
    const int aw = static_cast<int>(int64_t(a.col) + p.pad_w - int64_t(col0) * p.stride_w);
    int d0 = first0, d1 = first1, d2 = first2;
    for (int item = threadIdx.x; item < items; item += blockDim.x) {
      const int co = kNHWC ? d0 : d2, jb = kNHWC ? d1 : d0, ib = kNHWC ? d2 : d1;
      d0 += step0, d1 += step1, d2 += step2;  // the next item's digits
      if (d0 >= radix0) d0 -= radix0, ++d1;
      if (d1 >= radix1) d1 -= radix1, ++d2;
      const int i0 = ib * kRows, j0 = jb * kCols;
      const int64_t oc = a.chunk * t.cout + co;  // output channel: k (forward) or c (backward-data)
      if (oc >= out_channels || a.row + i0 >= out_rows || a.col + j0 >= out_cols) continue;

      float acc[kRows][kCols];
      const float init = bias ? to_acc(bias[oc]) : 0.0f;
#pragma unroll
      for (int i = 0; i < kRows; ++i)
#pragma unroll
        for (int j = 0; j < kCols; ++j) acc[i][j] = init;

      const int reps = kDgrad ? M : 1;  // backward-data: the M grad_output channels of grad_input channel oc
      for (int m = 0; m < reps; ++m) {
        const int kl = kDgrad ? co * M + m : co;  // filter (within the chunk)
        const int ci = kDgrad ? co * M + m : M == 1 ? co : co / M;  // staged input channel
        if constexpr (kFast) {
          // Backward-data reloads its filter from shared memory for every (item, m): keeping it in registers
          // across the runtime loop over m spills the 7x7 NHWC kernel (ptxas).
          if (kDgrad || kl != cached) {
            load_filter<kDgrad, kR, kS>(wr, wsm, t.wsets, kl);
            cached = kl;
          }
          const int row_step = kNHWC ? t.in.cols * t.in.channels : t.in.pitch;
          const int col_step = kNHWC ? (kChannels > 0 ? kChannels : t.in.channels) : 1;
          fma_block<T, kR, kS>(acc, wr, current + staged_index<kNHWC>(t.in, ci, i0, j0, shift), row_step, col_step);
        } else {
#pragma unroll
          for (int i = 0; i < kRows; ++i)
#pragma unroll
            for (int j = 0; j < kCols; ++j) {
              for (int r = 0; r < R; ++r) {
                int row;
                if (kDgrad) {
                  const int u = ah + i0 + i - r * p.dil_h;  // >= 0: ah >= (R-1)*dh
                  row = u / p.stride_h;
                  if (row * p.stride_h != u) continue;
                } else {
                  row = (i0 + i) * p.stride_h + r * p.dil_h;
                }
                for (int s = 0; s < S; ++s) {
                  int col;
                  if (kDgrad) {
                    const int u = aw + j0 + j - s * p.dil_w;
                    col = u / p.stride_w;
                    if (col * p.stride_w != u) continue;
                  } else {
                    col = (j0 + j) * p.stride_w + s * p.dil_w;
                  }
                  acc[i][j] = fmaf(wsm[(r * S + s) * t.wsets + kl],
                                   to_acc(current[staged_index<kNHWC>(t.in, ci, row, col, shift)]), acc[i][j]);
                }
              }
            }
        }
      }

      const int h0 = a.row + i0, w0 = a.col + j0;
      T* const out = dst + (kNHWC ? ((a.n * out_rows + h0) * int64_t(out_cols) + w0) * out_channels + oc
                                  : ((a.n * out_channels + oc) * out_rows + h0) * int64_t(out_cols) + w0);
      const int64_t row_step = kNHWC ? int64_t(out_cols) * out_channels : out_cols;
      const int64_t col_step = kNHWC ? out_channels : 1;
      store_block<T>(out, acc, row_step, col_step, out_rows - h0, out_cols - w0);
    }
    __syncthreads();  // everyone is done with `current` and wsm before they are refilled
  }
}

// The default (dynamic_enabled, with_dynamic; CONV2D_EXT_DW_DYNAMIC=0 turns it off):
// the copy-engine forward / backward-data (channels-last fp16/bf16 5x5 / 7x7, 32 channels a tile, M = 1) with its
// register blocks handed out at run time. The grid's items (a tile's register-block positions: a warp takes one,
// its 32 lanes the tile's 32 channels) are split evenly over the blocks, a block's range starting and ending
// anywhere inside a tile, and a block's warps take their range's items in order from a shared counter. conv_kernel's
// static items leave a seven-warp block waiting at every tile's barrier for the schedulers that hold two of its
// warps (two blocks an SM: 4, 4, 4 and 2 warps a scheduler; session 19's profile: barrier stalls 13% of samples) and
// its whole tiles split the grid's work only as evenly as the tile count allows; here a warp that is done takes the
// next item, and the loop has no barrier. The range's tiles pass through t.stages buffers in order: tile u of the
// range (u = 0, 1, ...) lands in buffer u % stages, the (u / stages)-th phase of that buffer's barrier, and the warp
// that finishes a tile's last item issues the copy of tile u + stages into the buffer. The range's filter chunks
// (consecutive, at most two: with_dynamic) are staged once, at the start. With t.tma_store (the default where
// with_dynamic admits it) a warp writes its register block to its own stage in shared memory (28 16-bit stores at
// fixed offsets) and one lane stores it with the copy engine, the box's pixels and channels past the output clipped
// (session 21, H200, depthwise_7x7 channels-last, graph time: forward fp16 0.0355 -> 0.0332 ms, bf16 0.0358 ->
// 0.0332, backward-data 0.0357 -> 0.0335; the 28 global stores a block cost ~110 instructions of 2224 with their
// 64-bit addresses and bounds); the warp waits for its previous store to have read the stage before it rewrites it.
template <typename T, bool kDgrad, int kR>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    conv_kernel_dynamic(const ConvParams p, const Plan t, const __grid_constant__ CUtensorMap map,
                        const __grid_constant__ CUtensorMap out_map) {
  constexpr int kS = kR;
  constexpr int kCols = Cols<true, kR, int(sizeof(T))>::value;
  constexpr int kRows = Rows<true, kR, int(sizeof(T))>::value;
  constexpr int kChannels = kFixedChannels;  // t.in.channels == t.cout: lane = channel
  constexpr int kOutElems = kRows * kCols * kChannels;  // a register block of the warp's 32 channels (out_stage)
  extern __shared__ __align__(128) unsigned char smem[];  // buffers, output stages, filter chunks, counters, barriers
  T* const buffers = reinterpret_cast<T*>(smem);
  T* const out_stages = buffers + t.stages * t.in.elems;  // one a warp (t.tma_store)
  float* const wsm = reinterpret_cast<float*>(out_stages + (t.tma_store ? kDynamicWarps * kOutElems : 0));
  uint64_t* const bars = tma_barriers(smem, t);
  int* const next = reinterpret_cast<int*>(bars) - (1 + t.stages);  // the range's next item
  int* const done = next + 1;  // per buffer: items done of the tiles it has held

  T* __restrict__ dst = static_cast<T*>(kDgrad ? p.x : p.y);
  const T* __restrict__ bias = kDgrad ? nullptr : static_cast<const T*>(p.bias);
  const int64_t out_channels = kDgrad ? p.C : p.K;
  const int out_rows = static_cast<int>(kDgrad ? p.H : p.P), out_cols = static_cast<int>(kDgrad ? p.W : p.Q);
  const int col_blocks = t.tq / kCols, per_tile = (t.tp / kRows) * col_blocks;
  const int stages = t.stages, filter_floats = t.wsets * kR * kS;
  const int64_t total = t.tiles * per_tile;  // < 2^31 (with_dynamic)
  const int g0 = static_cast<int>(blockIdx.x * total / gridDim.x);
  const int g1 = static_cast<int>((blockIdx.x + 1) * total / gridDim.x);
  const int first = g0 / per_tile, last = (g1 - 1) / per_tile;  // the range's tiles
  // Items of the range in a buffer's first `uses` tiles (none of them the range's last): whole tiles, less the first
  // tile's items before g0 (buffer 0's first tile).
  auto items_through = [&](int buffer, int uses) {
    return uses * per_tile - (buffer == 0 ? g0 - first * per_tile : 0);
  };
  const int64_t first_chunk = tile_at(t, p.N, first).chunk, last_chunk = tile_at(t, p.N, last).chunk;

  auto issue = [&](int tile, int buffer) {  // thread 0 (prologue) or lane 0 of the warp that freed the buffer
    const TileAt a = tile_at(t, p.N, tile);
    tma_load_tile(buffers + buffer * t.in.elems, t.in, &map, &bars[buffer], a.chunk * t.ct,
                  staged_origin<kDgrad>(a.row, p.stride_h, p.pad_h, p.R, p.dil_h),
                  staged_origin<kDgrad>(a.col, p.stride_w, p.pad_w, p.S, p.dil_w), a.n);
  };
  if (threadIdx.x == 0) {
    *next = g0;
    for (int b = 0; b < stages; ++b) done[b] = 0;
    tma_prefetch_descriptor(&map);
    for (int u = 0; u < stages && first + u <= last; ++u) issue(first + u, u);
  }
  stage_chunk_filters<T, kR, kS>(wsm, p, first_chunk, static_cast<int>(last_chunk - first_chunk + 1));
  __syncthreads();  // counters, barriers and filters ready

  const int lane = threadIdx.x & 31;
  float wr[kR * kS];  // the filter of channel `cached` (flipped for backward-data)
  int cached = -1;
  // The tile of the warp's last item (items only grow, so it only moves on: no divisions), the range's items before
  // it, its buffer and that buffer's phase.
  int tile = first, before = first * per_tile, buffer = 0, use = 0;
  TileAt a = tile_at(t, p.N, first);
  for (;;) {
    int g = 0;
    if (lane == 0) g = atomicAdd(next, 1);
    g = __shfl_sync(0xffffffffu, g, 0);
    if (g >= g1) break;
    while (g - before >= per_tile) {
      ++tile, before += per_tile;
      if (++buffer == stages) buffer = 0, ++use;
      a = next_tile(t, p.N, a);
    }
    int jb = g - before, ib = 0;
    while (jb >= col_blocks) jb -= col_blocks, ++ib;
    // The buffer's previous tile first: once all its items are done (its phase use - 1 complete) the barrier's
    // current phase is this tile's (armed or not yet) or, if it has landed, the next one, which cannot complete
    // before this item does; a parity wait is then exact. Without it the current phase could still be the previous
    // tile's (a wait on this parity would pass at once) or, with a wait on the previous parity too, the next one (a
    // wait that never ends). Usually a single shared-memory read.
    if (use > 0) {
      const int previous = items_through(buffer, use);
      while (*static_cast<volatile int*>(&done[buffer]) < previous) __nanosleep(32);  // leave the issue slots
    }
    mbarrier_wait(&bars[buffer], use & 1);

    const int h0 = a.row + ib * kRows, w0 = a.col + jb * kCols;
    const int oc = static_cast<int>(a.chunk) * kChannels + lane;  // channels < 2^16 (plan_for)
    if (t.tma_store) {
      // The register block through the warp's output stage, out by one copy-engine store (its rows, columns and
      // channels past the output clipped): 28 shared stores at fixed offsets instead of 28 global stores, each with
      // its 64-bit address and bounds.
      if (h0 < out_rows && w0 < out_cols) {  // warp-uniform
        float acc[kRows][kCols];
        const float init = bias && oc < out_channels ? to_acc(bias[oc]) : 0.0f;
#pragma unroll
        for (int i = 0; i < kRows; ++i)
#pragma unroll
          for (int j = 0; j < kCols; ++j) acc[i][j] = init;
        if (oc < out_channels) {
          if (oc != cached) {
            load_filter<kDgrad, kR, kS>(wr, wsm + (a.chunk - first_chunk) * filter_floats, t.wsets, lane);
            cached = oc;
          }
          fma_block<T, kR, kS>(acc, wr, buffers + buffer * t.in.elems + (ib * kRows * t.in.cols + jb * kCols) *
                                            kChannels + lane, t.in.cols * kChannels, kChannels);
        }
        T* const stage = out_stages + (threadIdx.x >> 5) * kOutElems;
        if (lane == 0) bulk_wait<0, true>();  // the warp's previous store has read the stage
        __syncwarp();
#pragma unroll
        for (int i = 0; i < kRows; ++i)
#pragma unroll
          for (int j = 0; j < kCols; ++j) stage[(i * kCols + j) * kChannels + lane] = from_acc<T>(acc[i][j]);
        fence_proxy_async_shared();
        __syncwarp();
        if (lane == 0) {
          tma_store_4d(stage, &out_map, static_cast<int>(a.chunk) * kChannels, w0, h0, static_cast<int>(a.n));
          bulk_commit();
        }
      }
    } else if (oc < out_channels && h0 < out_rows && w0 < out_cols) {
      if (oc != cached) {
        load_filter<kDgrad, kR, kS>(wr, wsm + (a.chunk - first_chunk) * filter_floats, t.wsets, lane);
        cached = oc;
      }
      float acc[kRows][kCols];
      const float init = bias ? to_acc(bias[oc]) : 0.0f;
#pragma unroll
      for (int i = 0; i < kRows; ++i)
#pragma unroll
        for (int j = 0; j < kCols; ++j) acc[i][j] = init;
      const int row_step = t.in.cols * kChannels;
      fma_block<T, kR, kS>(acc, wr, buffers + buffer * t.in.elems + (ib * kRows * t.in.cols + jb * kCols) * kChannels +
                                         lane, row_step, kChannels);
      T* const out = dst + ((a.n * out_rows + h0) * int64_t(out_cols) + w0) * out_channels + oc;
      store_block<T>(out, acc, int64_t(out_cols) * out_channels, out_channels, out_rows - h0, out_cols - w0);
    }
    __syncwarp();  // the warp's reads of the buffer are done
    if (lane == 0) {
      __threadfence_block();  // ... and ordered before the count that may hand the buffer to the copy engine
      // Items of the range in the buffer's tiles so far (this tile's after g1 not among them when it is the last).
      const int target = items_through(buffer, use + 1) - (tile == last ? (last + 1) * per_tile - g1 : 0);
      if (atomicAdd(&done[buffer], 1) + 1 == target && tile + stages <= last) {
        __threadfence_block();  // the other warps' counts (and the reads they release) before the copy
        issue(tile + stages, buffer);
      }
    }
  }
  if (t.tma_store && lane == 0) bulk_wait<0, false>();  // the warp's stores done before its stage goes
}

template <typename T, bool kDgrad, int kR>
void launch_dynamic(const ConvParams& p, const Plan& t, cudaStream_t stream) {
  constexpr auto kernel = conv_kernel_dynamic<T, kDgrad, kR>;
  allow_shared_memory<kernel>(t.smem);
  const CUtensorMap map = staged_in_map<T, kDgrad>(p, t);
  CUtensorMap out_map{};
  if (t.tma_store) {  // boxes of one register block: kRows x kCols pixels of 32 channels
    Staged block;
    block.rows = Rows<true, kR, int(sizeof(T))>::value, block.cols = Cols<true, kR, int(sizeof(T))>::value;
    block.channels = kFixedChannels;
    out_map = staged_map<T>(p, block, kDgrad ? p.x : p.y, kDgrad ? p.C : p.K, kDgrad ? p.H : p.P, kDgrad ? p.W : p.Q);
  }
  kernel<<<persistent_blocks<kernel>(t), t.threads, t.smem, stream>>>(p, t, map, out_map);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, bool kNHWC, bool kDgrad, int kR, int kS, int kChannels = 0, bool kTma = false>
void launch_conv_kernel(const ConvParams& p, const Plan& t, cudaStream_t stream) {
  constexpr auto kernel = conv_kernel<T, kNHWC, kDgrad, kR, kS, kChannels, kTma>;
  allow_shared_memory<kernel>(t.smem);
  const CUtensorMap map = kTma ? staged_in_map<T, kDgrad>(p, t) : CUtensorMap{};
  kernel<<<persistent_blocks<kernel>(t), t.threads, t.smem, stream>>>(p, t, map);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The fp16/bf16 channels-last 5x5 and 7x7 tiles (four columns a thread) of 32 staged channels have their own
// kernels (kChannels = 32: the 7x7 forward's loads without their 140 address computations per register block), with
// cp.async or (t.tma) copy-engine staging.
template <typename T, bool kNHWC, bool kDgrad, int kR>
void launch_fast(const ConvParams& p, const Plan& t, cudaStream_t stream) {
  if constexpr (Cols<kNHWC, kR, int(sizeof(T))>::value == 4) {
    if (t.in.channels == kFixedChannels) {  // Cols == 4: channels-last
      if (t.dynamic) return launch_dynamic<T, kDgrad, kR>(p, t, stream);
      if (t.tma) return launch_conv_kernel<T, kNHWC, kDgrad, kR, kR, kFixedChannels, true>(p, t, stream);
      return launch_conv_kernel<T, kNHWC, kDgrad, kR, kR, kFixedChannels>(p, t, stream);
    }
  }
  TORCH_CHECK(!t.tma && !t.dynamic, "conv2d_ext: tiled:depthwise: no copy-engine kernel for this plan");
  launch_conv_kernel<T, kNHWC, kDgrad, kR, kR>(p, t, stream);
}

template <typename T, bool kNHWC, bool kDgrad>
void launch_conv_typed(const ConvParams& p, const Plan& t, cudaStream_t stream) {
  if (t.fast && p.R == 3) launch_fast<T, kNHWC, kDgrad, 3>(p, t, stream);
  else if (t.fast && p.R == 5) launch_fast<T, kNHWC, kDgrad, 5>(p, t, stream);
  else if (t.fast && p.R == 7) launch_fast<T, kNHWC, kDgrad, 7>(p, t, stream);
  else {
    TORCH_CHECK(!t.tma, "conv2d_ext: tiled:depthwise: no copy-engine kernel for this plan");
    launch_conv_kernel<T, kNHWC, kDgrad, 0, 0>(p, t, stream);
  }
}

// Forward or backward-data of `p` (can_implement(p, role) is "").
template <bool kDgrad>
void launch_conv(const ConvParams& p, cudaStream_t stream) {
  if (p.N == 0) return;  // an empty batch: nothing to launch (a grid of 0 is an error)
  Plan t = make_plan(p, kDgrad ? Role::kBackwardData : Role::kForward, max_shared_memory(p.sm));
  TORCH_CHECK(t.smem > 0 && t.tiles > 0, "conv2d_ext: tiled:depthwise: no tile plan for this problem");
  if (tma_enabled()) t = with_tma(p, t, max_shared_memory(p.sm), kDgrad ? Role::kBackwardData : Role::kForward);
  if (dynamic_enabled()) t = with_dynamic(p, t, max_shared_memory(p.sm), kDgrad);
  dispatch_float_dtype(p.dtype, "tiled:depthwise", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.channels_last) launch_conv_typed<T, true, kDgrad>(p, t, stream);
    else launch_conv_typed<T, false, kDgrad>(p, t, stream);
  });
}

// The launch of the register-blocked depthwise kernels (depthwise_vec.cuh, depthwise_rows.cuh), which move 16-byte
// vectors: nothing for an empty batch; this file's tiles for views not 16-byte aligned (those kernels'
// can_implement checked that the tiles take the problem); else `run(tag, std::integral_constant<int, R>{})` with
// p's dtype tag (dispatch_float_dtype's) and filter size R (3, 5 or 7).
template <bool kDgrad, class Run>
void launch_vectorized(const ConvParams& p, const char* kernel, cudaStream_t stream, Run&& run) {
  if (p.N == 0) return;
  if (reinterpret_cast<uintptr_t>(p.x) % 16 != 0 || reinterpret_cast<uintptr_t>(p.y) % 16 != 0)
    return launch_conv<kDgrad>(p, stream);
  dispatch_float_dtype(p.dtype, kernel, [&](auto tag) {
    if (p.R == 3) run(tag, std::integral_constant<int, 3>{});
    else if (p.R == 5) run(tag, std::integral_constant<int, 5>{});
    else run(tag, std::integral_constant<int, 7>{});
  });
}

// ---- Backward-weight: shared with depthwise_vec's.

// Writes the total of weight element e = k * R * S + r * S + s (the order of the split reductions' elements).
template <typename T>
struct StoreWeight {
  T* w;
  int64_t k_stride, r_stride, s_stride;
  int R, S;
  __device__ __forceinline__ void operator()(int64_t e, float total) const {
    const int64_t k = e / (R * S);
    const int tap = static_cast<int>(e - k * (R * S));
    const int r = tap / S, s = tap - r * S;
    w[k * k_stride + r * r_stride + s * s_stride] = from_acc<T>(total);
  }
};

template <typename T>
StoreWeight<T> store_weight(const ConvParams& p) {
  return StoreWeight<T>{static_cast<T*>(p.w), p.w_stride[0], p.w_stride[2], p.w_stride[3], static_cast<int>(p.R),
                        static_cast<int>(p.S)};
}

// The tiles' backward-weight (depthwise_backward_weight.cu): its workspace and launch, also run by depthwise_vec
// for the problems it hands over (views not aligned to its vectors).
int64_t wgrad_workspace_bytes(const ConvParams& p);
void launch_wgrad(const ConvParams& p, void* workspace, cudaStream_t stream);

}  // namespace dw
}  // namespace conv2d_ext
