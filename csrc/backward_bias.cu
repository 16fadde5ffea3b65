// Bias gradient: grad_bias[k] = sum over output positions (n, p, q) of dy[n,k,p,q]. One block per k; when K is
// too small to fill the device, the positions are cut into chunks whose partial sums are added in a fixed order
// (common/reduce.cuh), so results are deterministic.
#include "common/dtype.cuh"
#include "common/index.cuh"
#include "common/launch.cuh"
#include "common/reduce.cuh"
#include "kernels.h"

namespace conv2d_ext {
namespace {

constexpr int kThreads = 256;

inline SplitPlan plan(const ConvParams& p) { return plan_splits(p.K, p.N * p.P * p.Q, kThreads); }

template <typename T>
struct StoreBias {
  T* grad_bias;
  __device__ __forceinline__ void operator()(int64_t k, acc_t<T> total) const { grad_bias[k] = from_acc<T>(total); }
};

// Each block sums channels blockIdx.x, blockIdx.x + gridDim.x, ... over the position chunk blockIdx.y.
template <typename T>
__global__ void __launch_bounds__(kThreads) backward_bias_kernel(const ConvParams p, int64_t chunk,
                                                                 SplitOutput<acc_t<T>, StoreBias<T>> out) {
  using Acc = acc_t<T>;
  const T* __restrict__ dy = static_cast<const T*>(p.y);
  const int64_t positions = p.N * p.P * p.Q;
  const int64_t begin = blockIdx.y * chunk;
  const int64_t end = begin + chunk < positions ? begin + chunk : positions;
  for (int64_t k = blockIdx.x; k < p.K; k += gridDim.x) {
    Acc acc = Acc(0);
    PositionWalker pos(begin + threadIdx.x, kThreads, p.P, p.Q);
    for (int64_t j = begin + threadIdx.x; j < end; j += kThreads, pos.advance()) {
      acc += to_acc(dy[offset4(p.y_stride, pos.n, k, pos.p, pos.q)]);
    }
    const Acc total = block_sum<kThreads>(acc);
    if (threadIdx.x == 0) out.put(k, total);
    __syncthreads();  // block_sum's shared scratch is reused by the next channel
  }
}

}  // namespace

int64_t backward_bias_workspace(const ConvParams& p) { return split_workspace_bytes(plan(p), p.K, p.dtype); }

void backward_bias(const ConvParams& p, void* grad_bias, void* workspace, cudaStream_t stream) {
  if (p.K == 0) return;
  const SplitPlan split = plan(p);
  const dim3 grid(static_cast<unsigned>(p.K < (1 << 30) ? p.K : (1 << 30)), static_cast<unsigned>(split.splits));
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto out = split_output<acc_t<T>>(split, p.K, workspace, StoreBias<T>{static_cast<T*>(grad_bias)});
    backward_bias_kernel<T><<<grid, kThreads, 0, stream>>>(p, split.chunk, out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    finish_splits(out, split, stream);
  });
}

}  // namespace conv2d_ext
