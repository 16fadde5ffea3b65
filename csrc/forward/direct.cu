// Forward, direct family: one thread per output element, a plain loop over the filter taps and the input
// channels of its group. Correct for every dtype, layout (any strides), stride, padding, dilation and group
// count; the reference the faster families are tested against.
//
// Threads are ordered spatial-fastest in both layouts. In NCHW a warp's input reads and output writes are then
// coalesced and its filter reads one broadcast. In NHWC one operand is always scattered (the input with this
// order, the filter with channel-fastest order); both orders measured the same (benchmarks/NOTES.md), so the
// simpler one stays. Speed is the tiled and implicit-GEMM families' job, not this one's.
#include "common/dtype.cuh"
#include "common/index.cuh"
#include "common/launch.cuh"
#include "kernels.h"

namespace conv2d_ext {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads) forward_direct_kernel(const ConvParams p) {
  using Acc = acc_t<T>;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group();
  const int64_t total = p.N * p.K * p.P * p.Q;

  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const Coord4 o = unravel4(idx, p.K, p.P, p.Q);
    const int64_t n = o.i0, k = o.i1, oh = o.i2, ow = o.i3;
    const int64_t c_begin = (k / Kg) * Cg;
    const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    Acc acc = bias ? to_acc(bias[k]) : Acc(0);
    for (int r = 0; r < p.R; ++r) {
      const int64_t h = h0 + int64_t(r) * p.dil_h;
      if (h < 0 || h >= p.H) continue;
      for (int s = 0; s < p.S; ++s) {
        const int64_t col = w0 + int64_t(s) * p.dil_w;
        if (col < 0 || col >= p.W) continue;
        const T* xp = x + offset4(p.x_stride, n, c_begin, h, col);
        const T* wp = w + offset4(p.w_stride, k, 0, r, s);
        for (int64_t c = 0; c < Cg; ++c) acc += to_acc(xp[c * p.x_stride[1]]) * to_acc(wp[c * p.w_stride[1]]);
      }
    }
    y[offset4(p.y_stride, n, k, oh, ow)] = from_acc<T>(acc);
  }
}

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) {
  const int64_t total = p.N * p.K * p.P * p.Q;
  if (total == 0) return;
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_direct_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

const KernelInfo forward_direct{Pass::kForward, "direct", "", &runs_everything, nullptr, &launch};

}  // namespace conv2d_ext
