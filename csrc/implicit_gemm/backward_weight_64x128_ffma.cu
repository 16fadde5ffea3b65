// Backward-weight implicit GEMM, exact FP32 on CUDA cores (configuration 64x128_ffma: 64 output channels x 128
// taps per tile, 4 warps of 64 x 32, two CTAs per SM): float only, its registry entry and its one instantiation.
#include "implicit_gemm/backward_weight.cuh"

CONV2D_EXT_IGEMM_FFMA_ENTRY(backward_weight, kBackwardWeight, 64x128_ffma)
