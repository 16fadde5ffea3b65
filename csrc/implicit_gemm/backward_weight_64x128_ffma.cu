// Backward-weight implicit GEMM, exact FP32 on CUDA cores (configuration 64x128_ffma: 64 output channels x 128 taps
// per tile, 4 warps of 64 x 32, two CTAs per SM): float only, its registry entry and its one instantiation.
#include "implicit_gemm/backward_weight.cuh"

namespace conv2d_ext {
namespace igemm {
template void backward_weight_launch_typed<float, Configffma64x128>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo backward_weight_implicit_gemm_64x128_ffma = {
    Pass::kBackwardWeight, "implicit_gemm", "64x128_ffma", igemm::backward_weight_can_implement<igemm::Configffma64x128>,
    igemm::backward_weight_workspace<igemm::Configffma64x128>,
    igemm::float_only_launch<igemm::backward_weight_launch_typed<float, igemm::Configffma64x128>>};
}  // namespace conv2d_ext
