// Deterministic reductions shared by the kernels: a block-wide sum, and the fixed-order split reduction.
//
// A reduction too long for one block per result (backward-weight and the bias gradient sum over every output
// position; split-K GEMMs over K) is cut into `splits` chunks, one per blockIdx.y. When there is more than one,
// each block stores its chunk's partial sums in row blockIdx.y of a workspace, and finish_splits adds the rows in
// the order 0, 1, ..., splits - 1. No atomics anywhere, so results are bit-identical run to run.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include "common/conv_params.h"
#include "common/launch.cuh"

namespace conv2d_ext {

// Sum of `v` over the block; the result is valid in thread 0. `kThreads` must be a multiple of 32. Callers that
// reduce again in the same block must __syncthreads() in between (the shared scratch is reused).
template <int kThreads, typename Acc>
__device__ __forceinline__ Acc block_sum(Acc v) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "block_sum: bad block size");
  __shared__ Acc partial[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? partial[lane] : Acc(0);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

// How a reduction of `length` terms is cut: `splits` chunks of `chunk` terms (the last may be shorter).
struct SplitPlan {
  int64_t splits;
  int64_t chunk;
};

// Splits for `items` reductions of `length` terms each, one block of `threads` threads per (item, chunk): enough
// blocks to fill the device (8 per SM), each chunk still long enough (32 terms per thread) that its partial sum
// is worth the round trip through memory; at most 65535 (the grid.y limit).
inline SplitPlan plan_splits(int64_t items, int64_t length, int threads) {
  int64_t splits = 1;
  if (items > 0) {
    const int64_t wanted = (int64_t(8) * num_sms() + items - 1) / items;
    const int64_t most = length / (int64_t(threads) * 32);
    splits = wanted < most ? wanted : most;
    splits = splits > 65535 ? 65535 : (splits > 1 ? splits : 1);
  }
  return SplitPlan{splits, (length + splits - 1) / splits};
}

// Workspace bytes for `splits` rows of `elements` partial sums in the accumulator type of `dtype` (fp64 for
// fp64 data, fp32 otherwise); 0 when there is one split (the reduction then stores its results directly).
inline int64_t split_workspace_bytes(const SplitPlan& plan, int64_t elements, DType dtype) {
  const int64_t acc_size = dtype == DType::kFloat64 ? 8 : 4;
  return plan.splits > 1 ? plan.splits * elements * acc_size : 0;
}

// Where a block puts the total of element `e` of its chunk: row blockIdx.y of the partial sums when the
// reduction is split, else straight to the result through `store(e, total)`, which converts and writes it.
template <typename Acc, typename Store>
struct SplitOutput {
  Acc* partial;  // splits x elements, or nullptr when not split
  int64_t elements;
  Store store;

  __device__ __forceinline__ void put(int64_t e, Acc total) const {
    if (partial) partial[blockIdx.y * elements + e] = total;
    else store(e, total);
  }
};

// The SplitOutput of a reduction planned as `plan`, its partial sums in `workspace`
// (split_workspace_bytes(plan, ...) bytes, allocated by the binding).
template <typename Acc, typename Store>
SplitOutput<Acc, Store> split_output(const SplitPlan& plan, int64_t elements, void* workspace, Store store) {
  TORCH_CHECK(plan.splits == 1 || workspace != nullptr, "conv2d_ext: split reduction without a workspace");
  return SplitOutput<Acc, Store>{plan.splits > 1 ? static_cast<Acc*>(workspace) : nullptr, elements, store};
}

constexpr int kFinishThreads = 256;

// Adds the rows of partial sums of each element in row order and stores the total.
template <typename Acc, typename Store>
__global__ void __launch_bounds__(kFinishThreads) finish_splits_kernel(const SplitOutput<Acc, Store> out,
                                                                       int64_t splits) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < out.elements;
       e += int64_t(gridDim.x) * blockDim.x) {
    Acc acc = Acc(0);
    for (int64_t i = 0; i < splits; ++i) acc += out.partial[i * out.elements + e];
    out.store(e, acc);
  }
}

// Second step of a split reduction, on `stream` after the blocks that wrote `out.partial`; nothing to do when
// the reduction was not split.
template <typename Acc, typename Store>
void finish_splits(const SplitOutput<Acc, Store>& out, const SplitPlan& plan, cudaStream_t stream) {
  if (plan.splits <= 1 || out.elements == 0) return;
  finish_splits_kernel<Acc, Store><<<grid_for(out.elements, kFinishThreads), kFinishThreads, 0, stream>>>(
      out, plan.splits);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace conv2d_ext
