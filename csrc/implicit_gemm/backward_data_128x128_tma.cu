// Backward-data implicit GEMM, configuration 128x128_tma (stride 1 on the copy-engine forward): its registry entry;
// the kernels are the forward's (forward_128x128_tma_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_data_tma.cuh"

namespace conv2d_ext {
namespace igemm {
extern template void forward_tma_launch_typed<__half, TmaConfig128x128>(const ConvParams&, void*, cudaStream_t);
extern template void forward_tma_launch_typed<__nv_bfloat16, TmaConfig128x128>(const ConvParams&, void*, cudaStream_t);
extern template void forward_tma_launch_typed<float, TmaConfig128x128>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm

const KernelInfo backward_data_implicit_gemm_128x128_tma = {
    Pass::kBackwardData, "implicit_gemm", "128x128_tma", igemm::backward_data_tma_can_implement<igemm::TmaConfig128x128>,
    igemm::backward_data_tma_workspace<igemm::TmaConfig128x128>, igemm::backward_data_tma_launch<igemm::TmaConfig128x128>};
}  // namespace conv2d_ext
