// Backward-weight implicit GEMM, configuration im2col: short reductions (C x R x S <= 160: first layers), the
// forward's gather turned around, the pixels as the MMA's reduction, split over CTAs and added in split order
// (csrc/implicit_gemm/im2col.cuh). Its launcher and registry entry.
#include "implicit_gemm/im2col.cuh"

namespace conv2d_ext {
namespace {

void launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.K == 0 || p.C * p.R * p.S == 0) return;
  dispatch_float_dtype(p.dtype, "implicit_gemm im2col", [&](auto tag) {
    igemm::im2col::wgrad_launch_typed<typename decltype(tag)::type>(p, workspace, stream);
  });
}

}  // namespace

const KernelInfo backward_weight_implicit_gemm_im2col{Pass::kBackwardWeight, "implicit_gemm", "im2col",
                                                      &igemm::im2col::wgrad_can_implement,
                                                      &igemm::im2col::wgrad_workspace, &launch};

}  // namespace conv2d_ext
