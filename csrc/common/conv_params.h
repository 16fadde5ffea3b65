// ConvParams: everything a kernel needs to know about one 2-D convolution, built and validated once at the
// binding (csrc/bindings.cpp) and passed by value to every launcher and kernel. Kernels never see at::Tensor.
//
// Names follow the usual convolution notation:
//   x: activations  N x C x H x W        (input; grad_input for backward-data)
//   w: filters      K x (C/groups) x R x S (weight; grad_weight for backward-weight)
//   y: outputs      N x K x P x Q        (output; grad_output for the backward passes)
// All strides are in elements, not bytes, and are 64-bit, so any tensor that fits in memory can be indexed.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define CONV2D_EXT_HOST_DEVICE __host__ __device__
#else
#define CONV2D_EXT_HOST_DEVICE
#endif

namespace conv2d_ext {

enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

struct ConvParams {
  // Sizes.
  int64_t N, C, H, W;  // activations
  int64_t K, R, S;     // filters: K output channels of C/groups input channels, R x S taps
  int64_t P, Q;        // output height and width
  int groups;

  // Geometry. Only the top/left padding enters the index math; bottom/right padding is implied by P and Q,
  // which is how asymmetric padding (padding="same" with an even kernel) is carried.
  int stride_h, stride_w;
  int pad_h, pad_w;
  int dil_h, dil_w;

  // Element strides in (n, c, h, w), (k, c, r, s) and (n, k, p, q) order.
  int64_t x_stride[4];
  int64_t w_stride[4];
  int64_t y_stride[4];

  // The layout of x, w and y, decided once in Python (PyTorch's rule) and handed down: the binding makes all
  // three dense in it (NHWC / KRSC / NPQK in memory when true, NCHW / KCRS / NKPQ when false), so families whose
  // tiling depends on the layout may rely on it. The strides above are still exact; the direct kernels use only them.
  bool channels_last;
  DType dtype;
  bool allow_tf32;  // fp32 only: tensor-core families may use TF32 (mirrors torch.backends.cudnn.allow_tf32)
  int sm;           // compute capability of the device, major * 10 + minor (90 on H100), for can_implement
  // Backward-weight only: the stream's last kernel is this call's backward-data (the op conv2d_ext::backward), which
  // touches no memory this pass does. A launcher may then start its kernel as that kernel's programmatic dependent
  // without waiting for it before reading (common/pdl.cuh), so long as the kernel waits before it exits.
  bool after_backward_data;

  // Device pointers. Which of x, w, y a pass writes depends on the pass; the others are read.
  void* x;
  void* w;
  void* y;
  const void* bias;  // K elements, or nullptr

  CONV2D_EXT_HOST_DEVICE int64_t C_per_group() const { return C / groups; }
  CONV2D_EXT_HOST_DEVICE int64_t K_per_group() const { return K / groups; }
  // Bytes of one element of x, w and y (all three share the dtype).
  CONV2D_EXT_HOST_DEVICE int element_bytes() const {
    return dtype == DType::kFloat64 ? 8 : dtype == DType::kFloat32 ? 4 : 2;
  }
};

}  // namespace conv2d_ext
