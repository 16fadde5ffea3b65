// Tiled family, grouped configuration on tensor cores (issue 9): the forward and the stride-1 backward-data of narrow
// groups (C/groups and K/groups of a few channels: grouped_g32 has 8 and 8) in fp16, bf16 and TF32, where the FFMA
// tiles of grouped.cuh are bound by instructions (72 FMAs per output) and an implicit-GEMM tile 128 channels wide
// would be 94% empty.
//
// A group's convolution is a GEMM of M = output pixels, N = K/groups output channels, K = C/groups x R x S. With
// 8-channel (16-byte) rows it maps onto mma.sync directly: one m16n8k16 (fp16/bf16) or m16n8k8 (TF32) step reduces
// 32 bytes of each pixel's reduction, i.e. two taps of 8 fp16/bf16 channels, one tap of 8 fp32 channels, or 32 bytes
// of a wider group. The im2col gather costs nothing: ldmatrix takes one row address per lane, so each lane points
// its row at its pixel's tap-shifted position in the staged input tile.
//
// Block: one image, a tile of up to 128 output pixels (tile_h x tile_w: 4 x 28 for a 28-wide image), `gb` groups
// (8 fp16/bf16 or 4 fp32 groups of 8 channels, 3x3: about 52 KB of shared memory with the output tile, four blocks
// per SM).
//   0. Once per call, pack_kernel lays the filters out as B fragments in lane order (zeros past the taps, channels
//      and output channels) in the workspace; each block copies its groups' fragments with 16-byte cp.async. The
//      convolution is launched as pack_kernel's programmatic dependent (sm_90): its blocks stage their input
//      while pack_kernel runs and wait for it before copying the fragments.
//   1. Stages the input tile with its halo in 16-byte planes: plane (group, 16-byte segment of the group's channels)
//      holds that segment for every halo pixel, pixel-major (16 bytes per pixel), so 8 consecutive output pixels of
//      one ldmatrix are 128 consecutive bytes (conflict-free at stride 1). Channels-last inputs of whole segments go
//      by 16-byte cp.async (zero-filled outside the image; 8 threads cover a pixel's 128 bytes of 8 groups); NCHW and
//      misaligned views gather a segment's channels element by element (consecutive threads read consecutive pixels
//      of one channel); padding and channels past the group's are staged as zeros.
//   2. A table of the 16-byte segments' offsets (tap shift, plane) for the k-steps, and one of the tile pixels' rows
//      (the same for every tile) for the warps' ldmatrix rows.
//   3. Each warp takes (group, up to 4/NT chunks of 16 pixels) jobs: per k-step one 8-byte fragment read per 8 output
//      channels, one ldmatrix.x4 and NT mma per chunk; fp32 accumulators, bias added, converted to T and written
//      to an output tile in shared memory laid out like the output (pixel-major for NHWC, channel-major for NCHW).
//   4. The block writes its output tile with 16-byte stores where the layout allows (NHWC: a pixel's channels of
//      the block's groups; NCHW: a channel's tile rows when tiles span whole rows), element by element otherwise.
//      (Writing the fragments straight to global memory cost ~60 instructions per fragment row in 64-bit address
//      math: ncu, H200, grouped_g32 bf16 NHWC: issue-bound at 65% of issue slots, 68 instructions per mma. Offsets
//      within an image are 32-bit; ncu's per-instruction counters, session 14: 27 instructions per mma.)
//
// Backward-data at stride 1 is the forward of grad_output with the filters flipped and transposed
// (w'[c, k, r, s] = w[k, c, R-1-r, S-1-s] within a group) and padding (R-1)*dil - pad: the same kernel, with the
// filter staging reading w transposed. Larger strides stay on grouped.cuh's phase kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include "common/conv_params.h"
#include "common/cp_async.cuh"
#include "common/dtype.cuh"
#include "common/index.cuh"
#include "common/mma.cuh"
#include "common/pdl.cuh"
#include "tiled/depthwise.cuh"  // dense_reason, max_shared_memory, allow_shared_memory

namespace conv2d_ext {
namespace gmma {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxTilePixels = 128;  // output pixels per tile: 8 chunks of mma's 16 rows
constexpr int kMaxTileWidth = 32;
constexpr int kMaxGroupsPerBlock = 8;
constexpr int kMaxOut = 16;          // output channels per group: two n8 tiles
constexpr int kMaxSegments = 4;      // 16-byte segments per tap of a group's reduction channels (64 bytes)
constexpr int64_t kSmemBudget = 54 * 1024;  // planned per block: 8 fp16/bf16 groups of 3x3 (52 KB), 4 fp32 (53 KB)

enum class Role : int { kForward = 0, kBackwardData = 1 };

// One pass as a forward convolution: `in` (the reduction's activations) -> `out`, per group cg reduction channels
// and kg output channels; the tiling chosen by plan().
struct Geom {
  const void* in;
  void* out;
  const void* w;
  const void* bias;  // kg * groups elements, or nullptr
  int64_t in_stride[4], out_stride[4], w_stride[4];  // (n, c, h, w) and the filters' (k, c, r, s)
  int N, Hin, Win, Hout, Wout;
  int groups, cg, kg;
  int R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int transposed;     // backward-data: filter (output o, reduction i, r, s) = w[g*cg + i, o, R-1-r, S-1-s]
  int channels_last;  // in and out NHWC (else NCHW)
  int vec_in;         // NHWC input read as 16-byte segments (aligned, whole segments per group)
  int out_vec;        // the output tile written as 16-byte vectors: NHWC (aligned, the block's channels whole
                      // vectors) or NCHW whose tiles are whole rows (aligned, a tile's rows contiguous)
  // Tiling.
  int tile_h, tile_w, tiles_w, tiles;  // tiles per image: tiles_h * tiles_w
  int halo_h, halo_w, pitch;           // staged pixels per plane: halo_h x halo_w, plane pitch (odd, in 16 bytes)
  int segs;                            // 16-byte segments per tap of one group
  int ksteps;                          // 32-byte reduction steps: ceil(R * S * segs / 2)
  int chunks, chunk_sets;              // 16-pixel chunks of a tile; warp jobs per group (kChunksPerJob chunks each)
  int gb, group_blocks;                // groups per block, blocks per image tile
  int frag_offset, table_offset;       // bytes: filter fragments and segment table after the staged planes
  int pix_offset;                      // bytes: the tile pixels' row offsets (out_rows ints) after the segment table
  int out_rows;                        // rows of the output tile's pixels: every chunk a job computes (16 each)
  int out_offset, out_pitch;           // bytes: the output tile; its pixel (NHWC) or channel (NCHW) pitch
  int out_units;                       // per output-tile row (pixel or channel): 16-byte vectors (out_vec) or elements
  int smem;                            // bytes of dynamic shared memory; 0: no plan
  int out_row_step;                    // NHWC out_vec with kThreads % out_units == 0: kThreads / out_units, else 0
  int halo_step, halo_step_y, halo_step_x;  // NHWC staging, each thread keeps one plane: kThreads / (gb * segs)
                                            // threads per plane (the rest stage nothing), the halo pixels between a
                                            // thread's copies, as (rows, columns)
  FastDivmod div_planes, div_halo, div_halo_w;  // by gb * segs, halo_h * halo_w, halo_w
  FastDivmod div_tiles, div_tiles_w, div_tile_w, div_chunk_sets, div_out_units;
};

// 16-pixel chunks per warp job: at most 16 accumulators and 16 A registers per thread.
constexpr int chunks_per_job(int nt) { return 4 / nt; }

// ---- Host: plan.

inline int ceil_div_i(int64_t a, int64_t b) { return int((a + b - 1) / b); }

// The Geom of `role` of `p` with element size `esize`, tiles for `gb` groups per block (0: the most that fit the
// budget); smem = 0 when even one group does not fit `max_smem`.
inline Geom plan(const ConvParams& p, Role role, int esize, int64_t max_smem, int gb = 0,
                 int tile_pixels = kMaxTilePixels) {
  Geom g{};
  const bool dgrad = role == Role::kBackwardData;
  g.in = dgrad ? p.y : p.x;
  g.out = dgrad ? p.x : p.y;
  g.w = p.w;
  g.bias = dgrad ? nullptr : p.bias;
  for (int i = 0; i < 4; ++i) {
    g.in_stride[i] = dgrad ? p.y_stride[i] : p.x_stride[i];
    g.out_stride[i] = dgrad ? p.x_stride[i] : p.y_stride[i];
    g.w_stride[i] = p.w_stride[i];
  }
  g.N = int(p.N);
  g.Hin = int(dgrad ? p.P : p.H), g.Win = int(dgrad ? p.Q : p.W);
  g.Hout = int(dgrad ? p.H : p.P), g.Wout = int(dgrad ? p.W : p.Q);
  g.groups = p.groups;
  g.cg = int(dgrad ? p.K_per_group() : p.C_per_group());
  g.kg = int(dgrad ? p.C_per_group() : p.K_per_group());
  g.R = int(p.R), g.S = int(p.S);
  g.stride_h = dgrad ? 1 : p.stride_h, g.stride_w = dgrad ? 1 : p.stride_w;
  g.pad_h = dgrad ? int((p.R - 1) * p.dil_h - p.pad_h) : p.pad_h;
  g.pad_w = dgrad ? int((p.S - 1) * p.dil_w - p.pad_w) : p.pad_w;
  g.dil_h = p.dil_h, g.dil_w = p.dil_w;
  g.transposed = dgrad;
  g.channels_last = p.channels_last;
  const int e = 16 / esize;
  const auto aligned = [](const void* ptr, int bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; };
  g.vec_in = p.channels_last && g.cg % e == 0 && aligned(g.in, 16) && g.in_stride[1] == 1 &&
             g.in_stride[0] % e == 0 && g.in_stride[2] % e == 0 && g.in_stride[3] % e == 0;

  const int cols = ceil_div_i(g.Wout, kMaxTileWidth);
  g.tile_w = ceil_div_i(g.Wout, cols);
  g.tile_h = std::max(1, std::min(g.Hout, tile_pixels / g.tile_w));
  g.tiles_w = cols;
  g.tiles = ceil_div_i(g.Hout, g.tile_h) * cols;
  g.halo_h = (g.tile_h - 1) * g.stride_h + (g.R - 1) * g.dil_h + 1;
  g.halo_w = (g.tile_w - 1) * g.stride_w + (g.S - 1) * g.dil_w + 1;
  g.pitch = (g.halo_h * g.halo_w) | 1;
  g.segs = ceil_div_i(int64_t(g.cg) * esize, 16);
  g.ksteps = ceil_div_i(int64_t(g.R) * g.S * g.segs, 2);
  g.chunks = ceil_div_i(int64_t(g.tile_h) * g.tile_w, 16);
  const int nt = g.kg > 8 ? 2 : 1;
  g.chunk_sets = ceil_div_i(g.chunks, chunks_per_job(nt));
  const int tile_px = g.tile_h * g.tile_w;
  const int64_t planes_bytes = int64_t(g.segs) * g.pitch * 16;
  const int64_t frag_bytes = int64_t(g.ksteps) * nt * 32 * 8;
  const int64_t table_bytes = int64_t(2 * g.ksteps) * 4;
  // Every chunk a job computes has rows in the output tile and the pixel table (NHWC jobs run all their chunks,
  // also those past the tile: their rows are never stored), so the fragment stores need no bounds.
  g.out_rows = g.chunk_sets * chunks_per_job(nt) * 16;
  const int64_t pix_bytes = int64_t(g.out_rows) * 4;
  // The output tile: rows (NHWC pixels or NCHW channels) padded to an odd number of 16-byte units (32 for NHWC
  // fp32, whose fragments store 8-byte pairs), so that a warp's fragment stores spread over the banks.
  const auto odd_pitch = [](int64_t bytes, int unit) { const int64_t u = (bytes + unit - 1) / unit; return (u | 1) * unit; };
  const auto out_bytes = [&](int groups_in_block) {
    return p.channels_last ? g.out_rows * odd_pitch(int64_t(groups_in_block) * g.kg * esize, 8 * esize)
                           : int64_t(groups_in_block) * g.kg * odd_pitch(int64_t(g.out_rows) * esize, 16);
  };
  const auto need = [&](int groups_in_block) {
    return ((groups_in_block * (planes_bytes + frag_bytes) + table_bytes + 15) / 16) * 16 + pix_bytes +
           out_bytes(groups_in_block);
  };
  if (need(1) > max_smem) return g;
  if (gb <= 0) {
    gb = 1;
    while (gb < kMaxGroupsPerBlock && need(gb + 1) <= kSmemBudget) ++gb;
  }
  g.gb = std::min(gb, g.groups);
  if (need(g.gb) > max_smem) g.gb = 1;
  g.group_blocks = ceil_div_i(g.groups, g.gb);
  g.frag_offset = int(g.gb * planes_bytes);
  g.table_offset = int(g.frag_offset + g.gb * frag_bytes);
  g.pix_offset = int(((g.table_offset + table_bytes + 15) / 16) * 16);
  g.out_offset = int(g.pix_offset + pix_bytes);
  g.smem = int(need(g.gb));
  const int bch = g.gb * g.kg;  // the block's output channels (the last group block may have fewer)
  if (p.channels_last) {
    g.out_pitch = int(odd_pitch(int64_t(bch) * esize, 8 * esize));
    g.out_vec = aligned(g.out, 16) && g.out_stride[1] == 1 && g.out_stride[0] % e == 0 && g.out_stride[2] % e == 0 &&
                g.out_stride[3] % e == 0 && bch % e == 0 && int64_t(g.kg) * g.groups % e == 0;
    g.out_units = g.out_vec ? bch / e : bch;
  } else {
    g.out_pitch = int(odd_pitch(int64_t(g.out_rows) * esize, 16));
    g.out_vec = g.tile_w == g.Wout && g.out_stride[3] == 1 && g.out_stride[2] == g.Wout && aligned(g.out, 16) &&
                g.out_stride[0] % e == 0 && g.out_stride[1] % e == 0 && tile_px % e == 0;
    g.out_units = g.out_vec ? tile_px / e : tile_px;
  }
  g.out_row_step = p.channels_last && g.out_vec && kThreads % g.out_units == 0 ? kThreads / g.out_units : 0;
  g.halo_step = kThreads / (g.gb * g.segs);  // at most 32 planes: 8 or more threads each
  g.halo_step_y = g.halo_step / g.halo_w, g.halo_step_x = g.halo_step % g.halo_w;
  g.div_planes = FastDivmod(unsigned(g.gb * g.segs));
  g.div_halo = FastDivmod(unsigned(g.halo_h * g.halo_w));
  g.div_halo_w = FastDivmod(unsigned(g.halo_w));
  g.div_tiles = FastDivmod(unsigned(g.tiles));
  g.div_tiles_w = FastDivmod(unsigned(g.tiles_w));
  g.div_tile_w = FastDivmod(unsigned(g.tile_w));
  g.div_chunk_sets = FastDivmod(unsigned(g.chunk_sets));
  g.div_out_units = FastDivmod(unsigned(g.out_units));
  return g;
}

// Sizes the kernels' int tile math and dense-layout staging take, or why not ("").
inline std::string can_implement_sizes(const ConvParams& p) {
  const int64_t kLimit = int64_t(1) << 20;  // tile and halo math in int
  if (p.H >= kLimit || p.W >= kLimit || p.P >= kLimit || p.Q >= kLimit || p.N >= (int64_t(1) << 24))
    return "a spatial size of 2^20 or more, or 2^24 or more images";
  if (p.pad_h >= kLimit || p.pad_w >= kLimit || (p.R - 1) * p.dil_h >= (1 << 12) || (p.S - 1) * p.dil_w >= (1 << 12))
    return "padding of 2^20 or more or a dilated filter extent of 4096 or more";
  std::string why = dw::dense_reason(p, p.x_stride, p.C, p.H, p.W, "the input");
  if (why.empty()) why = dw::dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");
  if (why.empty() && (p.C * p.H * p.W >= (int64_t(1) << 31) || p.K * p.P * p.Q >= (int64_t(1) << 31)))
    return "an image of 2^31 or more elements (offsets within an image are 32-bit)";
  return why;
}

// Why the grouped tensor-core kernel cannot run `role` of `p`, or "".
inline std::string can_implement(const ConvParams& p, Role role) {
  if (p.dtype == DType::kFloat64) return "float64 runs on the direct family";
  if (p.dtype == DType::kFloat32 && !p.allow_tf32)
    return "exact fp32 (TF32 disallowed) runs on CUDA cores, not tensor cores";
  if (p.sm < 80) return "needs sm_80 or newer (mma.sync)";
  if (p.groups == 1) return "groups == 1 (not grouped)";
  if (p.groups == p.C) return "depthwise (groups == input channels) runs on tiled:depthwise";
  const bool dgrad = role == Role::kBackwardData;
  if (dgrad && (p.stride_h != 1 || p.stride_w != 1)) return "backward-data of a strided convolution";
  const int esize = p.element_bytes();
  const int64_t red = dgrad ? p.K_per_group() : p.C_per_group(), out = dgrad ? p.C_per_group() : p.K_per_group();
  if (out > kMaxOut)
    return dgrad ? "more than 16 input channels per group (C/groups)"
                 : "more than 16 output channels per group (K/groups)";
  if (red * esize > kMaxSegments * 16)
    return dgrad ? "more than 64 bytes of output channels per group (K/groups)"
                 : "more than 64 bytes of input channels per group (C/groups)";
  const std::string why = can_implement_sizes(p);
  if (!why.empty()) return why;
  const Geom g = plan(p, role, esize, dw::max_shared_memory(p.sm), 1);
  if (g.smem == 0) return "one group's filters and input tile need more shared memory than this GPU gives a block";
  if (int64_t(g.tiles) * p.N >= (int64_t(1) << 31) || g.group_blocks > 65535) return "too many tiles for one grid";
  return "";
}

// ---- Device.

// The filter element feeding B fragment position (k-step, n8 tile, lane, register j, element e) of group `group`,
// as raw bits of T (zero past the taps, channels and output channels).
template <typename T>
__device__ __forceinline__ uint32_t fragment_bits(const Geom& g, const T* w, int group, int step, int nt, int lane,
                                                  int j) {
  constexpr int kPerWord = 4 / int(sizeof(T));
  const int n = nt * 8 + (lane >> 2), t = lane & 3;
  uint32_t word = 0;
#pragma unroll
  for (int e = 0; e < kPerWord; ++e) {
    // Reduction index within the 32-byte step: 16-bit b_j holds k = 2t + e + 8j; TF32 b_j holds k = t + 4j.
    const int k = kPerWord == 2 ? 2 * t + e + 8 * j : t + 4 * j;
    const int byte = k * int(sizeof(T));
    const int seg = 2 * step + byte / 16;
    const int tap = seg / g.segs;
    const int c = (seg - tap * g.segs) * Vec16<T>::value + (byte % 16) / int(sizeof(T));
    uint32_t bits = 0;
    if (tap < g.R * g.S && c < g.cg && n < g.kg) {
      const int r = tap / g.S, s = tap - r * g.S;
      const int64_t off = g.transposed
          ? (int64_t(group) * g.cg + c) * g.w_stride[0] + n * g.w_stride[1] + (g.R - 1 - r) * g.w_stride[2] +
                (g.S - 1 - s) * g.w_stride[3]
          : (int64_t(group) * g.kg + n) * g.w_stride[0] + c * g.w_stride[1] + r * g.w_stride[2] + s * g.w_stride[3];
      if constexpr (sizeof(T) == 4) bits = __float_as_uint(w[off]);
      else bits = static_cast<uint32_t>(reinterpret_cast<const unsigned short*>(w)[off]);
    }
    word |= bits << (16 * e * (kPerWord == 2));
  }
  return word;
}

// 16 bytes of input for plane (group, segment) at input pixel (h, w) of image n, element by element (NCHW and
// misaligned views; whole aligned segments go by cp.async): zeros outside the image and past the group's channels.
template <typename T>
__device__ __forceinline__ uint4 load_segment(const Geom& g, const T* in, int64_t n, int group, int seg, int h, int w) {
  uint4 v = make_uint4(0, 0, 0, 0);
  if (group >= g.groups || h < 0 || h >= g.Hin || w < 0 || w >= g.Win) return v;
  constexpr int kE = Vec16<T>::value;
  const int c0 = seg * kE;
  const T* src = in + n * g.in_stride[0] + (int64_t(group) * g.cg + c0) * g.in_stride[1] + int64_t(h) * g.in_stride[2] +
                 int64_t(w) * g.in_stride[3];
  uint32_t words[4] = {0, 0, 0, 0};
#pragma unroll
  for (int e = 0; e < kE; ++e) {
    if (c0 + e < g.cg) {
      uint32_t bits;
      if constexpr (sizeof(T) == 4) bits = __float_as_uint(__ldg(src + e * g.in_stride[1]));
      else bits = __ldg(reinterpret_cast<const unsigned short*>(src + e * g.in_stride[1]));
      words[e * int(sizeof(T)) / 4] |= bits << (8 * ((e * int(sizeof(T))) % 4));
    }
  }
  return make_uint4(words[0], words[1], words[2], words[3]);
}

// Image and first output row and column of `item` (image-major, then tile rows, then tile columns).
struct TileAt {
  int64_t n;
  int oh0, ow0;
};

__device__ __forceinline__ TileAt tile_at(const Geom& g, int64_t item) {  // item < 2^31 (can_implement)
  unsigned n, tile, th, tw;
  g.div_tiles.divmod(unsigned(item), n, tile);
  g.div_tiles_w.divmod(tile, th, tw);
  return TileAt{int64_t(n), int(th) * g.tile_h, int(tw) * g.tile_w};
}

// The byte offset of 16-byte segment seg = tap * segs + chunk within a group's planes: the chunk's plane plus the
// tap's shift; past the last tap 0, any staged row (its filter values are zero).
__device__ __forceinline__ int segment_offset(const Geom& g, int seg) {
  const int tap = seg / g.segs;
  if (tap >= g.R * g.S) return 0;
  const int r = tap / g.S, s = tap - r * g.S;
  return ((seg - tap * g.segs) * g.pitch + r * g.dil_h * g.halo_w + s * g.dil_w) * 16;
}

// The k-steps' segment offsets, table[0 .. 2 * ksteps - 1]. Block-wide; visible after the next barrier.
__device__ __forceinline__ void fill_segment_table(const Geom& g, int* table) {
  for (int seg = threadIdx.x; seg < 2 * g.ksteps; seg += blockDim.x) table[seg] = segment_offset(g, seg);
}

// The tile pixels' input rows: table[m] = byte offset of output pixel m's tap-0 row in a group's planes, for
// m < rows; `past` for pixels past the tile and, given the staged tile `at`, past the image. The forward's (no `at`,
// past = 0: any staged row) is the same for every tile. Block-wide; visible after the next barrier.
__device__ __forceinline__ void fill_pixel_table(const Geom& g, int rows, const TileAt* at, int past, int* table) {
  const int tile_pixels = g.tile_h * g.tile_w;
  for (int m = threadIdx.x; m < rows; m += blockDim.x) {
    unsigned ty, tx;
    g.div_tile_w.divmod(unsigned(m), ty, tx);
    const bool inside =
        m < tile_pixels && (at == nullptr || (at->oh0 + int(ty) < g.Hout && at->ow0 + int(tx) < g.Wout));
    table[m] = inside ? (int(ty) * g.stride_h * g.halo_w + int(tx) * g.stride_w) * 16 : past;
  }
}

// Packs the filters of every group as mma B fragments in lane order: frags[((group * ksteps + step) * kNt + nt) * 32
// + lane] (8 bytes: registers b0, b1), zeros past the groups, taps, channels and output channels. One small pass
// per call, so that the convolution blocks copy their groups' fragments with 16-byte loads.
template <typename T, int kNt>
__global__ void __launch_bounds__(kThreads) pack_kernel(const Geom g, uint2* frags, int total) {
  pdl_launch_dependents();  // the convolution's blocks stage their input while this runs (they wait for frags)
  const T* w = static_cast<const T*>(g.w);
  for (int i = blockIdx.x * kThreads + threadIdx.x; i < total; i += gridDim.x * kThreads) {
    const int lane = i & 31;
    int rest = i >> 5;
    const int nt = rest % kNt;
    rest /= kNt;
    const int step = rest % g.ksteps, group = rest / g.ksteps;
    uint2 f = make_uint2(0, 0);
    if (group < g.groups) {
      f.x = fragment_bits<T>(g, w, group, step, nt, lane, 0);
      f.y = fragment_bits<T>(g, w, group, step, nt, lane, 1);
    }
    frags[i] = f;
  }
}

// One thread's share of a copy by columns into a 16-byte plane at `dst0` (shared-window address): a rows x width
// window of the image at (h0, w0), pixel-major in the plane, `threads_per_column` threads to a column. Thread
// `first` copies column first % width from row first / width on, every threads_per_column-th row: a row step per
// copy. Zero-filled outside H x W and where !plane_ok; `any` is a valid address for the zero-filled copies.
// Offsets within an image are 32-bit (signed: rows above the image are not read).
template <typename T>
__device__ __forceinline__ void stage_column(uint32_t dst0, const T* src0, const T* any, unsigned first,
                                             const FastDivmod& div_width, int width, int rows, int threads_per_column,
                                             int h0, int w0, int H, int W, unsigned s2, unsigned s3, bool plane_ok) {
  unsigned ry, cx;
  div_width.divmod(first, ry, cx);
  if (int(ry) >= threads_per_column) return;  // the threads past whole sets of columns
  const int w = w0 + int(cx), dh = threads_per_column;
  const bool col_ok = plane_ok && unsigned(w) < unsigned(W);
  int off = (h0 + int(ry)) * int(s2) + w * int(s3);
  uint32_t dst = dst0 + (ry * unsigned(width) + cx) * 16;
  for (int h = h0 + int(ry); h < h0 + rows; h += dh, off += dh * int(s2), dst += uint32_t(dh * width * 16)) {
    const bool valid = col_ok && unsigned(h) < unsigned(H);
    cp_async_16(dst, valid ? src0 + off : any, valid);
  }
}

// Stages the input tile at `at` (image, tile) for the block's groups into the planes at `planes` (shared-window
// address): cp.async 16-byte copies (zero-filled outside the image) when the input allows them, else element loads
// batched through registers.
template <typename T, bool kVec>
__device__ __forceinline__ void stage_tile(const Geom& g, const T* in, const TileAt& at, int g0, uint32_t planes) {
  const int64_t n = at.n;
  const int h0 = at.oh0 * g.stride_h - g.pad_h, w0 = at.ow0 * g.stride_w - g.pad_w;
  const int nplanes = g.gb * g.segs, halo = g.halo_h * g.halo_w, items = nplanes * halo;
  const int tid = threadIdx.x;
  if constexpr (kVec) {  // NHWC, whole 16-byte segments (g.vec_in): a pixel's planes are contiguous in memory
    // Each thread keeps one plane and walks the halo: down one column (halo_step >= halo_w) or by a fixed (rows,
    // columns) step.
    const T* base = in + n * g.in_stride[0] + int64_t(g0) * g.cg;
    unsigned first, plane;
    g.div_planes.divmod(unsigned(tid), first, plane);
    if (int(first) >= g.halo_step) return;  // the threads past halo_step * planes
    const bool group_ok = int(plane) < (g.groups - g0) * g.segs;
    const T* src0 = base + plane * Vec16<T>::value;
    const uint32_t dst0 = planes + uint32_t(int(plane) * g.pitch * 16);
    const unsigned s2 = unsigned(g.in_stride[2]), s3 = unsigned(g.in_stride[3]);  // 32-bit within an image
    if (g.halo_step >= g.halo_w) {
      stage_column(dst0, src0, in, first, g.div_halo_w, g.halo_w, g.halo_h, g.halo_step_y, h0, w0, g.Hin, g.Win, s2,
                   s3, group_ok);
      return;
    }
    unsigned hy, hx;
    g.div_halo_w.divmod(first, hy, hx);
    for (int px = int(first); px < halo; px += g.halo_step) {
      const int h = h0 + int(hy), w = w0 + int(hx);
      const bool valid = group_ok && unsigned(h) < unsigned(g.Hin) && unsigned(w) < unsigned(g.Win);
      cp_async_16(dst0 + uint32_t(px * 16), valid ? src0 + int(unsigned(h) * s2 + unsigned(w) * s3) : in, valid);
      hx += unsigned(g.halo_step_x), hy += unsigned(g.halo_step_y);
      if (hx >= unsigned(g.halo_w)) hx -= unsigned(g.halo_w), ++hy;
    }
    return;
  }
  constexpr int kBatch = 4;
  for (int base = 0; base < items; base += kThreads * kBatch) {
    uint4 v[kBatch];
    int dst[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int i = base + b * kThreads + tid;
      dst[b] = -1;
      if (i < items) {
        int plane, px;
        if (g.channels_last) {
          unsigned q, r;
          g.div_planes.divmod(unsigned(i), q, r);
          px = int(q), plane = int(r);
        } else {
          unsigned q, r;
          g.div_halo.divmod(unsigned(i), q, r);
          plane = int(q), px = int(r);
        }
        const int grp = plane / g.segs, seg = plane - grp * g.segs;
        unsigned hy, hx;
        g.div_halo_w.divmod(unsigned(px), hy, hx);
        v[b] = load_segment<T>(g, in, n, g0 + grp, seg, h0 + int(hy), w0 + int(hx));
        dst[b] = (plane * g.pitch + px) * 16;
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (dst[b] >= 0) st_shared_v4(planes + dst[b], v[b]);
  }
}

// The convolution: block (x, group block y) runs item (image, tile) x for its groups: stages the tile and the
// groups' filter fragments (cp.async), multiplies and stores. One tile per block: several blocks per SM overlap one
// block's loads with another's multiplications (H200, grouped_g32: faster than persistent double-buffered blocks,
// 0.030 against 0.034 ms bf16 channels-last, 0.040 against 0.046 TF32; again in session 16 with the slimmed jobs:
// 2, 3, 4 or all-resident tiles per block, one or two staging buffers with the next tile's loads in flight during
// the multiplications or the stores: bf16 / fp16 0.0186 / 0.0185 ms at one tile, 0.0194-0.0214 otherwise; TF32
// 0.0318 against 0.0308-0.0346). Launch bounds of four blocks (64 registers) for both kernels: the NCHW one at 68-72
// registers ran three blocks per SM (TF32 NCHW forward 0.0418 -> 0.0384 ms with 64; no spills).
template <typename T, int kNt, bool kVec, int kSteps>
__global__ void __launch_bounds__(kThreads, 4)
    conv_kernel(const Geom g, const uint2* __restrict__ frags_all) {
  constexpr int kChunks = chunks_per_job(kNt);
  constexpr int kE = Vec16<T>::value;
  extern __shared__ __align__(16) unsigned char smem[];
  const uint32_t smem_base = smem_addr(smem);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g0 = int(blockIdx.y) * g.gb;
  const int64_t item = blockIdx.x;
  const TileAt at = tile_at(g, item);
  // The next kernel may start once every block is here: a backward-weight after this backward-data (it reads
  // nothing this grid writes and waits for it before it exits) or any other kernel launched as a dependent, which
  // waits before reading (common/pdl.cuh). The fragments' pack_kernel has started, so everything before it is done.
  pdl_launch_dependents();
  {
    // The input tile and the tables first: launched as a programmatic dependent of pack_kernel, the block may
    // start before the fragments exist, and waits for them only after issuing its input loads.
    stage_tile<T, kVec>(g, static_cast<const T*>(g.in), at, g0, smem_base);
    cp_async_commit();
    fill_segment_table(g, reinterpret_cast<int*>(smem + g.table_offset));
    fill_pixel_table(g, g.out_rows, nullptr, 0, reinterpret_cast<int*>(smem + g.pix_offset));
    pdl_wait();
    const int chunks16 = g.gb * g.ksteps * kNt * 32 / 2;  // 16-byte pieces of the block's filter fragments
    const uint4* src = reinterpret_cast<const uint4*>(frags_all + int64_t(g0) * g.ksteps * kNt * 32);
    // The vector kernel: four predicated copies per pass, each with its own address registers (a rolled loop's
    // pointer increment waited on the previous copy's operand read: ncu, ~4% of the forward's stall samples). Not
    // in the other kernel, whose registers it raised 64 -> 72 (three blocks per SM instead of four).
    if constexpr (kVec) {
      for (int i0 = tid; i0 < chunks16; i0 += 4 * kThreads) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int i = i0 + k * kThreads;
          if (i < chunks16) cp_async_16(smem_base + g.frag_offset + i * 16, src + i, true);
        }
      }
    } else {
      for (int i = tid; i < chunks16; i += kThreads) cp_async_16(smem_base + g.frag_offset + i * 16, src + i, true);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
  }

  const int groups_here = min(g.gb, g.groups - g0);
  const int jobs = groups_here * g.chunk_sets;  // group-major
  const int* table = reinterpret_cast<const int*>(smem + g.table_offset);
  const int* pix_table = reinterpret_cast<const int*>(smem + g.pix_offset);
  // kVec implies NHWC; the other instantiation takes both layouts (NCHW and misaligned NHWC views).
  const bool channels_last = kVec || g.channels_last;
  const int half = lane >> 4, gid = lane >> 2, t = lane & 3;
  const int lane_pixel = (lane & 7) + 8 * ((lane >> 3) & 1);  // the lane's ldmatrix row within a chunk
  for (int job = warp; job < jobs; job += kWarps) {
    unsigned grpu, setu;
    g.div_chunk_sets.divmod(unsigned(job), grpu, setu);
    const int grp = int(grpu), first = int(setu) * kChunks;
    const int nchunks = min(kChunks, g.chunks - first);
    // The lane's ldmatrix row of each chunk: its pixel's tap-0 row in the group's planes; the upper half of the
    // lanes point at the k-step's second segment (the segment table's odd entries).
    const uint32_t group_planes = smem_base + uint32_t(grp * g.segs * g.pitch * 16);
    uint32_t row[kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) row[c] = group_planes + uint32_t(pix_table[(first + c) * 16 + lane_pixel]);
    float acc[kChunks][kNt][4];
#pragma unroll
    for (int c = 0; c < kChunks; ++c)
#pragma unroll
      for (int j = 0; j < kNt; ++j) acc[c][j][0] = acc[c][j][1] = acc[c][j][2] = acc[c][j][3] = 0.f;
    uint32_t frag = smem_base + g.frag_offset + uint32_t((grp * g.ksteps * kNt * 32 + lane) * 8);
    // kSteps > 0: the k-step count at compile time (the loop unrolled: no trip-count arithmetic, remainder loop
    // or branches per job), else g.ksteps.
    const int ksteps = kSteps > 0 ? kSteps : g.ksteps;
#pragma unroll(kSteps > 0 ? kSteps : 4)
    for (int step = 0; step < ksteps; ++step, frag += kNt * 32 * 8) {
      const uint32_t off = uint32_t(table[2 * step + half]);
      uint32_t b[kNt][2];
#pragma unroll
      for (int j = 0; j < kNt; ++j) ld_shared_v2(b[j], frag + j * 256);
      // NHWC: every chunk of the job, also those past the tile (their rows point at pixel 0 and are not stored): no
      // predicated ldmatrix / mma (its tiles fill their chunks). NCHW (tiles of whole rows, often a partly filled
      // last chunk): only the job's chunks (H200, grouped_g32 TF32: 0.0394 ms predicated, 0.0439 not).
      uint32_t a[kChunks][4];
#pragma unroll
      for (int c = 0; c < kChunks; ++c)
        if (kVec || c < nchunks) ldmatrix_x4(a[c], row[c] + off);
#pragma unroll
      for (int c = 0; c < kChunks; ++c)
        if (kVec || c < nchunks)
#pragma unroll
          for (int j = 0; j < kNt; ++j) Mma<T>::run(acc[c][j], a[c], b[j]);
    }
    // To the output tile: lane (gid, t) holds rows gid and gid + 8 of each chunk, channels 2t and 2t + 1 of each
    // n8 tile. The tile has a row for every pixel a job computes (g.out_rows), so no bounds on m. The bias first,
    // under a uniform branch (nothing loaded or added without one).
    if (g.bias != nullptr) {
      const T* bias = static_cast<const T*>(g.bias) + (g0 + grp) * g.kg;
#pragma unroll
      for (int j = 0; j < kNt; ++j) {
        const int o = j * 8 + 2 * t;
        const float b0 = o < g.kg ? to_acc(bias[o]) : 0.f, b1 = o + 1 < g.kg ? to_acc(bias[o + 1]) : 0.f;
#pragma unroll
        for (int c = 0; c < kChunks; ++c)
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) acc[c][j][2 * hr] += b0, acc[c][j][2 * hr + 1] += b1;
      }
    }
    const int pixel_step = channels_last ? g.out_pitch : int(sizeof(T));        // bytes per pixel row
    const int channel_step = channels_last ? int(sizeof(T)) : g.out_pitch;      // bytes per channel
    const uint32_t lane_out = uint32_t(g.out_offset + (first * 16 + gid) * pixel_step);  // bytes from smem
    if (channels_last && g.kg % 2 == 0) {  // channel pairs, aligned and inside the group: one store each
#pragma unroll
      for (int j = 0; j < kNt; ++j) {
        const int o = j * 8 + 2 * t;
        if (o >= g.kg) continue;
        unsigned char* dst_j = smem + lane_out + (grp * g.kg + o) * int(sizeof(T));
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
          if (!kVec && c >= nchunks) continue;
#pragma unroll
          for (int hr = 0; hr < 2; ++hr)
            *reinterpret_cast<typename PairBits<T>::type*>(dst_j + (c * 16 + hr * 8) * pixel_step) =
                pack_pair<T>(acc[c][j][2 * hr], acc[c][j][2 * hr + 1]);
        }
      }
      continue;
    }
#pragma unroll
    for (int j = 0; j < kNt; ++j) {
      const int o = j * 8 + 2 * t;
      if (o >= g.kg) continue;
      const bool second = o + 1 < g.kg;
      unsigned char* dst_j = smem + lane_out + (grp * g.kg + o) * channel_step;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        if (!kVec && c >= nchunks) continue;
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          T* dst = reinterpret_cast<T*>(dst_j + (c * 16 + hr * 8) * pixel_step);
          dst[0] = from_acc<T>(acc[c][j][2 * hr]);
          if (second) *reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(dst) + channel_step) =
              from_acc<T>(acc[c][j][2 * hr + 1]);
        }
      }
    }
  }
  __syncthreads();

  // The output tile to global memory: unit i of (row, unit) in the tile's layout. Offsets within the image are
  // 32-bit (can_implement_sizes).
  const T* tile_src = reinterpret_cast<const T*>(smem + g.out_offset);
  T* out = static_cast<T*>(g.out) + at.n * g.out_stride[0] + int64_t(g0) * g.kg * g.out_stride[1];
  const int bch = groups_here * g.kg;
  const int tile_pixels = g.tile_h * g.tile_w;
  const int rows = channels_last ? tile_pixels : g.gb * g.kg;
  const unsigned s1 = unsigned(g.out_stride[1]), s2 = unsigned(g.out_stride[2]), s3 = unsigned(g.out_stride[3]);
  // NHWC 16-byte units, a (unit, tile column) per thread. Only in the vector kernel: in the other (NCHW and
  // misaligned views) this branch raised the registers 64 -> 72, three blocks per SM instead of four (H200,
  // grouped_g32 bf16 NCHW forward 0.0254 -> 0.0285 ms).
  if (kVec && g.out_row_step >= g.tile_w) {
    unsigned col, u;
    g.div_out_units.divmod(unsigned(tid), col, u);
    if (int(col) >= g.tile_w || int(u) * kE >= bch || at.ow0 + int(col) >= g.Wout) return;
    const unsigned char* src = smem + g.out_offset + u * 16 + col * g.out_pitch;
    T* dst = out + int64_t(at.oh0) * g.out_stride[2] + int64_t(at.ow0 + int(col)) * g.out_stride[3] + u * kE;
    const int rows_here = min(g.tile_h, g.Hout - at.oh0);
    for (int ty = 0; ty < rows_here; ++ty, src += g.tile_w * g.out_pitch, dst += s2)
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    return;
  }
  if (channels_last && g.out_row_step > 0) {  // NHWC 16-byte units, each thread keeps one unit
    unsigned r0, u;
    g.div_out_units.divmod(unsigned(tid), r0, u);
    if (int(u) * kE < bch) {
      const unsigned char* src = smem + g.out_offset + u * 16;
      T* dst0 = out + int64_t(at.oh0) * g.out_stride[2] + int64_t(at.ow0) * g.out_stride[3] + u * kE;
      for (int r = int(r0); r < tile_pixels; r += g.out_row_step) {
        unsigned ty, tx;
        g.div_tile_w.divmod(unsigned(r), ty, tx);
        if (at.oh0 + int(ty) >= g.Hout || at.ow0 + int(tx) >= g.Wout) continue;
        *reinterpret_cast<uint4*>(dst0 + int(ty * s2 + tx * s3)) =
            *reinterpret_cast<const uint4*>(src + r * g.out_pitch);
      }
    }
    return;
  }
  const int units = rows * g.out_units;
  const int valid_pixels = min(g.tile_h, g.Hout - at.oh0) * g.tile_w;  // NCHW tiles of whole rows (out_vec)
  for (int i = tid; i < units; i += kThreads) {
    unsigned r, u;
    g.div_out_units.divmod(unsigned(i), r, u);
    if (channels_last) {  // row r: pixel m; unit u: a vector of kE channels or one channel
      unsigned ty, tx;
      g.div_tile_w.divmod(r, ty, tx);
      const int oh = at.oh0 + int(ty), ow = at.ow0 + int(tx);
      if (oh >= g.Hout || ow >= g.Wout) continue;
      T* dst = out + int(unsigned(oh) * s2 + unsigned(ow) * s3);
      const unsigned char* src = smem + g.out_offset + r * g.out_pitch;
      if (g.out_vec) {
        if (int(u) * kE < bch)
          *reinterpret_cast<uint4*>(dst + u * kE) = *reinterpret_cast<const uint4*>(src + u * 16);
      } else if (int(u) < bch) {
        dst[int(u * s1)] = reinterpret_cast<const T*>(src)[u];
      }
      continue;
    }
    // NCHW: row r: channel; unit u: kE pixels of the tile's contiguous rows (out_vec) or one pixel.
    if (int(r) >= bch) continue;
    const T* src = tile_src + r * (g.out_pitch / int(sizeof(T)));
    T* dst = out + int(r * s1);
    if (g.out_vec) {
      const int m0 = int(u) * kE;
      dst += at.oh0 * g.Wout;
      if (m0 + kE <= valid_pixels) {
        *reinterpret_cast<uint4*>(dst + m0) = *reinterpret_cast<const uint4*>(src + m0);
      } else {
        for (int m = m0; m < valid_pixels; ++m) dst[m] = src[m];
      }
      continue;
    }
    unsigned ty, tx;
    g.div_tile_w.divmod(u, ty, tx);
    const int oh = at.oh0 + int(ty), ow = at.ow0 + int(tx);
    if (oh < g.Hout && ow < g.Wout) dst[int(unsigned(oh) * s2 + unsigned(ow) * s3)] = src[u];
  }
}

// The plan launch() runs. TUNING (temporary): groups per block and tile pixels from the environment.
inline Geom launch_plan(const ConvParams& p, Role role) {
  const char* env_gb = std::getenv("CONV2D_EXT_GMMA_GB");
  const char* env_tile = std::getenv("CONV2D_EXT_GMMA_TILE");
  const int tile_pixels = env_tile ? std::max(16, std::min(kMaxTilePixels, std::atoi(env_tile))) : kMaxTilePixels;
  return plan(p, role, p.element_bytes(), dw::max_shared_memory(p.sm), env_gb ? std::atoi(env_gb) : 0,
              tile_pixels);
}

// Bytes of workspace `role` of `p` needs: the packed filter fragments of every group block.
inline int64_t workspace_bytes(const ConvParams& p, Role role) {
  if (p.N == 0) return 0;
  const Geom g = launch_plan(p, role);
  return int64_t(g.group_blocks) * g.gb * g.ksteps * (g.kg > 8 ? 2 : 1) * 32 * 8;
}

// Runs `role` of `p` (can_implement is ""), T = float (TF32), __half or __nv_bfloat16. Instantiated once per dtype
// (grouped_mma_<dtype>.cu), declared extern below for every other translation unit.
// The k-steps of the common narrow group at compile time: 3x3 filters over 8 channels per group (32 bytes a pixel
// in TF32: one tap per step; 16 bytes in fp16/bf16: two taps per step).
template <typename T>
constexpr int fixed_steps() { return sizeof(T) == 4 ? 9 : 5; }

template <typename T, int kNt, bool kVec, int kSteps>
void launch_conv(const Geom& g, void* workspace, cudaStream_t stream) {
  uint2* frags = static_cast<uint2*>(workspace);
  const int total = g.group_blocks * g.gb * g.ksteps * kNt * 32;
  pack_kernel<T, kNt><<<static_cast<unsigned>(std::min(1024, (total + kThreads - 1) / kThreads)), kThreads, 0,
                        stream>>>(g, frags, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  constexpr auto kernel = conv_kernel<T, kNt, kVec, kSteps>;
  dw::allow_shared_memory<kernel>(g.smem);
  const int64_t blocks = int64_t(g.N) * g.tiles;
  launch_dependent(kernel, dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(g.group_blocks)), dim3(kThreads),
                   size_t(g.smem), stream, g, static_cast<const uint2*>(frags));
}

template <typename T>
void launch(const ConvParams& p, Role role, void* workspace, cudaStream_t stream) {
  if (p.N == 0) return;
  const Geom g = launch_plan(p, role);
  TORCH_CHECK(g.smem > 0, "conv2d_ext: tiled:grouped_mma: no tile plan for this problem");
  TORCH_CHECK(workspace != nullptr, "conv2d_ext: tiled:grouped_mma: no workspace for the packed filters");
  if (g.kg > 8) {
    if (g.vec_in) launch_conv<T, 2, true, 0>(g, workspace, stream);
    else launch_conv<T, 2, false, 0>(g, workspace, stream);
  } else {
    // TUNING (temporary): CONV2D_EXT_GMMA_FIXED=0 keeps the run-time k-step count for comparison.
    const char* env_fixed = std::getenv("CONV2D_EXT_GMMA_FIXED");
    const bool fixed = g.ksteps == fixed_steps<T>() && (env_fixed == nullptr || std::atoi(env_fixed) != 0);
    if (g.vec_in && fixed) launch_conv<T, 1, true, fixed_steps<T>()>(g, workspace, stream);
    else if (g.vec_in) launch_conv<T, 1, true, 0>(g, workspace, stream);
    else launch_conv<T, 1, false, 0>(g, workspace, stream);
  }
}

extern template void launch<float>(const ConvParams&, Role, void*, cudaStream_t);
extern template void launch<__half>(const ConvParams&, Role, void*, cudaStream_t);
extern template void launch<__nv_bfloat16>(const ConvParams&, Role, void*, cudaStream_t);

// `role` of `p` on the kernel of p's dtype (fp32 runs as TF32: can_implement asked for allow_tf32).
inline void run(const ConvParams& p, Role role, void* workspace, cudaStream_t stream) {
  switch (p.dtype) {
    case DType::kFloat32: launch<float>(p, role, workspace, stream); break;
    case DType::kFloat16: launch<__half>(p, role, workspace, stream); break;
    case DType::kBFloat16: launch<__nv_bfloat16>(p, role, workspace, stream); break;
    default: TORCH_CHECK(false, "conv2d_ext: tiled:grouped_mma: unsupported dtype");
  }
}

}  // namespace gmma
}  // namespace conv2d_ext
