// Forward, tiled family, grouped configuration on tensor cores: y[n,k,p,q] = bias[k] + sum over c < C/groups, r, s
// of w[k,c,r,s] * x[n, g*C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw] for narrow groups (K/groups <= 16), one
// mma.sync per 32 bytes of each pixel's reduction, the im2col rows addressed by ldmatrix (csrc/tiled/grouped_mma.cuh).
#include "kernels.h"
#include "tiled/grouped_mma.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return gmma::can_implement(p, gmma::Role::kForward); }

int64_t workspace_bytes(const ConvParams& p) { return gmma::workspace_bytes(p, gmma::Role::kForward); }

void launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  gmma::run(p, gmma::Role::kForward, workspace, stream);
}

}  // namespace

const KernelInfo forward_tiled_grouped_mma{Pass::kForward, "tiled", "grouped_mma", &can_implement, &workspace_bytes,
                                           &launch};

}  // namespace conv2d_ext
