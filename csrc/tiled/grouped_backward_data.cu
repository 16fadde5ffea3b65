// Backward-data, tiled family, grouped configuration: grad_input[n, g*C/groups + c, h, w] = sum over k < K/groups
// and taps (r, s) with h + ph - r*dh = p*sh and w + pw - s*dw = q*sw (exact) of
// w[g*K/groups + k, c, r, s] * grad_output[n, g*K/groups + k, p, q]: the forward's tiles over grad_output, one
// stride phase per block, visiting only the phase's contributing taps (csrc/tiled/grouped.cuh). No atomics.
#include "kernels.h"
#include "tiled/grouped.cuh"

namespace conv2d_ext {
namespace {

std::string can_implement(const ConvParams& p) { return grp::can_implement(p, grp::Role::kBackwardData); }

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) { grp::launch_conv<true>(p, stream); }

}  // namespace

const KernelInfo backward_data_tiled_grouped{Pass::kBackwardData, "tiled", "grouped", &can_implement, nullptr,
                                             &launch};

}  // namespace conv2d_ext
