// Forward, tiled family, depthwise configuration on tensor cores (EXPERIMENTAL, not yet run on a GPU: enabled only
// with CONV2D_EXT_EXPERIMENTAL=1): channels-last fp16/bf16, multiplier 1, stride 1, filters up to 7x7, each filter row
// a band matrix on mma.sync (csrc/tiled/depthwise_mma.cuh). The kernels of both dtypes are instantiated here.
#include "kernels.h"
#include "tiled/depthwise_mma.cuh"

namespace conv2d_ext {
namespace dwmma {
template void launch<__half>(const ConvParams&, Role, void*, cudaStream_t);
template void launch<__nv_bfloat16>(const ConvParams&, Role, void*, cudaStream_t);
}  // namespace dwmma

namespace {

std::string can_implement(const ConvParams& p) { return dwmma::can_implement(p, dwmma::Role::kForward); }

void launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  dwmma::run(p, dwmma::Role::kForward, workspace, stream);
}

}  // namespace

const KernelInfo forward_tiled_depthwise_mma{Pass::kForward, "tiled", "depthwise_mma", &can_implement,
                                             &dwmma::workspace_bytes, &launch};

}  // namespace conv2d_ext
