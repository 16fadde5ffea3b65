// Forward implicit GEMM, configuration im2col: short reductions (C x R x S <= 160: first layers), the whole reduction
// of a pixel tile gathered into shared memory, mma.sync (csrc/implicit_gemm/im2col.cuh). Its launcher and registry
// entry.
#include "implicit_gemm/im2col.cuh"

namespace conv2d_ext {
namespace {

void launch(const ConvParams& p, void* /*workspace*/, cudaStream_t stream) {
  if (p.N * p.P * p.Q == 0 || p.K == 0) return;
  dispatch_float_dtype(p.dtype, "implicit_gemm im2col", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.channels_last) igemm::im2col::launch_typed<T, true>(p, stream);
    else igemm::im2col::launch_typed<T, false>(p, stream);
  });
}

}  // namespace

const KernelInfo forward_implicit_gemm_im2col{Pass::kForward, "implicit_gemm", "im2col",
                                              &igemm::im2col::can_implement, nullptr, &launch};

}  // namespace conv2d_ext
