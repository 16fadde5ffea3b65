// Backward-data, tiled family, grouped configuration on tensor cores, stride 1: grad_input is the forward of
// grad_output with each group's filters flipped and transposed and padding (R-1)*dil - pad
// (csrc/tiled/grouped_mma.cuh). Strided backward-data stays on tiled:grouped's stride phases.
#include "kernels.h"
#include "tiled/grouped_mma.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return gmma::can_implement(p, gmma::Role::kBackwardData); }

int64_t workspace_bytes(const ConvParams& p) { return gmma::workspace_bytes(p, gmma::Role::kBackwardData); }

void launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  gmma::run(p, gmma::Role::kBackwardData, workspace, stream);
}

}  // namespace

const KernelInfo backward_data_tiled_grouped_mma{Pass::kBackwardData, "tiled", "grouped_mma", &can_implement,
                                                 &workspace_bytes, &launch};

}  // namespace conv2d_ext
