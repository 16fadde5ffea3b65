// Forward, tiled family, grouped configuration: y[n,k,p,q] = bias[k] + sum over c < C/groups, r, s of
// w[k,c,r,s] * x[n, g*C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw] (g = k / (K/groups)), for narrow groups,
// on shared-memory tiles with 8-channel x 7-pixel FFMA register blocks (csrc/tiled/grouped.cuh).
#include "kernels.h"
#include "tiled/grouped.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return grp::can_implement(p, grp::Role::kForward); }

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) { grp::launch_conv<false>(p, stream); }

}  // namespace

const KernelInfo forward_tiled_grouped{Pass::kForward, "tiled", "grouped", &can_implement, nullptr, &launch};

}  // namespace conv2d_ext
