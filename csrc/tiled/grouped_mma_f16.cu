// tiled:grouped_mma in fp16: the kernels of grouped_mma.cuh instantiated for __half.
#include "tiled/grouped_mma.cuh"

namespace conv2d_ext {
namespace gmma {
template void launch<__half>(const ConvParams&, Role, void*, cudaStream_t);
}  // namespace gmma
}  // namespace conv2d_ext
