// Backward-data implicit GEMM, configuration 128x128_wg: its registry entry (kernels in
// backward_data_128x128_wg_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_data.cuh"

CONV2D_EXT_IGEMM_BACKWARD_DATA_ENTRY(128x128_wg)
