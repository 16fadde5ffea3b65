// Backward-weight implicit GEMM, configuration 128x128_w8, float (one file each, so the build compiles them in parallel).
#include "implicit_gemm/backward_weight.cuh"

namespace conv2d_ext {
namespace igemm {
template void backward_weight_launch_typed<float, Config128x128_w8>(const ConvParams&, void*, cudaStream_t);
}  // namespace igemm
}  // namespace conv2d_ext
