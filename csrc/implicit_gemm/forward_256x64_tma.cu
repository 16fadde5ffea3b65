// Forward implicit GEMM, configuration 256x64_tma (Hopper: copy-engine loads, warp-specialized wgmma): its registry
// entry (kernels in forward_256x64_tma_{f16,bf16,tf32}.cu).
#include "implicit_gemm/forward_tma.cuh"

namespace conv2d_ext {
namespace igemm {
extern template void forward_tma_launch_typed<__half, TmaConfig256x64>(const ConvParams&, void*, cudaStream_t);
extern template void forward_tma_launch_typed<__nv_bfloat16, TmaConfig256x64>(const ConvParams&, void*, cudaStream_t);
extern template void forward_tma_launch_typed<float, TmaConfig256x64>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo forward_implicit_gemm_256x64_tma = {Pass::kForward, "implicit_gemm", "256x64_tma",
                                                      igemm::forward_tma_can_implement<igemm::TmaConfig256x64>,
                                                      igemm::forward_tma_workspace<igemm::TmaConfig256x64>,
                                                      igemm::forward_tma_launch<igemm::TmaConfig256x64>};
}  // namespace conv2d_ext
