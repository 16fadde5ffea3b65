// Backward-weight implicit GEMM, configuration 128x128_w8: its registry entry (kernels in
// backward_weight_128x128_w8_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_weight.cuh"

CONV2D_EXT_IGEMM_BACKWARD_WEIGHT_ENTRY(128x128_w8)
