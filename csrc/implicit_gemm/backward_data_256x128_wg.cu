// Backward-data implicit GEMM, configuration 256x128_wg: its registry entry (kernels in
// backward_data_256x128_wg_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_data.cuh"

CONV2D_EXT_IGEMM_BACKWARD_DATA_ENTRY(256x128_wg)
