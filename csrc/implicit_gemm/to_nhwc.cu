// The NHWC copy as an op of its own (conv2d_ext::to_channels_last): the backward of an NCHW call whose two passes
// both run on the copy engine, which reads NHWC, stages grad_output once for both (conv2d.py) with the copy each pass
// would otherwise make (to_nhwc, forward.cuh); staged_nhwc then reads it in place.
#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {

void to_channels_last(const ConvParams& p, void* out, cudaStream_t stream) {
  dispatch_float_dtype(p.dtype, "to_channels_last", [&](auto tag) {
    using T = typename decltype(tag)::type;
    igemm::launch_to_nhwc<T>(static_cast<const T*>(p.x), p.x_stride, static_cast<T*>(out), p.N, p.C, p.H, p.W,
                             stream);
  });
}

}  // namespace conv2d_ext
