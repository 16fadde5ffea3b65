// Backward-data, tiled family, depthwise configuration on tensor cores: at stride 1 grad_input is the forward of
// grad_output with the filter flipped and padding R-1-pad (csrc/tiled/depthwise_mma.cuh; kernels instantiated in
// depthwise_mma_forward.cu).
#include "kernels.h"
#include "tiled/depthwise_mma.cuh"

namespace conv2d_ext {
namespace {

// Views not 16-byte aligned run on tiled:depthwise's tiles.
std::string can_implement(const ConvParams& p) {
  std::string why = dwmma::can_implement(p, dwmma::Role::kBackwardData);
  if (why.empty() && !dwmma::aligned(p)) why = backward_data_tiled_depthwise.can_implement(p);
  return why;
}

void launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (!dwmma::aligned(p)) return backward_data_tiled_depthwise.launch(p, workspace, stream);
  dwmma::run(p, dwmma::Role::kBackwardData, workspace, stream);
}

}  // namespace

const KernelInfo backward_data_tiled_depthwise_mma{Pass::kBackwardData, "tiled", "depthwise_mma", &can_implement,
                                                   &dwmma::workspace_bytes, &launch};

}  // namespace conv2d_ext
