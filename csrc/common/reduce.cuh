// Deterministic reductions shared by the kernels: a block-wide sum, and the fixed-order split reduction.
//
// A reduction too long for one block per result (backward-weight and the bias gradient sum over every output
// position; split-K GEMMs over K) is cut into `splits` chunks, one per blockIdx.y. When there is more than one,
// each block stores its chunk's partial sums in row blockIdx.y of a workspace, and finish_splits adds the rows in a
// fixed order (interleaved lanes, then the lanes in order). No atomics anywhere, so results are bit-identical run to
// run.
#pragma once

#include <algorithm>
#include <cstdint>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include "common/conv_params.h"
#include "common/launch.cuh"
#include "common/pdl.cuh"

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

// finish_splits' blocks: 32 consecutive elements (coalesced) x kFinishLanes lanes, each lane adding every
// kFinishLanes-th row of the element in row order, then the lanes' sums added in lane order. The lanes depend on the
// split count only, so the order of the additions is fixed for a given problem: bit-identical run to run. With many
// rows and few elements (a depthwise weight gradient: 1296 elements, hundreds of rows) one thread per element would
// leave the device idle through hundreds of dependent loads each.
constexpr int kFinishLanes = 32;

// Adds the rows of partial sums of each element (lane l: rows l, l + lanes, ...; then the lanes in order) and stores
// the total. blockDim = (32, lanes), lanes a power of two up to kFinishLanes.
template <typename Acc, typename Store>
__global__ void __launch_bounds__(32 * kFinishLanes) finish_splits_kernel(const SplitOutput<Acc, Store> out,
                                                                          int64_t splits) {
  __shared__ Acc sums[kFinishLanes][33];
  pdl_wait();  // launched as the split blocks' programmatic dependent: their partial sums complete first
  const int tx = threadIdx.x, lane = threadIdx.y, lanes = blockDim.y;
  for (int64_t e0 = blockIdx.x * int64_t(32); e0 < out.elements; e0 += int64_t(gridDim.x) * 32) {
    const int64_t e = e0 + tx;
    Acc acc = Acc(0);
    if (e < out.elements)
      for (int64_t i = lane; i < splits; i += lanes) acc += out.partial[i * out.elements + e];
    sums[lane][tx] = acc;
    __syncthreads();
    if (lane == 0 && e < out.elements) {
      Acc total = sums[0][tx];
      for (int l = 1; l < lanes; ++l) total += sums[l][tx];
      out.store(e, total);
    }
    __syncthreads();
  }
}

// Second step of a split reduction, on `stream` after the blocks that wrote `out.partial`; nothing to do when
// the reduction was not split. A programmatic dependent launch (common/pdl.cuh): split kernels that call
// pdl_launch_dependents() let its blocks start, and wait, while their last blocks run.
template <typename Acc, typename Store>
void finish_splits(const SplitOutput<Acc, Store>& out, const SplitPlan& plan, cudaStream_t stream) {
  if (plan.splits <= 1 || out.elements == 0) return;
  int lanes = 1;  // the largest power of two <= splits, at most kFinishLanes
  while (lanes * 2 <= plan.splits && lanes * 2 <= kFinishLanes) lanes *= 2;
  const int64_t groups = (out.elements + 31) / 32;
  const int64_t blocks = std::min<int64_t>(groups, int64_t(num_sms()) * (2048 / (32 * lanes)));
  launch_dependent(finish_splits_kernel<Acc, Store>, dim3(static_cast<unsigned>(blocks)), dim3(32, lanes), 0, stream,
                   out, int64_t(plan.splits));
}

}  // namespace conv2d_ext
