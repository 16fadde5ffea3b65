// Backward-weight implicit GEMM, configuration 128x128_tma (Hopper: copy-engine boxes; MN-major wgmma in fp16/bf16,
// the NCHW input read in place as K-major boxes in TF32 and, where it fits, fp16/bf16): its registry entry (kernels
// in backward_weight_128x128_tma_{f16,bf16,tf32}.cu).
#include "implicit_gemm/backward_weight_tma_nchw.cuh"

namespace conv2d_ext {
namespace igemm {
extern template void backward_weight_tma_launch_typed<__half, TmaWgradConfig128x128>(const ConvParams&, void*,
                                                                                      cudaStream_t);
extern template void backward_weight_tma_launch_typed<__nv_bfloat16, TmaWgradConfig128x128>(const ConvParams&, void*,
                                                                                             cudaStream_t);
extern template void backward_weight_tma_nchw16_launch<__half>(const ConvParams&, void*, cudaStream_t);
extern template void backward_weight_tma_nchw16_launch<__nv_bfloat16>(const ConvParams&, void*, cudaStream_t);
extern template void backward_weight_tma_nchw_launch<float, TmaWgradTf32Config128x128>(const ConvParams&, void*,
                                                                                        cudaStream_t);
}  // namespace igemm

const KernelInfo backward_weight_implicit_gemm_128x128_tma = {
    Pass::kBackwardWeight, "implicit_gemm", "128x128_tma",
    igemm::backward_weight_tma_entry_can_implement<igemm::TmaWgradConfig128x128, igemm::TmaWgradTf32Config128x128>,
    igemm::backward_weight_tma_entry_workspace<igemm::TmaWgradConfig128x128, igemm::TmaWgradTf32Config128x128>,
    igemm::backward_weight_tma_entry_launch<igemm::TmaWgradConfig128x128, igemm::TmaWgradTf32Config128x128>};
}  // namespace conv2d_ext
