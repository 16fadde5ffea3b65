// Backward-data, tiled family, configuration depthwise_rows: NCHW 3x3 / 5x5 / 7x7 depthwise at stride 1 with
// "same" column padding, a thread per 16-byte vector of a row's columns and strip of output rows, inputs read from
// global memory (csrc/tiled/depthwise_rows.cuh).
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
