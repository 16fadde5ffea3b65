// Backward-data implicit GEMM, exact FP32 on CUDA cores (configuration ffma): float only, its registry entry and
// its one instantiation.
#include "implicit_gemm/backward_data.cuh"

namespace conv2d_ext {
namespace igemm {
template void backward_data_launch_typed<float, Configffma>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo backward_data_implicit_gemm_ffma = {
    Pass::kBackwardData, "implicit_gemm", "ffma", igemm::backward_data_can_implement<igemm::Configffma>,
    igemm::backward_data_workspace<igemm::Configffma>, igemm::float_only_launch<igemm::backward_data_launch_typed<float, igemm::Configffma>>};
}  // namespace conv2d_ext
