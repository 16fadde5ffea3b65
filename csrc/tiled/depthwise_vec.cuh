// Tiled family, configuration depthwise_vec: channels-last depthwise forward and stride-1 backward-data for 3x3, 5x5
// and 7x7 filters, and backward-weight for 3x3 (at the end of this file), at stride 1 and dilation 1, channel
// multiplier 1, channels in 16-byte vectors.
//
// In channels-last memory a pixel's channels are contiguous, so a thread can own one vector of channels (kV: 4 fp32,
// 4 or 8 fp16/bf16) for a strip of kTQ neighbouring output pixels of one row and read its inputs straight from
// global memory: per filter row, the kTQ + S - 1 input vectors of the strip, each converted once and used by every
// tap and output that meets it (registers), their neighbours' re-reads served by L1 and L2. A warp's loads are 32
// consecutive vectors (coalesced); no shared-memory tile, no block barrier per tile: vector loads and stores, FP32
// FFMA, the filter (fp32, [tap][channel]) in shared memory, staged once per block. depthwise.cuh's shared-memory
// tiles stay for NCHW, strides, dilations, other filters and channel multipliers, and for views not aligned to the
// vectors (the launchers hand those over).
//
// Backward-data at stride 1 is the forward of grad_output with the flipped filter and padding R - 1 - pad (a
// correlation), as in depthwise.cuh.
//
// Grid: x over a row's (strip, channel vector) items, channel vectors fastest; y over output rows (n, row): one wave
// of blocks, each walking an equal contiguous run of rows, the input rows a row shares with the previous one L1
// hits. A thread's loads for the next (output row, filter row) step are issued before the current step's FMAs
// (session 11: before, each filter row's loads waited on the previous row's FMAs behind a branch, three round trips
// per output row).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>

#include "common/conv_params.h"
#include "common/dtype.cuh"
#include "common/launch.cuh"
#include "common/reduce.cuh"
#include "tiled/depthwise.cuh"

namespace conv2d_ext {
namespace dwv {

constexpr int kThreads = 256;
constexpr int64_t kMaxFilterSmem = 96 * 1024;          // the fp32 filter of every channel, in shared memory

// A thread's work: kV channels (one 8- or 16-byte vector) of kTQ neighbouring output pixels of a row; kMinBlocks
// blocks per SM bound its registers (65536 / (256 x kMinBlocks)); kAhead > 0 asks L2 for the input row of output
// row oh + kAhead while row oh is computed.
template <int kV_, int kTQ_, int kMinBlocks_, int kAhead_> struct Config {
  static constexpr int kV = kV_, kTQ = kTQ_, kMinBlocks = kMinBlocks_, kAhead = kAhead_;
};

// The configuration of each type and filter size. 3x3 from a sweep on the H100 (session 29, depthwise_3x3
// channels-last, GPU time of forward / backward-data, cuDNN 0.047 / 0.048 ms in fp32): fp32 <4,2,2,1> 0.046 / 0.046
// against <4,2,3,1> (the H200's pick, session 11) 0.052 / 0.052, <4,2,3,0> and <4,4,2,0> 0.049, <4,1,4,1> 0.049 /
// 0.047, <4,2,4,1> 0.056 / 0.059 (the H100's lower bandwidth wants fewer loads in flight per SM, not more);
// fp16 / bf16 <8,4,2,1> 0.026 / 0.027 against <8,4,2,0> 0.026 / 0.028, <8,2,3,x> 0.034-0.035. 5x5 and 7x7 (the
// heuristics give them to depthwise.cuh's tiles): 2 blocks per SM, no spills but fp32 7x7's 24-40 bytes.
template <typename T, int kR> struct ConfigOf {
  using type = std::conditional_t<sizeof(T) == 4, std::conditional_t<kR == 3, Config<4, 2, 2, 1>, Config<4, 2, 2, 0>>,
                                  std::conditional_t<kR == 3, Config<8, 4, 2, 1>, Config<4, 4, 2, 0>>>;
};

// Which of the kIn columns first_col, first_col + 1, ... lie inside [0, cols): bit j for column first_col + j.
template <int kIn>
__device__ __forceinline__ uint32_t columns_inside(int first_col, int cols) {
  uint32_t inside = 0;
#pragma unroll
  for (int j = 0; j < kIn; ++j) {
    const int col = first_col + j;
    inside |= (col >= 0 && col < cols ? 1u : 0u) << j;
  }
  return inside;
}

// The kIn vectors of V channels at line, line + C, line + 2C, ... (a strip of pixels of one row) into buf, zero where
// bit j of `mask` is clear (outside the image: never read).
template <typename T, int V, int kIn>
__device__ __forceinline__ void load_strip(raw_vec_t<T, V> (&buf)[kIn], const T* line, uint32_t mask, int C) {
  if (mask == (1u << kIn) - 1) {  // inside the image (most rows and strips): no predicates, no zero fill
#pragma unroll
    for (int j = 0; j < kIn; ++j) buf[j] = load_raw<T, V>(line + j * C);
    return;
  }
#pragma unroll
  for (int j = 0; j < kIn; ++j) {
    buf[j] = raw_vec_t<T, V>{};
    if (mask >> j & 1u) buf[j] = load_raw<T, V>(line);
    line += C;
  }
}

// Forward (kDgrad false: x -> y) or stride-1 backward-data (grad_output -> grad_input) of a kR x kS depthwise
// convolution, channel multiplier 1, NHWC, with padding pad_h, pad_w (for backward-data: R - 1 - pad, S - 1 - pad,
// kernel parameters rather than registers). Each block walks `run` consecutive output rows (n, oh); a thread's work
// is a sequence of steps (output row, filter row), each reading the kIn input vectors of its strip in that input row
// (zero outside the image), and the loads of the next step are issued before the current step's FMAs (one step of
// lookahead, across output rows too), so a thread always has a row of loads in flight.
template <typename T, int kR, int kS, bool kDgrad, typename Cfg>
__global__ void __launch_bounds__(kThreads, Cfg::kMinBlocks) conv_kernel(const ConvParams p, int strips,
                                                                         int64_t run, int pad_h, int pad_w) {
  constexpr int V = Cfg::kV, kTQ = Cfg::kTQ, kIn = kTQ + kS - 1;
  using Raw = raw_vec_t<T, V>;
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
  const int64_t rows = p.N * out_rows, first = blockIdx.y * run, last = min(rows, first + run);
  if (first >= last) return;
  // The bias (forward) is added at the store, read again per row (L1 hits): no registers held across the loop.
  const T* __restrict__ bias = kDgrad ? nullptr : static_cast<const T*>(p.bias);

  // The strip's input columns q0 - pad_w + j, j < kIn, inside the image (the same on every row).
  const uint32_t col_ok = columns_inside<kIn>(q0 - pad_w, in_cols);
  const int64_t pitch = int64_t(in_cols) * C;  // elements per input row
  // The strip's kIn vectors of the input row at `line` (its column q0 - pad_w) into buf, zero outside the image.
  auto load_row = [&](Raw(&buf)[kIn], const T* line, bool row_ok) {
    load_strip<T, V, kIn>(buf, line, row_ok ? col_ok : 0u, C);
  };
  const T* __restrict__ strip_src = src + int64_t(q0 - pad_w) * C + c0;
  // The input row of filter row 0 for output row oh of image n (before the image when oh < pad_h).
  auto top_of = [&](int64_t n, int oh) { return strip_src + (n * in_rows + (oh - pad_h)) * pitch; };

  int64_t n = first / out_rows;
  int oh = static_cast<int>(first - n * out_rows);
  Raw cur[kIn], nxt[kIn];
  load_row(cur, top_of(n, oh), oh - pad_h >= 0 && oh - pad_h < in_rows);
  for (int64_t row = first; row < last; ++row) {
    int64_t n_next = n;
    int oh_next = oh + 1;
    if (oh_next == out_rows) oh_next = 0, ++n_next;
    const T* top = top_of(n, oh);
    // The input row that output row oh + kAhead meets first (its last filter row), into L2 ahead of its loads:
    // the strip's own kTQ columns (the other columns are other strips' own).
    if constexpr (Cfg::kAhead > 0) {
      const int h = oh + Cfg::kAhead - pad_h + kR - 1;
      if (oh + Cfg::kAhead < out_rows && h >= 0 && h < in_rows) {
        const T* line = top + int64_t(Cfg::kAhead + kR - 1) * pitch;
#pragma unroll
        for (int t = 0; t < kTQ; ++t)
          if (q0 + t < in_cols) prefetch_l2(line + int64_t(t + pad_w) * C);
      }
    }
    float acc[kTQ][V] = {};
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      if (r + 1 < kR) {
        const int h = oh - pad_h + r + 1;
        load_row(nxt, top + (r + 1) * pitch, h >= 0 && h < in_rows);
      } else if (row + 1 < last) {
        const int h = oh_next - pad_h;
        load_row(nxt, top_of(n_next, oh_next), h >= 0 && h < in_rows);
      }
      // Filter row r of these channels, then each input vector once (converted once) into the outputs it meets.
      float wr[kS][V];
#pragma unroll
      for (int s = 0; s < kS; ++s) {
        const float4* wv = reinterpret_cast<const float4*>(wsm + (r * kS + s) * C + c0);
#pragma unroll
        for (int i = 0; i < V / 4; ++i) {
          const float4 f = wv[i];
          wr[s][4 * i] = f.x, wr[s][4 * i + 1] = f.y, wr[s][4 * i + 2] = f.z, wr[s][4 * i + 3] = f.w;
        }
      }
#pragma unroll
      for (int j = 0; j < kIn; ++j) {
        float x[V];
        unpack_floats<T, V>(cur[j], x);
#pragma unroll
        for (int s = 0; s < kS; ++s) {
          const int t = j - s;
          if (t >= 0 && t < kTQ) {
#pragma unroll
            for (int v = 0; v < V; ++v) acc[t][v] = fmaf(wr[s][v], x[v], acc[t][v]);
          }
        }
      }
#pragma unroll
      for (int j = 0; j < kIn; ++j) cur[j] = nxt[j];
    }
    if (bias != nullptr) {
#pragma unroll
      for (int v = 0; v < V; ++v) {  // elementwise: a bias view need not be 16-byte aligned
        const float b = to_acc(bias[c0 + v]);
#pragma unroll
        for (int t = 0; t < kTQ; ++t) acc[t][v] += b;
      }
    }
    T* out = dst + ((n * out_rows + oh) * int64_t(out_cols) + q0) * C + c0;
#pragma unroll
    for (int t = 0; t < kTQ; ++t)
      if (q0 + t < out_cols) store_floats<T, V>(out + int64_t(t) * C, acc[t]);
    n = n_next, oh = oh_next;
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
  if (p.C % (p.dtype == DType::kFloat32 ? 4 : 8) != 0) return "channels must fill 16-byte vectors";
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
  if ((cols + 1) * (p.C / 4) >= (int64_t(1) << 31) - kThreads)  // 4 or more channels a thread
    return "2^31 or more (strip, channel vector) items per row";
  return "";
}

// Rows per block for a grid of `columns` x runs blocks that fits one wave of `resident` blocks: equal runs of at least
// one row, at most 65535 runs (grid.y).
inline int64_t one_wave_run(int64_t rows, int64_t resident, int64_t columns) {
  const int64_t runs = std::min<int64_t>({std::max<int64_t>(rows, 1), 65535, std::max<int64_t>(1, resident / columns)});
  return std::max<int64_t>(1, (rows + runs - 1) / runs);
}

template <typename T, int kR, bool kDgrad>
void launch_typed(const ConvParams& p, cudaStream_t stream) {
  using Cfg = typename ConfigOf<T, kR>::type;
  constexpr auto kernel = conv_kernel<T, kR, kR, kDgrad, Cfg>;
  const int64_t out_rows = kDgrad ? p.H : p.P, out_cols = kDgrad ? p.W : p.Q;
  const int strips = static_cast<int>((out_cols + Cfg::kTQ - 1) / Cfg::kTQ);
  const int64_t items = int64_t(strips) * (p.C / Cfg::kV);
  const int64_t smem = p.R * p.S * p.C * 4;
  dw::allow_shared_memory<kernel>(smem);
  // One wave: as many blocks as are resident at once, each walking an equal run of output rows (H200: 0.039 against
  // 0.043 ms for runs of 8 rows, fp32 depthwise_3x3, bf16 0.023 against 0.025).
  const int64_t blocks_x = (items + kThreads - 1) / kThreads, rows = p.N * out_rows;
  const int64_t run = one_wave_run(rows, dw::resident_blocks<kernel>(kThreads, smem), blocks_x);
  const int64_t blocks_y = (rows + run - 1) / run;  // rows > 0: launch_vectorized returns on an empty batch
  kernel<<<dim3(static_cast<unsigned>(blocks_x), static_cast<unsigned>(blocks_y)), kThreads, smem, stream>>>(
      p, strips, run, static_cast<int>(kDgrad ? kR - 1 - p.pad_h : p.pad_h),
      static_cast<int>(kDgrad ? kR - 1 - p.pad_w : p.pad_w));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Forward or stride-1 backward-data of `p` (can_implement(p, kDgrad) is "").
template <bool kDgrad>
void launch(const ConvParams& p, cudaStream_t stream) {
  dw::launch_vectorized<kDgrad>(p, "tiled:depthwise_vec", stream, [&](auto tag, auto filter) {
    launch_typed<typename decltype(tag)::type, decltype(filter)::value, kDgrad>(p, stream);
  });
}

// ---- Backward-weight, 3x3 at stride 1 and dilation 1, multiplier 1, NHWC:
// grad_weight[c, 0, r, s] = sum over n, oh, ow of x[n, oh - pad_h + r, ow - pad_w + s, c] * grad_output[n, oh, ow, c].
//
// A thread owns kWgradV = 4 channels (16 bytes fp32, 8 bytes fp16/bf16) and accumulates all 9 taps of them in
// registers over its strips of kTQ output pixels and the block's run of output rows, reading grad_output and the
// input rows straight from global memory with the forward's one-step lookahead. Blocks are (channel group, run of
// rows): a group of up to 64 channel vectors (consecutive threads, coalesced) times `lanes` threads that take the
// row's strips in turn. At the end the block adds its lanes' sums per (channel, tap) in lane order and stores them in
// its run's row of the workspace; finish_splits adds the rows (common/reduce.cuh). No atomics: bit-identical run to
// run.
constexpr int kWgradV = 4;
constexpr int kWgradMinBlocks = 2;
constexpr int kWgradMaxGroup = 64;  // channel vectors per block

// Output pixels per strip (registers: 4 for fp16/bf16 spills).
template <typename T> struct WgradStripOf { static constexpr int value = 2; };

template <typename T>
__global__ void __launch_bounds__(kThreads, kWgradMinBlocks)
    wgrad_kernel(const ConvParams p, int strips, int group, int64_t run, SplitOutput<float, dw::StoreWeight<T>> out) {
  constexpr int kR = 3, kS = 3, kTaps = kR * kS, V = kWgradV, kTQ = WgradStripOf<T>::value, kIn = kTQ + kS - 1;
  using Raw = raw_vec_t<T, V>;
  extern __shared__ __align__(16) float sums[];  // [lane][group][kTaps * V]
  pdl_launch_dependents();  // finish_splits may start its blocks (they wait for this grid to complete)
  const int C = static_cast<int>(p.C), vectors = C / V;
  const int lanes = blockDim.x / group, g = threadIdx.x % group, lane = threadIdx.x / group;
  const int vec = blockIdx.x * group + g, c0 = vec * V;
  const int H = static_cast<int>(p.H), W = static_cast<int>(p.W), P = static_cast<int>(p.P);
  const int Q = static_cast<int>(p.Q), pad_h = static_cast<int>(p.pad_h), pad_w = static_cast<int>(p.pad_w);
  const int64_t rows = p.N * P, first = blockIdx.y * run, last = min(rows, first + run);
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ dy = static_cast<const T*>(p.y);
  const int64_t pitch = int64_t(W) * C, gpitch = int64_t(Q) * C;  // elements per input / grad_output row

  float acc[kTaps][V] = {};
  // Threads of a vector past the last one reduce nothing but still reach the barrier below (blockDim.x is exactly
  // group * lanes).
  if (vec < vectors && first < last) {
    for (int strip = lane; strip < strips; strip += lanes) {
      const int q0 = strip * kTQ;
      const uint32_t col_ok = columns_inside<kIn>(q0 - pad_w, W);  // input columns q0 - pad_w + j inside
      const T* __restrict__ xs = x + int64_t(q0 - pad_w) * C + c0;
      const T* __restrict__ gs = dy + int64_t(q0) * C + c0;
      auto load_row = [&](Raw(&buf)[kIn], int64_t n, int h) {
        load_strip<T, V, kIn>(buf, xs + (n * H + h) * pitch, h >= 0 && h < H ? col_ok : 0u, C);
      };
      const uint32_t pixel_ok = columns_inside<kTQ>(q0, Q);  // the strip's pixels before the last column
      auto load_grad = [&](Raw(&buf)[kTQ], int64_t n, int oh) {  // zero past the last output column
        load_strip<T, V, kTQ>(buf, gs + (n * P + oh) * gpitch, pixel_ok, C);
      };

      int64_t n = first / P;
      int oh = static_cast<int>(first - n * P);
      Raw cur[kIn], nxt[kIn], gcur[kTQ], gnxt[kTQ];
      load_row(cur, n, oh - pad_h);
      load_grad(gcur, n, oh);
      for (int64_t row = first; row < last; ++row) {
        int64_t n_next = n;
        int oh_next = oh + 1;
        if (oh_next == P) oh_next = 0, ++n_next;
        float gv[kTQ][V];
#pragma unroll
        for (int t = 0; t < kTQ; ++t) unpack_floats<T, V>(gcur[t], gv[t]);
#pragma unroll
        for (int r = 0; r < kR; ++r) {
          if (r + 1 < kR) {
            load_row(nxt, n, oh - pad_h + r + 1);
          } else if (row + 1 < last) {
            load_row(nxt, n_next, oh_next - pad_h);
            load_grad(gnxt, n_next, oh_next);
          }
          // Input column j meets output pixel t = j - s at tap (r, s).
#pragma unroll
          for (int j = 0; j < kIn; ++j) {
            float xv[V];
            unpack_floats<T, V>(cur[j], xv);
#pragma unroll
            for (int s = 0; s < kS; ++s) {
              const int t = j - s;  // pixels past the last column are skipped, not multiplied by a zero gradient
              if (t >= 0 && t < kTQ && (t == 0 || q0 + t < Q)) {  // (0 x inf would be NaN); pixel 0 is inside
#pragma unroll
                for (int v = 0; v < V; ++v) acc[r * kS + s][v] = fmaf(xv[v], gv[t][v], acc[r * kS + s][v]);
              }
            }
          }
#pragma unroll
          for (int j = 0; j < kIn; ++j) cur[j] = nxt[j];
        }
#pragma unroll
        for (int t = 0; t < kTQ; ++t) gcur[t] = gnxt[t];
        n = n_next, oh = oh_next;
      }
    }
  }

  // The block's sums per (channel vector, tap, channel): its lanes' in lane order.
  constexpr int kPer = kTaps * V;
#pragma unroll
  for (int k = 0; k < kPer; ++k) sums[(lane * group + g) * kPer + k] = acc[k / V][k % V];
  __syncthreads();
  for (int o = threadIdx.x; o < group * kPer; o += blockDim.x) {
    const int gg = o / kPer, k = o - gg * kPer, tap = k / V, v = k - tap * V;
    const int vv = blockIdx.x * group + gg;
    if (vv >= vectors) continue;
    float total = 0.0f;
    for (int l = 0; l < lanes; ++l) total += sums[(l * group + gg) * kPer + k];
    out.put(int64_t(vv * V + v) * kTaps + tap, total);
  }
}

// Why it cannot run the backward-weight of `p`, or "".
inline std::string wgrad_can_implement(const ConvParams& p) {
  if (p.R != 3 || p.S != 3) return "backward-weight: 3x3 filters only";
  if (p.C % kWgradV != 0) return "channels must fill 4-channel vectors";
  std::string why = can_implement(p, false);
  if (!why.empty()) return why;
  return dw::can_implement(p, dw::Role::kBackwardWeight);  // the tiles take the views it hands over
}

// The grid: channel groups x runs of rows, one wave of blocks (the runs are the split reduction's rows).
struct WgradPlan {
  int group, lanes, strips;
  int64_t groups, run;
  SplitPlan split;
};

template <typename T>
WgradPlan wgrad_plan(const ConvParams& p) {
  WgradPlan w;
  const int vectors = static_cast<int>(p.C / kWgradV);
  w.groups = (vectors + kWgradMaxGroup - 1) / kWgradMaxGroup;  // groups of equal size, at most kWgradMaxGroup
  w.group = static_cast<int>((vectors + w.groups - 1) / w.groups);
  w.lanes = kThreads / w.group;
  w.strips = static_cast<int>((p.Q + WgradStripOf<T>::value - 1) / WgradStripOf<T>::value);
  const int64_t smem = int64_t(w.group) * w.lanes * 9 * kWgradV * 4, rows = p.N * p.P;
  w.run = one_wave_run(rows, dw::resident_blocks<wgrad_kernel<T>>(w.group * w.lanes, smem), w.groups);
  w.split = SplitPlan{std::max<int64_t>(1, (rows + w.run - 1) / w.run), w.run};
  return w;
}

inline bool wgrad_aligned(const ConvParams& p) {
  return reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && reinterpret_cast<uintptr_t>(p.y) % 16 == 0;
}

inline int64_t wgrad_workspace_bytes(const ConvParams& p) {
  if (!wgrad_aligned(p)) return dw::wgrad_workspace_bytes(p);
  int64_t bytes = 0;
  dispatch_float_dtype(p.dtype, "tiled:depthwise_vec", [&](auto tag) {
    bytes = split_workspace_bytes(wgrad_plan<typename decltype(tag)::type>(p).split, p.K * 9, p.dtype);
  });
  return bytes;
}

inline void launch_wgrad(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (!wgrad_aligned(p)) return dw::launch_wgrad(p, workspace, stream);
  dispatch_float_dtype(p.dtype, "tiled:depthwise_vec", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr auto kernel = wgrad_kernel<T>;
    const WgradPlan w = wgrad_plan<T>(p);
    const int threads = w.group * w.lanes;
    const int64_t smem = int64_t(threads) * 9 * kWgradV * 4;
    dw::allow_shared_memory<kernel>(smem);
    const auto out = split_output<float>(w.split, p.K * 9, workspace, dw::store_weight<T>(p));
    kernel<<<dim3(static_cast<unsigned>(w.groups), static_cast<unsigned>(w.split.splits)), threads, smem, stream>>>(
        p, w.strips, w.group, w.run, out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    finish_splits(out, w.split, stream);
  });
}

}  // namespace dwv
}  // namespace conv2d_ext
