// Forward implicit GEMM, configuration 256x128_wgk128, __half (one file each, so the build compiles them in parallel).
#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {
template void forward_launch_typed<__half, Config256x128_wgk128>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm
}  // namespace conv2d_ext
