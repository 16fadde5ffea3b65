// Forward implicit GEMM, exact FP32 on CUDA cores (configuration 128x64_ffma: FfmaWarp, 4 warps of 64 x 32 on
// 128 x 64 tiles, two CTAs per SM): float only, its registry entry and its one instantiation.
#include "implicit_gemm/forward.cuh"

CONV2D_EXT_IGEMM_FFMA_ENTRY(forward, kForward, 128x64_ffma)
