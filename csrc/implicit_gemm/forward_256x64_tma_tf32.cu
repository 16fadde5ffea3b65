// Forward implicit GEMM, configuration 256x64_tma, float (one file each, so the build compiles them in parallel).
#include "implicit_gemm/forward_tma.cuh"

namespace conv2d_ext {
namespace igemm {
template void forward_tma_launch_typed<float, TmaConfig256x64>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm
}  // namespace conv2d_ext
