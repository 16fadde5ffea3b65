// Forward, tiled family, depthwise configuration: y[n,k,p,q] = bias[k] + sum over r, s of
// w[k,0,r,s] * x[n, k/M, p*sh - ph + r*dh, q*sw - pw + s*dw], on shared-memory tiles (csrc/tiled/depthwise.cuh).
#include "kernels.h"
#include "tiled/depthwise.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return dw::can_implement(p, dw::Role::kForward); }

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) { dw::launch_conv<false>(p, stream); }

}  // namespace

const KernelInfo forward_tiled_depthwise{Pass::kForward, "tiled", "depthwise", &can_implement, nullptr, &launch};

}  // namespace conv2d_ext
