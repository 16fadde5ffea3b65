// Backward-data, tiled family, configuration depthwise_rows: depthwise at stride 1, NCHW 3x3 / 5x5 / 7x7 with
// "same" column padding or channels-last 3x3, a thread per vector of columns (NCHW) or channels (channels-last) and
// strip of output rows, inputs read from global memory (csrc/tiled/depthwise_rows.cuh).
#include "kernels.h"
#include "tiled/depthwise_rows.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return dwr::can_implement(p, true); }

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) { dwr::launch<true>(p, stream); }

}  // namespace

const KernelInfo backward_data_tiled_depthwise_rows{Pass::kBackwardData, "tiled", "depthwise_rows", &can_implement,
                                                    nullptr, &launch};

}  // namespace conv2d_ext
