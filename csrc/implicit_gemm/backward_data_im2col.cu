// Backward-data implicit GEMM, configuration im2col: short reductions (C x R x S <= 160 and K <= 64: first layers),
// Z = dy W on tensor cores for the output pixels reaching a dx tile, then each dx element summed from Z (col2im)
// in shared memory (csrc/implicit_gemm/im2col.cuh). Its launcher and registry entry.
#include "implicit_gemm/im2col.cuh"

namespace conv2d_ext {
namespace {

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) {
  if (p.N * p.H * p.W == 0 || p.C == 0) return;
  dispatch_float_dtype(p.dtype, "implicit_gemm im2col", [&](auto tag) {
    igemm::im2col::dgrad_launch_typed<typename decltype(tag)::type>(p, stream);
  });
}

}  // namespace

const KernelInfo backward_data_implicit_gemm_im2col{Pass::kBackwardData, "implicit_gemm", "im2col",
                                                    &igemm::im2col::dgrad_can_implement, nullptr, &launch};

}  // namespace conv2d_ext
