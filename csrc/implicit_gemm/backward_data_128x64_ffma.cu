// Backward-data implicit GEMM, exact FP32 on CUDA cores (configuration 128x64_ffma: 128 x 64 tiles, two CTAs per
// SM): float only, its registry entry and its one instantiation.
#include "implicit_gemm/backward_data.cuh"

namespace conv2d_ext {
namespace igemm {
template void backward_data_launch_typed<float, Configffma128x64>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo backward_data_implicit_gemm_128x64_ffma = {
    Pass::kBackwardData, "implicit_gemm", "128x64_ffma", igemm::backward_data_can_implement<igemm::Configffma128x64>,
    igemm::backward_data_workspace<igemm::Configffma128x64>,
    igemm::float_only_launch<igemm::backward_data_launch_typed<float, igemm::Configffma128x64>>};
}  // namespace conv2d_ext
