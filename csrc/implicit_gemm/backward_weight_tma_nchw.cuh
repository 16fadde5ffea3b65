// Backward-weight on Hopper's copy engine with the input read as NCHW boxes: the GEMM of backward_weight_tma.cuh
// (M = output channels, N = (tap, channel) columns, the reduction over output pixels) with B, the input's window of
// a tap, K-major (its pixels contiguous in shared memory). Two users:
//   TF32, whose MMAs take shared-memory operands K-major only (NHWC boxes are MN-major), in every layout: a
//     channels-last input is copied to dense NCHW first (launch_to_nchw, forward.cuh: seed 1.07 GB in TF32, about
//     0.8 ms against the 6 ms the channel-gathering 128x128_w8 loses);
//   fp16/bf16 with an NCHW input (wgrad_reads_nchw), read in place where backward_weight_tma.cuh's MN-major kernel
//     would copy it to NHWC first (seed bf16: 537 MB each way, ~0.27 ms of a 4.2 ms backward).
// A k-tile is kPix = 128 bytes of pixels (32 fp32, 64 16-bit) of one input row:
//   B: a box of kPix consecutive pixels of that row x kPix channels is kPix rows of 128 bytes with the pixels
//     contiguous -- K-major, in the copy engine's 128-byte swizzle, read by wgmma through a descriptor as the forward
//     reads its filters.
//   A (grad_output): NHWC boxes of kPix output channels x the same kPix output pixels (MN-major: each pixel a
//     128-byte row of channels). 16-bit: read by wgmma through a descriptor with the transpose bit, as
//     backward_weight_tma.cuh's operands (m64n128 / m64n64 AMN). TF32 (no transposed operands): into the MMAs from
//     registers, each thread loading its fragments from the swizzled box (2-way bank conflicts), after which the
//     layout in shared memory does not matter.
// The copy engine faults (illegal instruction) on a box whose innermost coordinate is not a multiple of 16 bytes
// (H200, session 8), so the input's boxes start at aligned columns and the tap's horizontal shift goes to grad_output,
// whose column is not its innermost dimension: a k-tile is input columns u0 .. u0 + kPix - 1 (u0 a multiple of kPix,
// from 0 to W) of input row p*sh - ph + r*dh, image n, output row p; for filter column s they meet output columns
// q = u - s*dw + pw, whose grad_output box starts at u0 - s*dw + pw (zero fill outside 0..Q-1, as for rows outside
// the image). So stride_w must be 1; stride_h is free. Input columns that meet no output column for a filter column s
// multiply zeros: an infinite or NaN input anywhere in a row (a border column a tap never reads included) makes that
// tap's gradient NaN (0 x inf), where PyTorch's stays finite for the taps that never read it.
// A tile's columns share one filter column s (its grad_output boxes): column block b of s is (filter row r, kPix-channel
// chunk), kBlocks blocks per tile, ceil(R * chunks / kBlocks) tiles per s. Each consumer warpgroup owns 64 output
// channels x the tile's columns. TF32: 4 blocks (128 columns), 4 m64n128k8 MMAs per k-tile (a tile's blocks past the
// last are loaded again and multiplied, their columns dropped). 16-bit: 3 blocks (192 columns, m64n192k16: a 3x3
// filter column's three filter rows of a 64-channel chunk, the seed's whole filter column) or 2 (m64n128k16), 4 MMAs
// per k-tile; a tile of fewer blocks (the last of s) runs the narrower MMA and loads only its input boxes. With 64 or
// fewer output channels a group (r50_3x3_64: 2-block tiles) only the grad_output boxes of channels 0..63, and the
// warpgroups split the columns instead (m64n64 each), where warpgroup 1 would multiply zeros. Splits of the k-tiles
// write fp32 partial tiles, reduced in split order by reduce_splits (bit-identical from run to run).
#pragma once

#include <cstdlib>
#include <type_traits>

#include "implicit_gemm/backward_weight_pointwise_tma.cuh"  // and backward_weight_tma.cuh

namespace conv2d_ext {
namespace igemm {

// A k-tile's geometry for elements of type T.
template <typename T>
struct NchwWgradShape {
  static constexpr int kPix = kTmaRowBytes / int(sizeof(T));  // output pixels of a k-tile; channels of a box
  static constexpr int kBox = kPix * kTmaRowBytes;             // one box: 4 KB (TF32), 8 KB (16-bit)
  static constexpr int kDyBoxes = 128 / kPix;                  // grad_output boxes a k-tile (128 output channels)
  static constexpr int kMinSplit = 512 / kPix;                 // k-tiles a split at least (split_boxes)
};

// A configuration: Blocks input boxes (column blocks of kPix channels) a tile, Stages stages of a k-tile's boxes.
// TF32: 4 blocks (128 columns), 4 stages of 32 KB, one CTA per SM; two would cap the registers at 96 a thread (5 warps
// per scheduler), too few for 64 accumulators and two buffers of A fragments. 16-bit: 2 blocks (128 columns), 3
// stages of 32 KB, two CTAs per SM, as backward_weight_tma.cuh's kernel; or 3 blocks (192 columns: a 3x3 filter
// column's three filter rows of 64 channels in one tile, m64n192), 5 stages of 40 KB, one CTA per SM.
template <typename T, int Blocks, int Stages>
struct TmaWgradNchwConfig {
  static constexpr int kBlocks = Blocks, kStages = Stages;
  static constexpr int kStageBytes = (NchwWgradShape<T>::kDyBoxes + Blocks) * NchwWgradShape<T>::kBox;
  static constexpr int kSmem = Stages * kStageBytes + 2 * Stages * 8 + 1024 /* alignment */;
  static constexpr int kMinBlocks = 2 * kSmem <= 227 * 1024 ? 2 : 1;
};
using TmaWgradTf32Config128x128 = TmaWgradNchwConfig<float, 4, 4>;
template <typename T> using TmaWgradNchwConfig128x128 = TmaWgradNchwConfig<T, 2, 3>;
template <typename T> using TmaWgradNchwConfig128x192 = TmaWgradNchwConfig<T, 3, 5>;

struct TmaWgradNchw {
  int u_tiles, P;                    // k-tiles per row (kPix input columns each); output rows
  int groups, Cg, Kg;
  int stride_h, pad_h, pad_w, dil_h, dil_w;
  int phases;  // stride_w: the input's columns split by stride phase (split_column_phases), 1 read as it is
  int S, c_chunks, blocks, tiles_per_s;  // column blocks of one filter column s: R*c_chunks (r, chunk) pairs
  WgradGrid work;
};

// The warpgroup's partial tile: its accumulators hold N / (kPix / 2) column blocks of kPix channels (block0 on) of
// filter column s, stored by store_partial_block; blocks past the last dropped. tile_block0: the tile's first block.
template <int kPix, int N>
__device__ __forceinline__ void store_nchw_wgrad_partials(const float (&acc)[N], const TmaWgradNchw& c,
                                                          const WgradWork& work, int row, int s, int tile_block0,
                                                          int block0) {
#pragma unroll
  for (int j = 0; j < N / (kPix / 2); ++j) {
    const int b = block0 + j;
    if (b >= c.blocks) continue;
    const int r = b / c.c_chunks, ch0 = (b - r * c.c_chunks) * kPix;
    store_partial_block<kPix>(acc + j * (kPix / 2), work, row,
                              work.local ? (b - tile_block0) * kPix : int64_t(r * c.S + s) * c.Cg + ch0, ch0, c.Kg,
                              c.Cg);
  }
}

template <typename T, class Cfg>
__global__ void __launch_bounds__(kTmaThreads, Cfg::kMinBlocks)
    backward_weight_tma_nchw_kernel(const __grid_constant__ CUtensorMap dy_map,
                                    const __grid_constant__ CUtensorMap x_map, const TmaWgradNchw c) {
  using Shape = NchwWgradShape<T>;
  constexpr int kPix = Shape::kPix, kBox = Shape::kBox, kDyBoxes = Shape::kDyBoxes, kBlocks = Cfg::kBlocks;
  constexpr bool kTf32 = sizeof(T) == 4;
  static_assert(kTf32 ? kBlocks == 4 : kBlocks == 2 || kBlocks == 3, "TF32 tiles: 4 blocks; 16-bit: 2 or 3");
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = align_shared<1024>(smem_raw);
  const TmaRing<Cfg::kStages, Cfg::kStageBytes> ring(smem);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const WgradWork work = wgrad_work(c.work, c.Kg);
  const int g = work.g, s = work.col_tile / c.tiles_per_s, block0 = (work.col_tile - s * c.tiles_per_s) * kBlocks;
  const int nb = min(kBlocks, c.blocks - block0);  // the tile's column blocks
  // 64 or fewer output channels a group: only the grad_output boxes of channels 0..63, and the two warpgroups split
  // the tile's columns instead of its rows (where warpgroup 1's rows would all be past Kg, multiplying zeros).
  const bool narrow = kBlocks != 3 && c.Kg <= 64;  // (the launcher takes 2-block tiles for narrow problems)
  const int m0 = work.m0, box0 = work.box0, k_tiles = work.k_tiles;

  if (threadIdx.x == 0) ring.init(2);
  __syncthreads();

  if (warp == 8) {  // producer
    if (lane == 0) {
      tma_prefetch_descriptor(&dy_map);
      tma_prefetch_descriptor(&x_map);
      int chan[kBlocks], dh[kBlocks];  // each input box's channel and filter row offset
#pragma unroll
      for (int j = 0; j < kBlocks; ++j) {
        const int b = min(block0 + j, c.blocks - 1);  // past the last block: any valid box, its columns unused
        const int r = b / c.c_chunks;
        chan[j] = g * c.Cg + (b - r * c.c_chunks) * kPix, dh[j] = r * c.dil_h - c.pad_h;
      }
      const int loads = kTf32 ? kBlocks : nb;   // input boxes a k-tile: TF32's n128 MMAs read all kBlocks
      const int dy_loads = narrow ? 64 / kPix : kDyBoxes;  // narrow: the boxes of output channels 0..63
      // Filter column s reads input columns q * phases + s * dil_w - pad_w: those of phase `phase` (their index mod
      // phases), column u of the phase's row (input row h: row h * phases + phase of the split input) meeting output
      // column u + shift. One phase: the input as it is, output column = input column + pad_w - s * dil_w.
      const int tap_w = s * c.dil_w - c.pad_w, phase = ((tap_w % c.phases) + c.phases) % c.phases;
      const int shift = -(tap_w - phase) / c.phases;
      int ui = box0 % c.u_tiles, rest = box0 / c.u_tiles, pi = rest % c.P, ni = rest / c.P;
      ring.produce(k_tiles, uint32_t((dy_loads + loads) * kBox), [&](int, unsigned char* stage, uint64_t* bar) {
        const int u0 = ui * kPix, h = pi * c.stride_h;
#pragma unroll
        for (int b = 0; b < kDyBoxes; ++b)
          if (b < dy_loads) tma_load_4d(stage + b * kBox, &dy_map, bar, g * c.Kg + m0 + b * kPix, u0 + shift, pi, ni);
#pragma unroll
        for (int j = 0; j < kBlocks; ++j)
          if (j < loads)
            tma_load_4d(stage + (kDyBoxes + j) * kBox, &x_map, bar, u0, (h + dh[j]) * c.phases + phase, chan[j], ni);
        if (++ui == c.u_tiles) {
          ui = 0;
          if (++pi == c.P) pi = 0, ++ni;
        }
      });
    }
    return;
  }

  // Consumers: warpgroup wg owns output channels m0 + 64 wg .. + 63; warp w of it rows 16 w .. 16 w + 15.
  const int wg = warp / 4, w = warp % 4;
  const int row = m0 + wg * 64 + w * 16 + lane / 4;
  if constexpr (!kTf32) {
    // 16-bit: grad_output box a_box is the warpgroup's A (MN-major: a k16 step is 16 pixel rows, 2048 bytes on), the
    // input boxes from block b_block on one K-major B of 64 NB channel rows (a k16 step is 32 bytes along each row).
    auto tile = [&](auto blocks, int a_box, int b_block, int at_row) {
      constexpr int NB = decltype(blocks)::value;
      using Mma = std::conditional_t<NB == 3, Wgmma64x192AMN<T>,
                                     std::conditional_t<NB == 2, Wgmma64x128AMN<T>, Wgmma64x64AMN<T>>>;
      float acc[NB * 32];
#pragma unroll
      for (int i = 0; i < NB * 32; ++i) acc[i] = 0.f;
      ring.consume(
          k_tiles,
          [&](const unsigned char* stage) {
            const unsigned char* a = stage + a_box * kBox;
            const unsigned char* b = stage + (kDyBoxes + b_block) * kBox;
#pragma unroll
            for (int step = 0; step < kPix / 16; ++step)
              Mma::run(acc, wgmma_descriptor<kTmaRowBytes>(a + step * 16 * kTmaRowBytes),
                       wgmma_descriptor<kTmaRowBytes>(b + step * 32));
          },
          [&] { wgmma_fence_operands(acc); });
      store_nchw_wgrad_partials<kPix>(acc, c, work, at_row, s, block0, block0 + b_block);
    };
    if (narrow) {  // warpgroup wg: rows 0..63 (grad_output box 0) x column block wg
      if (wg < nb) tile(std::integral_constant<int, 1>{}, 0, wg, m0 + w * 16 + lane / 4);
      else ring.consume(k_tiles, [](const unsigned char*) {}, [] {});  // no block: it only releases the stages
    } else if (nb == 3) {
      if constexpr (kBlocks == 3) tile(std::integral_constant<int, 3>{}, wg, 0, row);
    } else if (nb == 2) {
      tile(std::integral_constant<int, 2>{}, wg, 0, row);
    } else {
      tile(std::integral_constant<int, 1>{}, wg, 0, row);
    }
  } else {
    // TF32: the warpgroup's A fragments (row = channel, k = pixel) sit in grad_output box (64 wg + 16 w) / 32 at
    // pixel row k, channel chunk swizzled by the pixel: byte k*128 + ((ch / 4) ^ (k % 8)) * 16 + (ch % 4) * 4, k % 8
    // being t or t + 4 at every step.
    // Narrow (64 or fewer output channels a group): both warpgroups take rows 0..63 (boxes 0 and 1, the only ones
    // loaded) and split the tile's four column blocks, two each (m64n64k8).
    const int gid = lane / 4, t = lane % 4;
    const int box = ((narrow ? 0 : wg * 64) + w * 16) / kPix, chunk = ((w % 2) * 16 + gid) / 4;
    uint32_t frag[4];  // byte offsets in the stage of a0..a3 at step 0 (rows g, g + 8; pixels t, t + 4)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int k = t + (i / 2) * 4, ch_chunk = chunk + (i % 2) * 2;
      frag[i] = box * kBox + k * kTmaRowBytes + ((ch_chunk ^ k) * 16) + (gid % 4) * 4;
    }
    auto run = [&](auto columns, int b_block, int at_row) {
      constexpr int N = decltype(columns)::value;
      float acc[N / 2];
#pragma unroll
      for (int i = 0; i < N / 2; ++i) acc[i] = 0.f;
      uint32_t a[2][kPix / 8][4];  // two k-tiles' fragments: one in the MMAs, one being loaded
      ring.consume_with_registers(
          k_tiles,
          [&](const unsigned char* stage, auto buf) {
#pragma unroll
            for (int step = 0; step < kPix / 8; ++step)
#pragma unroll
              for (int i = 0; i < 4; ++i)
                a[buf][step][i] = ld_shared_b32(smem_addr(stage) + frag[i] + step * 8 * kTmaRowBytes);
          },
          [&](const unsigned char* stage, auto buf) {
#pragma unroll
            for (int step = 0; step < kPix / 8; ++step)  // 8 pixels (32 bytes of each B row) per MMA
              WgmmaTf32RS<N>::run(acc, a[buf][step],
                                  wgmma_descriptor<kTmaRowBytes>(stage + (kDyBoxes + b_block) * kBox + step * 32));
          },
          [&] { wgmma_fence_operands(acc); });  // A's registers: ptxas keeps them live until the wait that covers them
      store_nchw_wgrad_partials<kPix>(acc, c, work, at_row, s, block0, block0 + b_block);
    };
    if (narrow) run(std::integral_constant<int, 64>{}, 2 * wg, m0 + w * 16 + gid);
    else run(std::integral_constant<int, 128>{}, 0, row);
  }
}

// The grid (plan_wgrad_grid): at least kMinSplit k-tiles per split.
struct TmaWgradNchwPlan {
  int u_tiles, c_chunks, blocks, tiles_per_s;
  int64_t boxes;
  WgradGrid grid;
};

// Input columns a k-tile walks: 0 .. min(W, the last column any tap reads + 1) (columns outside 0..W-1 are zero
// padding: they add nothing).
inline int64_t nchw_wgrad_columns(const ConvParams& p) {
  return std::max<int64_t>(0, std::min<int64_t>(p.W, (p.Q - 1) + (p.S - 1) * p.dil_w - p.pad_w + 1));
}

// Columns of one stride phase of an input row, ceil(W / stride_w): the row length of split_column_phases' image.
inline int64_t phase_columns(const ConvParams& p) { return (p.W + p.stride_w - 1) / p.stride_w; }

template <typename T>
TmaWgradNchwPlan tma_wgrad_nchw_plan(const ConvParams& p, int tile_blocks) {
  using Shape = NchwWgradShape<T>;
  TmaWgradNchwPlan plan{};
  // a horizontal stride walks the columns of the input's stride phases (split_column_phases)
  const int64_t walked = p.stride_w > 1 ? phase_columns(p) : nchw_wgrad_columns(p);
  plan.u_tiles = static_cast<int>((walked + Shape::kPix - 1) / Shape::kPix);
  plan.boxes = p.N * p.P * plan.u_tiles;
  plan.c_chunks = static_cast<int>((p.C_per_group() + Shape::kPix - 1) / Shape::kPix);
  plan.blocks = static_cast<int>(p.R * plan.c_chunks);
  plan.tiles_per_s = (plan.blocks + tile_blocks - 1) / tile_blocks;
  SplitTail columns{};  // per filter column s: tiles_per_s tiles of tile_blocks (filter row, kPix-channel chunk) blocks
  columns.width = tile_blocks * Shape::kPix, columns.c_chunks = plan.c_chunks, columns.block_ch = Shape::kPix;
  columns.tile_blocks = tile_blocks, columns.tiles_per_s = plan.tiles_per_s;
  plan_wgrad_grid(plan.grid, plan.boxes, (p.K_per_group() + 127) / 128, p.S * plan.tiles_per_s, p.groups,
                  Shape::kMinSplit, columns);
  return plan;
}

// Does the TF32 kernel get a dense NCHW copy of the input first (its pixels not contiguous: channels-last), and can it
// (one stride per pixel, as to_nchw reads it)? Otherwise (a sliced NCHW input, or no single pixel stride) 128x128_w8
// runs it.
inline bool tf32_wgrad_copies_input(const ConvParams& p) { return p.x_stride[3] != 1; }
inline bool tf32_wgrad_input_fits(const ConvParams& p) {
  const int64_t(&xs)[4] = p.x_stride;
  if (tf32_wgrad_copies_input(p)) return xs[2] == p.W * xs[3];
  return tma_strides_fit<float>(p.x, {xs[0], xs[1], xs[2]});
}

// Whether the 16-bit entry runs this file's kernel on p's NCHW input read in place, instead of copying the input to
// NHWC for backward_weight_tma.cuh's MN-major kernel: rows the copy engine can step (pixels contiguous, the other
// strides 16-byte multiples, a 16-byte aligned base), stride 1 along them, and a k-tile walk of 64-pixel tiles that
// wastes at most a sixteenth of what it multiplies. H100, session 33 (bf16 NCHW backward-weight, graph ms, against
// the NHWC copy and the MN-major kernel): seed 1.96 against 2.86, unet_3x3 0.227 against 0.275, dilated 0.122
// against 0.136, batch1_3x3 0.040 against 0.044; r50_3x3_64 (rows of 56 pixels in 64-pixel k-tiles: an eighth
// wasted) 0.070 against 0.067, so it stays on the copy. CONV2D_EXT_TMA_WGRAD_NCHW=0 turns it off, =1 drops the
// waste rule.
// The tile's column blocks: TF32 4; 16-bit 3 (m64n192, one CTA per SM: the A box read once a k16 step for 192
// columns, a third fewer bytes of shared memory per MMA than m64n128 + m64n64) where a filter column's blocks come
// in threes (3x3 filters), a group has more than 64 output channels and the reduction is long (2^20 output pixels
// or more: the seed, 1.96 ms against 2.39 on two-block tiles), else 2 (two CTAs per SM: unet_3x3, 262K pixels,
// 0.227 against 0.236; dilated 0.122 against 0.139; batch1_3x3 0.040 against 0.042). CONV2D_EXT_TMA_WGRAD_N192=0:
// always 2; =1: 3 wherever the blocks come in threes (tests).
inline int nchw_wgrad_tile_blocks(const ConvParams& p) {
  if (p.dtype == DType::kFloat32) return 4;
  const char* env = std::getenv("CONV2D_EXT_TMA_WGRAD_N192");
  if (env != nullptr && env[0] == '0') return 2;
  if (p.K_per_group() <= 64 || (p.R * ((p.C_per_group() + 63) / 64)) % 3 != 0) return 2;
  return (env != nullptr && env[0] == '1') || p.N * p.P * p.Q >= (int64_t(1) << 20) ? 3 : 2;
}

inline bool wgrad_reads_nchw(const ConvParams& p) {
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) return false;
  if (p.channels_last || p.stride_w != 1 || p.x_stride[3] != 1) return false;
  const char* env = std::getenv("CONV2D_EXT_TMA_WGRAD_NCHW");
  if (env != nullptr && env[0] == '0') return false;
  const int64_t(&xs)[4] = p.x_stride;
  if (!tma_strides_fit(2, p.x, {xs[0], xs[1], xs[2]}) || p.P * p.Q >= (int64_t(1) << 31)) return false;
  const TmaWgradNchwPlan plan = tma_wgrad_nchw_plan<__half>(p, nchw_wgrad_tile_blocks(p));  // bf16 alike
  if (plan.boxes >= (int64_t(1) << 31) || plan.grid.col_tiles > 65535) return false;
  const int64_t walked = int64_t(plan.u_tiles) * NchwWgradShape<__half>::kPix;
  return (env != nullptr && env[0] == '1') || walked * 15 <= nchw_wgrad_columns(p) * 16;
}

// Row packing, for small maps (r50's 14x14 and 7x7: a k-tile of 128 bytes of one row would multiply 32 or 64 pixels
// for 14 or 7 real ones): the images of the batch laid side by side along each input row, so that a row holds N
// images' columns and a k-tile walks 128 bytes of it. The packed input is one image of H rows of `cols` columns, C
// channels, NCHW: image i's columns start at i * slot, pad_w zero columns (its left padding, which is also the previous
// image's right padding) before its W data columns, zeros elsewhere, and pad_w more at the row's end. The convolution
// of that image with padding (pad_h, 0) has out_cols = cols - (S - 1) dil_w output columns, of which column i * slot + q
// is image i's output column q (it reads packed columns i * slot + q + s dil_w: image i's column q + s dil_w - pad_w,
// or its padding); the others (q >= Q) are junk, multiplied by the packed grad_output's zeros. slot = max(W + pad_w, Q,
// Q + (S - 1) dil_w - pad_w) keeps each image's windows inside its own columns (the last one reaches column
// Q - 1 + (S - 1) dil_w - pad_w of the image: past W by the right padding, which "same" padding of an even filter
// makes larger than the left one), its outputs apart, and the last image's outputs inside out_cols. The packed
// grad_output is NHWC, one image of P rows x out_cols columns. Two copies (pack_input_rows, pack_grad_output_rows: ~C H N slot + K P N slot elements,
// r50_3x3_512 fp32 about 4 MB each) and then the kernel above runs unchanged on the packed geometry; the weight
// gradient is the same sum (every product the packing adds is a zero of grad_output).
struct RowPacking {
  int64_t slot;      // packed columns per image
  int64_t cols;      // the packed input row: N * slot + pad_w columns
  int64_t pitch;     // its row stride in elements: cols rounded up to 16 bytes
  int64_t out_cols;  // the packed grad_output row
};

inline RowPacking row_packing(const ConvParams& p, int64_t elem) {
  RowPacking r{};
  r.slot = std::max<int64_t>({p.W + p.pad_w, p.Q, p.Q + (p.S - 1) * int64_t(p.dil_w) - p.pad_w});
  r.cols = p.N * r.slot + p.pad_w;
  r.pitch = (r.cols * elem + 15) / 16 * 16 / elem;
  r.out_cols = r.cols - (p.S - 1) * p.dil_w;
  return r;
}

// The geometry the kernel runs on packed operands: one image of `cols` input and `out_cols` output columns, no
// horizontal padding (the operands' pointers and strides are set by the launcher).
inline ConvParams packed_wgrad_geometry(const ConvParams& p, const RowPacking& r) {
  ConvParams q = p;
  q.N = 1, q.W = r.cols, q.Q = r.out_cols, q.pad_w = 0;
  return q;
}

// Whether the NCHW kernel runs on row-packed copies of the operands: stride_w 1 (the kernel's condition), TF32 in
// either layout or fp16/bf16 NCHW, where reading the input's rows in place would waste more than an eighth of the
// k-tile walk (rows under 56 pixels) or (TF32) cannot be done (W % 4 != 0: rows not 16-byte multiples), and the packed
// walk wastes at most half again the real columns (r50_3x3_512: 9 k-tiles of 32 fp32 pixels for 32 images of 7
// columns, 1.29x; r50_3x3_256 1.14x). By default TF32 only: H100, session 33 (backward-weight, graph ms, against
// 128x128_w8): r50_3x3_512 NCHW 0.128 against 0.199, channels-last 0.119 against 0.173; r50_3x3_256 0.111 against
// 0.127, channels-last 0.107 against 0.144. In fp16/bf16 the packed copy-engine kernel loses to 128x128_w8
// (r50_3x3_256 0.088 against 0.081, r50_3x3_512 0.097 against 0.091), and rows of 56 pixels (r50_3x3_64) lose packed
// in both (TF32 0.168 against 0.105 in place). CONV2D_EXT_TMA_WGRAD_PACK=0: off; =auto: the rule in every dtype;
// =1: wherever it fits (tests). A plan variable: TF32's can_implement reads it.
inline bool nchw_wgrad_packs(const ConvParams& p) {
  const bool tf32 = p.dtype == DType::kFloat32;
  if (!tf32 && (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16 || p.channels_last)) return false;
  if (p.stride_w != 1 || p.N * p.P * p.Q == 0) return false;
  const char* env = std::getenv("CONV2D_EXT_TMA_WGRAD_PACK");
  if (env == nullptr || env[0] == '\0') env = tf32 ? "auto" : "0";  // the default
  if (env[0] == '0') return false;
  const int64_t elem = tf32 ? 4 : 2, pix = kTmaRowBytes / elem, limit = int64_t(1) << 31;
  const RowPacking r = row_packing(p, elem);
  const int64_t walked = (r.cols + pix - 1) / pix * pix;
  if (r.pitch >= limit || p.C * p.H >= limit || p.P * (walked / pix) >= limit ||
      p.C * p.H * r.pitch >= (int64_t(1) << 36) || p.P * r.out_cols * p.K >= (int64_t(1) << 36))
    return false;
  const ConvParams q = packed_wgrad_geometry(p, r);
  const int col_tiles = tf32 ? tma_wgrad_nchw_plan<float>(q, 4).grid.col_tiles
                             : tma_wgrad_nchw_plan<__half>(q, nchw_wgrad_tile_blocks(p)).grid.col_tiles;  // bf16 alike
  if (col_tiles > 65535) return false;  // the grid's y
  if (env[0] == '1') return true;
  const int64_t columns = nchw_wgrad_columns(p), in_place = (columns + pix - 1) / pix * pix;
  if (in_place * 7 <= columns * 8 && (!tf32 || p.W % 4 == 0)) return false;  // rows read in place (or copied)
  return walked * 2 <= 3 * p.N * p.W;
}

// The packed input (pack_input_rows: a block a packed row (c, h), threads along its columns; any input strides) and
// grad_output (pack_grad_output_rows: V channels a thread, V = 16 bytes where grad_output's channels are dense
// 16-byte vectors, as it comes NHWC or staged by conv2d.py, else 1).
struct ActStrides { int64_t n, c, h, w; };  // an activation's element strides

template <typename T>
__global__ void __launch_bounds__(256) pack_input_rows(const T* __restrict__ x, ActStrides xs, T* __restrict__ out,
                                                       int N, int H, int W, int64_t slot, int pad_w, int64_t cols,
                                                       int64_t pitch) {
  const int64_t row = blockIdx.x;  // c * H + h
  const int64_t c = row / H, h = row - c * H;
  const T* src = x + c * xs.c + h * xs.h;
  T* dst = out + row * pitch;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    const int64_t i = col / slot, w = col - i * slot - pad_w;
    T v = from_acc<T>(0.f);
    if (i < N && w >= 0 && w < W) v = src[i * xs.n + w * xs.w];
    dst[col] = v;
  }
}

template <typename T, int V> struct PackWord { using type = raw_vec_t<T, V>; };  // V elements moved as one
template <typename T> struct PackWord<T, 1> { using type = T; };

template <typename T, int V>
__global__ void __launch_bounds__(256) pack_grad_output_rows(const T* __restrict__ dy, ActStrides ys,
                                                             T* __restrict__ out, int N, int K, int Q, int64_t slot,
                                                             int64_t out_cols, int64_t total) {
  using Raw = typename PackWord<T, V>::type;
  const int vectors = K / V;
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < total; u += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = u / vectors, kv = u - row * vectors;  // row: packed pixel (p, column)
    const int64_t pr = row / out_cols, col = row - pr * out_cols, i = col / slot, q = col - i * slot;
    Raw v{};
    if constexpr (V == 1) v = from_acc<T>(0.f);
    if (i < N && q < Q) v = *reinterpret_cast<const Raw*>(dy + i * ys.n + kv * V * ys.c + pr * ys.h + q * ys.w);
    reinterpret_cast<Raw*>(out)[u] = v;
  }
}

// The input split by column stride phase for a horizontal stride of P = stride_w (2 to kMaxWgradPhases):
// out[n][c][h * P + b][j] = x[n][c][h][j * P + b] for j < pitch (zero past the row), an NCHW image of C channels of
// H * P rows of `pitch` (16-byte multiple) columns, whose rows the kernel's boxes step at stride 1 (one filter
// column's taps all in one phase). Two kernels (session 40's one kernel, H100, r50_3x3_128_s2's 51 MB each way: 84
// us with one element in flight a thread; 182 us with a tile's 16 loads in flight, 128 registers and a spill: every
// element's 64-bit offsets, both layouts', hoisted out of a loop over rows):
//  - split_column_phases_rows: NCHW rows in 16-byte vectors (W, the row strides and the base in whole vectors): a
//    thread reads 4 P consecutive columns (P 16-byte loads) and writes 4 columns of each phase row (one 16-byte store
//    each); no shared memory, indices by FastDivmod (fewer than 2^31 vectors).
//  - split_column_phases: anything else (channels-last, odd widths, slices): a block moves a 32-channel x 32 P-column
//    tile of one input row through shared memory, read along the input's contiguous dimension (columns in NCHW,
//    channels in channels-last), written as 32-column runs of each (channel, phase) row; one tile a block, the
//    layout a template parameter, 31-bit offsets within a row (52-94 registers, no spill).
constexpr int kMaxWgradPhases = 4;

template <int P>
__global__ void __launch_bounds__(256) split_column_phases_rows(const float* __restrict__ x, ActStrides xs,
                                                                float* __restrict__ out, FastDivmod chunks,
                                                                FastDivmod H, FastDivmod C, int W, int64_t pitch,
                                                                unsigned total) {
  for (unsigned i = blockIdx.x * 256u + threadIdx.x; i < total; i += gridDim.x * 256u) {
    unsigned row, q, nc, h, n, c;  // i = row * chunks + q, row = (n * C + c) * H + h
    chunks.divmod(i, row, q);
    H.divmod(row, nc, h);
    C.divmod(nc, n, c);
    const float* src = x + n * xs.n + c * xs.c + h * xs.h + int64_t(4 * P) * q;
    float v[4 * P];
#pragma unroll
    for (int k = 0; k < P; ++k) {
      float4 f = make_float4(0.f, 0.f, 0.f, 0.f);
      if (int64_t(4 * P) * q + 4 * k < W) f = *reinterpret_cast<const float4*>(src + 4 * k);
      v[4 * k] = f.x, v[4 * k + 1] = f.y, v[4 * k + 2] = f.z, v[4 * k + 3] = f.w;
    }
    float* dst = out + int64_t(row) * P * pitch + 4 * int64_t(q);
#pragma unroll
    for (int b = 0; b < P; ++b)
      *reinterpret_cast<float4*>(dst + b * pitch) = make_float4(v[b], v[P + b], v[2 * P + b], v[3 * P + b]);
  }
}

template <typename T, int P, bool kAlongW>
__global__ void __launch_bounds__(256) split_column_phases(const T* __restrict__ x, ActStrides xs, T* __restrict__ out,
                                                           int C, FastDivmod H, int W, int64_t pitch,
                                                           FastDivmod tiles, int tiles_j) {
  constexpr int kTw = 32 * P, kLoads = 32 * kTw / 256;  // a tile's columns; a thread's elements of it
  __shared__ T tile[32][kTw + 1];  // [channel][column of the tile], odd pitch: conflict-free loads in; the
                                   // read-out (a warp's 32 j at stride P) is P-way
  unsigned row, t, n, h;           // block = row * tiles + t, row = n * H + h, t = channel tile * tiles_j + jt
  tiles.divmod(blockIdx.x, row, t);
  H.divmod(row, n, h);
  const int jt = int(t) % tiles_j, c0 = int(t) / tiles_j * 32, w0 = jt * kTw;
  const int sc = static_cast<int>(xs.c), sw = static_cast<int>(xs.w);  // a row's offsets fit 31 bits (can_implement)
  const T* src = x + n * xs.n + h * xs.h + int64_t(c0) * xs.c + int64_t(w0) * xs.w;
  T v[kLoads];  // the tile's loads in flight together; kAlongW (NCHW): a warp reads 32 columns of a channel, else 32
                // channels of a column
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int u = threadIdx.x + i * 256, c = kAlongW ? u / kTw : u % 32, w = kAlongW ? u % kTw : u / 32;
    v[i] = from_acc<T>(0.f);
    if (c0 + c < C && w0 + w < W) v[i] = src[c * sc + w * sw];
  }
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int u = threadIdx.x + i * 256, c = kAlongW ? u / kTw : u % 32, w = kAlongW ? u % kTw : u / 32;
    tile[c][w] = v[i];
  }
  __syncthreads();
  const int64_t plane = int64_t(H.divisor) * P * pitch;  // a channel of the output
  T* dst = out + (int64_t(n) * C + c0) * plane + int64_t(h) * P * pitch + int64_t(jt) * 32;
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int u = threadIdx.x + i * 256, j = u % 32, b = u / 32 % P, c = u / 32 / P;
    if (c0 + c < C && int64_t(jt) * 32 + j < pitch) dst[c * plane + b * pitch + j] = tile[c][j * P + b];
  }
}

// Elements between split_column_phases' rows: phase_columns rounded up to 16 bytes.
inline int64_t phase_pitch(const ConvParams& p, int64_t elem) {
  return (phase_columns(p) * elem + 15) / 16 * 16 / elem;
}

template <int P>
void launch_split_column_phases_p(const ConvParams& p, float* out, cudaStream_t stream) {
  const ActStrides xs{p.x_stride[0], p.x_stride[1], p.x_stride[2], p.x_stride[3]};
  const int64_t pitch = phase_pitch(p, 4), rows = p.N * p.H;
  const int64_t vectors = p.N * p.C * p.H * (pitch / 4);
  const bool rows_vec = xs.w == 1 && p.W % 4 == 0 && xs.n % 4 == 0 && xs.c % 4 == 0 && xs.h % 4 == 0 &&
                        reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && vectors < (int64_t(1) << 31);
  if (rows_vec) {
    split_column_phases_rows<P><<<grid_for(vectors, 256), 256, 0, stream>>>(
        static_cast<const float*>(p.x), xs, out, FastDivmod(unsigned(pitch / 4)), FastDivmod(unsigned(p.H)),
        FastDivmod(unsigned(p.C)), int(p.W), pitch, unsigned(vectors));
  } else {
    const int64_t tiles_j = (pitch + 31) / 32, tiles = tiles_j * ((p.C + 31) / 32);  // rows * tiles < 2^31
    const auto kernel = xs.w == 1 ? split_column_phases<float, P, true> : split_column_phases<float, P, false>;
    kernel<<<static_cast<unsigned>(rows * tiles), 256, 0, stream>>>(static_cast<const float*>(p.x), xs, out,
                                                                    int(p.C), FastDivmod(unsigned(p.H)), int(p.W),
                                                                    pitch, FastDivmod(unsigned(tiles)), int(tiles_j));
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

inline void launch_split_column_phases(const ConvParams& p, float* out, cudaStream_t stream) {
  switch (p.stride_w) {
    case 2: return launch_split_column_phases_p<2>(p, out, stream);
    case 3: return launch_split_column_phases_p<3>(p, out, stream);
    case 4: return launch_split_column_phases_p<4>(p, out, stream);
    default: TORCH_CHECK(false, "conv2d_ext: split_column_phases: stride_w ", p.stride_w, " outside 2 to 4");
  }
}

// Packs p's input into x_p (rows of r.pitch elements) and its grad_output into dy_p (dense NHWC).
template <typename T>
void launch_pack_rows(const ConvParams& p, const RowPacking& r, T* x_p, T* dy_p, cudaStream_t stream) {
  const ActStrides xs{p.x_stride[0], p.x_stride[1], p.x_stride[2], p.x_stride[3]};
  pack_input_rows<T><<<static_cast<unsigned>(p.C * p.H), 256, 0, stream>>>(
      static_cast<const T*>(p.x), xs, x_p, int(p.N), int(p.H), int(p.W), r.slot, int(p.pad_w), r.cols, r.pitch);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  constexpr int V = 16 / sizeof(T);
  const int64_t(&y)[4] = p.y_stride;
  const ActStrides ys{y[0], y[1], y[2], y[3]};
  const bool vec = y[1] == 1 && p.K % V == 0 && y[0] % V == 0 && y[2] % V == 0 && y[3] % V == 0 &&
                   reinterpret_cast<uintptr_t>(p.y) % 16 == 0;
  const int64_t pixels = p.P * r.out_cols;
  if (vec) {
    pack_grad_output_rows<T, V><<<grid_for(pixels * (p.K / V), 256), 256, 0, stream>>>(
        static_cast<const T*>(p.y), ys, dy_p, int(p.N), int(p.K), int(p.Q), r.slot, r.out_cols, pixels * (p.K / V));
  } else {
    pack_grad_output_rows<T, 1><<<grid_for(pixels * p.K, 256), 256, 0, stream>>>(
        static_cast<const T*>(p.y), ys, dy_p, int(p.N), int(p.K), int(p.Q), r.slot, r.out_cols, pixels * p.K);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Whether the TF32 kernel runs on the input split by column stride phase (split_column_phases): a horizontal
// stride, whose taps' input columns are not contiguous in a row (H100, r50_3x3_128_s2 TF32 backward-weight, graph
// ms against 128x128_w8's gathers: NCHW 0.109 / 0.170, channels-last 0.105 / 0.191 with session 41's split kernels;
// the split 40 us NCHW, 46 us channels-last, the GEMM 51, reduce_splits 10). A plan variable:
// CONV2D_EXT_TMA_WGRAD_PHASES=0 turns it off (can_implement then refuses a horizontal stride, as before).
inline bool tf32_wgrad_splits_phases(const ConvParams& p) {
  const char* env = std::getenv("CONV2D_EXT_TMA_WGRAD_PHASES");
  return p.dtype == DType::kFloat32 && p.stride_w > 1 && !(env != nullptr && env[0] == '0');
}

// What the TF32 kernel can run: wgmma's conditions, an NCHW input the copy engine reads in place (pixels contiguous,
// rows of whole 16-byte multiples) or a channels-last one it copies to NCHW, or at a horizontal stride of up to
// kMaxWgradPhases the input split by column phase (any layout and strides), grad_output channels in 16-byte vectors
// (its NHWC boxes).
inline std::string backward_weight_tma_tf32_can_implement(const ConvParams& p) {
  std::string why = gemm_reason<Config128x128_wg>(p, p.C_per_group() * p.R * p.S, p.N * p.P * p.Q);
  if (!why.empty()) return why;
  if (p.stride_w > kMaxWgradPhases || (p.stride_w > 1 && !tf32_wgrad_splits_phases(p)))
    return "TF32: horizontal stride of at most 4, the input's columns split by stride phase (not under "
           "CONV2D_EXT_TMA_WGRAD_PHASES=0)";
  if (p.K % 4 != 0 || p.K_per_group() % 4 != 0)  // grad_output boxes start at 16-byte channel offsets
    return "TF32: output channels (and per group) must fill 16-byte vectors (K % 4 == 0)";
  if (tf32_wgrad_splits_phases(p)) {
    if (p.P * p.Q >= (int64_t(1) << 31)) return "images of 2^31 or more output pixels (the NHWC copy of grad_output)";
    if (p.H * p.stride_w >= (int64_t(1) << 31) ||
        p.N * p.C * p.H * p.stride_w * phase_pitch(p, 4) >= (int64_t(1) << 40) ||
        (p.C - 1) * p.x_stride[1] + (p.W - 1) * p.x_stride[3] >= (int64_t(1) << 31) ||
        p.N * p.H * ((phase_pitch(p, 4) + 31) / 32) * ((p.C + 31) / 32) >= (int64_t(1) << 31))
      return "an input too large for its split by column phase (a row's channels and columns span 2^31 elements, "
             "or 2^31 tiles)";
    if (p.N * p.P * ((phase_pitch(p, 4) + 31) / 32) >= (int64_t(1) << 31)) return "2^31 or more k-tiles of input columns";
  } else if (!nchw_wgrad_packs(p)) {  // rows read in place, or the channels-last input's NCHW copy
    if (tf32_wgrad_copies_input(p) && p.H * p.W > kMaxNchwCopyPixels)
      return "TF32, channels-last: images of more than 65535 x 32 pixels (the grid of the input's NCHW copy)";
    if (p.W % 4 != 0)
      return "TF32: input rows must be whole 16-byte multiples (W % 4 == 0) for the copy engine, unless the maps "
             "are small enough to pack (rows of several images)";
    if (p.P * p.Q >= (int64_t(1) << 31)) return "images of 2^31 or more output pixels (the NHWC copy of grad_output)";
    if (p.N * p.P * ((nchw_wgrad_columns(p) + 31) / 32) >= (int64_t(1) << 31))
      return "2^31 or more k-tiles of input columns";
  }
  if (p.K_per_group() * p.C_per_group() * p.R * p.S >= (int64_t(1) << 31))
    return "a weight of 2^31 elements or more per group";
  if (tma_wgrad_nchw_plan<float>(p, 4).grid.col_tiles > 65535)
    return "more than 65535 tiles of (tap, channel) columns";
  return "";
}

// The partials (the splits' and the tail's) at the start of the workspace: their bytes.
template <typename T>
int64_t nchw_wgrad_partials_bytes(const ConvParams& p, const TmaWgradNchwPlan& plan, int tile_blocks) {
  return region(int64_t(plan.grid.splits) * p.K * p.C_per_group() * p.R * p.S * 4) +
         wgrad_tail_bytes(plan.grid, int64_t(tile_blocks) * NchwWgradShape<T>::kPix);
}

// Workspace of this file's launcher: the partials and grad_output's NHWC copy (none when it comes dense NHWC:
// channels-last, or staged by conv2d.py); TF32 also the input's NCHW copy (channels-last) or what its fallback
// (128x128_w8, sliced inputs) needs. Packed rows: the partials and the two packed copies.
template <typename T>
int64_t backward_weight_tma_nchw_workspace(const ConvParams& p) {
  const int blocks = sizeof(T) == 4 ? 4 : nchw_wgrad_tile_blocks(p);
  if (nchw_wgrad_packs(p)) {  // the partials and the packed operands
    const RowPacking r = row_packing(p, sizeof(T));
    return nchw_wgrad_partials_bytes<T>(p, tma_wgrad_nchw_plan<T>(packed_wgrad_geometry(p, r), blocks), blocks) +
           region(p.C * p.H * r.pitch * int64_t(sizeof(T))) + region(p.P * r.out_cols * p.K * int64_t(sizeof(T)));
  }
  const int64_t dy_copy = region(staged_nhwc_bytes(p.y, p.y_stride, p.N, p.K, p.P, p.Q, sizeof(T)));
  const int64_t bytes = nchw_wgrad_partials_bytes<T>(p, tma_wgrad_nchw_plan<T>(p, blocks), blocks) + dy_copy;
  if constexpr (sizeof(T) == 4) {
    const int64_t x_copy = tf32_wgrad_splits_phases(p)  ? p.N * p.C * p.H * p.stride_w * phase_pitch(p, 4) * 4
                           : tf32_wgrad_copies_input(p) ? p.N * p.C * p.H * p.W * 4
                                                        : 0;
    return std::max(bytes + x_copy, backward_weight_workspace<Config128x128_w8>(p));
  }
  return bytes;
}

extern template void backward_weight_launch_typed<float, Config128x128_w8>(const ConvParams&, void*, cudaStream_t);

template <typename T, class Cfg>
void backward_weight_tma_nchw_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  using Shape = NchwWgradShape<T>;
  constexpr int e = sizeof(T), kPix = Shape::kPix;
  const int64_t count = p.K * p.C_per_group() * p.R * p.S;
  if (count == 0) return;
  float* partials = static_cast<float*>(workspace);
  if (p.N * p.P * p.Q == 0) return zero_weight_gradient<T>(p, partials, count, stream);
  const bool packed = nchw_wgrad_packs(p), phased = tf32_wgrad_splits_phases(p);
  const RowPacking r = row_packing(p, e);
  const ConvParams q = packed ? packed_wgrad_geometry(p, r) : p;  // the geometry the kernel walks
  const TmaWgradNchwPlan plan = tma_wgrad_nchw_plan<T>(q, Cfg::kBlocks);
  if constexpr (sizeof(T) == 4) {
    if (!packed && !phased && !tf32_wgrad_input_fits(p)) {
      backward_weight_launch_typed<float, Config128x128_w8>(p, workspace, stream);  // sliced input: the gathers
      return;
    }
  } else {
    TORCH_CHECK(packed || (p.x_stride[3] == 1 && p.stride_w == 1),
                "conv2d_ext: implicit_gemm tma backward_weight: the NCHW kernel needs contiguous input rows");
  }
  // grad_output in NHWC: as it comes (channels-last, or staged once for both backward passes by conv2d.py), else
  // copied; then (TF32) the input's NCHW copy when it is channels-last. Or both operands packed.
  int64_t ys[4];
  unsigned char* free_space =
      static_cast<unsigned char*>(workspace) + nchw_wgrad_partials_bytes<T>(p, plan, Cfg::kBlocks);
  const T* dy;
  const T* x = static_cast<const T*>(p.x);
  int64_t xs[4] = {p.x_stride[0], p.x_stride[1], p.x_stride[2], p.x_stride[3]};
  if (packed) {
    T* x_p = reinterpret_cast<T*>(free_space);
    T* dy_p = reinterpret_cast<T*>(free_space + region(p.C * p.H * r.pitch * e));
    launch_pack_rows<T>(p, r, x_p, dy_p, stream);
    x = x_p, dy = dy_p;
    xs[0] = p.C * p.H * r.pitch, xs[1] = p.H * r.pitch, xs[2] = r.pitch, xs[3] = 1;
    dense_nhwc_strides(ys, p.K, p.P, r.out_cols);
  } else {
    dy = staged_nhwc<T>(p.y, p.y_stride, reinterpret_cast<T*>(free_space), p.N, p.K, p.P, p.Q, ys, stream);
    free_space += region(staged_nhwc_bytes(p.y, p.y_stride, p.N, p.K, p.P, p.Q, e));
  }
  // The input box's rows: H, or (phases) H * stride_w rows of the phases' columns.
  uint64_t x_cols = uint64_t(q.W), x_rows = uint64_t(q.H);
  if constexpr (sizeof(T) == 4) {
    if (phased) {
      float* x_copy = reinterpret_cast<float*>(free_space);
      launch_split_column_phases(p, x_copy, stream);
      const int64_t pitch = phase_pitch(p, 4);
      x = x_copy;
      x_cols = uint64_t(phase_columns(p)), x_rows = uint64_t(p.H * p.stride_w);
      xs[0] = p.C * p.H * p.stride_w * pitch, xs[1] = p.H * p.stride_w * pitch, xs[2] = pitch, xs[3] = 1;
    } else if (!packed && tf32_wgrad_copies_input(p)) {
      float* x_copy = reinterpret_cast<float*>(free_space);
      launch_to_nchw<float>(x, p.x_stride, x_copy, p.N, p.C, p.H, p.W, stream);
      x = x_copy;
      xs[0] = p.C * p.H * p.W, xs[1] = p.H * p.W, xs[2] = p.W, xs[3] = 1;
    }
  }
  CUtensorMap dy_map, x_map;
  const char* why = encode_tensor_map_4d(
      &dy_map, tma_dtype<T>(), dy, {uint64_t(q.K), uint64_t(q.Q), uint64_t(q.P), uint64_t(q.N)},
      {uint64_t(ys[3] * e), uint64_t(ys[2] * e), uint64_t(ys[0] * e)}, {uint32_t(kPix), uint32_t(kPix), 1, 1},
      {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma backward_weight (NCHW kernel, grad_output): ", why);
  why = encode_tensor_map_4d(&x_map, tma_dtype<T>(), x, {x_cols, x_rows, uint64_t(q.C), uint64_t(q.N)},
                             {uint64_t(xs[2] * e), uint64_t(xs[1] * e), uint64_t(xs[0] * e)},
                             {uint32_t(kPix), 1, uint32_t(kPix), 1}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma backward_weight (NCHW kernel, input): ", why);

  TmaWgradNchw c{};
  c.u_tiles = plan.u_tiles, c.P = int(q.P);
  c.groups = q.groups, c.Cg = int(q.C_per_group()), c.Kg = int(q.K_per_group());
  c.stride_h = q.stride_h, c.pad_h = q.pad_h, c.pad_w = q.pad_w, c.dil_h = q.dil_h, c.dil_w = q.dil_w;
  c.phases = phased ? p.stride_w : 1;
  c.S = int(p.S), c.c_chunks = plan.c_chunks, c.blocks = plan.blocks;
  c.tiles_per_s = plan.tiles_per_s;
  c.work = plan.grid;
  set_wgrad_partials(c.work, p, partials, region(int64_t(plan.grid.splits) * count * 4));

  if constexpr (sizeof(T) == 2 && Cfg::kBlocks == 2) {  // 16-bit two-block tiles: 6 stages where one wave fits
    using Deep = TmaWgradNchwConfig<T, Cfg::kBlocks, kWgradDeepStages>;
    if (wgrad_deep_ring(wgrad_grid_ctas(c.work)))
      return launch_split_wgrad<backward_weight_tma_nchw_kernel<T, Deep>, T>(Deep::kSmem, dy_map, x_map, c, p, stream);
  }
  launch_split_wgrad<backward_weight_tma_nchw_kernel<T, Cfg>, T>(Cfg::kSmem, dy_map, x_map, c, p, stream);
}

// The registry entry 128x128_tma: for float32 with TF32 this file's kernel; for fp16/bf16 this file's kernel on NCHW
// inputs it reads in place (wgrad_reads_nchw), else backward_weight_tma.cuh's (MN-major operands); a 1x1 NCHW
// problem backward_weight_pointwise_tma.cuh's kernel in every dtype (pointwise_wgrad_fits).
template <class Cfg16, class CfgTf32>
std::string backward_weight_tma_entry_can_implement(const ConvParams& p) {
  return p.dtype == DType::kFloat32 ? backward_weight_tma_tf32_can_implement(p)
                                    : backward_weight_tma_can_implement<Cfg16>(p);
}

template <class Cfg16, class CfgTf32>
int64_t backward_weight_tma_entry_workspace(const ConvParams& p) {
  int64_t bytes;
  if (p.dtype == DType::kFloat32) bytes = backward_weight_tma_nchw_workspace<float>(p);
  else if (wgrad_reads_nchw(p) || nchw_wgrad_packs(p)) bytes = backward_weight_tma_nchw_workspace<__half>(p);
  else bytes = backward_weight_tma_workspace<Cfg16>(p);
  return pointwise_wgrad_fits(p) ? std::max(bytes, backward_weight_pointwise_workspace(p)) : bytes;
}

// The 16-bit NCHW kernel in the configuration nchw_wgrad_tile_blocks picks.
template <typename T>
void backward_weight_tma_nchw16_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (nchw_wgrad_tile_blocks(p) == 3)
    backward_weight_tma_nchw_launch<T, TmaWgradNchwConfig128x192<T>>(p, workspace, stream);
  else
    backward_weight_tma_nchw_launch<T, TmaWgradNchwConfig128x128<T>>(p, workspace, stream);
}

template <class Cfg16, class CfgTf32>
void backward_weight_tma_entry_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.K * p.C > 0 && p.N * p.P * p.Q > 0 && pointwise_wgrad_fits(p))  // 1x1 NCHW read in place
    return backward_weight_pointwise_launch(p, workspace, stream);
  if (p.dtype == DType::kFloat32) return backward_weight_tma_nchw_launch<float, CfgTf32>(p, workspace, stream);
  if (wgrad_reads_nchw(p) || nchw_wgrad_packs(p)) {  // NCHW input read in place, or small maps packed
    if (p.dtype == DType::kFloat16) return backward_weight_tma_nchw16_launch<__half>(p, workspace, stream);
    if (p.dtype == DType::kBFloat16) return backward_weight_tma_nchw16_launch<__nv_bfloat16>(p, workspace, stream);
  }
  backward_weight_tma_launch<Cfg16>(p, workspace, stream);
}

}  // namespace igemm
}  // namespace conv2d_ext
