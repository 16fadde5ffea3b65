// Forward implicit GEMM, configuration 64x64: its registry entry (kernels in forward_64x64_{f16,bf16,tf32}.cu).
#include "implicit_gemm/forward.cuh"

CONV2D_EXT_IGEMM_FORWARD_ENTRY(64x64)
