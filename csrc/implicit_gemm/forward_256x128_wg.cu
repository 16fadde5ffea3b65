// Forward implicit GEMM, configuration 256x128_wg: its registry entry (kernels in forward_256x128_wg_{f16,bf16,tf32}.cu).
#include "implicit_gemm/forward.cuh"

CONV2D_EXT_IGEMM_FORWARD_ENTRY(256x128_wg)
