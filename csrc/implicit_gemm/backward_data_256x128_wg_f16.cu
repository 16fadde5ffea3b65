// Backward-data implicit GEMM, configuration 256x128_wg, __half (one file each, so the build compiles them in parallel).
#include "implicit_gemm/backward_data.cuh"

namespace conv2d_ext {
namespace igemm {
template void backward_data_launch_typed<__half, Config256x128_wg>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm
}  // namespace conv2d_ext
