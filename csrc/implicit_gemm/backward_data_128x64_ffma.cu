// Backward-data implicit GEMM, exact FP32 on CUDA cores (configuration 128x64_ffma: 128 x 64 tiles, two CTAs per
// SM): float only, its registry entry and its one instantiation.
#include "implicit_gemm/backward_data.cuh"

CONV2D_EXT_IGEMM_FFMA_ENTRY(backward_data, kBackwardData, 128x64_ffma)
