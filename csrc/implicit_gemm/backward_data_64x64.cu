// Backward-data implicit GEMM, configuration 64x64: its registry entry (kernels in
// backward_data_64x64_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_data.cuh"

CONV2D_EXT_IGEMM_BACKWARD_DATA_ENTRY(64x64)
