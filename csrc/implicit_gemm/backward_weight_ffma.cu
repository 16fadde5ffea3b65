// Backward-weight implicit GEMM, exact FP32 on CUDA cores (configuration ffma): float only, its registry entry and
// its one instantiation.
#include "implicit_gemm/backward_weight.cuh"

namespace conv2d_ext {
namespace igemm {
template void backward_weight_launch_typed<float, Configffma>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo backward_weight_implicit_gemm_ffma = {
    Pass::kBackwardWeight, "implicit_gemm", "ffma", igemm::backward_weight_can_implement<igemm::Configffma>,
    igemm::backward_weight_workspace<igemm::Configffma>,
    igemm::float_only_launch<igemm::backward_weight_launch_typed<float, igemm::Configffma>>};
}  // namespace conv2d_ext
