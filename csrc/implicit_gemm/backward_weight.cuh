// Backward-weight as an implicit GEMM on tensor cores, on the machinery of implicit_gemm.cuh (pipeline, warp MMAs),
// with split-K over the long reduction and a deterministic reduction of the splits.
//
// GEMM mapping, per group g and split z of the reduction (blockIdx.z = z * groups + g):
//   M = K/groups output channels (A rows: grad_output channel k), N = C/groups * R * S filter taps (B rows: (c, r, s)
//   for NCHW, (r, s, c) for NHWC: the filters' own memory order), reduction = N*P*Q output pixels j = (n, p, q):
//     A[k][j] = dy[n, g*Kg + k, p, q]
//     B[(c,r,s)][j] = x[n, g*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw]   (0 outside the input)
// The reduction is long (millions of pixels) and M x N is a few tiles, so the k-tiles are cut into `splits`
// contiguous ranges, one per blockIdx.z. Each CTA writes its fp32 partial tile to the workspace; a second kernel adds
// the partials of each weight in split order (bit-identical from run to run), rounds and stores grad_weight in its
// layout. No atomics anywhere.
// Both operands are gathered element by element into registers (PixelLoader), flat over pixels: along the reduction
// neither operand is contiguous in NHWC, and in NCHW the activations' tap offsets leave them unaligned.
#pragma once

#include <algorithm>
#include <type_traits>

#include "common/index.cuh"
#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {

// One operand of the weight-gradient GEMM: row i is a pointer at pixel (0, 0, 0) plus an input corner (h0, w0);
// pixel (n, p, q) is at ptr + n*sN + p*sP + q*sQ and exists where (h0 + p*step_h, w0 + q*step_w) lies inside
// [0, H) x [0, W) and j = (n*P + p)*Q + q < end (the split's end).
template <typename T>
struct PixelGather {
  struct Row { const T* ptr; int h0, w0; };  // h0 = INT_MIN / 2 marks a row past the end (all zeros)
  const T* any_address;  // a valid address (the source of a zero-filling cp.async)
  int64_t sN, sP, sQ;
  int step_h, step_w;
  int H, W;
  int P, Q;
  int end;
  FastDivmod by_pq, by_q;  // pixel j -> (n, p, q)

  __device__ __forceinline__ void pixel(int j, int& n, int& p, int& q) const {
    unsigned un, pq, up, uq;
    by_pq.divmod(static_cast<unsigned>(j), un, pq);
    by_q.divmod(pq, up, uq);
    n = static_cast<int>(un), p = static_cast<int>(up), q = static_cast<int>(uq);
  }
  __device__ __forceinline__ bool inside(const Row& row, int p, int q) const {
    return static_cast<unsigned>(row.h0 + p * step_h) < static_cast<unsigned>(H) &&
           static_cast<unsigned>(row.w0 + q * step_w) < static_cast<unsigned>(W);
  }
};

// Loads one operand's k-tiles (kRows rows x kBKBytes of consecutive pixels) into registers, one k-tile ahead, and
// stores them to shared memory when main_loop says: OperandLoader's scalar path with a pixel walk instead of a tap
// walk. Threads take rows fastest where the rows are contiguous (NHWC: channels), else 16-byte chunks of pixels.
template <typename T, class Cfg, bool kRowsFastest, int kRows>
struct PixelLoader : RowUnits<Cfg, kRowsFastest, kRows, typename PixelGather<T>::Row> {
  using Units = RowUnits<Cfg, kRowsFastest, kRows, typename PixelGather<T>::Row>;
  using Units::kUnits, Units::rows, Units::row_of, Units::chunk_of;
  using Gather = PixelGather<T>;
  static constexpr int kElems = 16 / sizeof(T);

  uint4 staged[kUnits];

  __device__ __forceinline__ void load(const Gather& g, const KTile& t, unsigned char*) {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      union { uint4 v; T e[kElems]; } pack;
      pack.v = make_uint4(0, 0, 0, 0);
      int j = t.k0 + chunk_of(i) * kElems;
      int n, p, q;
      g.pixel(j, n, p, q);
      int h = rows[i].h0 + p * g.step_h, w = rows[i].w0 + q * g.step_w;
      const T* src = rows[i].ptr + n * g.sN + p * g.sP + q * g.sQ;
#pragma unroll
      for (int e = 0; e < kElems; ++e, ++j) {
        if (j < g.end && static_cast<unsigned>(h) < static_cast<unsigned>(g.H) &&
            static_cast<unsigned>(w) < static_cast<unsigned>(g.W))
          pack.e[e] = *src;
        if (++q < g.Q) {  // next pixel of the row
          src += g.sQ;
          w += g.step_w;
        } else {  // next row (or image)
          q = 0;
          if (++p == g.P) { p = 0; ++n; }
          src = rows[i].ptr + n * g.sN + p * g.sP;
          h = rows[i].h0 + p * g.step_h;
          w = rows[i].w0;
        }
      }
      staged[i] = pack.v;
    }
  }

  __device__ __forceinline__ void store_registers(unsigned char* dst) const {
#pragma unroll
    for (int i = 0; i < kUnits; ++i)
      *reinterpret_cast<uint4*>(dst + row_of(i) * Cfg::kPitch + chunk_of(i) * 16) = staged[i];
  }
};

// Vector path (channels-last, 16-bit, channels of both operands in whole 16-byte chunks, 16-byte aligned): the
// operand is stored transposed, [BK pixels][kRows rows] (WarpMma's kATrans / kBTrans), each (pixel, 8 consecutive
// rows) one 16-byte cp.async along the contiguous channels, kStages - 1 k-tiles ahead. A thread keeps one chunk of
// rows (its Row: 8 channels of one tap) and walks its pixels.
template <typename T, class Cfg, int kRows>
struct PixelVectorLoader {
  using Gather = PixelGather<T>;
  static constexpr int kElems = 16 / sizeof(T);
  static constexpr int kChunks = kRows / kElems;  // 16-byte chunks per pixel
  static constexpr int BK = Cfg::kBKBytes / sizeof(T);
  static constexpr int kUnits = BK * kChunks / Cfg::kThreads;
  static constexpr int kPitch = trans_pitch<T, kRows>();
  static_assert(Cfg::kThreads % kChunks == 0 && (BK * kChunks) % Cfg::kThreads == 0, "chunks must split evenly");

  typename Gather::Row row;  // this thread's chunk of rows

  __device__ __forceinline__ static int chunk() { return threadIdx.x % kChunks; }
  __device__ __forceinline__ static int pixel_of(int i) { return threadIdx.x / kChunks + i * (Cfg::kThreads / kChunks); }

  // make_row(index) for the chunk's first row index in [row0, row0 + kRows), or -1 past `row_count` (row_count is a
  // multiple of 8: whole chunks).
  template <typename MakeRow>
  __device__ void init(MakeRow&& make_row, int64_t row0, int64_t row_count) {
    const int64_t index = row0 + chunk() * kElems;
    row = make_row(index < row_count ? index : -1);
  }

  __device__ __forceinline__ void load(const Gather& g, const KTile& t, unsigned char* dst) const {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      const int j = t.k0 + pixel_of(i);
      int n, p, q;
      g.pixel(j, n, p, q);
      const bool valid = j < g.end && g.inside(row, p, q);
      const T* src = row.ptr + n * g.sN + p * g.sP + q * g.sQ;
      cp_async_16(dst + pixel_of(i) * kPitch + chunk() * 16, valid ? src : g.any_address, valid);
    }
  }
  __device__ __forceinline__ void store_registers(unsigned char*) const {}
};

// NCHW grad_output (pixels contiguous per channel, P*Q a multiple of 16 bytes, aligned): K-major 16-byte cp.async of
// 16 bytes of consecutive pixels per (row, chunk), which never straddle two images.
template <typename T, class Cfg, int kRows>
struct PixelRunLoader : RowUnits<Cfg, false, kRows, typename PixelGather<T>::Row> {
  using Units = RowUnits<Cfg, false, kRows, typename PixelGather<T>::Row>;
  using Units::kUnits, Units::rows, Units::row_of, Units::chunk_of;
  using Gather = PixelGather<T>;
  static constexpr int kElems = 16 / sizeof(T);

  __device__ __forceinline__ void load(const Gather& g, const KTile& t, unsigned char* dst) const {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      const int j = t.k0 + chunk_of(i) * kElems;
      unsigned n, pq;
      g.by_pq.divmod(static_cast<unsigned>(j), n, pq);
      const bool valid = j < g.end && rows[i].h0 == 0;
      const T* src = rows[i].ptr + int64_t(n) * g.sN + pq;
      cp_async_16(dst + row_of(i) * Cfg::kPitch + chunk_of(i) * 16, valid ? src : g.any_address, valid);
    }
  }
  __device__ __forceinline__ void store_registers(unsigned char*) const {}
};

// How the reduction is split: `splits` ranges of `tiles_per_split` k-tiles (the last may be shorter). A function of
// the problem alone (not of the GPU it runs on), so the same inputs are always reduced in the same order.
struct SplitK { int splits, tiles_per_split; };

template <class Cfg>
SplitK plan_split_k(const ConvParams& p) {
  const int64_t BK = Cfg::kBKBytes / p.element_bytes();
  const int64_t taps = p.C_per_group() * p.R * p.S;
  const int64_t tiles = ((p.K_per_group() + Cfg::kBM - 1) / Cfg::kBM) * ((taps + Cfg::kBN - 1) / Cfg::kBN) * p.groups;
  const int64_t k_tiles = (p.N * p.P * p.Q + BK - 1) / BK;
  constexpr int64_t kTargetCtas = 4 * 132;  // a few waves of an H100's SMs: balance without long partial traffic
  constexpr int64_t kMinTilesPerSplit = 16, kMaxSplits = 256;
  int64_t splits = (kTargetCtas + tiles - 1) / tiles;
  splits = std::min({splits, std::max<int64_t>(1, k_tiles / kMinTilesPerSplit), kMaxSplits,
                     std::max<int64_t>(1, 65535 / p.groups)});
  if constexpr (Cfg::kFfma) {
    // The FFMA configurations run exactly kMinBlocks CTAs per SM (their registers allow no more): take the split
    // count, at most the one above, whose CTAs fill whole waves best, i.e. the least ceil(tiles * s / slots) / s (time
    // per unit of work), the fewest splits on ties. The seed's 5 tiles: 106 splits are 4 waves of 132 and 2 CTAs,
    // 79 are 3 waves less one CTA. 132 SMs is a constant, so the split stays a function of the problem.
    const int64_t slots = 132 * int64_t(Cfg::kMinBlocks);
    int64_t best = 1, best_waves = (tiles + slots - 1) / slots;
    for (int64_t s = 2; s <= splits; ++s) {
      const int64_t waves = (tiles * s + slots - 1) / slots;
      if (waves * best < best_waves * s) best = s, best_waves = waves;  // waves / s < best_waves / best
    }
    splits = best;
  }
  const int64_t per = std::max<int64_t>(1, (k_tiles + splits - 1) / splits);
  return {static_cast<int>(std::max<int64_t>(1, (k_tiles + per - 1) / per)), static_cast<int>(per)};
}

// One CTA: the partial product of its tile over its split's k-tiles, written (fp32) to `partials` as
// [split][K][taps], taps numbered in B's row order. kVec: 16-byte cp.async loads (channels-last: both operands,
// transposed in shared memory; NCHW: grad_output only).
template <typename T, class Cfg, bool kNHWC, bool kVec>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    backward_weight_kernel(const ConvParams p, float* __restrict__ partials, int tiles_per_split, FastDivmod by_pq,
                           FastDivmod by_q) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int BK = Cfg::kBKBytes / sizeof(T);
  const int g = blockIdx.z % p.groups, split = blockIdx.z / p.groups;
  const int Cg = static_cast<int>(p.C_per_group()), Kg = static_cast<int>(p.K_per_group());
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S), RS = R * S, taps = Cg * RS;
  const int pixels = static_cast<int>(p.N * p.P * p.Q);
  const int j0 = split * tiles_per_split * BK;  // the split's first pixel
  const int k_tiles = min(tiles_per_split, (pixels - j0 + BK - 1) / BK);
  const int end = min(pixels, j0 + tiles_per_split * BK);
  const int m0 = blockIdx.x * Cfg::kBM, n0 = blockIdx.y * Cfg::kBN;
  const int P = static_cast<int>(p.P), Q = static_cast<int>(p.Q);

  // A: grad_output channel k of the group; every pixel exists (bounds = P x Q).
  const T* dy = static_cast<const T*>(p.y) + int64_t(g) * Kg * p.y_stride[1];
  const PixelGather<T> ga{dy, p.y_stride[0], p.y_stride[2], p.y_stride[3], 1, 1, P, Q, P, Q, end, by_pq, by_q};
  auto a_row = [&](int64_t k) -> typename PixelGather<T>::Row {
    if (k < 0) return {dy, INT_MIN / 2, INT_MIN / 2};
    return {dy + k * p.y_stride[1], 0, 0};
  };
  // B: filter tap (c, r, s) of the group reads input pixel (p*sh - ph + r*dh, q*sw - pw + s*dw).
  const T* x = static_cast<const T*>(p.x) + int64_t(g) * Cg * p.x_stride[1];
  const PixelGather<T> gb{x, p.x_stride[0], p.stride_h * p.x_stride[2], p.stride_w * p.x_stride[3], p.stride_h,
                          p.stride_w, static_cast<int>(p.H), static_cast<int>(p.W), P, Q, end, by_pq, by_q};
  auto b_row = [&](int64_t b) -> typename PixelGather<T>::Row {
    if (b < 0) return {x, INT_MIN / 2, INT_MIN / 2};
    const int t = static_cast<int>(b);
    const int c = kNHWC ? t % Cg : t / RS, rs = kNHWC ? t / Cg : t % RS;
    const int r = rs / S, s = rs - r * S;
    const int h0 = r * p.dil_h - p.pad_h, w0 = s * p.dil_w - p.pad_w;
    return {x + c * p.x_stride[1] + h0 * p.x_stride[2] + w0 * p.x_stride[3], h0, w0};
  };
  KTile first;
  first.k0 = j0;

  // kVec: channels-last, both operands transposed; NCHW: grad_output in pixel runs, the input gathered.
  constexpr bool kTrans = kVec && kNHWC;
  using LoaderA = std::conditional_t<kTrans, PixelVectorLoader<T, Cfg, Cfg::kBM>,
                                     std::conditional_t<kVec, PixelRunLoader<T, Cfg, Cfg::kBM>,
                                                        PixelLoader<T, Cfg, kNHWC, Cfg::kBM>>>;
  using LoaderB = std::conditional_t<kTrans, PixelVectorLoader<T, Cfg, Cfg::kBN>, PixelLoader<T, Cfg, kNHWC, Cfg::kBN>>;
  LoaderA la;
  LoaderB lb;
  la.init(a_row, m0, Kg);
  lb.init(b_row, n0, taps);
  std::conditional_t<Cfg::kFfma, FfmaWarp<Cfg>, WarpMma<T, Cfg, kTrans, kTrans>> mma;
  mma.zero();
  main_loop<T, Cfg, true>(smem, ga, gb, la, lb, k_tiles, mma, first);

  float* out = partials + (int64_t(split) * p.K + int64_t(g) * Kg) * taps;
  for_each_accumulator(mma, [&](int m, int n, float v) {
    if (m0 + m < Kg && n0 + n < taps) out[int64_t(m0 + m) * taps + n0 + n] = v;
  });
}

// grad_weight[k][tap] = sum over splits, in split order, of partials[split][k][tap]; taps in B's row order: (r, s, c)
// where nhwc_order, else (c, r, s). The weight's own order may be the other one (the copy-engine backward-weight's
// (r, s, c) partials of an NCHW weight): written element by element in the partials' order, the 2-byte stores of
// one warp land R*S elements apart (r50_3x3_512: 18 sectors a store, 18-22 us for 2.4M elements on the H100,
// session 35). So a warp takes one output channel k and 32 channels, reads their R*S x 32 sums in the partials'
// order, stages them in shared memory and writes them in the weight's order: both sides coalesced (session 37; the
// block-wide chunks of session 36 ran 25 us there: few loads in flight a thread).
// Tail splits (backward_weight_tma.cuh's tail_split): the output tiles from `first` on had their reduction cut
// into `splits` (0: no tail); the first split sits in the partials with the other tiles', the others at `partials`:
// [tile - first][split - 1][128 rows][width], the tile's column blocks (block_ch channels each) side by side. Tile
// t = (g * col_tiles + column tile) * m_tiles + m tile (128 output channels of group g a m tile). Column tiles:
// tile_blocks blocks each of (tap, chunk) pairs in tap order (tiles_per_s 0: backward_weight_tma.cuh), or, per filter
// column s, tiles_per_s tiles of (filter row, chunk) pairs (backward_weight_tma_nchw.cuh).
struct SplitTail {
  const float* partials = nullptr;
  int first = 0, splits = 0, width = 0;
  int m_tiles = 0, col_tiles = 0, c_chunks = 0, block_ch = 0, tile_blocks = 0, tiles_per_s = 0;
};

// `sum` (weight (k, tap rs, channel c)'s first split) plus its tail splits in split order, where its tile has them.
__device__ __forceinline__ float add_tail_splits(const SplitTail& t, const ConvParams& p, int64_t k, int rs, int c,
                                                 float sum) {
  const int64_t Kg = p.K_per_group(), g = k / Kg, kk = k - g * Kg;
  const int m_tile = int(kk / 128), row = int(kk % 128), chunk = c / t.block_ch;
  int b, col_tile;
  if (t.tiles_per_s == 0) {
    b = rs * t.c_chunks + chunk, col_tile = b / t.tile_blocks;
  } else {
    const int r = rs / p.S, s = rs - r * p.S;
    b = r * t.c_chunks + chunk, col_tile = s * t.tiles_per_s + b / t.tile_blocks;
  }
  const int64_t tile = (g * t.col_tiles + col_tile) * t.m_tiles + m_tile;
  if (tile < t.first) return sum;
  const int64_t tile_floats = int64_t(128) * t.width;
  const float* src = t.partials + (tile - t.first) * (t.splits - 1) * tile_floats + int64_t(row) * t.width +
                     (b % t.tile_blocks) * t.block_ch + (c - chunk * t.block_ch);
  for (int j = 0; j < t.splits - 1; ++j) sum += src[j * tile_floats];
  return sum;
}

constexpr int kReduceWarps = 4;     // warps a block, each on its own (k, 32 channels) units
constexpr int kReduceMaxTaps = 96;  // R*S a warp stages (32 x 96 floats: 48 KB a block); more: one thread an element
// A lane has kB x kS = 8 loads in flight: kB taps (or 32-element runs) of kS splits at a time (launch_reduce_splits
// picks them: 8 x 1 for R*S >= 8 or one split, 2 x 4 for small filters, 1 x 8 for 1x1 filters with many splits:
// r50_1x1 channels-last sums 66 splits of 16K weights, one load at a time a lane at 8 x 1). The splits are added in
// split order whatever the batch.
template <typename T, int kB, int kS>
__global__ void __launch_bounds__(32 * kReduceWarps, 6) reduce_splits(const float* __restrict__ partials, int splits,
                                                                   ConvParams p, bool nhwc_order, SplitTail tail) {
  extern __shared__ float reduce_stage[];  // 6 blocks a SM (the launch bound: 80 registers)
  const int RS = int(p.R * p.S), Cg = int(p.C_per_group()), lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* buf = reduce_stage + warp * 32 * RS;  // [channel][tap]: the NCHW weight's order
  const int64_t taps = int64_t(Cg) * RS, count = p.K * taps;
  const int c_blocks = (Cg + 31) / 32;
  const int64_t units = p.K * c_blocks;
  const bool weight_c_inner = p.w_stride[1] < p.w_stride[3] || RS == 1;  // channels_last weight: c fastest
  const bool dense_crs = p.w_stride[3] == 1 && p.w_stride[2] == p.S && p.w_stride[1] == RS;  // (c, r, s) contiguous
  for (int64_t u = blockIdx.x * int64_t(kReduceWarps) + warp; u < units; u += int64_t(gridDim.x) * kReduceWarps) {
    const int64_t k = u / c_blocks;
    const int c0 = int(u - k * c_blocks) * 32, cc = min(32, Cg - c0), n = cc * RS;
    const float* src = partials + k * taps;
    // Read: (r, s, c) partials a tap at a time, lane = channel; (c, r, s) partials as the unit's contiguous run.
    const int steps = nhwc_order ? RS : (n + 31) / 32;
    for (int i0 = 0; i0 < steps; i0 += kB) {
      int at[kB], t[kB];  // t: offset in k's taps (< 2^31: C/g x R x S)
      float v[kB];
#pragma unroll
      for (int b = 0; b < kB; ++b) {
        const int i = i0 + b;
        if (nhwc_order) {
          const bool ok = i < steps && lane < cc;
          at[b] = ok ? lane * RS + i : -1, t[b] = i * Cg + c0 + lane;
        } else {
          const int e = i * 32 + lane;
          at[b] = i < steps && e < n ? e : -1, t[b] = c0 * RS + e;
        }
        v[b] = at[b] >= 0 ? src[t[b]] : 0.f;
      }
      for (int sp = 1; sp < splits; sp += kS) {
        float u[kB][kS];
#pragma unroll
        for (int q = 0; q < kS; ++q) {
          const float* split = src + min(sp + q, splits - 1) * count;  // past the last: not read
#pragma unroll
          for (int b = 0; b < kB; ++b) u[b][q] = at[b] >= 0 && sp + q < splits ? split[t[b]] : 0.f;
        }
#pragma unroll
        for (int q = 0; q < kS; ++q)
#pragma unroll
          for (int b = 0; b < kB; ++b)
            if (sp + q < splits) v[b] += u[b][q];
      }
#pragma unroll
      for (int b = 0; b < kB; ++b)
        if (at[b] >= 0) buf[at[b]] = v[b];
    }
    __syncwarp();
    if (tail.splits > 0) {  // the tail's splits after the first (tails have one split: the sum is split order)
#pragma unroll 1
      for (int e = lane; e < n; e += 32) {
        const int cl = e / RS, rs = e - cl * RS;
        buf[e] = add_tail_splits(tail, p, k, rs, c0 + cl, buf[e]);
      }
      __syncwarp();
    }
    T* w = static_cast<T*>(p.w) + k * p.w_stride[0];
    if (dense_crs) {  // the unit's 32 x R*S elements are contiguous, in buf's order
      for (int e = lane; e < n; e += 32) w[int64_t(c0) * RS + e] = from_acc<T>(buf[e]);
    } else {
      for (int e = lane; e < n; e += 32) {
        const int rs = weight_c_inner ? e / cc : e % RS, cl = weight_c_inner ? e - rs * cc : e / RS;
        const int r = rs / int(p.S), s = rs - r * int(p.S);
        w[(c0 + cl) * p.w_stride[1] + r * p.w_stride[2] + s * p.w_stride[3]] = from_acc<T>(buf[cl * RS + rs]);
      }
    }
    __syncwarp();  // buf read before the next unit overwrites it
  }
}

// The same sum a thread per element, for filters of more than kReduceMaxTaps taps.
template <typename T>
__global__ void reduce_splits_elementwise(const float* __restrict__ partials, int splits, ConvParams p,
                                          bool nhwc_order, SplitTail tail) {
  const int64_t taps = p.C_per_group() * p.R * p.S, count = p.K * taps, RS = p.R * p.S;
  const int64_t Cg = p.C_per_group();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    float sum = 0.f;
    for (int s = 0; s < splits; ++s) sum += partials[s * count + i];
    const int64_t k = i / taps, t = i - k * taps;
    const int64_t c = nhwc_order ? t % Cg : t / RS, rs = nhwc_order ? t / Cg : t % RS;
    if (tail.splits > 0) sum = add_tail_splits(tail, p, k, int(rs), int(c), sum);
    const int64_t r = rs / p.S, s = rs - r * p.S;
    static_cast<T*>(p.w)[k * p.w_stride[0] + c * p.w_stride[1] + r * p.w_stride[2] + s * p.w_stride[3]] =
        from_acc<T>(sum);
  }
}

// Launches the reduction for p over `splits` partial sums at `partials` (taps in nhwc_order or not, as above), and
// the tail splits where `tail` has them.
template <typename T>
void launch_reduce_splits(const float* partials, int splits, const ConvParams& p, bool nhwc_order,
                          cudaStream_t stream, const SplitTail& tail = SplitTail{}) {
  const int64_t RS = p.R * p.S, Cg = p.C_per_group();
  if (RS > kReduceMaxTaps) {
    reduce_splits_elementwise<T><<<grid_for(p.K * Cg * RS, 256, 4), 256, 0, stream>>>(partials, splits, p,
                                                                                      nhwc_order, tail);
  } else {
    const int smem = int(kReduceWarps * 32 * RS * sizeof(float));
    const int64_t blocks = (p.K * ((Cg + 31) / 32) + kReduceWarps - 1) / kReduceWarps;
    const dim3 grid(unsigned(std::clamp<int64_t>(blocks, 1, int64_t(num_sms()) * 16)));
    constexpr int kThreads = 32 * kReduceWarps;
    if (RS >= 8 || splits == 1)
      reduce_splits<T, 8, 1><<<grid, kThreads, smem, stream>>>(partials, splits, p, nhwc_order, tail);
    else if (RS >= 2)
      reduce_splits<T, 2, 4><<<grid, kThreads, smem, stream>>>(partials, splits, p, nhwc_order, tail);
    else
      reduce_splits<T, 1, 8><<<grid, kThreads, smem, stream>>>(partials, splits, p, nhwc_order, tail);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// An empty reduction (N*P*Q == 0): grad_weight is zero, written through reduce_splits (one split of zeros at
// `partials`, count floats) so that it lands in the weight's layout.
template <typename T>
void zero_weight_gradient(const ConvParams& p, float* partials, int64_t count, cudaStream_t stream) {
  C10_CUDA_CHECK(cudaMemsetAsync(partials, 0, count * sizeof(float), stream));
  launch_reduce_splits<T>(partials, 1, p, p.channels_last, stream);
}

// p with its input and grad_output copied to dense NHWC at `dst` (to_nhwc): the input first, grad_output in the next
// 256-byte aligned region.
template <typename T>
ConvParams staged_operands_nhwc(const ConvParams& p, unsigned char* dst, cudaStream_t stream) {
  ConvParams q = p;
  T* x = reinterpret_cast<T*>(dst);
  T* dy = reinterpret_cast<T*>(dst + region(p.N * p.C * p.H * p.W * int64_t(sizeof(T))));
  q.x = const_cast<T*>(staged_nhwc<T>(p.x, p.x_stride, x, p.N, p.C, p.H, p.W, q.x_stride, stream));
  q.y = const_cast<T*>(staged_nhwc<T>(p.y, p.y_stride, dy, p.N, p.K, p.P, p.Q, q.y_stride, stream));
  return q;
}

// NCHW fp16/bf16 problems whose channels fill 16-byte vectors run on the channels-last vector path, on NHWC copies of
// the input and grad_output (to_nhwc): gathering NCHW activations element by element costs more than the copies.
inline bool backward_weight_stages_nhwc(const ConvParams& p) {
  const int64_t E = 8;
  return !p.channels_last && p.dtype != DType::kFloat32 && p.C % E == 0 && p.K % E == 0 &&
         p.C_per_group() % E == 0 && p.K_per_group() % E == 0 && p.H * p.W < (int64_t(1) << 31) &&
         p.P * p.Q < (int64_t(1) << 31);
}

// The fp32 partial sums, then (backward_weight_stages_nhwc) the NHWC input and grad_output.
template <class Cfg>
int64_t backward_weight_workspace(const ConvParams& p) {
  const int64_t partials = int64_t(plan_split_k<Cfg>(p).splits) * p.K * p.C_per_group() * p.R * p.S * int64_t(sizeof(float));
  if (!backward_weight_stages_nhwc(p)) return partials;
  return region(partials) + region(p.N * p.C * p.H * p.W * 2) + p.N * p.K * p.P * p.Q * 2;
}

template <typename T, class Cfg, bool kNHWC, bool kVec>
void launch_backward_weight_variant(const ConvParams& p, float* partials, SplitK split, cudaStream_t stream) {
  constexpr auto kernel = backward_weight_kernel<T, Cfg, kNHWC, kVec>;
  constexpr int smem = Cfg::kStages * stage_bytes<Cfg>();  // the epilogue writes registers straight to global
  opt_in_shared_memory<kernel>(smem);
  const dim3 grid(static_cast<unsigned>((p.K_per_group() + Cfg::kBM - 1) / Cfg::kBM),
                  static_cast<unsigned>((p.C_per_group() * p.R * p.S + Cfg::kBN - 1) / Cfg::kBN),
                  static_cast<unsigned>(split.splits * p.groups));
  const FastDivmod by_pq(static_cast<unsigned>(p.P * p.Q)), by_q(static_cast<unsigned>(p.Q));
  kernel<<<grid, Cfg::kThreads, smem, stream>>>(p, partials, split.tiles_per_split, by_pq, by_q);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The vector paths. Channels-last, 16-bit: both operands' channel runs whole, aligned 16-byte chunks. NCHW:
// grad_output's pixel runs per channel (P*Q) whole, aligned 16-byte chunks.
template <typename T>
bool backward_weight_vectors_fit(const ConvParams& p) {
  constexpr int64_t E = 16 / sizeof(T);
  if (!p.channels_last) {
    const int64_t* st = p.y_stride;
    return aligned16(p.y) && st[3] == 1 && st[2] == p.Q && (p.P * p.Q) % E == 0 && st[1] % E == 0 && st[0] % E == 0;
  }
  auto fits = [&](const void* ptr, const int64_t (&st)[4]) {
    return aligned16(ptr) && st[1] == 1 && st[0] % E == 0 && st[2] % E == 0 && st[3] % E == 0;
  };
  return sizeof(T) == 2 && p.C_per_group() % E == 0 && p.K_per_group() % E == 0 && fits(p.x, p.x_stride) &&
         fits(p.y, p.y_stride);
}

template <typename T, class Cfg>
void backward_weight_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  const int64_t count = p.K * p.C_per_group() * p.R * p.S;
  if (count == 0) return;
  float* partials = static_cast<float*>(workspace);
  const SplitK split = plan_split_k<Cfg>(p);
  if (p.N * p.P * p.Q == 0) return zero_weight_gradient<T>(p, partials, count, stream);
  bool nhwc_order = p.channels_last;
  if (sizeof(T) == 2 && backward_weight_stages_nhwc(p)) {
    unsigned char* next = static_cast<unsigned char*>(workspace) + region(int64_t(split.splits) * count * 4);
    const ConvParams q = staged_operands_nhwc<T>(p, next, stream);
    if constexpr (sizeof(T) == 2) launch_backward_weight_variant<T, Cfg, true, true>(q, partials, split, stream);
    nhwc_order = true;
  } else if (!p.channels_last) {
    if (backward_weight_vectors_fit<T>(p)) launch_backward_weight_variant<T, Cfg, false, true>(p, partials, split, stream);
    else launch_backward_weight_variant<T, Cfg, false, false>(p, partials, split, stream);
  } else if constexpr (sizeof(T) == 2) {
    if (backward_weight_vectors_fit<T>(p)) launch_backward_weight_variant<T, Cfg, true, true>(p, partials, split, stream);
    else launch_backward_weight_variant<T, Cfg, true, false>(p, partials, split, stream);
  } else {
    launch_backward_weight_variant<T, Cfg, true, false>(p, partials, split, stream);
  }
  launch_reduce_splits<T>(partials, split.splits, p, nhwc_order, stream);
}

// What backward-weight configuration Cfg can run: tensor-core dtypes, and a reduction (N*P*Q pixels) and window math
// within 32 bits. Any strides: every operand is gathered element by element.
template <class Cfg>
std::string backward_weight_can_implement(const ConvParams& p) {
  std::string why = gemm_reason<Cfg>(p, p.C_per_group() * p.R * p.S, p.N * p.P * p.Q);
  if (why.empty() && p.K_per_group() * p.C_per_group() * p.R * p.S >= (int64_t(1) << 31))
    return "a weight of 2^31 elements or more per group";
  return why;
}

template <class Cfg>
void backward_weight_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  dispatch_float_dtype(p.dtype, "implicit_gemm", [&](auto tag) {
    backward_weight_launch_typed<typename decltype(tag)::type, Cfg>(p, workspace, stream);
  });
}

}  // namespace igemm
}  // namespace conv2d_ext

// The registry entry backward_weight_implicit_gemm_<name> (forward.cuh).
#define CONV2D_EXT_IGEMM_BACKWARD_WEIGHT_ENTRY(name) CONV2D_EXT_IGEMM_ENTRY(backward_weight, kBackwardWeight, name)
