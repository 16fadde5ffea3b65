// Backward-weight, direct family: grad_weight[k,c,r,s] = sum over output positions (n, p, q) of
// dy[n,k,p,q] * x[n, g*C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw]. One block reduces the taps of one
// (k, c) pair; when there are too few such work items to fill the device, the positions are cut into chunks whose
// partial sums are added in a fixed order (common/reduce.cuh), so results are deterministic.
#include "common/dtype.cuh"
#include "common/index.cuh"
#include "common/launch.cuh"
#include "common/reduce.cuh"
#include "kernels.h"

namespace conv2d_ext {
namespace {

constexpr int kThreads = 256;

// A block reduces up to kTaps filter taps of one (k, c) pair at once, so each grad_output value it loads serves
// every tap: a whole 3x3 filter in one pass, 1x1 in one, larger filters in chunks of kTaps.
constexpr int kTaps = 9;

__host__ __device__ inline int64_t tap_chunks(const ConvParams& p) { return (p.R * p.S + kTaps - 1) / kTaps; }

// Blocks' work items: (k, c, chunk of taps).
__host__ __device__ inline int64_t work_items(const ConvParams& p) { return p.K * p.C_per_group() * tap_chunks(p); }

// Values reduced: one per weight element, numbered (k, c, r, s) with s fastest.
inline int64_t weight_elements(const ConvParams& p) { return p.K * p.C_per_group() * p.R * p.S; }

inline SplitPlan plan(const ConvParams& p) { return plan_splits(work_items(p), p.N * p.P * p.Q, kThreads); }

// Writes the total of weight element e (numbered as in weight_elements) at its place in grad_weight.
template <typename T>
struct StoreWeight {
  ConvParams p;
  __device__ __forceinline__ void operator()(int64_t e, acc_t<T> total) const {
    const Coord4 t = unravel4(e, p.C_per_group(), p.R, p.S);
    static_cast<T*>(p.w)[offset4(p.w_stride, t.i0, t.i1, t.i2, t.i3)] = from_acc<T>(total);
  }
};

// Each block reduces work items blockIdx.x, blockIdx.x + gridDim.x, ... over the position chunk blockIdx.y.
template <typename T>
__global__ void __launch_bounds__(kThreads) backward_weight_direct_kernel(const ConvParams p, int64_t chunk,
                                                                          SplitOutput<acc_t<T>, StoreWeight<T>> out) {
  using Acc = acc_t<T>;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ dy = static_cast<const T*>(p.y);
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group();
  const int64_t items = work_items(p), chunks = tap_chunks(p), taps = p.R * p.S;
  const int64_t positions = p.N * p.P * p.Q;
  const int64_t begin = blockIdx.y * chunk;
  const int64_t end = begin + chunk < positions ? begin + chunk : positions;

  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t tap0 = (item % chunks) * kTaps;
    const int64_t c = (item / chunks) % Cg;
    const int64_t k = item / chunks / Cg;
    const int64_t c_in = (k / Kg) * Cg + c;
    // Row and column offsets of each tap of this chunk relative to an output position's window corner.
    const int64_t live = taps - tap0 < kTaps ? taps - tap0 : kTaps;  // taps of this chunk that exist
    int64_t tap_h[kTaps], tap_w[kTaps];
    Acc acc[kTaps];
#pragma unroll
    for (int t = 0; t < kTaps; ++t) {
      const int64_t tap = tap0 + t;  // past `live` the offsets are computed but never used
      tap_h[t] = (tap / p.S) * p.dil_h;
      tap_w[t] = (tap % p.S) * p.dil_w;
      acc[t] = Acc(0);
    }
    PositionWalker pos(begin + threadIdx.x, kThreads, p.P, p.Q);
    for (int64_t j = begin + threadIdx.x; j < end; j += kThreads, pos.advance()) {
      const Acc g = to_acc(dy[offset4(p.y_stride, pos.n, k, pos.p, pos.q)]);
      const int64_t h0 = pos.p * p.stride_h - p.pad_h, w0 = pos.q * p.stride_w - p.pad_w;
      const T* xn = x + pos.n * p.x_stride[0] + c_in * p.x_stride[1];
#pragma unroll
      for (int t = 0; t < kTaps; ++t) {
        const int64_t h = h0 + tap_h[t], col = w0 + tap_w[t];
        if (t < live && h >= 0 && h < p.H && col >= 0 && col < p.W) acc[t] += g * to_acc(xn[h * p.x_stride[2] + col * p.x_stride[3]]);
      }
    }
#pragma unroll
    for (int t = 0; t < kTaps; ++t) {
      const Acc total = block_sum<kThreads>(acc[t]);
      if (threadIdx.x == 0 && t < live) out.put((k * Cg + c) * taps + tap0 + t, total);
      __syncthreads();  // block_sum's shared scratch is reused by the next reduction
    }
  }
}

int64_t workspace_bytes(const ConvParams& p) { return split_workspace_bytes(plan(p), weight_elements(p), p.dtype); }

void launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  const int64_t items = work_items(p);
  if (items == 0) return;
  const SplitPlan split = plan(p);
  const dim3 grid(static_cast<unsigned>(items < (1 << 30) ? items : (1 << 30)), static_cast<unsigned>(split.splits));
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto out = split_output<acc_t<T>>(split, weight_elements(p), workspace, StoreWeight<T>{p});
    backward_weight_direct_kernel<T><<<grid, kThreads, 0, stream>>>(p, split.chunk, out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    finish_splits(out, split, stream);
  });
}

}  // namespace

const KernelInfo backward_weight_direct{Pass::kBackwardWeight, "direct", "", &runs_everything, &workspace_bytes,
                                        &launch};

}  // namespace conv2d_ext
