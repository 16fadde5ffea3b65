// Backward-weight implicit GEMM, configuration 128x128_w4: its registry entry (kernels in
// backward_weight_128x128_w4_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_weight.cuh"

CONV2D_EXT_IGEMM_BACKWARD_WEIGHT_ENTRY(128x128_w4)
