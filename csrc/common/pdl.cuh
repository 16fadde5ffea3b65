// Programmatic dependent launch (sm_90+): a kernel launched with launch_dependent() may start while the kernel
// before it in the stream is still running, once every block of that kernel has called pdl_launch_dependents() (or
// exited); it must call pdl_wait() before it reads anything the earlier kernel writes. Every such kernel waits
// before it exits, so that its completion implies the earlier kernel's (the stream's next ordinary launch waits only
// for the last kernel). A kernel reads before waiting only where it knows what the earlier kernel writes: the
// convolution after its own pack_kernel reads what came before the pack (complete, since pack_kernel is an ordinary
// launch), and a backward-weight launched after its call's backward-data (ConvParams::after_backward_data, the op of
// both backward passes) reads grad_output and the input, which that pass never writes. The filter repacks and NHWC
// copies (implicit_gemm/forward.cuh) trigger at their start: a kernel launched right after one of them as a dependent
// (the copy-engine kernels under CONV2D_EXT_TMA_PDL=1) waits before its first read. Both device calls are no-ops
// below sm_90 and in kernels launched the ordinary way; the host launch falls back to an ordinary launch below
// sm_90 and when CONV2D_EXT_PDL=0 (for timing comparisons).
#pragma once

#include <cstdlib>
#include <cstring>
#include <utility>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>

#include "common/launch.cuh"

namespace conv2d_ext {

// Lets the next kernel of the stream (launched with launch_dependent) start its blocks.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Waits until the previous kernel of the stream has completed and its writes are visible.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Whether launch_dependent overlaps kernels on the current device.
inline bool pdl_enabled() {
  const char* v = std::getenv("CONV2D_EXT_PDL");  // read per call, like the tuning variables
  const bool env_on = v == nullptr || std::strcmp(v, "0") != 0;
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  return env_on && device_info(device).sm >= 90;
}

// Launches kernel<<<grid, block, smem, stream>>>(args...) as a programmatic dependent of the stream's previous
// kernel (an ordinary launch where pdl_enabled() is false). Checks the launch.
template <typename... Params, typename... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args&&... args) {
#ifdef CONV2D_EXT_EMULATION
  return ::emu::launch(grid, block, smem, stream, [&] { kernel(args...); });  // tests/emulation/emu.h
#endif
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attr;
  config.numAttrs = pdl_enabled() ? 1 : 0;
  C10_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace conv2d_ext
