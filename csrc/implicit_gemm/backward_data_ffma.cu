// Backward-data implicit GEMM, exact FP32 on CUDA cores (configuration ffma: 128 x 128 tiles): float only, its registry entry and its one instantiation.
#include "implicit_gemm/backward_data.cuh"

CONV2D_EXT_IGEMM_FFMA_ENTRY(backward_data, kBackwardData, ffma)
