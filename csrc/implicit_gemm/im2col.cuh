// Implicit GEMM for short reductions (configuration im2col), every pass: first layers (r50_conv1: C = 3, 7x7 at
// stride 2, a reduction of C R S = 147 elements) and any other ungrouped convolution whose whole reduction fits one
// tile (C R S <= 160), on mma.sync (fp16/bf16 m16n8k16, fp32 as TF32 m16n8k8), sm_80+, any layout or strides.
//
// The other implicit-GEMM kernels walk the reduction in k-tiles of 16-byte channel vectors; with 3 channels a k-tile
// is mostly zeros (and their loaders want channels in 16-byte vectors). Here a CTA gathers the whole reduction of a
// tile of output pixels into shared memory once (the im2col tile, k = (c R + r) S + s, zeros past C R S), element by
// element through a per-CTA table of each k's offset and tap shift (so the gather has no division), and multiplies
// it by the filters, which stay in shared memory for the CTA's whole walk over pixel tiles (a persistent grid).
//
// Both operands are stored as 32-bit words, word row j by column m (pixels) or n (output channels): a word is
// k = 2j, 2j + 1 (16-bit, low half first) or k = j (TF32). mma.sync's fragments are then single-word loads in either
// dtype (A: rows 8 ks + t (+ 4), columns m + g (+ 8); B: rows 8 ks + t (+ 4), column n + g; g = lane / 4,
// t = lane % 4), conflict-free with row pitches of 8 words mod 32; so are the gather's stores (consecutive threads on
// consecutive pixels of one word row).
//
// Runs (16-bit forward, where the layout allows; experimental, off by default: forward_runs): a window row is a run
// of contiguous elements (NCHW: S taps of one channel; channels-last: S x C), so the reduction is laid out by run
// instead, each run padded to chunks of 8 elements (4 words), and a thread gathers a chunk with five aligned 32-bit
// loads at fixed offsets and a funnel shift (an odd first element), validity from one row test and a per-pixel mask
// of in-row words: about 4 instructions an element against the element path's 11 (r50_conv1: 21 or 7 runs, 168
// padded elements), yet 10% slower on the H200 so far.
//
// Tiles: kBM pixels (flattened over N x P x Q: no tile shape wastes rows) x 64 output channels, 8 warps of 32 x kWarpN
// (kBM = 128 for 16-bit, 64 for TF32, whose words hold half the reduction), two CTAs per SM. Per tile: gather,
// barrier, MMAs, then the implicit-GEMM epilogue (store_tile: staged along the output's contiguous dimension, a
// barrier, coalesced runs).
//
// Backward-weight (wgrad_kernel) is the same gather turned around: dW[k][crs] = sum over output pixels of
// dy[pixel][k] X[pixel][crs] (X the forward's im2col), the pixels as the MMA's reduction: per tile of 64 pixels, X^T
// and dy^T as words of two pixels (one in TF32) by row crs or k; a split of the pixel tiles per CTA, the splits'
// sums added in split order by finish_splits (bit-identical run to run).
//
// Backward-data (dgrad_kernel, K <= 64) goes through Z = dy W on tensor cores and sums each dx element's taps from Z
// (col2im) in shared memory: see its section below.
//
// Written in session 24 with no device, first run in session 25 (r50_conv1 fp16: 1.5-1.7x cuDNN in NCHW, every
// pass); the heuristics' `_im2col` rule picks it for first layers. CONV2D_EXT_IM2COL=0 turns it off (timing).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>

#include "common/conv_params.h"
#include "common/dtype.cuh"
#include "common/launch.cuh"
#include "common/mma.cuh"
#include "common/pdl.cuh"
#include "common/reduce.cuh"
#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {
namespace im2col {

constexpr int kThreads = 256, kBN = 64;
constexpr int kKMax = 160;          // reduction elements (C R S) a tile holds
constexpr int kFar = -(1 << 30);    // a table entry's row shift past C R S: every row it reaches is outside the input

// Per dtype: elements a word holds, word rows, the pixel tile, the warps' tiles, the row pitches (words).
template <typename T>
struct Config {
  static constexpr int kThreads = im2col::kThreads, kBN = im2col::kBN;
  // word rows: the reduction, or (16-bit) its runs padded to chunks of 8 elements (r50_conv1: 168 elements)
  static constexpr int kPerWord = 4 / int(sizeof(T)), kWords = sizeof(T) == 2 ? 88 : kKMax;
  static constexpr int kBM = sizeof(T) == 2 ? 128 : 64;
  static constexpr int kWarpsM = kBM / 32, kWarpsN = 8 / kWarpsM, kWarpM = 32, kWarpN = kBN / kWarpsN;
  static constexpr int kMTiles = 2, kNTiles = kWarpN / 8;  // m16 and n8 blocks of a warp
  static constexpr int kAPitch = kBM + 8, kBPitch = kBN + 8;
  static constexpr int kRowThreads = kThreads / kBM;  // the gather: threads per pixel row
  static constexpr int kBatch = 8;  // words a thread gathers before it stores them (their loads in flight together)
  static_assert(kAPitch % 32 == 8 && kBPitch % 32 == 8, "conflict-free fragments");
  static_assert(kWords % kBatch == 0, "whole batches");
  static constexpr int E = 16 / int(sizeof(T));
  static constexpr int kStageBytes =  // store_tile's staging, NCHW or NHWC
      (kBN * (kBM + E) > kBM * (kBN + E) ? kBN * (kBM + E) : kBM * (kBN + E)) * int(sizeof(T));
  static constexpr int kABytes = kWords * kAPitch * 4, kBBytes = kWords * kBPitch * 4, kTableBytes = kKMax * 16;
  static_assert(kTableBytes >= kWords / 4 * 32, "the run table: two int4 a chunk of 4 words");
  static constexpr int kSmem = kABytes + kBBytes + kStageBytes + kTableBytes;
};

// A warp's accumulators: kMTiles x kNTiles blocks of m16n8 (store_tile reads them through for_each_accumulator).
template <typename T>
struct Accumulators {
  float acc[Config<T>::kMTiles][Config<T>::kNTiles][4];
};

template <typename T, typename F>
__device__ __forceinline__ void for_each_accumulator(const Accumulators<T>& a, F&& f) {
  for_each_mma_accumulator<Config<T>>(a.acc, f);
}

// What the kernel needs besides p: the reduction's length and its k-steps, pixel tiles, the output's pixels per image;
// the run layout (chunks > 0, forward_runs): 8-element chunks in all and per run, a run's elements, elements per
// column (1 NCHW, C channels-last).
struct Shape {
  int crs, k_steps, m_tiles, pq, M;
  int chunks = 0, run_chunks = 0, run_len = 0, inner = 1;
};

// Raw bits of a T (16-bit: the low half of a word).
template <typename T> using Bits = std::conditional_t<sizeof(T) == 2, uint16_t, uint32_t>;

// Once per CTA: each reduction index k's offset in an image and tap shift {offset, r dil_h, s dil_w, 0}; past C R S a
// row shift no pixel's window reaches (its elements read as zero).
__device__ __forceinline__ void build_table(int4* table, const ConvParams& p, int crs) {
  const int R = int(p.R), S = int(p.S), RS = R * S;
  for (int k = threadIdx.x; k < kKMax; k += blockDim.x) {
    int4 e = make_int4(0, kFar, 0, 0);
    if (k < crs) {
      const int c = k / RS, r = (k - c * RS) / S, s = k - c * RS - r * S;
      const int64_t offset =
          c * p.x_stride[1] + int64_t(r) * p.dil_h * p.x_stride[2] + int64_t(s) * p.dil_w * p.x_stride[3];
      e = make_int4(int(offset), r * p.dil_h, s * p.dil_w, 0);
    }
    table[k] = e;
  }
}

// Output pixel gm (flattened over N x P x Q; M of them, pq a map) as (image, row, column); ok false past M.
struct Pixel {
  int img, p, q;
  bool ok;
};
__device__ __forceinline__ Pixel pixel_at(int gm, int M, int pq, int Q) {
  if (gm >= M) return Pixel{0, 0, 0, false};
  const int img = gm / pq, rest = gm - img * pq, row = rest / Q;
  return Pixel{img, row, rest - row * Q, true};
}

// A pixel's window in x: its image, top-left corner (hb, wb) and the corner's offset in the image (32-bit:
// can_implement). Past M the corner lies kFar rows out: every element reads as zero.
template <typename T>
struct Window {
  const Bits<T>* image;
  int hb, wb, rel;
};
template <typename T>
__device__ __forceinline__ Window<T> window_of(const ConvParams& p, const Bits<T>* x, const Pixel& px) {
  if (!px.ok) return Window<T>{x, kFar, 0, 0};
  const int hb = px.p * p.stride_h - p.pad_h, wb = px.q * p.stride_w - p.pad_w;
  return Window<T>{x + px.img * p.x_stride[0], hb, wb, int(hb * p.x_stride[2] + wb * p.x_stride[3])};
}

// kPerWord elements' bits as one word, the first in the low half.
template <typename T, int kPerWord>
__device__ __forceinline__ uint32_t pack_word(const Bits<T> (&v)[kPerWord]) {
  uint32_t word = 0;
#pragma unroll
  for (int e = 0; e < kPerWord; ++e) word |= uint32_t(v[e]) << (16 * e);
  return word;
}

// One k-step of MMAs on the word layouts (forward, backward-data): A's fragments from a_row = the warp's first A
// column (+ g) in word row 8 ks + t, rows 4 apart by kAPitch; B's from b_row likewise (kBPitch), its first n_blocks
// n8 blocks only (the same for the whole warp).
template <typename T, class Cfg>
__device__ __forceinline__ void word_mma_step(float (&acc)[Cfg::kMTiles][Cfg::kNTiles][4], const uint32_t* a_row,
                                              const uint32_t* b_row, int n_blocks) {
  uint32_t a[Cfg::kMTiles][4];
#pragma unroll
  for (int i = 0; i < Cfg::kMTiles; ++i) {
    a[i][0] = a_row[i * 16];
    a[i][1] = a_row[i * 16 + 8];
    a[i][2] = a_row[4 * Cfg::kAPitch + i * 16];
    a[i][3] = a_row[4 * Cfg::kAPitch + i * 16 + 8];
  }
#pragma unroll
  for (int j = 0; j < Cfg::kNTiles; ++j) {
    if (j >= n_blocks) break;
    const uint32_t b[2] = {b_row[j * 8], b_row[4 * Cfg::kBPitch + j * 8]};
#pragma unroll
    for (int i = 0; i < Cfg::kMTiles; ++i) Mma<T>::run(acc[i][j], a[i], b);
  }
}

// Element `at` (a table entry) of a window: one predicated load, zero outside the input.
template <typename T>
__device__ __forceinline__ Bits<T> tap_bits(const Window<T>& w, const int4& at, int H, int W) {
  const bool ok = unsigned(w.hb + at.y) < unsigned(H) && unsigned(w.wb + at.z) < unsigned(W);
  return load_bits_or_zero(w.image + (w.rel + at.x), ok);
}

// The run layout's chunk q: run u = q / run_chunks (NCHW: channel u / R, row u % R; channels-last: row u), chunk ci
// of it (word rows 4 q .. 4 q + 3). Its table entry: {element offset from the window's corner, row shift, first word
// of the pixel's column mask, 0}, then the four words' masks (zero past the run's end).
__device__ __forceinline__ void build_run_table(int4* table, const ConvParams& p, const Shape& sh) {
  for (int q = threadIdx.x; q < sh.chunks; q += blockDim.x) {
    const int u = q / sh.run_chunks, ci = q - u * sh.run_chunks;
    const int c = sh.inner == 1 ? u / int(p.R) : 0, r = sh.inner == 1 ? u - c * int(p.R) : u;
    const int64_t offset = c * p.x_stride[1] + int64_t(r) * p.dil_h * p.x_stride[2] + 8 * ci;
    const int n = min(8, sh.run_len - 8 * ci);  // elements of the run in this chunk
    int4 keep;
    int* k = &keep.x;
    for (int i = 0; i < 4; ++i) k[i] = 2 * i + 1 < n ? -1 : 2 * i < n ? 0xFFFF : 0;
    table[2 * q] = make_int4(int(offset), r * int(p.dil_h), 4 * ci, 0);
    table[2 * q + 1] = keep;
  }
}

// The run layout's reduction index of padded element kp (word kp / 2, half kp % 2), or -1 for padding.
__device__ __forceinline__ int run_crs(const ConvParams& p, const Shape& sh, int kp) {
  const int q = kp / 8, u = q / sh.run_chunks, e = 8 * (q - u * sh.run_chunks) + kp % 8;
  if (q >= sh.chunks || e >= sh.run_len) return -1;
  const int R = int(p.R), S = int(p.S);
  if (sh.inner == 1) return u * S + e;  // (c R + r) S + s with u = c R + r
  const int s = e / sh.inner, c = e - s * sh.inner;
  return (c * R + u) * S + s;
}

// A pixel's in-row words of its runs' chunks as a mask: word t (elements base + 2t, + 1 of the row, base = the
// window's first element rounded down to even) lies in the row's W x inner elements. Words never straddle a row's
// ends (rows start and end on even elements: forward_runs).
__device__ __forceinline__ uint32_t column_mask(int base, int row_elements) {
  const int lo = max(0, -base / 2), hi = min(32, (row_elements - base) / 2);  // base even: exact halves
  if (hi <= lo) return 0u;
  const uint32_t below_hi = hi >= 32 ? ~0u : (1u << hi) - 1u;
  return below_hi & ~((1u << lo) - 1u);
}

// One chunk of 4 words of a pixel's run: five aligned words from `src` (those whose mask bit is set; the others
// read zero), shifted by `shift` bits (16: the run's first element is odd), masked past the run's end, stored to
// word rows dst, dst + pitch, ...
template <int kPitch>
__device__ __forceinline__ void gather_chunk(uint32_t* dst, const uint32_t* src, uint32_t mask, int shift,
                                             const int4& keep) {
  uint32_t v[5];
#pragma unroll
  for (int i = 0; i < 5; ++i) v[i] = load_bits_or_zero(src + i, (mask >> i) & 1u);
  const int k[4] = {keep.x, keep.y, keep.z, keep.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) dst[i * kPitch] = __funnelshift_r(v[i], v[i + 1], shift) & uint32_t(k[i]);
}

template <typename T, bool kOutNHWC>
__global__ void __launch_bounds__(kThreads, 2) forward_kernel(const ConvParams p, const Shape sh) {
  using Cfg = Config<T>;
  extern __shared__ __align__(16) unsigned char im2col_smem[];
  unsigned char* smem = im2col_smem;
  uint32_t* a_w = reinterpret_cast<uint32_t*>(smem);                             // [kWords][kAPitch]
  uint32_t* b_w = reinterpret_cast<uint32_t*>(smem + Cfg::kABytes);              // [kWords][kBPitch]
  unsigned char* stage = smem + Cfg::kABytes + Cfg::kBBytes;                     // store_tile's staging
  int4* table = reinterpret_cast<int4*>(stage + Cfg::kStageBytes);               // [kKMax] {offset, dr, ds, 0}
  const int tid = threadIdx.x, k0 = blockIdx.y * kBN;
  const int R = int(p.R), S = int(p.S), RS = R * S;

  // Once per CTA: the table, the filters' words (zero past C R S, past K and in the runs' padding), the A tile
  // zeroed (word rows past the reduction stay zero).
  const bool runs = sizeof(T) == 2 && sh.chunks > 0;
  if (runs) build_run_table(table, p, sh);
  else build_table(table, p, sh.crs);
  const Bits<T>* __restrict__ w = static_cast<const Bits<T>*>(p.w);
  for (int i = tid; i < Cfg::kWords * kBN; i += kThreads) {
    const int j = i / kBN, n = i - j * kBN;
    uint32_t word = 0;
#pragma unroll
    for (int e = 0; e < Cfg::kPerWord; ++e) {
      const int k = runs ? run_crs(p, sh, j * Cfg::kPerWord + e) : j * Cfg::kPerWord + e;
      if (k >= 0 && k < sh.crs && k0 + n < p.K) {
        const int c = k / RS, r = (k - c * RS) / S, s = k - c * RS - r * S;
        const uint32_t bits = w[(k0 + n) * p.w_stride[0] + c * p.w_stride[1] + r * p.w_stride[2] + s * p.w_stride[3]];
        word |= bits << (16 * e);
      }
    }
    b_w[j * Cfg::kBPitch + n] = word;
  }
  for (int i = tid; i < Cfg::kWords * Cfg::kAPitch; i += kThreads) a_w[i] = 0;
  __syncthreads();

  // The gather's share of this thread: pixel row m of the tile, batches of kBatch word rows part, part +
  // kRowThreads, ... (interleaved, so that short reductions still keep every thread busy), only those holding some
  // k < C R S (the rest stay zero).
  const int m = tid % Cfg::kBM, part = tid / Cfg::kBM;
  const int batches = ((sh.crs + Cfg::kPerWord - 1) / Cfg::kPerWord + Cfg::kBatch - 1) / Cfg::kBatch;
  const Bits<T>* __restrict__ x = static_cast<const Bits<T>*>(p.x);
  const int H = int(p.H), W = int(p.W);

  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int wm = warp % Cfg::kWarpsM, wn = warp / Cfg::kWarpsM;
  const T* bias = p.bias ? static_cast<const T*>(p.bias) + k0 : nullptr;

  for (int tile = blockIdx.x; tile < sh.m_tiles; tile += gridDim.x) {
    // This thread's pixel (past M: its row reads zeros and store_tile skips it).
    const Window<T> win = window_of<T>(p, x, pixel_at(tile * Cfg::kBM + m, sh.M, sh.pq, int(p.Q)));
    if (runs) {  // 16-bit only
      // the window's first element's parity (rows start on even elements): the chunks' funnel shift
      const int first = win.wb * sh.inner, odd = first & 1;
      const uint32_t columns = column_mask(first - odd, int(p.W) * sh.inner);
      const Bits<T>* corner = win.image + (win.rel - odd);
#pragma unroll 2
      for (int q = part; q < sh.chunks; q += Cfg::kRowThreads) {
        const int4 at = table[2 * q];
        const uint32_t mask = unsigned(win.hb + at.y) < unsigned(H) ? columns >> at.z : 0u;
        gather_chunk<Cfg::kAPitch>(a_w + 4 * q * Cfg::kAPitch + m, reinterpret_cast<const uint32_t*>(corner + at.x),
                                   mask, 16 * odd, table[2 * q + 1]);
      }
    }
    for (int batch = runs ? batches : part; batch < batches; batch += Cfg::kRowThreads) {
      // kBatch words: every load issued (predicated off outside the input: zero), then packed and stored
      const int j = batch * Cfg::kBatch;
      Bits<T> v[Cfg::kBatch][Cfg::kPerWord];
#pragma unroll
      for (int b = 0; b < Cfg::kBatch; ++b)
#pragma unroll
        for (int e = 0; e < Cfg::kPerWord; ++e) v[b][e] = tap_bits(win, table[(j + b) * Cfg::kPerWord + e], H, W);
#pragma unroll
      for (int b = 0; b < Cfg::kBatch; ++b) a_w[(j + b) * Cfg::kAPitch + m] = pack_word<T>(v[b]);
    }
    __syncthreads();  // the tile gathered

    Accumulators<T> d;
#pragma unroll
    for (int i = 0; i < Cfg::kMTiles; ++i)
#pragma unroll
      for (int jn = 0; jn < Cfg::kNTiles; ++jn)
#pragma unroll
        for (int e = 0; e < 4; ++e) d.acc[i][jn][e] = 0.f;
    for (int ks = 0; ks < sh.k_steps; ++ks)
      word_mma_step<T, Cfg>(d.acc, a_w + (8 * ks + t) * Cfg::kAPitch + wm * Cfg::kWarpM + g,
                            b_w + (8 * ks + t) * Cfg::kBPitch + wn * Cfg::kWarpN + g, Cfg::kNTiles);
    // Staged, a barrier (every warp's MMAs are done with the A tile: the next gather may overwrite it), stored.
    store_tile<T, Cfg, kOutNHWC>(stage, d, static_cast<T*>(p.y), bias, int64_t(tile) * Cfg::kBM, k0, sh.M, int(p.K),
                                 p.K, sh.pq, 0);
  }
}

// Why neither pass can run p, or "".
inline std::string im2col_reason(const ConvParams& p) {
  const char* env = std::getenv("CONV2D_EXT_IM2COL");
  if (env != nullptr && env[0] == '0') return "turned off by CONV2D_EXT_IM2COL=0";
  if (p.groups != 1) return "grouped convolutions (its tiles span all input channels)";
  if (p.sm < 80) return "needs compute capability 8.0 or newer (mma.sync tensor cores)";
  if (p.dtype == DType::kFloat64) return "float64 runs on the direct family (no fp64 tensor-core path)";
  if (p.dtype == DType::kFloat32 && !p.allow_tf32)
    return "float32 with allow_tf32 = False needs exact FP32 arithmetic (CUDA cores), not TF32 tensor cores";
  if (p.C * p.R * p.S > kKMax) return "a reduction (C x R x S) of more than 160 elements";
  if (p.N * p.P * p.Q >= (int64_t(1) << 31) - 256) return "2^31 or more output pixels";
  const int64_t kLimit = int64_t(1) << 30;
  if (p.H >= kLimit || p.W >= kLimit || p.pad_h >= kLimit || p.pad_w >= kLimit || (p.P - 1) * p.stride_h >= kLimit ||
      (p.Q - 1) * p.stride_w >= kLimit || (p.R - 1) * p.dil_h >= kLimit || (p.S - 1) * p.dil_w >= kLimit)
    return "a spatial size, padding or extent of 2^30 or more";
  // A window corner's offset in its image, plus a tap's, is 32-bit: corners lie within `pad` before the image or
  // `extent` into it.
  auto mag = [](int64_t v) { return v < 0 ? -v : v; };
  const int64_t h_far = std::max<int64_t>(p.pad_h, (p.P - 1) * p.stride_h) + (p.R - 1) * p.dil_h;
  const int64_t w_far = std::max<int64_t>(p.pad_w, (p.Q - 1) * p.stride_w) + (p.S - 1) * p.dil_w;
  if ((p.C - 1) * mag(p.x_stride[1]) + h_far * mag(p.x_stride[2]) + w_far * mag(p.x_stride[3]) >= (int64_t(1) << 31))
    return "images of 2^31 or more elements (its offsets in an image are 32-bit)";
  if ((p.K + kBN - 1) / kBN > 65535) return "more than 65535 tiles of output channels";
  return "";
}

// Why it cannot run the forward of p, or "".
inline std::string can_implement(const ConvParams& p) {
  std::string why = im2col_reason(p);
  if (!why.empty()) return why;
  why = dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");
  if (!why.empty()) return why;
  const int64_t smem = p.dtype == DType::kFloat32 ? Config<float>::kSmem : Config<__half>::kSmem;
  if (smem > max_shared_memory_per_block(p.sm)) return "its tiles need more shared memory than this GPU gives a block";
  return "";
}

// CTAs of `kernel` per tile of output channels: as many as the SMs hold in all (two a SM on sm_90, one where its
// shared memory allows only one). CONV2D_EXT_IM2COL_CTAS caps them (tests: several pixel tiles a CTA).
template <auto kernel>
int64_t ctas_per_channel_tile(int smem, unsigned channel_tiles) {
  static std::once_flag once[kMaxDevices];
  static int resident[kMaxDevices];
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  std::call_once(once[device], [&] {
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident[device], kernel, kThreads, smem));
  });
  int64_t ctas = std::max<int64_t>(1, std::max(1, resident[device]) * int64_t(num_sms()) / channel_tiles);
  if (const char* cap = std::getenv("CONV2D_EXT_IM2COL_CTAS"))
    ctas = std::max<int64_t>(1, std::min<int64_t>(ctas, std::atoll(cap)));
  return ctas;
}

// The run layout of a 16-bit forward (sh's chunks, run_chunks, run_len, inner), where p's window rows are contiguous
// runs of at most 32 elements that start and end on even elements of a 4-byte-aligned input: unit column dilation;
// NCHW (columns contiguous: runs of S taps per channel and row) or channels-last with packed pixels (runs of S x C);
// even image, channel (NCHW) and row strides, even rows (W x inner); the padded chunks within the tile's word rows.
// EXPERIMENTAL, off unless CONV2D_EXT_IM2COL_RUNS=1: correct on the H200 but slower than the element path (r50_conv1
// fp16 0.117 ms NCHW / 0.106 NHWC against 0.106 / 0.097; not profiled: fewer loads in flight a thread is the suspect).
// Otherwise sh is left on the element path.
template <class Cfg>
void forward_runs(const ConvParams& p, Shape& sh) {
  const char* env = std::getenv("CONV2D_EXT_IM2COL_RUNS");
  if (Cfg::kPerWord != 2 || env == nullptr || env[0] != '1' || p.dil_w != 1) return;
  int inner = 0;
  int64_t run_len = 0, runs = 0;
  if (p.x_stride[3] == 1 && p.x_stride[1] % 2 == 0) inner = 1, run_len = p.S, runs = p.C * p.R;
  else if (p.x_stride[1] == 1 && p.x_stride[3] == p.C) inner = int(p.C), run_len = p.S * p.C, runs = p.R;
  if (inner == 0 || run_len > 32 || p.x_stride[0] % 2 != 0 || p.x_stride[2] % 2 != 0 || (p.W * inner) % 2 != 0 ||
      reinterpret_cast<uintptr_t>(p.x) % 4 != 0)
    return;
  const int64_t run_chunks = (run_len + 7) / 8, chunks = runs * run_chunks;
  if (chunks * 4 > Cfg::kWords) return;
  sh.chunks = int(chunks), sh.run_chunks = int(run_chunks), sh.run_len = int(run_len), sh.inner = inner;
  sh.k_steps = int((chunks + 1) / 2);  // 4 words a chunk, 8 a k-step
}

template <typename T, bool kOutNHWC>
void launch_typed(const ConvParams& p, cudaStream_t stream) {
  using Cfg = Config<T>;
  constexpr auto kernel = forward_kernel<T, kOutNHWC>;
  opt_in_shared_memory<kernel>(Cfg::kSmem);
  const int crs = int(p.C * p.R * p.S), step = 8 * Cfg::kPerWord;  // k per mma step: 16 (16-bit), 8 (TF32)
  const int64_t M = p.N * p.P * p.Q;
  Shape sh{crs, (crs + step - 1) / step, int((M + Cfg::kBM - 1) / Cfg::kBM), int(p.P * p.Q), int(M)};
  forward_runs<Cfg>(p, sh);
  const unsigned channel_tiles = unsigned((p.K + kBN - 1) / kBN);
  // Persistent: each CTA stages its filters once and walks pixel tiles.
  const dim3 grid(unsigned(std::min<int64_t>(sh.m_tiles, ctas_per_channel_tile<kernel>(Cfg::kSmem, channel_tiles))),
                  channel_tiles);
  kernel<<<grid, kThreads, Cfg::kSmem, stream>>>(p, sh);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}


// ---- Backward-weight.

// Tiles of kPT output pixels as words of kPerWord pixels (the MMA's reduction), rows k (A: 64 output channels) and
// crs (B: the whole reduction, kKMax rows); 8 warps of 32 k x 40 crs. Row pitches 4 words mod 32: a fragment's lanes
// take row g, word t (banks 4 g + t, conflict-free); the gathers' stores are consecutive words of a row.
template <typename T>
struct WgradConfig {
  static constexpr int kPT = 64, kPerWord = 4 / int(sizeof(T)), kPixWords = kPT / kPerWord;  // 32 or 64 words
  static constexpr int kPitch = kPixWords + 4;
  static constexpr int kGroups = kThreads / kPixWords;  // the gathers: threads per word column
  static constexpr int kWarpsM = 2, kWarpsN = 4, kWarpM = kBN / kWarpsM, kWarpN = kKMax / kWarpsN;
  static constexpr int kMTiles = kWarpM / 16, kNTiles = kWarpN / 8;
  static constexpr int kSteps = kPixWords / 8;  // MMA steps a tile
  static constexpr int kBatch = 8;              // rows a thread gathers before storing them
  static_assert(kPitch % 32 == 4 && kWarpN % 8 == 0, "conflict-free fragments, whole n8 blocks");
  static constexpr int kABytes = kBN * kPitch * 4, kBBytes = kKMax * kPitch * 4;
  static constexpr int kSmem = kABytes + kBBytes + kKMax * 16;
};

// What wgrad_kernel needs besides p: the reduction's length, pixel tiles and the tiles a split takes, the maps;
// dy_vec: dy's channels read as 16-byte vectors (dy_channel_vectors).
struct WgradShape {
  int crs, m_tiles, chunk, pq, M;
  bool dy_vec = false;
};

// Whether wgrad_kernel (and dgrad_kernel) reads dy's channels as 16-byte vectors: channels-last dy (a pixel's channels
// contiguous, the pixel strides and the base on 16 bytes) and K a multiple of a vector. Otherwise one element per load,
// along pixels (coalesced in NCHW; in channels-last each lane's element lies in its own sector: r50_conv1 fp16 0.217 ms
// NHWC against 0.134 NCHW).
template <typename T>
bool dy_channel_vectors(const ConvParams& p) {
  constexpr int64_t kVec = 16 / int64_t(sizeof(T));
  return p.y_stride[1] == 1 && p.K % kVec == 0 && p.y_stride[0] % kVec == 0 && p.y_stride[2] % kVec == 0 &&
         p.y_stride[3] % kVec == 0 && reinterpret_cast<uintptr_t>(p.y) % 16 == 0;
}

// Two pixels' 16-byte vectors of channels (16-bit) as the words of dy^T (channel rows, the pixels' pair in each):
// word 2i holds channel 2i of both (low half: the first pixel), word 2i + 1 channel 2i + 1.
__device__ __forceinline__ void pair_channels(const uint4& first, const uint4& second, uint32_t (&words)[8]) {
  const uint32_t a[4] = {first.x, first.y, first.z, first.w}, b[4] = {second.x, second.y, second.z, second.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    words[2 * i] = __byte_perm(a[i], b[i], 0x5410);
    words[2 * i + 1] = __byte_perm(a[i], b[i], 0x7632);
  }
}

// dW[k, c, r, s] for element e = k C R S + (c R + r) S + s of the split reduction, through w's strides.
template <typename T>
struct StoreFilters {
  T* w;
  int64_t ws[4];
  int crs, RS, S;
  __device__ __forceinline__ void operator()(int64_t e, float total) const {
    const int64_t k = e / crs;
    const int i = int(e - k * crs), c = i / RS, r = (i - c * RS) / S, s = i - c * RS - r * S;
    w[k * ws[0] + c * ws[1] + r * ws[2] + s * ws[3]] = from_acc<T>(total);
  }
};

template <typename T>
__global__ void __launch_bounds__(kThreads, 2)
    wgrad_kernel(const ConvParams p, const WgradShape sh, const SplitOutput<float, StoreFilters<T>> out) {
  using Cfg = WgradConfig<T>;
  pdl_launch_dependents();  // finish_splits may start its blocks (they wait for this grid to complete)
  extern __shared__ __align__(16) unsigned char im2col_smem[];
  uint32_t* a_w = reinterpret_cast<uint32_t*>(im2col_smem);                         // [kBN][kPitch]: dy^T
  uint32_t* b_w = reinterpret_cast<uint32_t*>(im2col_smem + Cfg::kABytes);          // [kKMax][kPitch]: X^T
  int4* table = reinterpret_cast<int4*>(im2col_smem + Cfg::kABytes + Cfg::kBBytes);  // [kKMax]
  const int tid = threadIdx.x, k0 = blockIdx.x * kBN;
  build_table(table, p, sh.crs);
  for (int i = tid; i < (Cfg::kABytes + Cfg::kBBytes) / 4; i += kThreads) a_w[i] = 0;  // rows never gathered stay 0
  __syncthreads();

  // The gathers' share of this thread: word column `col` (pixels kPerWord col ..), rows grp, grp + kGroups, ...
  const int col = tid % Cfg::kPixWords, grp = tid / Cfg::kPixWords;
  const Bits<T>* __restrict__ x = static_cast<const Bits<T>*>(p.x);
  const Bits<T>* __restrict__ dy = static_cast<const Bits<T>*>(p.y);
  const int H = int(p.H), W = int(p.W), K = int(p.K);
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int wm = warp % Cfg::kWarpsM, wn = warp / Cfg::kWarpsM;
  float acc[Cfg::kMTiles][Cfg::kNTiles][4] = {};

  const int tile_end = min(sh.m_tiles, int(blockIdx.y + 1) * sh.chunk);
  for (int tile = blockIdx.y * sh.chunk; tile < tile_end; ++tile) {
    Window<T> win[Cfg::kPerWord];
    int64_t at_dy[Cfg::kPerWord];  // the pixel's channel 0 in dy
    bool ok[Cfg::kPerWord];
#pragma unroll
    for (int e = 0; e < Cfg::kPerWord; ++e) {
      const Pixel px = pixel_at(tile * Cfg::kPT + col * Cfg::kPerWord + e, sh.M, sh.pq, int(p.Q));
      win[e] = window_of<T>(p, x, px);
      at_dy[e] = px.img * p.y_stride[0] + px.p * p.y_stride[2] + px.q * p.y_stride[3];
      ok[e] = px.ok;
    }
    // X^T: row crs, this thread's word of pixels, kBatch rows at a time (loads in flight together)
    for (int row0 = grp; row0 < sh.crs; row0 += Cfg::kBatch * Cfg::kGroups) {
      Bits<T> v[Cfg::kBatch][Cfg::kPerWord];
#pragma unroll
      for (int b = 0; b < Cfg::kBatch; ++b) {
        const int row = min(row0 + b * Cfg::kGroups, kKMax - 1);  // past crs: a zero entry
#pragma unroll
        for (int e = 0; e < Cfg::kPerWord; ++e) v[b][e] = tap_bits(win[e], table[row], H, W);
      }
#pragma unroll
      for (int b = 0; b < Cfg::kBatch; ++b)
        if (row0 + b * Cfg::kGroups < sh.crs) b_w[(row0 + b * Cfg::kGroups) * Cfg::kPitch + col] = pack_word<T>(v[b]);
    }
    // dy^T: row k (output channel k0 + k, zero past K), the same word of pixels; channels-last: 16-byte vectors of
    // channels, a vector of each pixel of the word
    constexpr int kVec = 16 / int(sizeof(T));
    for (int kg = grp; sh.dy_vec && kg < kBN / kVec; kg += Cfg::kGroups) {
      const int k = k0 + kg * kVec;
      uint4 v[Cfg::kPerWord];
#pragma unroll
      for (int e = 0; e < Cfg::kPerWord; ++e) {
        v[e] = make_uint4(0, 0, 0, 0);
        if (ok[e] && k < K) v[e] = __ldg(reinterpret_cast<const uint4*>(dy + at_dy[e] + k));
      }
      uint32_t* dst = a_w + kg * kVec * Cfg::kPitch + col;
      if constexpr (Cfg::kPerWord == 2) {
        uint32_t words[8];
        pair_channels(v[0], v[1], words);
#pragma unroll
        for (int i = 0; i < 8; ++i) dst[i * Cfg::kPitch] = words[i];
      } else {
        const uint32_t words[4] = {v[0].x, v[0].y, v[0].z, v[0].w};
#pragma unroll
        for (int i = 0; i < 4; ++i) dst[i * Cfg::kPitch] = words[i];
      }
    }
    for (int row0 = sh.dy_vec ? kBN : grp; row0 < kBN; row0 += Cfg::kBatch * Cfg::kGroups) {
      Bits<T> v[Cfg::kBatch][Cfg::kPerWord];
#pragma unroll
      for (int b = 0; b < Cfg::kBatch; ++b) {
        const int k = k0 + row0 + b * Cfg::kGroups;
#pragma unroll
        for (int e = 0; e < Cfg::kPerWord; ++e)
          v[b][e] = load_bits_or_zero(dy + (at_dy[e] + int64_t(k) * p.y_stride[1]),
                                      ok[e] && row0 + b * Cfg::kGroups < kBN && k < K);
      }
#pragma unroll
      for (int b = 0; b < Cfg::kBatch; ++b)
        if (row0 + b * Cfg::kGroups < kBN) a_w[(row0 + b * Cfg::kGroups) * Cfg::kPitch + col] = pack_word<T>(v[b]);
    }
    __syncthreads();  // the tile gathered

#pragma unroll
    for (int ks = 0; ks < Cfg::kSteps; ++ks) {
      const uint32_t* a_row = a_w + (wm * Cfg::kWarpM + g) * Cfg::kPitch + 8 * ks + t;
      const uint32_t* b_row = b_w + (wn * Cfg::kWarpN + g) * Cfg::kPitch + 8 * ks + t;
      uint32_t a[Cfg::kMTiles][4], bf[Cfg::kNTiles][2];
#pragma unroll
      for (int i = 0; i < Cfg::kMTiles; ++i) {
        a[i][0] = a_row[(i * 16) * Cfg::kPitch];
        a[i][1] = a_row[(i * 16 + 8) * Cfg::kPitch];
        a[i][2] = a_row[(i * 16) * Cfg::kPitch + 4];
        a[i][3] = a_row[(i * 16 + 8) * Cfg::kPitch + 4];
      }
#pragma unroll
      for (int j = 0; j < Cfg::kNTiles; ++j) {
        bf[j][0] = b_row[(j * 8) * Cfg::kPitch];
        bf[j][1] = b_row[(j * 8) * Cfg::kPitch + 4];
      }
#pragma unroll
      for (int i = 0; i < Cfg::kMTiles; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j) Mma<T>::run(acc[i][j], a[i], bf[j]);
    }
    __syncthreads();  // every warp's MMAs are done with the tile: the next gather may overwrite it
  }

  // This split's sums (zero for a split without tiles: an empty batch writes zeros): D[k][crs] with k < K, crs < C R S.
  for_each_mma_accumulator<Cfg>(acc, [&](int m, int n, float v) {
    if (k0 + m < K && n < sh.crs) out.put(int64_t(k0 + m) * sh.crs + n, v);
  });
}

// The split of the pixel tiles: as many splits as fill the SMs' CTA slots once (two a SM) for the tiles of output
// channels, each split at least 4 tiles; one split (and one CTA writing zeros) for an empty batch.
inline SplitPlan wgrad_plan(const ConvParams& p) {
  const int64_t m_tiles = (p.N * p.P * p.Q + 63) / 64, channel_tiles = (p.K + kBN - 1) / kBN;
  const int64_t wanted = std::max<int64_t>(1, 2 * int64_t(num_sms()) / channel_tiles);
  if (m_tiles == 0) return SplitPlan{1, 0};
  const int64_t splits = std::max<int64_t>(1, std::min({wanted, m_tiles / 4, int64_t(65535)}));
  const int64_t chunk = (m_tiles + splits - 1) / splits;
  return SplitPlan{(m_tiles + chunk - 1) / chunk, chunk};  // no split left without tiles
}

inline int64_t wgrad_workspace(const ConvParams& p) {
  return split_workspace_bytes(wgrad_plan(p), p.K * p.C * p.R * p.S, p.dtype);
}

// Why it cannot run the backward-weight of p, or "".
inline std::string wgrad_can_implement(const ConvParams& p) {
  std::string why = im2col_reason(p);
  if (!why.empty()) return why;
  const int64_t smem = p.dtype == DType::kFloat32 ? WgradConfig<float>::kSmem : WgradConfig<__half>::kSmem;
  if (smem > max_shared_memory_per_block(p.sm)) return "its tiles need more shared memory than this GPU gives a block";
  return "";
}

template <typename T>
void wgrad_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  using Cfg = WgradConfig<T>;
  constexpr auto kernel = wgrad_kernel<T>;
  opt_in_shared_memory<kernel>(Cfg::kSmem);
  const SplitPlan plan = wgrad_plan(p);
  const int crs = int(p.C * p.R * p.S);
  const int64_t M = p.N * p.P * p.Q;
  const WgradShape sh{crs, int((M + Cfg::kPT - 1) / Cfg::kPT), int(plan.chunk), int(p.P * p.Q), int(M),
                      dy_channel_vectors<T>(p)};
  const StoreFilters<T> store{static_cast<T*>(p.w), {p.w_stride[0], p.w_stride[1], p.w_stride[2], p.w_stride[3]},
                              crs, int(p.R * p.S), int(p.S)};
  const auto out = split_output<float>(plan, p.K * crs, workspace, store);
  const dim3 grid(unsigned((p.K + kBN - 1) / kBN), unsigned(plan.splits));
  kernel<<<grid, kThreads, Cfg::kSmem, stream>>>(p, sh, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  finish_splits(out, plan, stream);
}

// ---- Backward-data.
//
// dx = col2im(Z), Z = dy W: Z[output pixel][crs] = sum over the K output channels of dy[pixel][k] W[k][crs], and
// dx[c, h, w] = sum over the taps (r, s) that reach it from an output pixel (p, q) (h + ph - r dh = p sh, likewise w)
// of Z[(p, q)][(c, r, s)]. A CTA owns a tile of dx (kept by one image: th rows x tw columns, every channel) and
// computes Z for the rectangle of output pixels whose taps reach it (at most kOM: dgrad_tiles), one input channel a
// pass (N = its R S taps, at most 64; the reduction = K <= 64 output channels, one k-step run), then sums each dx
// element's taps from Z in shared memory and stores it: every dx element written once, no atomics (deterministic).
// The words: A = dy as words of two output channels (one in TF32) by output pixel (the forward's A layout), B = W as
// words of two output channels by crs (staged once per CTA).
template <typename T>
struct DgradConfig {
  static constexpr int kOM = 128;                  // output pixels of a tile's rectangle, at most
  static constexpr int kKRed = 64;                 // output channels (the reduction), at most
  static constexpr int kPerWord = 4 / int(sizeof(T)), kRedWords = kKRed / kPerWord;
  static constexpr int kAPitch = kOM + 8;          // words: A fragments' lanes take row t, column g (8 mod 32)
  // a pass reads the n8 blocks of one channel's R S columns from c R S on: at most column C R S + 6, inside the
  // row (session 37: the staging was kKMax + 64 columns wide, which kept TF32 at one CTA a SM)
  static constexpr int kBCols = kKMax;
  static constexpr int kBPitch = kBCols + 8;
  static constexpr int kZPitch = 64 + 8;           // floats: its float2 stores (row g, column 2t) conflict-free
  static constexpr int kWarpsM = 8, kWarpsN = 1, kWarpM = kOM / kWarpsM, kWarpN = 64;
  static constexpr int kMTiles = kWarpM / 16, kNTiles = kWarpN / 8;
  static constexpr int kMaxPhase = 8, kMaxTaps = 16;  // strides and filter sizes (can_implement)
  static constexpr int kBatch = 8;
  static_assert(kAPitch % 32 == 8 && kBPitch % 32 == 8, "conflict-free fragments");
  static constexpr int kABytes = kRedWords * kAPitch * 4, kBBytes = kRedWords * kBPitch * 4;
  static constexpr int kZBytes = kOM * kZPitch * 4;
  static constexpr int kTapBytes = 2 * kMaxTaps * 8 + 2 * (kMaxPhase + 1) * 4;  // a tap is in one phase
  static constexpr int kSmem = kABytes + kBBytes + kZBytes + kTapBytes;
  // two CTAs a SM (sm_90: 228 KB, 1 KB reserved a block): TF32 115,016 bytes, 16-bit 76,104
  static_assert(2 * (kSmem + 1024) <= 228 * 1024, "two CTAs a SM");
};

// A tile of dx (rows x columns of one image) and the launch's tile grid.
struct DgradShape {
  int th, tw, h_tiles, w_tiles, tiles;
  int k_steps;          // MMA steps over the K output channels
  bool dy_vec = false;  // dy's channels read as 16-byte vectors (dy_channel_vectors' conditions)
};

// The tile of dx a CTA takes for a problem: as many dx pixels as possible (then the smaller rectangle, then the
// wider tile: longer NCHW runs) with at most kOM output pixels reaching it (a rectangle of at most
// (t - 1 + (R - 1) dil) / stride + 1 rows, and at most P, likewise columns). {0, 0} if even one pixel's rectangle is
// larger (can_implement refuses).
inline std::pair<int, int> dgrad_tiles(const ConvParams& p, int om) {
  auto extent = [](int64_t t, int64_t taps, int64_t dil, int64_t stride, int64_t out) {
    return std::min<int64_t>(out, (t - 1 + (taps - 1) * dil) / stride + 1);
  };
  std::pair<int, int> best{0, 0};
  int64_t best_rect = 0;
  for (int th : {16, 8, 4, 2, 1})
    for (int tw : {64, 48, 32, 24, 16, 8, 4, 2, 1}) {
      const int h = int(std::min<int64_t>(th, p.H)), w = int(std::min<int64_t>(tw, p.W));
      const int64_t rect = extent(h, p.R, p.dil_h, p.stride_h, p.P) * extent(w, p.S, p.dil_w, p.stride_w, p.Q);
      if (rect > om) continue;
      const int64_t px = int64_t(h) * w, best_px = int64_t(best.first) * best.second;
      if (px > best_px || (px == best_px && (rect < best_rect || (rect == best_rect && w > best.second))))
        best = {h, w}, best_rect = rect;
    }
  return best;
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 2) dgrad_kernel(const ConvParams p, const DgradShape sh) {
  using Cfg = DgradConfig<T>;
  extern __shared__ __align__(16) unsigned char im2col_smem[];
  uint32_t* a_w = reinterpret_cast<uint32_t*>(im2col_smem);                                 // [kRedWords][kAPitch]
  uint32_t* b_w = reinterpret_cast<uint32_t*>(im2col_smem + Cfg::kABytes);                  // [kRedWords][kBPitch]
  float* z = reinterpret_cast<float*>(im2col_smem + Cfg::kABytes + Cfg::kBBytes);           // [kOM][kZPitch]
  int2* row_taps = reinterpret_cast<int2*>(im2col_smem + Cfg::kABytes + Cfg::kBBytes + Cfg::kZBytes);
  int2* col_taps = row_taps + Cfg::kMaxTaps;  // [i] = {tap, output rows back}, grouped by phase
  int* row_start = reinterpret_cast<int*>(col_taps + Cfg::kMaxTaps);  // phase ph's taps: start[ph] .. start[ph + 1]
  int* col_start = row_start + Cfg::kMaxPhase + 1;
  const int tid = threadIdx.x;
  const int R = int(p.R), S = int(p.S), RS = R * S, C = int(p.C), K = int(p.K), P = int(p.P), Q = int(p.Q);
  const int H = int(p.H), W = int(p.W), crs = C * RS;

  // Once per CTA. The taps by phase: input row h with (h + pad_h) % stride_h = phase is reached by tap r (r dil_h
  // = phase mod stride_h) from output row (h + pad_h) / stride_h - back, back = (r dil_h - phase) / stride_h.
  if (tid < 2) {
    const bool rows = tid == 0;
    const int stride = rows ? p.stride_h : p.stride_w, dil = rows ? p.dil_h : p.dil_w, taps = rows ? R : S;
    int2* list = rows ? row_taps : col_taps;
    int* start = rows ? row_start : col_start;
    int n = 0;
    for (int phase = 0; phase < Cfg::kMaxPhase; ++phase) {
      start[phase] = n;
      if (phase < stride)
        for (int r = 0; r < taps; ++r)
          if ((r * dil) % stride == phase) list[n++] = make_int2(r, (r * dil - phase) / stride);
    }
    start[Cfg::kMaxPhase] = n;
  }
  // The filters as words of output channels by crs (zero past K and past C R S), for every pass.
  const Bits<T>* __restrict__ w = static_cast<const Bits<T>*>(p.w);
  for (int i = tid; i < Cfg::kRedWords * Cfg::kBPitch; i += kThreads) {
    const int j = i / Cfg::kBPitch, n = i - j * Cfg::kBPitch;
    Bits<T> v[Cfg::kPerWord];
#pragma unroll
    for (int e = 0; e < Cfg::kPerWord; ++e) {
      const int k = j * Cfg::kPerWord + e;
      const int c = n / RS, r = (n - c * RS) / S, s = n - c * RS - r * S;
      v[e] = n < crs && k < K ? w[k * p.w_stride[0] + c * p.w_stride[1] + r * p.w_stride[2] + s * p.w_stride[3]] : 0;
    }
    b_w[i] = pack_word<T>(v);
  }
  __syncthreads();

  const Bits<T>* __restrict__ dy = static_cast<const Bits<T>*>(p.y);
  T* __restrict__ dx = static_cast<T*>(p.x);
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int m = tid % Cfg::kOM, part = tid / Cfg::kOM;  // the gather: output pixel m, word rows part, part + 2, ...
  for (int tile = blockIdx.x; tile < sh.tiles; tile += gridDim.x) {
    const int img = tile / (sh.h_tiles * sh.w_tiles), rest = tile - img * (sh.h_tiles * sh.w_tiles);
    const int h0 = (rest / sh.w_tiles) * sh.th, w0 = (rest % sh.w_tiles) * sh.tw;
    // The rectangle of output pixels reaching the tile: rows p_lo .. p_hi, columns q_lo .. q_hi (empty: none).
    auto first = [](int a, int stride) { return a >= 0 ? (a + stride - 1) / stride : -((-a) / stride); };  // ceil
    const int p_lo = max(0, first(h0 + p.pad_h - (R - 1) * p.dil_h, p.stride_h));
    const int p_hi = min(P - 1, (min(h0 + sh.th, H) - 1 + p.pad_h) / p.stride_h);
    const int q_lo = max(0, first(w0 + p.pad_w - (S - 1) * p.dil_w, p.stride_w));
    const int q_hi = min(Q - 1, (min(w0 + sh.tw, W) - 1 + p.pad_w) / p.stride_w);
    const int cols = max(0, q_hi - q_lo + 1), pixels = max(0, p_hi - p_lo + 1) * cols;  // <= kOM (dgrad_tiles)

    // A: dy of output pixel m of the rectangle (zero past it), words of output channels.
    {
      const bool ok = m < pixels;
      const int pp = ok ? p_lo + m / cols : 0, q = ok ? q_lo + m % cols : 0;
      const int64_t at = img * p.y_stride[0] + pp * p.y_stride[2] + q * p.y_stride[3];
      if (sh.dy_vec) {  // channels-last: a pixel's channels as 16-byte vectors of 4 words, the parts alternating
        constexpr int kVecs = Cfg::kRedWords / 4;
#pragma unroll
        for (int i = 0; i < kVecs / 2; ++i) {
          const int j0 = 4 * (2 * i + part), k = j0 * Cfg::kPerWord;
          uint4 v = make_uint4(0, 0, 0, 0);
          if (ok && k < K) v = __ldg(reinterpret_cast<const uint4*>(dy + at + k));
          a_w[j0 * Cfg::kAPitch + m] = v.x;
          a_w[(j0 + 1) * Cfg::kAPitch + m] = v.y;
          a_w[(j0 + 2) * Cfg::kAPitch + m] = v.z;
          a_w[(j0 + 3) * Cfg::kAPitch + m] = v.w;
        }
      }
      for (int j0 = sh.dy_vec ? Cfg::kRedWords : part * Cfg::kBatch; j0 < Cfg::kRedWords; j0 += 2 * Cfg::kBatch) {
        Bits<T> v[Cfg::kBatch][Cfg::kPerWord];
#pragma unroll
        for (int b = 0; b < Cfg::kBatch; ++b)
#pragma unroll
          for (int e = 0; e < Cfg::kPerWord; ++e) {
            const int k = (j0 + b) * Cfg::kPerWord + e;
            v[b][e] = load_bits_or_zero(dy + (at + int64_t(k) * p.y_stride[1]), ok && k < K);
          }
#pragma unroll
        for (int b = 0; b < Cfg::kBatch; ++b) a_w[(j0 + b) * Cfg::kAPitch + m] = pack_word<T>(v[b]);
      }
    }
    __syncthreads();  // the tile's dy gathered

    for (int c = 0; c < C; ++c) {
      // Z for channel c: columns c R S .. c R S + 63 of the GEMM (those past R S unused).
      float acc[Cfg::kMTiles][Cfg::kNTiles][4] = {};
      for (int ks = 0; ks < sh.k_steps; ++ks)  // the n8 blocks holding the channel's taps only
        word_mma_step<T, Cfg>(acc, a_w + (8 * ks + t) * Cfg::kAPitch + warp * Cfg::kWarpM + g,
                              b_w + (8 * ks + t) * Cfg::kBPitch + c * RS + g, (RS + 7) / 8);
      for_each_mma_accumulator<Cfg>(acc, [&](int zm, int zn, float v) {
        if (zn < RS) z[zm * Cfg::kZPitch + zn] = v;
      });
      __syncthreads();  // Z of channel c complete

      // dx[c, h, w] = the sum of its taps' Z (the rectangle holds every output pixel that reaches the tile)
      for (int u = tid; u < sh.th * sh.tw; u += kThreads) {
        const int h = h0 + u / sh.tw, x = w0 + u % sh.tw;
        if (h >= H || x >= W) continue;
        const int hp = h + p.pad_h, xp = x + p.pad_w;
        const int ph = hp % p.stride_h, pw = xp % p.stride_w, p_top = hp / p.stride_h, q_top = xp / p.stride_w;
        float sum = 0.f;
        for (int i = row_start[ph]; i < row_start[ph + 1]; ++i) {
          const int2 rt = row_taps[i];
          const int pp = p_top - rt.y;
          if (pp < 0 || pp >= P) continue;
          const float* z_row = z + (pp - p_lo) * cols * Cfg::kZPitch + rt.x * S;
          for (int jj = col_start[pw]; jj < col_start[pw + 1]; ++jj) {
            const int2 st = col_taps[jj];
            const int q = q_top - st.y;
            if (q < 0 || q >= Q) continue;
            sum += z_row[(q - q_lo) * Cfg::kZPitch + st.x];
          }
        }
        dx[img * p.x_stride[0] + c * p.x_stride[1] + int64_t(h) * p.x_stride[2] + int64_t(x) * p.x_stride[3]] =
            from_acc<T>(sum);
      }
      __syncthreads();  // Z read: the next channel's (or tile's) may overwrite it, and the next tile's dy the A tile
    }
  }
}

// Why it cannot run the backward-data of p, or "".
inline std::string dgrad_can_implement(const ConvParams& p) {
  std::string why = im2col_reason(p);
  if (!why.empty()) return why;
  if (p.K > DgradConfig<float>::kKRed) return "more than 64 output channels (its reduction is one k-step run)";
  if (p.R * p.S > 64) return "filters of more than 64 taps (a pass's 64 columns)";
  if (p.R > DgradConfig<float>::kMaxTaps || p.S > DgradConfig<float>::kMaxTaps) return "filters wider than 16 taps";
  if (p.stride_h > DgradConfig<float>::kMaxPhase || p.stride_w > DgradConfig<float>::kMaxPhase)
    return "strides above 8";
  if (dgrad_tiles(p, DgradConfig<float>::kOM).first == 0) return "a pixel's taps reach more than 128 output pixels";
  const int64_t smem = p.dtype == DType::kFloat32 ? DgradConfig<float>::kSmem : DgradConfig<__half>::kSmem;
  if (smem > max_shared_memory_per_block(p.sm)) return "its tiles need more shared memory than this GPU gives a block";
  if (p.N * p.H * p.W >= (int64_t(1) << 31) - 1024) return "2^31 or more input pixels";
  return "";
}

template <typename T>
void dgrad_launch_typed(const ConvParams& p, cudaStream_t stream) {
  using Cfg = DgradConfig<T>;
  constexpr auto kernel = dgrad_kernel<T>;
  opt_in_shared_memory<kernel>(Cfg::kSmem);
  const auto [th, tw] = dgrad_tiles(p, Cfg::kOM);
  const int h_tiles = int((p.H + th - 1) / th), w_tiles = int((p.W + tw - 1) / tw);
  const int step = 8 * Cfg::kPerWord;  // output channels a step: 16 (16-bit), 8 (TF32)
  const DgradShape sh{th, tw, h_tiles, w_tiles, int(p.N) * h_tiles * w_tiles, int((p.K + step - 1) / step),
                      dy_channel_vectors<T>(p)};
  const dim3 grid(unsigned(std::min<int64_t>(sh.tiles, ctas_per_channel_tile<kernel>(Cfg::kSmem, 1))));
  kernel<<<grid, kThreads, Cfg::kSmem, stream>>>(p, sh);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace im2col
}  // namespace igemm
}  // namespace conv2d_ext
