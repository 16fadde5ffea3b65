// Stands in for <c10/cuda/CUDAException.h> in the emulation build (no CUDA runtime there): the emulated runtime calls
// of emulation_runtime.cpp succeed, and a failing one stops the run.
#pragma once

#include <cstdio>
#include <cstdlib>

#define C10_CUDA_CHECK(expr)                                                            \
  do {                                                                                  \
    if ((expr) != cudaSuccess) {                                                        \
      std::fprintf(stderr, "emu: %s failed at %s:%d\n", #expr, __FILE__, __LINE__);    \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() \
  do {                                 \
  } while (0)
