// Forward implicit GEMM for short reductions (configuration im2col): first layers (r50_conv1: C = 3, 7x7 at stride 2,
// a reduction of C R S = 147 elements) and any other ungrouped convolution whose whole reduction fits one tile
// (C R S <= 160), on mma.sync (fp16/bf16 m16n8k16, fp32 as TF32 m16n8k8), sm_80+, any input layout or strides.
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
// Tiles: kBM pixels (flattened over N x P x Q: no tile shape wastes rows) x 64 output channels, 8 warps of 32 x kWarpN
// (kBM = 128 for 16-bit, 64 for TF32, whose words hold half the reduction), two CTAs per SM. Per tile: gather,
// barrier, MMAs, then the implicit-GEMM epilogue (store_tile: staged along the output's contiguous dimension, a
// barrier, coalesced runs). Written in session 24 with no device: EXPERIMENTAL, registered but picked by no
// heuristic rule, and refused unless CONV2D_EXT_IM2COL=1, until run (variant="implicit_gemm:im2col").
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>

#include "common/conv_params.h"
#include "common/dtype.cuh"
#include "common/launch.cuh"
#include "common/mma.cuh"
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
  static constexpr int kPerWord = 4 / int(sizeof(T)), kWords = kKMax / kPerWord;
  static constexpr int kBM = sizeof(T) == 2 ? 128 : 64;
  static constexpr int kWarpsM = kBM / 32, kWarpsN = 8 / kWarpsM, kWarpM = 32, kWarpN = kBN / kWarpsN;
  static constexpr int kMTiles = 2, kNTiles = kWarpN / 8;  // m16 and n8 blocks of a warp
  static constexpr int kAPitch = kBM + 8, kBPitch = kBN + 8;
  static constexpr int kRowThreads = kThreads / kBM;  // the gather: threads per pixel row
  static constexpr int kBatch = 8;  // words a thread gathers before it stores them (their loads in flight together)
  static_assert(kAPitch % 32 == 8 && kBPitch % 32 == 8, "conflict-free fragments");
  static_assert(kWords % kBatch == 0, "whole batches");
  static constexpr int E = 16 / int(sizeof(T));
  static constexpr int kStageBytes = (kBN * (kBM + E) > kBM * (kBN + E) ? kBN * (kBM + E) : kBM * (kBN + E)) * int(sizeof(T));
  static constexpr int kABytes = kWords * kAPitch * 4, kBBytes = kWords * kBPitch * 4, kTableBytes = kKMax * 16;
  static constexpr int kSmem = kABytes + kBBytes + kStageBytes + kTableBytes;
};

// A warp's accumulators: kMTiles x kNTiles blocks of m16n8 (store_tile reads them through for_each_accumulator).
template <typename T>
struct Accumulators {
  float acc[Config<T>::kMTiles][Config<T>::kNTiles][4];
};

template <typename T, typename F>
__device__ __forceinline__ void for_each_accumulator(const Accumulators<T>& a, F&& f) {
  using Cfg = Config<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp % Cfg::kWarpsM, wn = warp / Cfg::kWarpsM;
#pragma unroll
  for (int i = 0; i < Cfg::kMTiles; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        f(wm * Cfg::kWarpM + i * 16 + lane / 4 + (e / 2) * 8, wn * Cfg::kWarpN + j * 8 + (lane % 4) * 2 + e % 2,
          a.acc[i][j][e]);
}

// What the kernel needs besides p: the reduction's length and its k-steps, pixel tiles, the output's pixels per image.
struct Shape {
  int crs, k_steps, m_tiles, pq, M;
};

// Raw bits of a T (16-bit: the low half of a word).
template <typename T> using Bits = std::conditional_t<sizeof(T) == 2, uint16_t, uint32_t>;

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

  // Once per CTA: the table, the filters' words (zero past C R S and past K), the A tile zeroed (word rows past the
  // reduction stay zero).
  for (int k = tid; k < kKMax; k += kThreads) {
    int4 e = make_int4(0, kFar, 0, 0);
    if (k < sh.crs) {
      const int c = k / RS, r = (k - c * RS) / S, s = k - c * RS - r * S;
      e = make_int4(int(c * p.x_stride[1] + int64_t(r) * p.dil_h * p.x_stride[2] + int64_t(s) * p.dil_w * p.x_stride[3]),
                    r * p.dil_h, s * p.dil_w, 0);
    }
    table[k] = e;
  }
  const Bits<T>* __restrict__ w = static_cast<const Bits<T>*>(p.w);
  for (int i = tid; i < Cfg::kWords * kBN; i += kThreads) {
    const int j = i / kBN, n = i - j * kBN;
    uint32_t word = 0;
#pragma unroll
    for (int e = 0; e < Cfg::kPerWord; ++e) {
      const int k = j * Cfg::kPerWord + e;
      if (k < sh.crs && k0 + n < p.K) {
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
    // This thread's pixel: its window's top-left corner (hb, wb); a pixel past M reads nothing (its row stays
    // unused: store_tile skips it).
    const int gm = tile * Cfg::kBM + m;
    int hb = kFar, wb = 0, rel = 0;  // rel: the corner's offset in its image (32-bit: can_implement)
    const Bits<T>* image = x;
    if (gm < sh.M) {
      const int img = gm / sh.pq, pq = gm - img * sh.pq, pp = pq / int(p.Q), q = pq - pp * int(p.Q);
      hb = pp * p.stride_h - p.pad_h, wb = q * p.stride_w - p.pad_w;
      image = x + img * p.x_stride[0];
      rel = int(hb * p.x_stride[2] + wb * p.x_stride[3]);
    }
    for (int batch = part; batch < batches; batch += Cfg::kRowThreads) {
      const int j = batch * Cfg::kBatch;  // kBatch words: every load issued (predicated off outside the input: zero), then packed and stored.
      Bits<T> v[Cfg::kBatch][Cfg::kPerWord];
#pragma unroll
      for (int b = 0; b < Cfg::kBatch; ++b)
#pragma unroll
        for (int e = 0; e < Cfg::kPerWord; ++e) {
          const int4 at = table[(j + b) * Cfg::kPerWord + e];
          const bool ok = unsigned(hb + at.y) < unsigned(H) && unsigned(wb + at.z) < unsigned(W);
          v[b][e] = load_bits_or_zero(image + (rel + at.x), ok);
        }
#pragma unroll
      for (int b = 0; b < Cfg::kBatch; ++b) {
        uint32_t word = 0;
#pragma unroll
        for (int e = 0; e < Cfg::kPerWord; ++e) word |= uint32_t(v[b][e]) << (16 * e);
        a_w[(j + b) * Cfg::kAPitch + m] = word;
      }
    }
    __syncthreads();  // the tile gathered

    Accumulators<T> d;
#pragma unroll
    for (int i = 0; i < Cfg::kMTiles; ++i)
#pragma unroll
      for (int jn = 0; jn < Cfg::kNTiles; ++jn)
#pragma unroll
        for (int e = 0; e < 4; ++e) d.acc[i][jn][e] = 0.f;
    for (int ks = 0; ks < sh.k_steps; ++ks) {
      const uint32_t* a_row = a_w + (8 * ks + t) * Cfg::kAPitch + wm * Cfg::kWarpM + g;
      const uint32_t* b_row = b_w + (8 * ks + t) * Cfg::kBPitch + wn * Cfg::kWarpN + g;
      uint32_t a[Cfg::kMTiles][4], bf[Cfg::kNTiles][2];
#pragma unroll
      for (int i = 0; i < Cfg::kMTiles; ++i) {
        a[i][0] = a_row[i * 16];
        a[i][1] = a_row[i * 16 + 8];
        a[i][2] = a_row[4 * Cfg::kAPitch + i * 16];
        a[i][3] = a_row[4 * Cfg::kAPitch + i * 16 + 8];
      }
#pragma unroll
      for (int jn = 0; jn < Cfg::kNTiles; ++jn) {
        bf[jn][0] = b_row[jn * 8];
        bf[jn][1] = b_row[4 * Cfg::kBPitch + jn * 8];
      }
#pragma unroll
      for (int i = 0; i < Cfg::kMTiles; ++i)
#pragma unroll
        for (int jn = 0; jn < Cfg::kNTiles; ++jn) Mma<T>::run(d.acc[i][jn], a[i], bf[jn]);
    }
    // Staged, a barrier (every warp's MMAs are done with the A tile: the next gather may overwrite it), stored.
    store_tile<T, Cfg, kOutNHWC>(stage, d, static_cast<T*>(p.y), bias, int64_t(tile) * Cfg::kBM, k0, sh.M, int(p.K),
                                 p.K, sh.pq, 0);
  }
}

// Why it cannot run the forward of p, or "".
inline std::string can_implement(const ConvParams& p) {
  const char* env = std::getenv("CONV2D_EXT_IM2COL");
  if (env == nullptr || env[0] != '1') return "experimental, never run yet: set CONV2D_EXT_IM2COL=1 to use it";
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
  std::string why = dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");
  if (!why.empty()) return why;
  const int64_t smem = p.dtype == DType::kFloat32 ? Config<float>::kSmem : Config<__half>::kSmem;
  if (smem > max_shared_memory_per_block(p.sm)) return "its tiles need more shared memory than this GPU gives a block";
  if ((p.K + kBN - 1) / kBN > 65535) return "more than 65535 tiles of output channels";
  return "";
}

template <typename T, bool kOutNHWC>
void launch_typed(const ConvParams& p, cudaStream_t stream) {
  using Cfg = Config<T>;
  constexpr auto kernel = forward_kernel<T, kOutNHWC>;
  opt_in_shared_memory<kernel>(Cfg::kSmem);
  const int crs = int(p.C * p.R * p.S), step = 8 * Cfg::kPerWord;  // k per mma step: 16 (16-bit), 8 (TF32)
  const int64_t M = p.N * p.P * p.Q;
  const Shape sh{crs, (crs + step - 1) / step, int((M + Cfg::kBM - 1) / Cfg::kBM), int(p.P * p.Q), int(M)};
  const unsigned channel_tiles = unsigned((p.K + kBN - 1) / kBN);
  // Persistent: each CTA stages its filters once and walks pixel tiles; as many CTAs as the SMs hold (two on sm_90,
  // one where its shared memory allows only one). CONV2D_EXT_IM2COL_CTAS caps them (tests: several tiles a CTA).
  static std::once_flag once[kMaxDevices];
  static int resident[kMaxDevices];
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  std::call_once(once[device], [&] {
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident[device], kernel, kThreads, Cfg::kSmem));
  });
  int64_t ctas = std::max<int64_t>(1, std::max(1, resident[device]) * int64_t(num_sms()) / channel_tiles);
  if (const char* cap = std::getenv("CONV2D_EXT_IM2COL_CTAS")) ctas = std::max<int64_t>(1, std::min<int64_t>(ctas, std::atoll(cap)));
  const dim3 grid(unsigned(std::min<int64_t>(sh.m_tiles, ctas)), channel_tiles);
  kernel<<<grid, kThreads, Cfg::kSmem, stream>>>(p, sh);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

inline void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) {
  if (p.N * p.P * p.Q == 0 || p.K == 0) return;
  dispatch_float_dtype(p.dtype, "implicit_gemm im2col", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.channels_last) launch_typed<T, true>(p, stream);
    else launch_typed<T, false>(p, stream);
  });
}

}  // namespace im2col
}  // namespace igemm
}  // namespace conv2d_ext
