// Tiled family, configuration depthwise_vec: channels-last depthwise forward and stride-1 backward-data for 3x3, 5x5
// and 7x7 filters at stride 1 and dilation 1, channel multiplier 1, channels in 16-byte vectors.
//
// In channels-last memory a pixel's channels are contiguous, so a thread can own one 16-byte vector of channels (4
// fp32 or 8 fp16/bf16) for a strip of kTQ neighbouring output pixels of one row and read its inputs straight from
// global memory: per filter row, the kTQ + S - 1 input vectors of the strip, each used by every tap and output that
// meets it (registers), their neighbours' re-reads served by L1 and L2. A warp's loads are 32 consecutive vectors
// (coalesced); no shared-memory tile, no block barrier per tile, few instructions per output: 16-byte loads and
// stores, FP32 FFMA, the filter (fp32, [tap][channel]) in shared memory, staged once per block. depthwise.cuh's
// shared-memory tiles stay for NCHW, strides, dilations, other filters and channel multipliers, and for
// backward-weight.
//
// Backward-data at stride 1 is the forward of grad_output with the flipped filter and padding R - 1 - pad (a
// correlation), as in depthwise.cuh.
//
// Grid: x over a row's (strip, channel vector) items, channel vectors fastest; y over output rows (n, row), each
// block walking a contiguous run of about kRowsPerBlock rows (the filter rows it shares with the previous row are
// L1 hits: session 10; before, rows blockIdx.y, blockIdx.y + gridDim.y, ... read every input row R times from L2).
#pragma once

#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>

#include "common/conv_params.h"
#include "common/dtype.cuh"
#include "common/launch.cuh"
#include "tiled/depthwise.cuh"

namespace conv2d_ext {
namespace dwv {

constexpr int kThreads = 256;
constexpr int kMinBlocks = 2;                          // blocks per SM the registers must allow (<= 128 each)
constexpr int64_t kMaxFilterSmem = 96 * 1024;          // the fp32 filter of every channel, in shared memory
constexpr int kRowsPerBlock = 4;                       // output rows a block walks (about)

// Output pixels per thread: 4, or 2 for 16-bit types with 5x5 / 7x7 filters (their input strips, converted to fp32,
// would not fit the register budget).
template <typename T, int kS> struct StripOf { static constexpr int value = sizeof(T) == 2 && kS > 3 ? 2 : 4; };

// Forward (kDgrad false: x -> y) or stride-1 backward-data (grad_output -> grad_input) of a kR x kS depthwise
// convolution, channel multiplier 1, NHWC.
template <typename T, int kR, int kS, bool kDgrad>
__global__ void __launch_bounds__(kThreads, kMinBlocks) conv_kernel(const ConvParams p, int strips) {
  constexpr int V = Vec16<T>::value, kTQ = StripOf<T, kS>::value, kIn = kTQ + kS - 1;
  // Filter rows unrolled (their loads in flight together), but one at a time for 7x7 (spills otherwise).
  constexpr int kRowUnroll = kR == 7 ? 1 : kR;
  extern __shared__ __align__(16) float wsm[];  // [r][s][c], flipped for backward-data
  const int C = static_cast<int>(p.C), vectors = C / V;
  const T* __restrict__ w = static_cast<const T*>(p.w);
  for (int e = threadIdx.x; e < kR * kS * C; e += blockDim.x) {
    const int rs = e / C, c = e - rs * C, r = rs / kS, s = rs - r * kS;
    const int fr = kDgrad ? kR - 1 - r : r, fs = kDgrad ? kS - 1 - s : s;
    wsm[e] = to_acc(w[c * p.w_stride[0] + fr * p.w_stride[2] + fs * p.w_stride[3]]);
  }
  __syncthreads();

  const int item = blockIdx.x * kThreads + threadIdx.x;
  if (item >= strips * vectors) return;  // no barrier below
  const int strip = item / vectors, c0 = (item - strip * vectors) * V, q0 = strip * kTQ;
  const T* __restrict__ src = static_cast<const T*>(kDgrad ? p.y : p.x);
  T* __restrict__ dst = static_cast<T*>(kDgrad ? p.x : p.y);
  const int in_rows = static_cast<int>(kDgrad ? p.P : p.H), in_cols = static_cast<int>(kDgrad ? p.Q : p.W);
  const int out_rows = static_cast<int>(kDgrad ? p.H : p.P), out_cols = static_cast<int>(kDgrad ? p.W : p.Q);
  const int pad_h = kDgrad ? kR - 1 - p.pad_h : p.pad_h, pad_w = kDgrad ? kS - 1 - p.pad_w : p.pad_w;
  float bias[V];
#pragma unroll
  for (int v = 0; v < V; ++v) bias[v] = 0.0f;
  if (!kDgrad && p.bias != nullptr) {
#pragma unroll
    for (int v = 0; v < V; ++v) bias[v] = to_acc(static_cast<const T*>(p.bias)[c0 + v]);
  }

  // This block's output rows: a contiguous run (about kRowsPerBlock), so that the input rows a row shares with the
  // next (all but one per filter row) are still in L1 when that row reads them.
  const int64_t rows = p.N * out_rows, run = (rows + gridDim.y - 1) / gridDim.y;
  const int64_t first = blockIdx.y * run, last = min(rows, first + run);
  for (int64_t row = first; row < last; ++row) {
    const int64_t n = row / out_rows;
    const int oh = static_cast<int>(row - n * out_rows);
    float acc[kTQ][V];
#pragma unroll
    for (int t = 0; t < kTQ; ++t)
#pragma unroll
      for (int v = 0; v < V; ++v) acc[t][v] = bias[v];
#pragma unroll kRowUnroll
    for (int r = 0; r < kR; ++r) {
      const int h = oh - pad_h + r;
      if (h < 0 || h >= in_rows) continue;
      const T* line = src + (n * in_rows + h) * int64_t(in_cols) * C + c0;
      float in[kIn][V];
#pragma unroll
      for (int j = 0; j < kIn; ++j) {
        const int col = q0 - pad_w + j;
        if (col >= 0 && col < in_cols) {
          load_floats<T>(line + int64_t(col) * C, in[j]);
        } else {
#pragma unroll
          for (int v = 0; v < V; ++v) in[j][v] = 0.0f;
        }
      }
#pragma unroll
      for (int s = 0; s < kS; ++s) {
        float wk[V];
        const float4* wv = reinterpret_cast<const float4*>(wsm + (r * kS + s) * C + c0);
#pragma unroll
        for (int i = 0; i < V / 4; ++i) {
          const float4 f = wv[i];
          wk[4 * i] = f.x, wk[4 * i + 1] = f.y, wk[4 * i + 2] = f.z, wk[4 * i + 3] = f.w;
        }
#pragma unroll
        for (int t = 0; t < kTQ; ++t)
#pragma unroll
          for (int v = 0; v < V; ++v) acc[t][v] = fmaf(wk[v], in[t + s][v], acc[t][v]);
      }
    }
    T* out = dst + ((n * out_rows + oh) * int64_t(out_cols) + q0) * C + c0;
#pragma unroll
    for (int t = 0; t < kTQ; ++t)
      if (q0 + t < out_cols) store_floats<T>(out + int64_t(t) * C, acc[t]);
  }
}

// Why it cannot run the forward (kDgrad false) or backward-data of `p`, or "".
inline std::string can_implement(const ConvParams& p, bool dgrad) {
  if (p.groups != p.C || p.K != p.C) return "depthwise with channel multiplier 1 only";
  if (!p.channels_last) return "channels-last tensors only (NCHW runs tiled:depthwise)";
  if (p.dtype == DType::kFloat64) return "float64 runs on the direct family";
  if (p.sm < 80) return "needs compute capability 8.0 or newer";
  if (p.R != p.S || (p.R != 3 && p.R != 5 && p.R != 7)) return "3x3, 5x5 and 7x7 filters only";
  if (p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1) return "stride 1 and dilation 1 only";
  const int V = p.dtype == DType::kFloat32 ? 4 : 8;
  if (p.C % V != 0) return "channels must fill 16-byte vectors";
  // Activations not 16-byte aligned (a view at an odd offset) run on depthwise.cuh's tiles, which must take them.
  std::string why = dw::can_implement(p, dgrad ? dw::Role::kBackwardData : dw::Role::kForward);
  if (!why.empty()) return why;
  why = dw::dense_reason(p, p.x_stride, p.C, p.H, p.W, "the input");
  if (why.empty()) why = dw::dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");
  if (!why.empty()) return why;
  if (p.R * p.S * p.C * 4 > kMaxFilterSmem) return "a filter of more than 96 KB in fp32 (too many channels)";
  const int64_t cols = dgrad ? p.W : p.Q, kLimit = int64_t(1) << 30;  // output columns
  if (p.H >= kLimit || p.W >= kLimit || p.P >= kLimit || p.Q >= kLimit || p.pad_h >= kLimit || p.pad_w >= kLimit)
    return "a spatial size or padding of 2^30 or more";
  if ((cols + 1) * (p.C / V) >= (int64_t(1) << 31) - kThreads)
    return "2^31 or more (strip, channel vector) items per row";
  return "";
}

template <typename T, int kR, bool kDgrad>
void launch_typed(const ConvParams& p, cudaStream_t stream) {
  constexpr auto kernel = conv_kernel<T, kR, kR, kDgrad>;
  constexpr int kTQ = StripOf<T, kR>::value;
  const int64_t out_rows = kDgrad ? p.H : p.P, out_cols = kDgrad ? p.W : p.Q;
  const int strips = static_cast<int>((out_cols + kTQ - 1) / kTQ);
  const int64_t items = int64_t(strips) * (p.C / Vec16<T>::value);
  const int64_t smem = p.R * p.S * p.C * 4;
  dw::allow_shared_memory<kernel>(smem);
  const int64_t blocks_x = (items + kThreads - 1) / kThreads, rows = p.N * out_rows;
  const int64_t blocks_y = std::min<int64_t>({rows, 65535, std::max<int64_t>(1, rows / kRowsPerBlock)});
  kernel<<<dim3(static_cast<unsigned>(blocks_x), static_cast<unsigned>(blocks_y)), kThreads, smem, stream>>>(p, strips);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Forward or stride-1 backward-data of `p` (can_implement(p, kDgrad) is "").
template <bool kDgrad>
void launch(const ConvParams& p, cudaStream_t stream) {
  dw::launch_vectorized<kDgrad>(p, "tiled:depthwise_vec", stream, [&](auto tag, auto filter) {
    launch_typed<typename decltype(tag)::type, decltype(filter)::value, kDgrad>(p, stream);
  });
}

}  // namespace dwv
}  // namespace conv2d_ext
