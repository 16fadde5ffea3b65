// Launch helpers shared by every kernel family: grid sizing, device properties, block reductions.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>

namespace conv2d_ext {

// Multiprocessor count of the current device, cached per device.
inline int num_sms() {
  static int cache[64] = {0};
  int dev = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 64 && cache[dev] > 0) return cache[dev];
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (dev < 64) cache[dev] = sms;
  return sms;
}

// Blocks for a grid-stride loop over `total` items: enough to fill the device several times over, never
// more than the work needs. Grid-stride loops keep every kernel correct for any 64-bit `total`.
inline unsigned grid_for(int64_t total, int threads, int blocks_per_sm = 16) {
  const int64_t needed = (total + threads - 1) / threads;
  const int64_t cap = static_cast<int64_t>(num_sms()) * blocks_per_sm;
  const int64_t blocks = needed < cap ? needed : cap;
  return static_cast<unsigned>(blocks > 0 ? blocks : 1);
}

// Sum of `v` over the block; the result is valid in thread 0. `kThreads` must be a multiple of 32.
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

}  // namespace conv2d_ext
