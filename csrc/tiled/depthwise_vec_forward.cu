// Forward, tiled family, configuration depthwise_vec: channels-last 3x3 / 5x5 / 7x7 depthwise at stride 1, a thread
// per 16-byte channel vector and strip of output pixels, inputs read from global memory (csrc/tiled/depthwise_vec.cuh).
#include "kernels.h"
#include "tiled/depthwise_vec.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return dwv::can_implement(p, false); }

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) { dwv::launch<false>(p, stream); }

}  // namespace

const KernelInfo forward_tiled_depthwise_vec{Pass::kForward, "tiled", "depthwise_vec", &can_implement, nullptr,
                                             &launch};

}  // namespace conv2d_ext
