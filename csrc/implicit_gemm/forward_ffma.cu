// Forward implicit GEMM, exact FP32 on CUDA cores (configuration ffma: FfmaWarp over the shared loaders and
// pipeline): float only, its registry entry and its one instantiation.
#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {
template void forward_launch_typed<float, Configffma>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo forward_implicit_gemm_ffma = {Pass::kForward, "implicit_gemm", "ffma",
                                               igemm::forward_can_implement<igemm::Configffma>, igemm::forward_workspace<igemm::Configffma>,
                                               igemm::float_only_launch<igemm::forward_launch_typed<float, igemm::Configffma>>};
}  // namespace conv2d_ext
