// Forward, tiled family, depthwise configuration on tensor cores: channels-last fp16/bf16, multiplier 1, stride 1,
// filters up to 7x7, each filter row a band matrix on mma.sync (csrc/tiled/depthwise_mma.cuh). The kernels of both
// dtypes are instantiated here.
#include "kernels.h"
#include "tiled/depthwise_mma.cuh"

namespace conv2d_ext {
namespace dwmma {
template void launch<__half>(const ConvParams&, Role, void*, cudaStream_t);
template void launch<__nv_bfloat16>(const ConvParams&, Role, void*, cudaStream_t);
}  // namespace dwmma

namespace {

// Views not 16-byte aligned run on tiled:depthwise's tiles.
std::string can_implement(const ConvParams& p) {
  std::string why = dwmma::can_implement(p, dwmma::Role::kForward);
  if (why.empty() && !dwmma::aligned(p)) why = forward_tiled_depthwise.can_implement(p);
  return why;
}

void launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (!dwmma::aligned(p)) return forward_tiled_depthwise.launch(p, workspace, stream);
  dwmma::run(p, dwmma::Role::kForward, workspace, stream);
}

}  // namespace

const KernelInfo forward_tiled_depthwise_mma{Pass::kForward, "tiled", "depthwise_mma", &can_implement,
                                             &dwmma::workspace_bytes, &launch};

}  // namespace conv2d_ext
