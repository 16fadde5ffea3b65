// Backward-weight implicit GEMM, configuration 128x128_tma, TF32 (one file each, so the build compiles them in parallel).
#include "implicit_gemm/backward_weight_tma_nchw.cuh"

namespace conv2d_ext {
namespace igemm {
template void backward_weight_pointwise_launch_typed<float>(const ConvParams&, void*, cudaStream_t);
template void backward_weight_tma_nchw_launch<float, TmaWgradTf32Config128x128>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm
}  // namespace conv2d_ext
