// Backward-weight, direct family, and the bias gradient. Both are reductions over every output position
// (n, p, q): grad_weight[k,c,r,s] = sum dy[n,k,p,q] * x[n, g*C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw],
// grad_bias[k] = sum dy[n,k,p,q]. One block reduces the taps of one (k, c) pair (or one bias); when there are too
// few such work items to fill the device, the positions are cut into `splits` chunks (grid.y) whose partial sums a
// second kernel adds in a fixed order, so results are deterministic.
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

// A block reduces up to kTaps filter taps of one (k, c) pair at once, so each grad_output value it loads serves
// every tap: a whole 3x3 filter in one pass, 1x1 in one, larger filters in chunks of kTaps.
constexpr int kTaps = 9;

__host__ __device__ inline int64_t tap_chunks(const ConvParams& p) { return (p.R * p.S + kTaps - 1) / kTaps; }

// Blocks' work items: (k, c, chunk of taps) for the filter gradient, k for the bias gradient.
template <bool kBias> __host__ __device__ int64_t work_items(const ConvParams& p) {
  return kBias ? p.K : p.K * p.C_per_group() * tap_chunks(p);
}

// Values a work item produces (the length of a split's row of partial sums).
template <bool kBias> __host__ __device__ int64_t reduced_elements(const ConvParams& p) {
  return kBias ? p.K : p.K * p.C_per_group() * p.R * p.S;
}

// Chunks the N*P*Q positions are cut into: enough blocks to fill the device, each chunk still long enough
// (32 steps per thread) that the partial sums are worth their round trip.
template <bool kBias> int64_t num_splits(const ConvParams& p) {
  const int64_t items = work_items<kBias>(p), positions = p.N * p.P * p.Q;
  if (items == 0) return 1;
  const int64_t wanted = (int64_t(8) * num_sms() + items - 1) / items;
  const int64_t most = positions / (int64_t(kThreads) * 32);
  int64_t splits = wanted < most ? wanted : most;
  if (splits > 65535) splits = 65535;
  return splits > 1 ? splits : 1;
}

// Each block reduces work items blockIdx.x, blockIdx.x + gridDim.x, ... over the position chunk blockIdx.y.
// With `partial` set it stores the fp32/fp64 partial sums there (one row of reduced_elements per split),
// otherwise the final values in `out`.
template <typename T, bool kBias>
__global__ void __launch_bounds__(kThreads) reduce_kernel(const ConvParams p, int64_t chunk, acc_t<T>* partial,
                                                          T* out) {
  using Acc = acc_t<T>;
  constexpr int kWidth = kBias ? 1 : kTaps;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ dy = static_cast<const T*>(p.y);
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group();
  const int64_t items = work_items<kBias>(p), elements = reduced_elements<kBias>(p);
  const int64_t taps = kBias ? 1 : p.R * p.S;
  const int64_t positions = p.N * p.P * p.Q;
  const int64_t begin = blockIdx.y * chunk;
  const int64_t end = begin + chunk < positions ? begin + chunk : positions;

  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    int64_t k = item, c = 0, tap0 = 0;
    if (!kBias) {
      const int64_t chunks = tap_chunks(p);
      tap0 = (item % chunks) * kTaps;
      c = (item / chunks) % Cg;
      k = item / chunks / Cg;
    }
    const int64_t c_in = (k / Kg) * Cg + c;
    // Row and column offsets of each tap of this chunk relative to an output position's window corner.
    const int64_t live = taps - tap0 < kWidth ? taps - tap0 : kWidth;  // taps of this chunk that exist
    int64_t tap_h[kWidth], tap_w[kWidth];
    Acc acc[kWidth];
#pragma unroll
    for (int t = 0; t < kWidth; ++t) {
      const int64_t tap = tap0 + t;  // past `live` the offsets are computed but never used
      tap_h[t] = (tap / p.S) * p.dil_h;
      tap_w[t] = (tap % p.S) * p.dil_w;
      acc[t] = Acc(0);
    }
    PositionWalker pos(begin + threadIdx.x, kThreads, p.P, p.Q);
    for (int64_t j = begin + threadIdx.x; j < end; j += kThreads, pos.advance()) {
      const Acc g = to_acc(dy[offset4(p.y_stride, pos.n, k, pos.p, pos.q)]);
      if (kBias) {
        acc[0] += g;
        continue;
      }
      const int64_t h0 = pos.p * p.stride_h - p.pad_h, w0 = pos.q * p.stride_w - p.pad_w;
      const T* xn = x + pos.n * p.x_stride[0] + c_in * p.x_stride[1];
#pragma unroll
      for (int t = 0; t < kWidth; ++t) {
        const int64_t h = h0 + tap_h[t], col = w0 + tap_w[t];
        if (t < live && h >= 0 && h < p.H && col >= 0 && col < p.W) acc[t] += g * to_acc(xn[h * p.x_stride[2] + col * p.x_stride[3]]);
      }
    }
#pragma unroll
    for (int t = 0; t < kWidth; ++t) {
      const Acc total = block_sum<kThreads>(acc[t]);
      const int64_t tap = tap0 + t;
      if (threadIdx.x == 0 && t < live) {
        const int64_t e = kBias ? k : (k * Cg + c) * taps + tap;  // (k, c, r, s) with s fastest
        if (partial) partial[blockIdx.y * elements + e] = total;
        else out[kBias ? k : offset4(p.w_stride, k, c, tap / p.S, tap % p.S)] = from_acc<T>(total);
      }
      __syncthreads();  // block_sum's shared scratch is reused by the next reduction
    }
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
  const int64_t items = work_items<kBias>(p), elements = reduced_elements<kBias>(p);
  if (items == 0) return;
  const int64_t splits = num_splits<kBias>(p);
  const int64_t positions = p.N * p.P * p.Q;
  const int64_t chunk = (positions + splits - 1) / splits;
  const dim3 grid(static_cast<unsigned>(items < (1 << 30) ? items : (1 << 30)), static_cast<unsigned>(splits));
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
