// Backward-weight implicit GEMM, configuration 64x64: its registry entry (kernels in
// backward_weight_64x64_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_weight.cuh"

CONV2D_EXT_IGEMM_BACKWARD_WEIGHT_ENTRY(64x64)
