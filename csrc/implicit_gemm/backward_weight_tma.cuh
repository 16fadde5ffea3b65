// Backward-weight on Hopper's copy engine (fp16/bf16): the weight gradient as a GEMM over output pixels, both operands
// brought in as TMA boxes of NHWC pixels and fed to wgmma MN-major, on the pipeline ring of tma_pipeline.cuh. TF32,
// which wgmma reads K-major only, has its own kernel on the same ring (backward_weight_tma_nchw.cuh: the input as
// NCHW boxes), which fp16/bf16 NCHW inputs take too where it reads them in place; the registry entry 128x128_tma
// dispatches.
//
// GEMM mapping, per group g and split z of the reduction (the CTA's share: WgradGrid below), as backward_weight.cuh:
//   M = K/groups output channels, N = (tap, channel) columns in the filters' RSC order, reduction = output pixels:
//     A[k][j] = dy[n, g*Kg + k, p, q]                         j = (n, p, q)
//     B[(r, s, c)][j] = x[n, g*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw]   (0 outside the input: zero fill)
// A k-tile is one box of at most 64 output pixels (nt images x ht rows x wt columns, tma_tile). For it the CTA loads
// two grad_output boxes (its 128 output channels: 64 channels x the box's pixels each) and kNB input boxes (64
// channels of one tap each: the tap's window of the same pixels, strided by the copy engine); in shared memory each
// is a 128-byte row of 64 channels per pixel, so both operands are MN-major for wgmma (the transpose bits, 16-bit
// types). Rows past the box's pixels (a box of fewer than 64) are zeroed once, so they add nothing to the reduction.
// Each consumer warpgroup owns 64 output channels (one grad_output box) x kNB x 64 columns (m64n64 MMAs). Splits of
// the pixel boxes write fp32 partial tiles; reduce_splits adds them in split order: bit-identical from run to run.
//
// With 64 or fewer output channels a group (r50_3x3_64), where warpgroup 1's rows would all be past them (until
// session 31 it multiplied zeros there), one grad_output box is loaded and the warpgroups split the column blocks
// instead ("narrow": warpgroup wg runs block wg). Known costs (review, session 6): a grad_output box of a group with
// fewer than 64 output channels is partly outside the tensor (zero fill: the forward's padding tests show such boxes
// complete their bytes); boxes of fewer than 64 pixels still run 4 MMA steps. Input pixels past the output's edge
// meet zero grad_output: an infinite input there would add 0 x inf = NaN.
//
// First run on the H200 (session 7): every forced test passed; seed bf16 3.08 ms NCHW / 1.45 ms NHWC against 5.15 /
// 3.48 on 128x128_w8 (benchmarks/NOTES.md, copy-engine backward-weight).
#pragma once

#include "implicit_gemm/backward_weight.cuh"
#include "implicit_gemm/forward_tma.cuh"
#include "implicit_gemm/tma_pipeline.cuh"

namespace conv2d_ext {
namespace igemm {

constexpr int kWgradBoxPixels = 64;  // the reduction of one k-tile: a box of at most 64 output pixels

// kNB: 64-channel column blocks per tile (input boxes per stage), kStages stages.
template <int NB, int Stages>
struct TmaWgradConfig {
  static constexpr int kNB = NB, kStages = Stages;
  static constexpr int kBoxBytes = kWgradBoxPixels * kTmaRowBytes;  // 8 KB: 64 pixels x 64 channels
  static constexpr int kStageBytes = (2 + NB) * kBoxBytes;          // two grad_output boxes, NB input boxes
  static constexpr int kSmem = Stages * kStageBytes + 2 * Stages * 8 + 1024 /* alignment */;
  static constexpr int kMinBlocks = 2 * kSmem <= 227 * 1024 ? 2 : 1;
};
using TmaWgradConfig128x128 = TmaWgradConfig<2, 3>;  // 128 x 128 tiles, 3 stages of 32 KB: two CTAs per SM

// The 16-bit kernels' rings: 6 stages (192 KB, one CTA per SM) where the grid fits one wave of one CTA per SM (as
// split_boxes plans it wherever there are at most 132 output tiles), else their configuration's 3 (two CTAs per SM:
// r50_3x3_512's 144 tiles). H100, session 34 (graph ms, bf16 backward-weight, 3 -> 6 stages): dilated NCHW 0.124 ->
// 0.095, unet_3x3 0.234 -> 0.186 (NHWC 0.168 -> 0.142), seed NHWC 1.41 -> 1.26, r50_3x3_64 0.058 -> 0.050 (NHWC 0.032
// -> 0.025), r50_3x3_128_s2 0.063 -> 0.058 (0.035 -> 0.030), r50_3x3_256 0.041 -> 0.040; r50_3x3_512 0.056 -> 0.059
// (its 12 CTAs past one per SM wait for a second wave). TF32 keeps its 4 stages (6: seed 4.55 -> 4.69, unet_3x3 0.39
// -> 0.42). CONV2D_EXT_TMA_WGRAD_STAGES=0: the configured stages; =1: 6 wherever they fit (tests). Read at launch:
// the plan and the workspace do not depend on it.
inline bool wgrad_deep_ring(int64_t ctas) {
  return deep_ring(std::getenv("CONV2D_EXT_TMA_WGRAD_STAGES"), ctas <= 132);
}
constexpr int kWgradDeepStages = 6;

// The split-K grid of a copy-engine backward-weight kernel (this file's and backward_weight_tma_nchw.cuh's), one-
// dimensional: CTA i < tiles x splits runs split i / tiles of output tile i % tiles; past them, the tail's extra splits
// (tail_split: CTA tiles x splits + e runs split 1 + e % (tail.splits - 1) of tile tail.first + e / (tail.splits -
// 1)). Tile t: m tile t % m_tiles (128 output channels), column tile t / m_tiles % col_tiles, group t / (m_tiles x
// col_tiles), the order of the former 3-D grid (x, y, z).
struct WgradGrid {
  int m_tiles, col_tiles, tiles;     // tiles = m_tiles x col_tiles x groups
  int boxes, splits, per_split;      // k-tiles of the whole reduction; every tile's splits of per_split k-tiles
  int tail_per_split;                // a tail tile's splits' k-tiles
  SplitTail tail;                    // the tail (tail.splits 0: none); its partials' home
  int64_t K, taps;                   // partial rows (all output channels) and columns (Cg*R*S)
  float* partials;                   // [split][K][taps], taps in (r, s, c) order
};

// One CTA's share: group g, output channels m0.. of it, column tile col_tile, k-tiles box0 .. box0 + k_tiles - 1;
// its partial (row m of the group, column `col`) at out[(m - row0) * ld + col], `col` the column in the split's
// [K][taps] partials (tap * Cg + channel) or, `local`, in its tail tile (block - the tile's first block) * channels
// a block + channel in the block.
struct WgradWork {
  int g, m0, col_tile, box0, k_tiles, row0;
  bool local;
  float* out;
  int64_t ld;
};

__device__ __forceinline__ WgradWork wgrad_work(const WgradGrid& c, int Kg) {
  const int64_t main_ctas = int64_t(c.tiles) * c.splits, cta = blockIdx.x;
  WgradWork w{};
  int64_t tile;
  int split, per;
  if (cta < main_ctas) {
    split = int(cta / c.tiles), tile = cta - int64_t(split) * c.tiles;
    per = c.tail.splits > 0 && tile >= c.tail.first ? c.tail_per_split : c.per_split;
  } else {
    const int64_t e = cta - main_ctas;
    tile = c.tail.first + e / (c.tail.splits - 1), split = 1 + int(e % (c.tail.splits - 1));
    per = c.tail_per_split;
  }
  const int64_t mc = int64_t(c.m_tiles) * c.col_tiles;
  w.g = int(tile / mc);
  const int64_t rest = tile - w.g * mc;
  w.col_tile = int(rest / c.m_tiles), w.m0 = int(rest - int64_t(w.col_tile) * c.m_tiles) * 128;
  w.box0 = split * per, w.k_tiles = max(0, min(per, c.boxes - w.box0));
  w.local = cta >= main_ctas;
  if (w.local) {
    const int64_t tile_floats = int64_t(128) * c.tail.width;
    w.out = const_cast<float*>(c.tail.partials) +
            ((tile - c.tail.first) * (c.tail.splits - 1) + split - 1) * tile_floats;
    w.ld = c.tail.width, w.row0 = w.m0;
  } else {
    w.out = c.partials + (int64_t(split) * c.K + int64_t(w.g) * Kg) * c.taps;
    w.ld = c.taps, w.row0 = 0;
  }
  return w;
}

// What the kernel needs besides its two tensor maps.
struct TmaWgrad {
  int wt, ht, nt, q_tiles, p_tiles;  // the box of output pixels, and boxes per row and column
  int groups, Cg, Kg;
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int S, c_chunks, blocks;           // column blocks: (tap, 64-channel chunk) pairs, R*S*c_chunks of them
  uint32_t tx_bytes, box_rows;       // bytes of one stage's boxes; pixels per box
  bool wide_mma;                     // one m64n128 over both column blocks' boxes (else two m64n64: timing)
  WgradGrid work;
};

// One column block of a warpgroup's partial tile, from its accumulators at `acc` (wgmma's m64nN layout: 8-column
// group jj holds (row g, columns 2t, 2t + 1) and (g + 8, the same) in acc[4 jj .. 4 jj + 3]): kCols columns, the
// channels ch0.. of a block whose first column is `col` (WgradWork: in the split's partials or in its tail tile),
// rows row and row + 8 (row: the thread's first). Rows past Kg and channels past Cg are dropped. Used by this file's
// kernel and backward_weight_tma_nchw.cuh's.
template <int kCols>
__device__ __forceinline__ void store_partial_block(const float* acc, const WgradWork& w, int row, int64_t col,
                                                    int ch0, int Kg, int Cg) {
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int jj = 0; jj < kCols / 8; ++jj)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int m = row + (e / 2) * 8, dc = jj * 8 + t * 2 + e % 2;
      if (m < Kg && ch0 + dc < Cg) w.out[int64_t(m - w.row0) * w.ld + col + dc] = acc[jj * 4 + e];
    }
}

template <typename T, class Cfg>
__global__ void __launch_bounds__(kTmaThreads, Cfg::kMinBlocks)
    backward_weight_tma_kernel(const __grid_constant__ CUtensorMap dy_map, const __grid_constant__ CUtensorMap x_map,
                               const TmaWgrad c) {
  constexpr int BK = kTmaRowBytes / sizeof(T), kNB = Cfg::kNB, kBox = Cfg::kBoxBytes;
  static_assert(sizeof(T) == 2, "MN-major wgmma operands are 16-bit");
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = align_shared<1024>(smem_raw);
  const TmaRing<Cfg::kStages, Cfg::kStageBytes> ring(smem);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const WgradWork work = wgrad_work(c.work, c.Kg);
  const int g = work.g, m0 = work.m0, block0 = work.col_tile * kNB, box0 = work.box0, k_tiles = work.k_tiles;
  // 64 or fewer output channels a group: one grad_output box, and the two warpgroups split the tile's column blocks
  // instead of its rows (warpgroup 1's rows would all be past Kg, multiplying zeros).
  const bool narrow = c.Kg <= 64;
  static_assert(kNB == 2, "narrow tiles: one column block per consumer warpgroup");

  // Rows past the box's pixels are never written by the copies: zero them once, for the async proxy to read.
  if (c.box_rows < kWgradBoxPixels) {
    const int per_box = (kWgradBoxPixels - int(c.box_rows)) * kTmaRowBytes / 16;
    for (int u = threadIdx.x; u < Cfg::kStages * (2 + kNB) * per_box; u += kTmaThreads) {
      const int box = u / per_box, chunk = u % per_box;
      *reinterpret_cast<uint4*>(smem + box * kBox + c.box_rows * kTmaRowBytes + chunk * 16) = make_uint4(0, 0, 0, 0);
    }
    fence_proxy_async();
  }
  if (threadIdx.x == 0) ring.init(2);
  __syncthreads();

  if (warp == 8) {  // producer
    if (lane == 0) {
      tma_prefetch_descriptor(&dy_map);
      tma_prefetch_descriptor(&x_map);
      int chan[kNB], dw[kNB], dh[kNB];  // each input box's first channel and tap offsets
#pragma unroll
      for (int j = 0; j < kNB; ++j) {
        const int b = min(block0 + j, c.blocks - 1);  // past the last block: any valid box, its columns unused
        const int tap = b / c.c_chunks, r = tap / c.S, s = tap - r * c.S;
        chan[j] = g * c.Cg + (b - tap * c.c_chunks) * BK, dw[j] = s * c.dil_w - c.pad_w, dh[j] = r * c.dil_h - c.pad_h;
      }
      int qi = box0 % c.q_tiles, rest = box0 / c.q_tiles, pi = rest % c.p_tiles, ni = rest / c.p_tiles;
      ring.produce(k_tiles, c.tx_bytes, [&](int, unsigned char* stage, uint64_t* bar) {
        const int q0 = qi * c.wt, p0 = pi * c.ht, n0 = ni * c.nt;
        tma_load_4d(stage, &dy_map, bar, g * c.Kg + m0, q0, p0, n0);
        if (!narrow) tma_load_4d(stage + kBox, &dy_map, bar, g * c.Kg + m0 + BK, q0, p0, n0);
#pragma unroll
        for (int j = 0; j < kNB; ++j)
          tma_load_4d(stage + (2 + j) * kBox, &x_map, bar, chan[j], q0 * c.stride_w + dw[j], p0 * c.stride_h + dh[j], n0);
        if (++qi == c.q_tiles) {
          qi = 0;
          if (++pi == c.p_tiles) pi = 0, ++ni;
        }
      });
    }
    return;
  }

  // Consumers: warpgroup wg owns output channels m0 + 64 wg .. + 63 (grad_output box wg) x the tile's kNB column
  // blocks; narrow: output channels 0..63 (box 0) x column block wg.
  const int wg = warp / 4;
  // The partial tile straight from the accumulators: row m (output channel), column (tap, channel) of block b.
  auto store = [&](const float (&acc)[32], int b, int row) {
    if (b >= c.blocks) return;
    const int tap = b / c.c_chunks, ch0 = (b - tap * c.c_chunks) * BK;
    store_partial_block<BK>(acc, work, row, work.local ? (b - block0) * BK : int64_t(tap) * c.Cg + ch0, ch0, c.Kg,
                            c.Cg);
  };
  if (narrow) {
    if (block0 + wg >= c.blocks) {  // no block of its own: it only releases the stages
      ring.consume(k_tiles, [](const unsigned char*) {}, [] {});
      return;
    }
    float acc[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc[i] = 0.f;
    ring.consume(
        k_tiles,
        [&](const unsigned char* stage) {
#pragma unroll
          for (int step = 0; step < kWgradBoxPixels / 16; ++step)  // 16 pixels (rows) per MMA
            Wgmma64x64MN<T>::run(acc, wgmma_descriptor<kTmaRowBytes>(stage + step * 16 * kTmaRowBytes),
                                 wgmma_descriptor<kTmaRowBytes>(stage + (2 + wg) * kBox + step * 16 * kTmaRowBytes));
        },
        [&] { wgmma_fence_operands(acc); });
    store(acc, block0 + wg, m0 + (warp % 4) * 16 + lane / 4);
    return;
  }
  // The tile's two column blocks: one m64n128 whose B spans both input boxes (adjacent in the stage: two swizzle
  // atoms kBox bytes apart), so A is read once per 128 columns; its accumulators are the two m64n64's side by side
  // (columns 64.. in acc[32..]). c.wide_mma false: two m64n64 (CONV2D_EXT_TMA_WGRAD_N128=0, timing).
  float acc[kNB * 32];
#pragma unroll
  for (int i = 0; i < kNB * 32; ++i) acc[i] = 0.f;
  if (c.wide_mma) {
    ring.consume(
        k_tiles,
        [&](const unsigned char* stage) {
#pragma unroll
          for (int step = 0; step < kWgradBoxPixels / 16; ++step)  // 16 pixels (rows) per MMA
            Wgmma64x128MN<T>::run(acc, wgmma_descriptor<kTmaRowBytes>(stage + wg * kBox + step * 16 * kTmaRowBytes),
                                  wgmma_descriptor_mn<kTmaRowBytes>(stage + 2 * kBox + step * 16 * kTmaRowBytes,
                                                                    kBox));
        },
        [&] { wgmma_fence_operands(acc); });
  } else {
    float(&half0)[32] = *reinterpret_cast<float(*)[32]>(acc);
    float(&half1)[32] = *reinterpret_cast<float(*)[32]>(acc + 32);
    ring.consume(
        k_tiles,
        [&](const unsigned char* stage) {
#pragma unroll
          for (int step = 0; step < kWgradBoxPixels / 16; ++step) {
            const uint64_t a = wgmma_descriptor<kTmaRowBytes>(stage + wg * kBox + step * 16 * kTmaRowBytes);
            Wgmma64x64MN<T>::run(half0, a, wgmma_descriptor<kTmaRowBytes>(stage + 2 * kBox + step * 16 * kTmaRowBytes));
            Wgmma64x64MN<T>::run(half1, a, wgmma_descriptor<kTmaRowBytes>(stage + 3 * kBox + step * 16 * kTmaRowBytes));
          }
        },
        [&] { wgmma_fence_operands(acc); });
  }
  const int row = m0 + wg * 64 + (warp % 4) * 16 + lane / 4;
#pragma unroll
  for (int j = 0; j < kNB; ++j) store(*reinterpret_cast<const float(*)[32]>(acc + 32 * j), block0 + j, row);
}

// How `boxes` k-tiles of the reduction split over `tiles` output tiles (all groups): as many splits as fit one wave of
// one CTA per SM on a 132-SM H100 (tiles x splits <= 132; a function of the problem, not of the GPU, so results do not
// depend on the GPU), at least `min_per` k-tiles per split, at most 65535 / groups splits. Until session 34 it aimed
// at 4 x 132 CTAs (rounding up): H100, session 34 (graph ms, backward-weight, old -> new): bf16 r50_3x3_256 NHWC
// 0.059 -> 0.031 (14 -> 3 splits), r50_3x3_512 0.075 -> 0.048 (4 -> 1), r50_3x3_128_s2 0.062 -> ~0.034, r50_3x3_64
// 0.043 -> 0.033, r50_1x1 0.045 -> 0.034, seed NCHW 1.95 -> 1.77; TF32 r50_3x3_256 NCHW 0.113 -> 0.078, seed 4.75 ->
// 4.52: the split partials (splits x K x taps floats, written and read back) and a wave's tail cost more than the
// occupancy a second CTA per SM buys. CONV2D_EXT_TMA_WGRAD_CTAS=n fits n CTAs instead (timing; read at each call by
// both the workspace size and the launch, not by a can_implement: it changes the split, never the kernel).
struct BoxSplit { int boxes_per_split, splits; };
inline int64_t wgrad_ctas() {
  if (const char* env = std::getenv("CONV2D_EXT_TMA_WGRAD_CTAS"); env != nullptr && std::atoi(env) > 0)
    return std::atoi(env);
  return 132;
}
inline BoxSplit split_boxes(int64_t boxes, int64_t tiles, int64_t groups, int64_t min_per) {
  const int64_t ctas = wgrad_ctas();
  const int64_t wanted = std::max<int64_t>(1, std::min<int64_t>(ctas / std::max<int64_t>(tiles, 1), 65535 / groups));
  const int64_t per = std::max<int64_t>(min_per, (boxes + wanted - 1) / wanted);
  const int per_split = static_cast<int>(std::min<int64_t>(per, std::max<int64_t>(boxes, 1)));
  return {per_split, static_cast<int>(std::max<int64_t>(1, (boxes + per_split - 1) / per_split))};
}

// The tail of a grid of more output tiles than a wave (split_boxes gave them one split each): the last tiles % 132
// tiles would run alone, whole reductions in a last wave (r50_3x3_512: 144 tiles, 12 of them a second ~16 us wave
// after the first 132). Their reductions are cut further, into as many splits (of at least 2 k-tiles) as fill that
// wave, so that it is short: a tail tile's first split is its own CTA among the first `tiles`, its others run past
// them (WgradGrid) and write compact partial tiles that reduce_splits adds after the first, in split order (bit-
// identical from run to run). Where the tail is more than half a wave, or the k-tiles too few to cut, none.
// Off by default: CONV2D_EXT_TMA_WGRAD_TAIL=1 turns it on. H100, session 37 (r50_3x3_512 backward-weight, graph ms,
// on / off): bf16 NCHW 0.089 / 0.064, NHWC 0.082 / 0.058, TF32 0.130 / 0.117, 0.125 / 0.112: the GEMM did not
// shorten (34 us with the tail: its first wave ran 6-stage rings at one CTA a SM, where without it 144 CTAs of 3
// stages share the SMs two by two in one wave), and the reduction's per-element tail lookups cost ~25 us. Since,
// the ring depth is asked of all the grid's CTAs (a tail's pieces beside the first wave, two CTAs a SM), and the
// lookups run once a weight element after the main splits' sum (reduce_splits). CONV2D_EXT_TMA_WGRAD_CTAS=n moves
// the wave (tests). Fills every field of `grid` but the pointers and K, taps; `columns`: the kernel's column tiles as
// SplitTail spells them (width, c_chunks, block_ch, tile_blocks, tiles_per_s).
inline void plan_wgrad_grid(WgradGrid& grid, int64_t boxes, int64_t m_tiles, int64_t col_tiles, int64_t groups,
                            int64_t min_per, const SplitTail& columns) {
  const int64_t tiles = m_tiles * col_tiles * groups, ctas = wgrad_ctas();
  const BoxSplit split = split_boxes(boxes, tiles, groups, min_per);
  grid.m_tiles = int(m_tiles), grid.col_tiles = int(col_tiles), grid.tiles = int(tiles);
  grid.boxes = int(boxes), grid.splits = split.splits, grid.per_split = split.boxes_per_split;
  grid.tail = columns;
  grid.tail.m_tiles = grid.m_tiles, grid.tail.col_tiles = grid.col_tiles;
  grid.tail.first = 0, grid.tail.splits = 0;  // no tail unless below
  grid.tail_per_split = 0;
  const char* env = std::getenv("CONV2D_EXT_TMA_WGRAD_TAIL");
  const int64_t tail = tiles % ctas;
  if (env == nullptr || env[0] != '1' || split.splits != 1 || tiles <= ctas || tail == 0 || 2 * tail > ctas ||
      boxes < 4)
    return;
  const int64_t wanted = std::min<int64_t>(ctas / tail, boxes / 2), per = (boxes + wanted - 1) / wanted;
  grid.tail.first = int(tiles - tail), grid.tail.splits = int((boxes + per - 1) / per);
  grid.tail_per_split = int(per);
  if (grid.tail.splits < 2) grid.tail.splits = 0;
}

// CTAs of the grid, and bytes of the tail's partial tiles (width: columns of a tile).
inline int64_t wgrad_grid_ctas(const WgradGrid& g) {
  return int64_t(g.tiles) * g.splits + (g.tail.splits > 0 ? int64_t(g.tiles - g.tail.first) * (g.tail.splits - 1) : 0);
}
inline int64_t wgrad_tail_bytes(const WgradGrid& g, int64_t width) {
  return g.tail.splits > 0 ? region(int64_t(g.tiles - g.tail.first) * (g.tail.splits - 1) * 128 * width * 4) : 0;
}

// The pointers of `grid`: the splits' partials at `partials`, the tail's `tail_offset` bytes on; K and taps.
inline void set_wgrad_partials(WgradGrid& grid, const ConvParams& p, float* partials, int64_t tail_offset) {
  grid.K = p.K, grid.taps = p.C_per_group() * p.R * p.S, grid.partials = partials;
  grid.tail.partials = reinterpret_cast<const float*>(reinterpret_cast<unsigned char*>(partials) + tail_offset);
}

// The grid (plan_wgrad_grid) over boxes of output pixels: at least 8 boxes per split.
struct TmaWgradPlan {
  TmaTile box;
  int blocks;
  WgradGrid grid;
};

template <class Cfg>
TmaWgradPlan tma_wgrad_plan(const ConvParams& p) {
  TmaWgradPlan plan{};
  plan.box = tma_tile(p, kWgradBoxPixels);
  const int64_t c_chunks = (p.C_per_group() + 63) / 64, boxes = plan.box.count();
  plan.blocks = static_cast<int>(p.R * p.S * c_chunks);
  SplitTail columns{};  // blocks of 64 channels, (tap, chunk) in tap order, kNB a tile
  columns.width = Cfg::kNB * 64, columns.c_chunks = int(c_chunks), columns.block_ch = 64;
  columns.tile_blocks = Cfg::kNB, columns.tiles_per_s = 0;
  plan_wgrad_grid(plan.grid, boxes, (p.K_per_group() + 127) / 128, (plan.blocks + Cfg::kNB - 1) / Cfg::kNB, p.groups,
                  8, columns);
  return plan;
}

// The partials (the splits' and the tail's) at the start of the workspace: their bytes.
template <class Cfg>
int64_t tma_wgrad_partials_bytes(const ConvParams& p, const TmaWgradPlan& plan) {
  return region(int64_t(plan.grid.splits) * p.K * p.C_per_group() * p.R * p.S * 4) +
         wgrad_tail_bytes(plan.grid, Cfg::kNB * 64);
}

// Workspace: the partials, the NHWC copies of an NCHW problem's input and grad_output, and what the fallback
// (128x128_w8, for channels-last tensors the copy engine cannot read) needs, whichever is larger.
template <class Cfg>
int64_t backward_weight_tma_workspace(const ConvParams& p) {
  int64_t bytes = tma_wgrad_partials_bytes<Cfg>(p, tma_wgrad_plan<Cfg>(p));
  if (!p.channels_last)  // the input's NHWC copy; grad_output's unless it comes staged (conv2d.py)
    bytes += region(p.N * p.C * p.H * p.W * 2) + staged_nhwc_bytes(p.y, p.y_stride, p.N, p.K, p.P, p.Q, 2);
  return std::max(bytes, backward_weight_workspace<Config128x128_w8>(p));
}

extern template void backward_weight_launch_typed<__half, Config128x128_w8>(const ConvParams&, void*, cudaStream_t);
extern template void backward_weight_launch_typed<__nv_bfloat16, Config128x128_w8>(const ConvParams&, void*,
                                                                                   cudaStream_t);

// Launches a split-K copy-engine backward-weight kernel (this file's or backward_weight_tma_nchw.cuh's) on its grid
// with `smem` bytes of shared memory, then reduce_splits over its partial tiles (c.work) into p's grad_weight.
template <auto kKernel, typename T, class Args>
void launch_split_wgrad(int smem, const CUtensorMap& dy_map, const CUtensorMap& x_map, const Args& c,
                        const ConvParams& p, cudaStream_t stream) {
  opt_in_shared_memory<kKernel>(smem);
  const int64_t ctas = wgrad_grid_ctas(c.work);
  TORCH_CHECK(ctas < (int64_t(1) << 31), "conv2d_ext: implicit_gemm tma backward_weight: 2^31 or more CTAs");
  kKernel<<<static_cast<unsigned>(ctas), kTmaThreads, smem, stream>>>(dy_map, x_map, c);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  launch_reduce_splits<T>(c.work.partials, c.work.splits, p, true, stream, c.work.tail);
}

template <typename T, class Cfg>
void backward_weight_tma_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  constexpr int e = sizeof(T), BK = kTmaRowBytes / e;
  const int64_t count = p.K * p.C_per_group() * p.R * p.S;
  if (count == 0) return;
  float* partials = static_cast<float*>(workspace);
  if (p.N * p.P * p.Q == 0) return zero_weight_gradient<T>(p, partials, count, stream);
  const TmaWgradPlan plan = tma_wgrad_plan<Cfg>(p);
  // The operands as the copy engine reads them: NHWC copies of an NCHW problem's, or a channels-last problem's own.
  const ConvParams q = p.channels_last ? p : staged_operands_nhwc<T>(
      p, static_cast<unsigned char*>(workspace) + tma_wgrad_partials_bytes<Cfg>(p, plan), stream);
  const void* x = q.x;
  const void* dy = q.y;
  const int64_t(&xs)[4] = q.x_stride;
  const int64_t(&ys)[4] = q.y_stride;
  if (xs[1] != 1 || ys[1] != 1 || !tma_strides_fit<T>(x, {xs[0], xs[2], xs[3]}) ||
      !tma_strides_fit<T>(dy, {ys[0], ys[2], ys[3]})) {
    backward_weight_launch_typed<T, Config128x128_w8>(p, workspace, stream);  // sliced tensors: the gathers
    return;
  }
  const TmaTile& t = plan.box;
  CUtensorMap dy_map, x_map;
  const char* why = encode_tensor_map_4d(
      &dy_map, tma_dtype<T>(), dy, {uint64_t(p.K), uint64_t(p.Q), uint64_t(p.P), uint64_t(p.N)},
      {uint64_t(ys[3] * e), uint64_t(ys[2] * e), uint64_t(ys[0] * e)},
      {uint32_t(BK), uint32_t(t.wt), uint32_t(t.ht), uint32_t(t.nt)}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma backward_weight (grad_output): ", why);
  why = encode_tensor_map_4d(&x_map, tma_dtype<T>(), x, {uint64_t(p.C), uint64_t(p.W), uint64_t(p.H), uint64_t(p.N)},
                             {uint64_t(xs[3] * e), uint64_t(xs[2] * e), uint64_t(xs[0] * e)},
                             {uint32_t(BK), uint32_t(t.wt * p.stride_w), uint32_t(t.ht * p.stride_h), uint32_t(t.nt)},
                             {1, uint32_t(p.stride_w), uint32_t(p.stride_h), 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma backward_weight (input): ", why);

  TmaWgrad c{};
  c.wt = t.wt, c.ht = t.ht, c.nt = t.nt, c.q_tiles = int(t.q_tiles), c.p_tiles = int(t.p_tiles);
  c.groups = p.groups, c.Cg = int(p.C_per_group()), c.Kg = int(p.K_per_group());
  c.stride_h = p.stride_h, c.stride_w = p.stride_w, c.pad_h = p.pad_h, c.pad_w = p.pad_w;
  c.dil_h = p.dil_h, c.dil_w = p.dil_w;
  c.S = int(p.S), c.c_chunks = int((p.C_per_group() + BK - 1) / BK), c.blocks = plan.blocks;
  c.box_rows = uint32_t(t.wt * t.ht * t.nt);
  c.tx_bytes = uint32_t(kTmaRowBytes) * c.box_rows * ((p.K_per_group() <= 64 ? 1 : 2) + Cfg::kNB);  // narrow: one dy box
  c.work = plan.grid;
  set_wgrad_partials(c.work, p, partials, region(int64_t(plan.grid.splits) * count * 4));
  const char* n128 = std::getenv("CONV2D_EXT_TMA_WGRAD_N128");
  c.wide_mma = n128 == nullptr || n128[0] != '0';

  using Deep = TmaWgradConfig<Cfg::kNB, kWgradDeepStages>;
  if (wgrad_deep_ring(wgrad_grid_ctas(c.work)))
    launch_split_wgrad<backward_weight_tma_kernel<T, Deep>, T>(Deep::kSmem, dy_map, x_map, c, p, stream);
  else
    launch_split_wgrad<backward_weight_tma_kernel<T, Cfg>, T>(Cfg::kSmem, dy_map, x_map, c, p, stream);
}

// What it can run: fp16/bf16 (MN-major wgmma operands) on an sm_90a build, channels (per group) in 16-byte vectors,
// strides within the copy engine's element strides, a grid that fits.
template <class Cfg>
std::string backward_weight_tma_can_implement(const ConvParams& p) {
  std::string why = gemm_reason<Config128x128_wg>(p, p.C_per_group() * p.R * p.S, p.N * p.P * p.Q);
  if (!why.empty()) return why;
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16)
    return "float16 and bfloat16 only (its MMAs read both operands transposed, which TF32 cannot: TF32 runs "
           "backward_weight_tma_nchw.cuh)";
  if (p.C % 8 != 0 || p.K % 8 != 0 || p.C_per_group() % 8 != 0 || p.K_per_group() % 8 != 0)
    return "channels (and channels per group) must fill 16-byte vectors (the copy engine's strides)";
  if (p.stride_h > 8 || p.stride_w > 8) return "strides above 8 (the copy engine's element strides)";
  if (!p.channels_last && (p.H * p.W >= (int64_t(1) << 31) || p.P * p.Q >= (int64_t(1) << 31)))
    return "NCHW images of 2^31 or more pixels (the NHWC copies)";
  if (p.N * p.P * p.Q > 0 && tma_tile(p, kWgradBoxPixels).count() >= (int64_t(1) << 31))
    return "2^31 or more boxes of output pixels";
  if (p.K_per_group() * p.C_per_group() * p.R * p.S >= (int64_t(1) << 31))
    return "a weight of 2^31 elements or more per group";
  if (tma_wgrad_plan<Cfg>(p).grid.col_tiles > 65535) return "more than 65535 tiles of (tap, channel) columns";
  return "";
}

template <class Cfg>
void backward_weight_tma_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.dtype == DType::kFloat16) backward_weight_tma_launch_typed<__half, Cfg>(p, workspace, stream);
  else if (p.dtype == DType::kBFloat16) backward_weight_tma_launch_typed<__nv_bfloat16, Cfg>(p, workspace, stream);
  else TORCH_CHECK(false, "conv2d_ext: implicit_gemm 128x128_tma backward_weight runs float16 and bfloat16 only");
}

}  // namespace igemm
}  // namespace conv2d_ext
