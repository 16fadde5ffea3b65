// Forward implicit GEMM, configuration 128x64_tma, __nv_bfloat16 (one file each, so the build compiles them in parallel).
#include "implicit_gemm/forward_pointwise_tma.cuh"  // forward_tma.cuh and its 1x1 NCHW kernels

namespace conv2d_ext {
namespace igemm {
template void forward_tma_launch_typed<__nv_bfloat16, TmaConfig128x64>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm
}  // namespace conv2d_ext
