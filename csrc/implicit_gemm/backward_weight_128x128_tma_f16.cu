// Backward-weight implicit GEMM, configuration 128x128_tma, __half (one file each, so the build compiles them in parallel).
#include "implicit_gemm/backward_weight_tma_nchw.cuh"  // and backward_weight_pointwise_tma.cuh, backward_weight_tma.cuh

namespace conv2d_ext {
namespace igemm {
template void backward_weight_pointwise_launch_typed<__half>(const ConvParams&, void*, cudaStream_t);
template void backward_weight_tma_launch_typed<__half, TmaWgradConfig128x128>(const ConvParams&, void*, cudaStream_t);
template void backward_weight_tma_nchw16_launch<__half>(const ConvParams&, void*, cudaStream_t);  // both NCHW configurations
}  // namespace igemm
}  // namespace conv2d_ext
