// Backward-data implicit GEMM, configuration 256x64_tma (stride 1 on the copy-engine forward): its registry entry;
// the kernels are the forward's (forward_256x64_tma_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_data_tma.cuh"

namespace conv2d_ext {
namespace igemm {
extern template void forward_tma_launch_typed<__half, TmaConfig256x64>(const ConvParams&, void*, cudaStream_t);
extern template void forward_tma_launch_typed<__nv_bfloat16, TmaConfig256x64>(const ConvParams&, void*, cudaStream_t);
extern template void forward_tma_launch_typed<float, TmaConfig256x64>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo backward_data_implicit_gemm_256x64_tma = {
    Pass::kBackwardData, "implicit_gemm", "256x64_tma", igemm::backward_data_tma_can_implement<igemm::TmaConfig256x64>,
    igemm::backward_data_tma_workspace<igemm::TmaConfig256x64>, igemm::backward_data_tma_launch<igemm::TmaConfig256x64>};
}  // namespace conv2d_ext
