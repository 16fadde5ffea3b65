// tiled:grouped_mma in bf16: the kernels of grouped_mma.cuh instantiated for __nv_bfloat16.
#include "tiled/grouped_mma.cuh"

namespace conv2d_ext {
namespace gmma {
template void launch<__nv_bfloat16>(const ConvParams&, Role, void*, cudaStream_t);
}  // namespace gmma
}  // namespace conv2d_ext
