// tiled:grouped_mma in TF32 (fp32 data, allow_tf32): the kernels of grouped_mma.cuh instantiated for float.
#include "tiled/grouped_mma.cuh"

namespace conv2d_ext {
namespace gmma {
template void launch<float>(const ConvParams&, Role, void*, cudaStream_t);
}  // namespace gmma
}  // namespace conv2d_ext
