// Forward implicit GEMM, exact FP32 on CUDA cores (configuration 128x64_ffma: FfmaWarp, 4 warps of 64 x 32 on 128 x
// 64 tiles, two CTAs per SM): float only, its registry entry and its one instantiation.
#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {
template void forward_launch_typed<float, Configffma128x64>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo forward_implicit_gemm_128x64_ffma = {
    Pass::kForward, "implicit_gemm", "128x64_ffma", igemm::forward_can_implement<igemm::Configffma128x64>,
    igemm::forward_workspace<igemm::Configffma128x64>,
    igemm::float_only_launch<igemm::forward_launch_typed<float, igemm::Configffma128x64>>};
}  // namespace conv2d_ext
