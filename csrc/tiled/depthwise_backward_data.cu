// Backward-data, tiled family, depthwise configuration: grad_input[n,c,h,w] = sum over m < M and taps (r, s) with
// h + ph - r*dh = p*sh and w + pw - s*dw = q*sw (exact) of w[c*M+m,0,r,s] * grad_output[n, c*M+m, p, q]: the
// forward's tiles with grad_output staged (csrc/tiled/depthwise.cuh), a gather with no atomics.
#include "kernels.h"
#include "tiled/depthwise.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return dw::can_implement(p, dw::Role::kBackwardData); }

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) { dw::launch_conv<true>(p, stream); }

}  // namespace

const KernelInfo backward_data_tiled_depthwise{Pass::kBackwardData, "tiled", "depthwise", &can_implement, nullptr,
                                               &launch};

}  // namespace conv2d_ext
