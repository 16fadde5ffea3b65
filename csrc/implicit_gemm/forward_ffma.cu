// Forward implicit GEMM, exact FP32 on CUDA cores (configuration ffma: FfmaWarp, 8 warps of 64 x 32 on 128 x 128
// tiles): float only, its registry entry and its one instantiation.
#include "implicit_gemm/forward.cuh"

CONV2D_EXT_IGEMM_FFMA_ENTRY(forward, kForward, ffma)
