// Forward implicit GEMM, configuration 128x128_w4: its registry entry. The kernels are instantiated per dtype in
// forward_128x128_w4_{f16,bf16,tf32}.cu.
#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {
extern template void forward_launch_typed<__half, Config128x128_w4>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<__nv_bfloat16, Config128x128_w4>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<float, Config128x128_w4>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo forward_implicit_gemm_128x128_w4 = {Pass::kForward, "implicit_gemm", "128x128_w4",
                                                 igemm::forward_can_implement, igemm::forward_workspace,
                                                 igemm::forward_launch<igemm::Config128x128_w4>};
}  // namespace conv2d_ext
