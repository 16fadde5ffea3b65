// Copy-engine implicit GEMM (Hopper), configuration 128x64_tma: its registry entries, forward and stride-1
// backward-data (the kernels, shared by both passes, are in forward_128x64_tma_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_data_tma.cuh"

CONV2D_EXT_TMA_ENTRIES(128x64)
