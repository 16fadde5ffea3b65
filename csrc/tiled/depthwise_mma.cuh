// Tiled family, depthwise configuration on tensor cores: EXPERIMENTAL (session 16, written on a machine without a
// GPU and NOT yet run on one; can_implement refuses unless CONV2D_EXT_EXPERIMENTAL=1, and the heuristics never pick
// it). Channels-last fp16/bf16, channel multiplier 1, stride 1, dilation 1, filters up to 7x7; the forward and the
// backward-data (the forward of grad_output with the filter flipped and padding R-1-pad).
//
// Why: the FFMA tiles (depthwise.cuh) run the 7x7 16-bit forward at ~15 TFLOP/s, issue-bound (ncu, session 16:
// 1425 instructions per register block of 16 outputs, 784 of them FFMA) where cuDNN takes 0.072 ms and the bytes
// 0.009 ms. Per channel, output row p and column q, y = sum_r sum_s w[r][s] x[p + r][q + s] (staged coordinates).
// For one filter row r, 16 output columns (mma's m) and 8 output rows (its n) that is one m16n8 product over
// k = 32 staged columns: A[m][k] = w[r][k - m] (zero outside 0 <= k - m < S: a band of the filter row),
// B[k][n] = x[n + r][k]. Two m16n8k16 steps per filter row: 14 mma per 128 outputs of a 7x7 channel, against 196 FFMA
// per lane. A's fragments are packed once per call (pack_kernel) and held in registers, one channel per warp.
//
// The band's zeros multiply staged columns outside each output's window: 0 x inf would turn an output that PyTorch
// keeps finite into NaN. So the staging checks every staged element, and a tile holding an inf or NaN is computed
// by plain FFMA from the same staged planes instead (block-uniform branch).
//
// Block: one image, 8 output rows x (16 x mblocks) output columns x 8 channels (16 bytes a pixel), 256 threads,
// warp w the tile's channel w.
//   1. Stage the input rows and columns the tile reads (8 + R - 1 rows, 16 x mblocks + S - 1 columns; zeros outside
//      the image and up to 16 x mblocks + 16 columns) as one plane per channel, row pitch an odd number of 16-byte
//      units (ldmatrix conflict-free).
//   2. Each warp: its channel's A fragments from the workspace, then per 16-column block one ldmatrix.x4 (B for both
//      k-steps) and two mma per filter row, the fp32 sums (plus bias) to an output tile [row][column][8 channels].
//   3. The output tile to global memory as 16-byte pixel vectors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include "common/conv_params.h"
#include "common/dtype.cuh"
#include "common/mma.cuh"
#include "common/pdl.cuh"
#include "tiled/depthwise.cuh"  // dense_reason, max_shared_memory

namespace conv2d_ext {
namespace dwmma {

constexpr int kThreads = 256;
constexpr int kChannels = 8;      // channels per tile, one per warp: 16 bytes of a pixel
constexpr int kRowsOut = 8;       // output rows per tile: mma's n
constexpr int kMaxTaps = 7;       // R and S at most (A: 7 rows x 2 k-steps x 4 registers per lane)
constexpr int kMaxBlocksM = 4;    // 16-column blocks per tile

enum class Role : int { kForward = 0, kBackwardData = 1 };

struct Geom {
  const void* in;
  void* out;
  const void* w;
  const void* bias;  // forward only, or nullptr
  int64_t w_stride[4];
  int N, C, Hin, Win, Hout, Wout, R, S, pad_h, pad_w;
  int flip;                         // backward-data: tap (r, s) takes w[c, 0, R-1-r, S-1-s]
  int mblocks, tile_w;              // 16-column blocks per tile, output columns per tile (16 x mblocks)
  int tiles_w, tiles_h;             // tiles per image row, per image column
  int srows, scols, swidth, pitch;  // staged rows, staged columns read, staged width (zeros past scols), row pitch
  int plane_elems;                  // srows * pitch
  int out_offset;                   // bytes: the output tile after the planes
  int smem;
};

inline Geom plan(const ConvParams& p, Role role) {
  Geom g{};
  const bool dgrad = role == Role::kBackwardData;
  g.in = dgrad ? p.y : p.x;
  g.out = dgrad ? p.x : p.y;
  g.w = p.w;
  g.bias = dgrad ? nullptr : p.bias;
  for (int i = 0; i < 4; ++i) g.w_stride[i] = p.w_stride[i];
  g.N = int(p.N), g.C = int(p.C);
  g.Hin = int(dgrad ? p.P : p.H), g.Win = int(dgrad ? p.Q : p.W);
  g.Hout = int(dgrad ? p.H : p.P), g.Wout = int(dgrad ? p.W : p.Q);
  g.R = int(p.R), g.S = int(p.S);
  g.pad_h = dgrad ? int(p.R - 1 - p.pad_h) : p.pad_h;
  g.pad_w = dgrad ? int(p.S - 1 - p.pad_w) : p.pad_w;
  g.flip = dgrad;
  g.mblocks = std::max(1, std::min(kMaxBlocksM, (g.Wout + 15) / 16));
  g.tile_w = 16 * g.mblocks;
  g.tiles_w = (g.Wout + g.tile_w - 1) / g.tile_w;
  g.tiles_h = (g.Hout + kRowsOut - 1) / kRowsOut;
  g.srows = kRowsOut + g.R - 1;
  g.scols = g.tile_w + g.S - 1;
  g.swidth = g.tile_w + 16;  // the last block's second k-step reads up to column tile_w + 15
  g.pitch = (((g.swidth + 7) / 8) | 1) * 8;
  g.plane_elems = g.srows * g.pitch;
  g.out_offset = kChannels * g.plane_elems * 2;
  g.smem = g.out_offset + kRowsOut * g.tile_w * kChannels * 2;
  return g;
}

inline bool experimental_enabled() {
  const char* v = std::getenv("CONV2D_EXT_EXPERIMENTAL");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// Why the tensor-core depthwise kernel cannot run `role` of `p`, or "".
inline std::string can_implement(const ConvParams& p, Role role) {
  if (!experimental_enabled()) return "experimental, not yet run on a GPU (CONV2D_EXT_EXPERIMENTAL=1 enables it)";
  if (p.groups != p.C || p.K != p.C) return "not depthwise with channel multiplier 1";
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) return "fp16 and bf16 only";
  if (p.sm < 80) return "needs sm_80 or newer (mma.sync)";
  if (!p.channels_last) return "channels-last only";
  if (p.C % kChannels != 0) return "channels not a multiple of 8";
  if (p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1) return "stride or dilation other than 1";
  if (p.R > kMaxTaps || p.S > kMaxTaps) return "filters larger than 7x7";
  if (role == Role::kBackwardData && (p.pad_h > p.R - 1 || p.pad_w > p.S - 1))
    return "backward-data with padding past the filter extent";
  const int64_t kLimit = int64_t(1) << 30;
  if (p.H >= kLimit || p.W >= kLimit || p.P >= kLimit || p.Q >= kLimit || p.pad_h >= kLimit || p.pad_w >= kLimit)
    return "a spatial size or padding of 2^30 or more";
  std::string why = dw::dense_reason(p, p.x_stride, p.C, p.H, p.W, "the input");
  if (why.empty()) why = dw::dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");
  if (!why.empty()) return why;
  if (reinterpret_cast<uintptr_t>(p.x) % 16 != 0 || reinterpret_cast<uintptr_t>(p.y) % 16 != 0)
    return "activations not 16-byte aligned";
  const Geom g = plan(p, role);
  if (g.smem > dw::max_shared_memory(p.sm)) return "a tile needs more shared memory than this GPU gives a block";
  if (int64_t(g.tiles_w) * g.tiles_h * p.N >= (int64_t(1) << 31) || p.C / kChannels > 65535)
    return "too many tiles for one grid";
  return "";
}

// ---- Device.

// Whether either 16-bit value of `word` is an inf or a NaN (exponent all ones).
template <typename T>
__device__ __forceinline__ bool nonfinite_pair(uint32_t word) {
  constexpr uint32_t kExp = std::is_same<T, __half>::value ? 0x7c00u : 0x7f80u;
  return (word & kExp) == kExp || ((word >> 16) & kExp) == kExp;
}

// The filter tap (r, s) of channel c as raw 16 bits (flipped for backward-data); 0 outside the filter.
template <typename T>
__device__ __forceinline__ uint32_t tap_bits(const Geom& g, int c, int r, int s) {
  if (s < 0 || s >= g.S) return 0;
  const int rr = g.flip ? g.R - 1 - r : r, ss = g.flip ? g.S - 1 - s : s;
  const unsigned short* w = static_cast<const unsigned short*>(g.w);
  return w[int64_t(c) * g.w_stride[0] + int64_t(rr) * g.w_stride[2] + int64_t(ss) * g.w_stride[3]];
}

// A fragments of every (channel, filter row, k-step), lane order: frags[((c * R + r) * 2 + kk) * 32 + lane] holds
// registers a0..a3 of mma.m16n8k16's row-major A: register j is rows gid + 8 (j & 1), columns 2t + 8 (j >> 1) and
// the next (low half first), of A[m][k] = w[r][16 kk + k - m].
template <typename T>
__global__ void __launch_bounds__(kThreads) pack_kernel(const Geom g, uint4* frags, int total) {
  pdl_launch_dependents();  // the convolution stages its input while this runs
  for (int i = blockIdx.x * kThreads + threadIdx.x; i < total; i += gridDim.x * kThreads) {
    const int lane = i & 31, kk = (i >> 5) & 1, rest = i >> 6;
    const int r = rest % g.R, c = rest / g.R;
    const int gid = lane >> 2, t = lane & 3;
    uint32_t reg[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = gid + 8 * (j & 1), k = 16 * kk + 2 * t + 8 * (j >> 1);
      reg[j] = tap_bits<T>(g, c, r, k - m) | (tap_bits<T>(g, c, r, k + 1 - m) << 16);
    }
    frags[i] = make_uint4(reg[0], reg[1], reg[2], reg[3]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 2) conv_kernel(const Geom g, const uint4* __restrict__ frags) {
  extern __shared__ __align__(16) unsigned char smem[];
  unsigned short* planes = reinterpret_cast<unsigned short*>(smem);
  unsigned short* out_tile = reinterpret_cast<unsigned short*>(smem + g.out_offset);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int c0 = int(blockIdx.y) * kChannels;
  unsigned x = blockIdx.x;
  const int tw = int(x % unsigned(g.tiles_w));
  x /= unsigned(g.tiles_w);
  const int th = int(x % unsigned(g.tiles_h));
  const int64_t n = x / unsigned(g.tiles_h);
  const int p0 = th * kRowsOut, q0 = tw * g.tile_w;
  const int h0 = p0 - g.pad_h, w0 = q0 - g.pad_w;

  // 1. Stage: pixel (sr, sc) of the tile's input window, 8 channels, one plane per channel.
  const T* in = static_cast<const T*>(g.in) + n * g.Hin * g.Win * g.C + c0;
  bool bad = false;
  const int items = g.srows * g.swidth;
  for (int i = tid; i < items; i += kThreads) {
    const int sr = i / g.swidth, sc = i - sr * g.swidth;
    const int h = h0 + sr, w = w0 + sc;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (sc < g.scols && unsigned(h) < unsigned(g.Hin) && unsigned(w) < unsigned(g.Win))
      v = __ldg(reinterpret_cast<const uint4*>(in + (int64_t(h) * g.Win + w) * g.C));
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
    unsigned short* dst = planes + sr * g.pitch + sc;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      bad |= nonfinite_pair<T>(words[k]);
      dst[(2 * k) * g.plane_elems] = static_cast<unsigned short>(words[k] & 0xffffu);
      dst[(2 * k + 1) * g.plane_elems] = static_cast<unsigned short>(words[k] >> 16);
    }
  }

  // 2. This warp's channel: its A fragments (written by pack_kernel), then the products.
  pdl_wait();
  const int c = c0 + warp;
  uint32_t a[kMaxTaps][2][4];
  const uint4* f = frags + int64_t(c) * g.R * 2 * 32 + lane;
#pragma unroll
  for (int r = 0; r < kMaxTaps; ++r)
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      uint4 q = make_uint4(0, 0, 0, 0);
      if (r < g.R) q = __ldg(f + (r * 2 + kk) * 32);
      a[r][kk][0] = q.x, a[r][kk][1] = q.y, a[r][kk][2] = q.z, a[r][kk][3] = q.w;
    }
  const float bias = g.bias != nullptr ? to_acc(static_cast<const T*>(g.bias)[c]) : 0.f;
  const int any_bad = __syncthreads_or(bad);  // also: the planes are staged
  const int gid = lane >> 2, t = lane & 3;
  if (!any_bad) {
    // Lane l points ldmatrix at staged row (l & 7) + r, columns 16 mb + 8 (l >> 3): matrices 0, 1 are B of k-step
    // 0 (k 0-7, 8-15), matrices 2, 3 of k-step 1.
    const uint32_t lane_base =
        smem_addr(planes + warp * g.plane_elems) + uint32_t(((lane & 7) * g.pitch + 8 * (lane >> 3)) * 2);
    for (int mb = 0; mb < g.mblocks; ++mb) {
      float acc[4] = {bias, bias, bias, bias};
#pragma unroll
      for (int r = 0; r < kMaxTaps; ++r) {
        if (r < g.R) {
          uint32_t b[4];
          ldmatrix_x4(b, lane_base + uint32_t((r * g.pitch + 16 * mb) * 2));
          const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
          Mma<T>::run(acc, a[r][0], b0);
          Mma<T>::run(acc, a[r][1], b1);
        }
      }
      // acc[2 h + j]: output column 16 mb + gid + 8 h (m), output row 2 t + j (n).
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const T v = from_acc<T>(acc[2 * h + j]);
          unsigned short bits;
          memcpy(&bits, &v, sizeof(bits));
          out_tile[((2 * t + j) * g.tile_w + 16 * mb + gid + 8 * h) * kChannels + warp] = bits;
        }
    }
  } else {
    // A tile holding an inf or NaN: plain FFMA over the same planes (no product outside an output's window).
    const int outputs = kRowsOut * g.tile_w * kChannels;
    for (int i = tid; i < outputs; i += kThreads) {
      const int ch = i % kChannels, pix = i / kChannels;
      const int row = pix / g.tile_w, col = pix - row * g.tile_w;
      float sum = g.bias != nullptr ? to_acc(static_cast<const T*>(g.bias)[c0 + ch]) : 0.f;
      const unsigned short* plane = planes + ch * g.plane_elems;
      for (int r = 0; r < g.R; ++r)
        for (int s = 0; s < g.S; ++s) {
          const unsigned short wb = static_cast<unsigned short>(tap_bits<T>(g, c0 + ch, r, s));
          const unsigned short xb = plane[(row + r) * g.pitch + col + s];
          T wv, xv;
          memcpy(&wv, &wb, sizeof(wb));
          memcpy(&xv, &xb, sizeof(xb));
          sum = fmaf(to_acc(wv), to_acc(xv), sum);
        }
      const T v = from_acc<T>(sum);
      memcpy(&out_tile[i], &v, sizeof(v));
    }
  }
  __syncthreads();

  // 3. The output tile's pixels inside the image, 16 bytes each.
  T* out = static_cast<T*>(g.out) + n * g.Hout * g.Wout * g.C + c0;
  for (int i = tid; i < kRowsOut * g.tile_w; i += kThreads) {
    const int row = i / g.tile_w, col = i - row * g.tile_w;
    const int oh = p0 + row, ow = q0 + col;
    if (oh < g.Hout && ow < g.Wout)
      *reinterpret_cast<uint4*>(out + (int64_t(oh) * g.Wout + ow) * g.C) =
          *reinterpret_cast<const uint4*>(smem + g.out_offset + i * 16);
  }
}

// 16-byte A fragments of every channel: (channel, filter row, k-step, lane).
inline int64_t fragment_count(const ConvParams& p) { return p.C * p.R * 2 * 32; }

// Bytes of workspace: the A fragments.
inline int64_t workspace_bytes(const ConvParams& p) {
  return p.N == 0 ? 0 : fragment_count(p) * int64_t(sizeof(uint4));
}

// Runs `role` of `p` (can_implement is ""), T = __half or __nv_bfloat16. Instantiated in depthwise_mma_forward.cu.
template <typename T>
void launch(const ConvParams& p, Role role, void* workspace, cudaStream_t stream) {
  if (p.N == 0) return;
  const Geom g = plan(p, role);
  TORCH_CHECK(workspace != nullptr, "conv2d_ext: tiled:depthwise_mma: no workspace for the packed filters");
  uint4* frags = static_cast<uint4*>(workspace);
  const int total = int(fragment_count(p));
  pack_kernel<T><<<static_cast<unsigned>(std::min(1024, (total + kThreads - 1) / kThreads)), kThreads, 0, stream>>>(
      g, frags, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  constexpr auto kernel = conv_kernel<T>;
  dw::allow_shared_memory<kernel>(g.smem);
  const int64_t blocks = int64_t(g.N) * g.tiles_h * g.tiles_w;
  launch_dependent(kernel, dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(g.C / kChannels)),
                   dim3(kThreads), size_t(g.smem), stream, g, static_cast<const uint4*>(frags));
}

extern template void launch<__half>(const ConvParams&, Role, void*, cudaStream_t);
extern template void launch<__nv_bfloat16>(const ConvParams&, Role, void*, cudaStream_t);

inline void run(const ConvParams& p, Role role, void* workspace, cudaStream_t stream) {
  if (p.dtype == DType::kFloat16) launch<__half>(p, role, workspace, stream);
  else if (p.dtype == DType::kBFloat16) launch<__nv_bfloat16>(p, role, workspace, stream);
  else TORCH_CHECK(false, "conv2d_ext: tiled:depthwise_mma: fp16 and bf16 only");
}

}  // namespace dwmma
}  // namespace conv2d_ext
