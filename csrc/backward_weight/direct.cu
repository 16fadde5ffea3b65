// Backward-weight, direct family, and the bias gradient. Both are reductions over every output position
// (n, p, q): grad_weight[k,c,r,s] = sum dy[n,k,p,q] * x[n, g*C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw],
// grad_bias[k] = sum dy[n,k,p,q]. One block reduces one element; when there are too few elements to fill the
// device, the positions are cut into `splits` chunks (grid.y) whose partial sums a second kernel adds in a fixed
// order, so results are deterministic.
#include "../common/dtype.cuh"
#include "../common/index.cuh"
#include "../common/launch.cuh"
#include "../kernels.h"

namespace conv2d_ext {
namespace {

constexpr int kThreads = 256;

// Walks output positions flattened as (n, p, q), q fastest, in fixed steps without a division per step.
struct PositionWalker {
  int64_t n, p, q;
  int64_t dn, dp, dq;
  int64_t P, Q;
  __device__ PositionWalker(int64_t start, int64_t step, int64_t P_, int64_t Q_) : P(P_), Q(Q_) {
    q = start % Q; start /= Q; p = start % P; n = start / P;
    dq = step % Q; step /= Q; dp = step % P; dn = step / P;
  }
  __device__ __forceinline__ void advance() {  // dq < Q and dp < P, so one carry each suffices
    q += dq; if (q >= Q) { q -= Q; ++p; }
    p += dp; if (p >= P) { p -= P; ++n; }
    n += dn;
  }
};

// Elements reduced: K*(C/groups)*R*S filter taps, or K biases.
template <bool kBias> __host__ __device__ int64_t reduced_elements(const ConvParams& p) {
  return kBias ? p.K : p.K * p.C_per_group() * p.R * p.S;
}

// Chunks the N*P*Q positions are cut into: enough blocks to fill the device, each chunk still long enough
// (32 steps per thread) that the partial sums are worth their round trip.
template <bool kBias> int64_t num_splits(const ConvParams& p) {
  const int64_t elements = reduced_elements<kBias>(p), positions = p.N * p.P * p.Q;
  if (elements == 0) return 1;
  const int64_t wanted = (int64_t(8) * num_sms() + elements - 1) / elements;
  const int64_t most = positions / (int64_t(kThreads) * 32);
  int64_t splits = wanted < most ? wanted : most;
  if (splits > 65535) splits = 65535;
  return splits > 1 ? splits : 1;
}

// Each block reduces elements e = blockIdx.x, blockIdx.x + gridDim.x, ... over the position chunk blockIdx.y.
// With `partial` set it stores the fp32/fp64 partial sum there, otherwise the final value in `out`.
template <typename T, bool kBias>
__global__ void __launch_bounds__(kThreads) reduce_kernel(const ConvParams p, int64_t chunk, acc_t<T>* partial,
                                                          T* out) {
  using Acc = acc_t<T>;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ dy = static_cast<const T*>(p.y);
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group();
  const int64_t elements = reduced_elements<kBias>(p);
  const int64_t positions = p.N * p.P * p.Q;
  const int64_t begin = blockIdx.y * chunk;
  const int64_t end = begin + chunk < positions ? begin + chunk : positions;

  for (int64_t e = blockIdx.x; e < elements; e += gridDim.x) {
    int64_t k = e, c = 0, r = 0, s = 0;
    if (!kBias) {
      const Coord4 t = unravel4(e, Cg, p.R, p.S);
      k = t.i0; c = t.i1; r = t.i2; s = t.i3;
    }
    const int64_t c_in = (k / Kg) * Cg + c;
    const int64_t h_off = r * p.dil_h - p.pad_h, w_off = s * p.dil_w - p.pad_w;
    Acc acc = Acc(0);
    PositionWalker pos(begin + threadIdx.x, kThreads, p.P, p.Q);
    for (int64_t j = begin + threadIdx.x; j < end; j += kThreads, pos.advance()) {
      if (kBias) {
        acc += to_acc(dy[offset4(p.y_stride, pos.n, k, pos.p, pos.q)]);
      } else {
        const int64_t h = pos.p * p.stride_h + h_off, col = pos.q * p.stride_w + w_off;
        if (h < 0 || h >= p.H || col < 0 || col >= p.W) continue;
        acc += to_acc(dy[offset4(p.y_stride, pos.n, k, pos.p, pos.q)]) *
               to_acc(x[offset4(p.x_stride, pos.n, c_in, h, col)]);
      }
    }
    acc = block_sum<kThreads>(acc);
    if (threadIdx.x == 0) {
      if (partial) partial[blockIdx.y * elements + e] = acc;
      else out[kBias ? e : offset4(p.w_stride, k, c, r, s)] = from_acc<T>(acc);
    }
    __syncthreads();  // block_sum's shared scratch is reused by the next element
  }
}

// Adds the `splits` partial sums of each element in order and stores the result.
template <typename T, bool kBias>
__global__ void __launch_bounds__(kThreads) finish_kernel(const ConvParams p, int64_t splits,
                                                          const acc_t<T>* __restrict__ partial, T* out) {
  using Acc = acc_t<T>;
  const int64_t elements = reduced_elements<kBias>(p);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < elements;
       e += int64_t(gridDim.x) * blockDim.x) {
    Acc acc = Acc(0);
    for (int64_t i = 0; i < splits; ++i) acc += partial[i * elements + e];
    int64_t offset = e;
    if (!kBias) {
      const Coord4 t = unravel4(e, p.C_per_group(), p.R, p.S);
      offset = offset4(p.w_stride, t.i0, t.i1, t.i2, t.i3);
    }
    out[offset] = from_acc<T>(acc);
  }
}

template <bool kBias> int64_t workspace_bytes(const ConvParams& p) {
  const int64_t splits = num_splits<kBias>(p);
  if (splits == 1) return 0;
  const int64_t acc_size = p.dtype == DType::kFloat64 ? 8 : 4;
  return splits * reduced_elements<kBias>(p) * acc_size;
}

template <bool kBias> void launch(const ConvParams& p, void* out, void* workspace, cudaStream_t stream) {
  const int64_t elements = reduced_elements<kBias>(p);
  if (elements == 0) return;
  const int64_t splits = num_splits<kBias>(p);
  const int64_t positions = p.N * p.P * p.Q;
  const int64_t chunk = (positions + splits - 1) / splits;
  const dim3 grid(static_cast<unsigned>(elements < (1 << 30) ? elements : (1 << 30)), static_cast<unsigned>(splits));
  dispatch_dtype(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    acc_t<T>* partial = splits > 1 ? static_cast<acc_t<T>*>(workspace) : nullptr;
    TORCH_CHECK(splits == 1 || partial != nullptr, "conv2d_ext: backward-weight workspace missing");
    reduce_kernel<T, kBias><<<grid, kThreads, 0, stream>>>(p, chunk, partial, static_cast<T*>(out));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (splits > 1) {
      finish_kernel<T, kBias><<<grid_for(elements, kThreads), kThreads, 0, stream>>>(p, splits, partial,
                                                                                      static_cast<T*>(out));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

}  // namespace

int64_t backward_weight_direct_workspace(const ConvParams& p) { return workspace_bytes<false>(p); }
void backward_weight_direct(const ConvParams& p, void* workspace, cudaStream_t stream) {
  launch<false>(p, p.w, workspace, stream);
}

int64_t backward_bias_workspace(const ConvParams& p) { return workspace_bytes<true>(p); }
void backward_bias(const ConvParams& p, void* grad_bias, void* workspace, cudaStream_t stream) {
  launch<true>(p, grad_bias, workspace, stream);
}

}  // namespace conv2d_ext
