// Forward implicit GEMM, configuration 128x64_tma (Hopper: copy-engine loads, warp-specialized wgmma): its registry
// entry (kernels in forward_128x64_tma_{f16,bf16,tf32}.cu).
#include "implicit_gemm/forward_tma.cuh"

namespace conv2d_ext {
namespace igemm {
extern template void forward_tma_launch_typed<__half, TmaConfig128x64>(const ConvParams&, void*, cudaStream_t);
extern template void forward_tma_launch_typed<__nv_bfloat16, TmaConfig128x64>(const ConvParams&, void*, cudaStream_t);
extern template void forward_tma_launch_typed<float, TmaConfig128x64>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo forward_implicit_gemm_128x64_tma = {Pass::kForward, "implicit_gemm", "128x64_tma",
                                                      igemm::forward_tma_can_implement<igemm::TmaConfig128x64>,
                                                      igemm::forward_tma_workspace<igemm::TmaConfig128x64>,
                                                      igemm::forward_tma_launch<igemm::TmaConfig128x64>};
}  // namespace conv2d_ext
