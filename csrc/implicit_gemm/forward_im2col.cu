// Forward implicit GEMM, configuration im2col: short reductions (C x R x S <= 160: first layers), the whole reduction
// of a pixel tile gathered into shared memory, mma.sync (csrc/implicit_gemm/im2col.cuh). Its registry entry.
#include "implicit_gemm/im2col.cuh"

namespace conv2d_ext {

const KernelInfo forward_implicit_gemm_im2col{Pass::kForward, "implicit_gemm", "im2col",
                                              &igemm::im2col::can_implement, nullptr, &igemm::im2col::launch};

}  // namespace conv2d_ext
