// Tiled family, configuration depthwise_rows: NCHW depthwise forward and stride-1 backward-data for 3x3, 5x5 and 7x7
// filters at stride 1, dilation 1 and "same" column padding ((S - 1) / 2), rows a multiple of 16 bytes.
//
// In NCHW memory a channel's rows are contiguous, so a thread can own one 16-byte vector of a row's columns (4 fp32
// or 8 fp16/bf16 outputs) for a strip of kT output rows and read its inputs straight from global memory: the strip's
// kT + R - 1 input rows, each as its own 16-byte vector plus the 4 columns either side (the padding's halo: two
// 16- or 8-byte loads served mostly by L1, as the neighbouring threads' vectors), every input row used in registers
// by each of the R output rows and S taps it meets. The filter sits in registers (converted to fp32 once), the
// accumulators too; each output row is written as one 16-byte store. No shared memory, no barrier: each thread's
// loads are independent, so many are in flight. The shared-memory tiles of depthwise.cuh stay for strides,
// dilations, other filters and paddings, channels-last (depthwise_vec.cuh), and backward-weight.
//
// Backward-data at stride 1 is the forward of grad_output with the flipped filter and padding R - 1 - pad (a
// correlation); "same" column padding maps to itself, so the columns need nothing new.
//
// Channels-last has tiled:depthwise_vec (depthwise_vec.cuh). The same strips of rows in channels-last (a thread per 4
// channels of one output column, 3 pixel loads per input row) ran slower there (H200, depthwise_3x3 fp32 forward:
// 0.069 ms against depthwise_vec's 0.053; bf16 0.060 against the tiles' 0.057) and were dropped (NOTES, session 10).
//
// Grid: one thread per (output plane, strip of kT rows, column vector), column vectors fastest (a warp's loads and
// stores are consecutive vectors of a row, or of neighbouring strips' rows).
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
namespace dwr {

constexpr int kThreads = 256;

// Output rows per thread: 8 for fp32 5x5 / 7x7 filters, else 4 (H200 sweep, forward, 4 against 8 rows:
// depthwise_3x3 fp32 0.040 / 0.043 ms, bf16 0.030 / 0.048; depthwise_7x7 fp32 0.062 / 0.057, bf16 0.043 / 0.044 with
// 8 rows spilling). Fewer rows re-read more halo rows (from L1 / L2) but keep fewer registers: more warps per SM.
template <typename T, int kR> struct RowsOf { static constexpr int value = sizeof(T) == 4 && kR > 3 ? 8 : 4; };

// Forward (kDgrad false: x -> y, channel multiplier M = K / C) or stride-1 backward-data (grad_output -> grad_input,
// M = 1) of a kR x kR depthwise convolution, NCHW. `items` = planes x strips x vectors (below 2^31).
template <typename T, int kR, int kT, bool kDgrad>
__global__ void __launch_bounds__(kThreads, 2) conv_kernel(const ConvParams p, int items, int strips, int vectors) {
  constexpr int V = Vec16<T>::value, kPad = (kR - 1) / 2, kHalo = 4;  // V: columns per thread
  constexpr int kWin = V + kR - 1;  // input columns of a row that a thread's V outputs read
  static_assert(kPad < kHalo, "the halo loads cover the padding");
  const int item = blockIdx.x * kThreads + threadIdx.x;
  if (item >= items) return;
  const int vec = item % vectors, rest = item / vectors;
  const int strip = rest % strips, plane = rest / strips;  // plane: (n, output channel)
  const int out_ch = static_cast<int>(kDgrad ? p.C : p.K), in_ch = static_cast<int>(kDgrad ? p.K : p.C);
  const int n = plane / out_ch, k = plane - n * out_ch;
  const int in_plane_ch = kDgrad ? k : k / static_cast<int>(p.K / p.C);
  const int rows_in = static_cast<int>(kDgrad ? p.P : p.H), rows_out = static_cast<int>(kDgrad ? p.H : p.P);
  const int cols = static_cast<int>(p.W);  // == p.Q (can_implement)
  const int pad_h = kDgrad ? kR - 1 - p.pad_h : p.pad_h;
  const T* __restrict__ src =
      static_cast<const T*>(kDgrad ? p.y : p.x) + (int64_t(n) * in_ch + in_plane_ch) * rows_in * int64_t(cols);
  T* __restrict__ dst = static_cast<T*>(kDgrad ? p.x : p.y) + int64_t(plane) * rows_out * int64_t(cols);

  // The filter of channel k (backward-data: of grad_input channel k, flipped), in fp32 registers.
  float f[kR][kR];
  const T* __restrict__ w = static_cast<const T*>(p.w) + int64_t(k) * p.w_stride[0];
#pragma unroll
  for (int r = 0; r < kR; ++r)
#pragma unroll
    for (int s = 0; s < kR; ++s)
      f[r][s] = to_acc(w[(kDgrad ? kR - 1 - r : r) * p.w_stride[2] + (kDgrad ? kR - 1 - s : s) * p.w_stride[3]]);
  const float bias = !kDgrad && p.bias != nullptr ? to_acc(static_cast<const T*>(p.bias)[k]) : 0.0f;

  const int q0 = vec * V, p0 = strip * kT;
  const bool left = q0 > 0, right = q0 + V < cols;  // the halo vectors exist (cols is a multiple of V >= 4)
  float acc[kT][V];
#pragma unroll
  for (int o = 0; o < kT; ++o)
#pragma unroll
    for (int c = 0; c < V; ++c) acc[o][c] = bias;

  // Input row i of the strip (h = p0 - pad_h + i) meets output rows o = i - r.
#pragma unroll
  for (int i = 0; i < kT + kR - 1; ++i) {
    const int h = p0 - pad_h + i;
    if (h < 0 || h >= rows_in) continue;
    const T* line = src + int64_t(h) * cols + q0;
    float win[kWin];  // input columns q0 - kPad .. q0 + V - 1 + kPad
    float mid[V], lo[kHalo], hi[kHalo];
    load_floats<T, V>(line, mid);
    if (left) {
      load_floats<T, kHalo>(line - kHalo, lo);
    } else {
#pragma unroll
      for (int j = 0; j < kHalo; ++j) lo[j] = 0.0f;
    }
    if (right) {
      load_floats<T, kHalo>(line + V, hi);
    } else {
#pragma unroll
      for (int j = 0; j < kHalo; ++j) hi[j] = 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kPad; ++j) win[j] = lo[kHalo - kPad + j];
#pragma unroll
    for (int j = 0; j < V; ++j) win[kPad + j] = mid[j];
#pragma unroll
    for (int j = 0; j < kPad; ++j) win[kPad + V + j] = hi[j];
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      const int o = i - r;
      if (o < 0 || o >= kT) continue;  // compile-time
#pragma unroll
      for (int s = 0; s < kR; ++s)
#pragma unroll
        for (int c = 0; c < V; ++c) acc[o][c] = fmaf(f[r][s], win[c + s], acc[o][c]);
    }
  }
#pragma unroll
  for (int o = 0; o < kT; ++o)
    if (p0 + o < rows_out) store_floats<T>(dst + int64_t(p0 + o) * cols + q0, acc[o]);
}

// Why it cannot run the forward (dgrad false) or backward-data of `p`, or "".
inline std::string can_implement(const ConvParams& p, bool dgrad) {
  if (p.groups != p.C) return "not depthwise (groups != input channels)";
  if (dgrad && p.K != p.C) return "backward-data with channel multiplier 1 only";
  if (p.dtype == DType::kFloat64) return "float64 runs on the direct family";
  if (p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1) return "stride 1 and dilation 1 only";
  if (p.channels_last) return "NCHW tensors only (channels-last runs tiled:depthwise_vec or tiled:depthwise)";
  if (p.R != p.S || (p.R != 3 && p.R != 5 && p.R != 7)) return "3x3, 5x5 and 7x7 filters only";
  if (p.pad_w != (p.S - 1) / 2 || p.Q != p.W) return "\"same\" column padding only ((S - 1) / 2 on both sides)";
  if (p.W % (p.dtype == DType::kFloat32 ? 4 : 8) != 0) return "rows must be a multiple of 16 bytes";
  // Activations not 16-byte aligned (a view at an odd offset) run on depthwise.cuh's tiles, which must take them.
  std::string why = dw::can_implement(p, dgrad ? dw::Role::kBackwardData : dw::Role::kForward);
  if (!why.empty()) return why;
  constexpr int64_t kFewestRows = 4;  // RowsOf's least: the most items
  const int64_t out_rows = dgrad ? p.H : p.P;
  const int64_t items = p.N * (dgrad ? p.C : p.K) * ((out_rows + kFewestRows - 1) / kFewestRows) *
                        (p.W / (p.dtype == DType::kFloat32 ? 4 : 8));
  if (items >= (int64_t(1) << 31) - kThreads) return "2^31 or more (plane, strip, column vector) items";
  return "";
}

template <typename T, int kR, bool kDgrad>
void launch_typed(const ConvParams& p, cudaStream_t stream) {
  constexpr int kT = RowsOf<T, kR>::value;
  constexpr auto kernel = conv_kernel<T, kR, kT, kDgrad>;
  const int64_t out_rows = kDgrad ? p.H : p.P, planes = p.N * (kDgrad ? p.C : p.K);
  const int strips = static_cast<int>((out_rows + kT - 1) / kT);
  const int vectors = static_cast<int>(p.W / Vec16<T>::value);
  const int64_t items = planes * strips * vectors;  // below 2^31 (can_implement)
  const unsigned blocks = static_cast<unsigned>((items + kThreads - 1) / kThreads);
  kernel<<<blocks, kThreads, 0, stream>>>(p, static_cast<int>(items), strips, vectors);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Forward or stride-1 backward-data of `p` (can_implement(p, kDgrad) is "").
template <bool kDgrad>
void launch(const ConvParams& p, cudaStream_t stream) {
  dw::launch_vectorized<kDgrad>(p, "tiled:depthwise_rows", stream, [&](auto tag, auto filter) {
    launch_typed<typename decltype(tag)::type, decltype(filter)::value, kDgrad>(p, stream);
  });
}

}  // namespace dwr
}  // namespace conv2d_ext
