// Forward implicit GEMM, configuration 64x64: its registry entry. The kernels are instantiated per dtype in
// forward_64x64_{f16,bf16,tf32}.cu.
#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {
extern template void forward_launch_typed<__half, Config64x64>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<__nv_bfloat16, Config64x64>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<float, Config64x64>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo forward_implicit_gemm_64x64 = {Pass::kForward, "implicit_gemm", "64x64",
                                                 igemm::forward_can_implement, igemm::forward_workspace,
                                                 igemm::forward_launch<igemm::Config64x64>};
}  // namespace conv2d_ext
