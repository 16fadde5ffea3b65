// Backward-data, tiled family, configuration depthwise_vec: the forward's kernel on grad_output with the flipped
// filter at stride 1 (csrc/tiled/depthwise_vec.cuh).
#include "kernels.h"
#include "tiled/depthwise_vec.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return dwv::can_implement(p, true); }

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) { dwv::launch<true>(p, stream); }

}  // namespace

const KernelInfo backward_data_tiled_depthwise_vec{Pass::kBackwardData, "tiled", "depthwise_vec", &can_implement,
                                                   nullptr, &launch};

}  // namespace conv2d_ext
