// Backward-data, direct family: one thread per grad_input element; it gathers every (output position,
// filter tap) pair whose window covers it. Correct for every dtype, layout, stride, padding, dilation and group
// count. Threads are ordered spatial-fastest in both layouts, for the reasons given in forward/direct.cu.
#include "common/dtype.cuh"
#include "common/index.cuh"
#include "common/launch.cuh"
#include "kernels.h"

namespace conv2d_ext {
namespace {

constexpr int kThreads = 256;

// Output index o such that o * stride == i + pad - tap * dil, or -1 when there is none inside [0, size).
__device__ __forceinline__ int64_t source_index(int64_t i, int pad, int tap, int dil, int stride, int64_t size) {
  const int64_t t = i + pad - int64_t(tap) * dil;
  if (t < 0 || t % stride != 0) return -1;
  const int64_t o = t / stride;
  return o < size ? o : -1;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) backward_data_direct_kernel(const ConvParams p) {
  using Acc = acc_t<T>;
  T* __restrict__ dx = static_cast<T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  const T* __restrict__ dy = static_cast<const T*>(p.y);
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group();
  const int64_t total = p.N * p.C * p.H * p.W;

  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const Coord4 a = unravel4(idx, p.C, p.H, p.W);
    const int64_t n = a.i0, c = a.i1, h = a.i2, col = a.i3;
    const int64_t g = c / Cg, c_in_group = c - g * Cg, k_begin = g * Kg;
    Acc acc = Acc(0);
    for (int r = 0; r < p.R; ++r) {
      const int64_t op = source_index(h, p.pad_h, r, p.dil_h, p.stride_h, p.P);
      if (op < 0) continue;
      for (int s = 0; s < p.S; ++s) {
        const int64_t oq = source_index(col, p.pad_w, s, p.dil_w, p.stride_w, p.Q);
        if (oq < 0) continue;
        const T* dyp = dy + offset4(p.y_stride, n, k_begin, op, oq);
        const T* wp = w + offset4(p.w_stride, k_begin, c_in_group, r, s);
        for (int64_t k = 0; k < Kg; ++k) acc += to_acc(dyp[k * p.y_stride[1]]) * to_acc(wp[k * p.w_stride[0]]);
      }
    }
    dx[offset4(p.x_stride, n, c, h, col)] = from_acc<T>(acc);
  }
}

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) {
  const int64_t total = p.N * p.C * p.H * p.W;
  if (total == 0) return;
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    backward_data_direct_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

const KernelInfo backward_data_direct{Pass::kBackwardData, "direct", "", &runs_everything, nullptr, &launch};

}  // namespace conv2d_ext
