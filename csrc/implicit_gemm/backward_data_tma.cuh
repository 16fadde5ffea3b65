// Backward-data at stride 1 on the copy-engine forward (forward_tma.cuh): at stride 1, grad_input is the forward
// convolution of grad_output with the filters flipped in R and S and with input and output channels swapped,
//   dx[n, c, h, w] = sum over k, r', s' of dy[n, k, h - pad'_h + r'*dil_h, w - pad'_w + s'*dil_w] * w'[c, k, r', s'],
//   w'[c, k, r', s'] = w[k, c, R-1-r', S-1-s'] (per group), pad' = dil * (R - 1) - pad (top / left),
// so this pass is a ConvParams rewrite, a flipped filter repack into the workspace (repack_crsk reading w
// backwards: [C][R][S][K/groups], the forward's KRSC) and the forward's launcher. Strided backward-data stays on
// the stride-phase kernels (backward_data.cuh).
#pragma once

#include "implicit_gemm/backward_data.cuh"
#include "implicit_gemm/forward_tma.cuh"

namespace conv2d_ext {
namespace igemm {

// The forward problem whose output is p's grad_input; its filters `w` (the flipped repack, dense [C][R][S][K/g]).
inline ConvParams backward_data_as_forward(const ConvParams& p, void* w) {
  ConvParams q = p;
  q.C = p.K, q.H = p.P, q.W = p.Q;  // input: grad_output
  q.K = p.C, q.P = p.H, q.Q = p.W;  // output: grad_input
  q.pad_h = p.dil_h * int(p.R - 1) - p.pad_h;
  q.pad_w = p.dil_w * int(p.S - 1) - p.pad_w;
  q.x = p.y, q.y = p.x, q.w = w, q.bias = nullptr;
  for (int i = 0; i < 4; ++i) q.x_stride[i] = p.y_stride[i], q.y_stride[i] = p.x_stride[i];
  const int64_t Kg = p.K_per_group();
  q.w_stride[0] = p.R * p.S * Kg, q.w_stride[1] = 1, q.w_stride[2] = p.S * Kg, q.w_stride[3] = Kg;
  return q;
}

template <class Cfg>
int64_t backward_data_tma_workspace(const ConvParams& p) {
  const int64_t elem = p.dtype == DType::kFloat32 ? 4 : 2;
  const int64_t filters = region(p.C * p.R * p.S * p.K_per_group() * elem);
  return filters + forward_tma_workspace<Cfg>(backward_data_as_forward(p, nullptr));
}

template <typename T, class Cfg>
void backward_data_tma_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.N * p.H * p.W == 0 || p.C == 0) return;
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group(), total = p.C * p.R * p.S * Kg;
  T* packed = static_cast<T*>(workspace);
  // w read backwards in r and s: start at its last tap, negative tap strides.
  const FilterStrides flipped{p.w_stride[0], p.w_stride[1], -p.w_stride[2], -p.w_stride[3]};
  const T* w_last = static_cast<const T*>(p.w) + (p.R - 1) * p.w_stride[2] + (p.S - 1) * p.w_stride[3];
  repack_crsk<T>(w_last, flipped, packed, p.C, Cg, Kg, p.R, p.S, stream);
  forward_tma_launch_typed<T, Cfg>(backward_data_as_forward(p, packed),
                                   static_cast<unsigned char*>(workspace) + region(total * int64_t(sizeof(T))), stream);
}

template <class Cfg>
std::string backward_data_tma_can_implement(const ConvParams& p) {
  if (p.stride_h != 1 || p.stride_w != 1) return "stride 1 only (strided backward-data runs by stride phase)";
  return forward_tma_can_implement<Cfg>(backward_data_as_forward(p, nullptr));
}

template <class Cfg>
void backward_data_tma_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  dispatch_float_dtype(p.dtype, "implicit_gemm tma", [&](auto tag) {
    backward_data_tma_launch_typed<typename decltype(tag)::type, Cfg>(p, workspace, stream);
  });
}

}  // namespace igemm
}  // namespace conv2d_ext

// The registry entries forward_implicit_gemm_<name>_tma and backward_data_implicit_gemm_<name>_tma of configuration
// TmaConfig<name>, whose kernels are instantiated per dtype in forward_<name>_tma_{f16,bf16,tf32}.cu (declared here so
// the entries' file does not compile them again).
#define CONV2D_EXT_TMA_ENTRIES(name)                                                                              \
  namespace conv2d_ext {                                                                                        \
  namespace igemm {                                                                                             \
  extern template void forward_tma_launch_typed<__half, TmaConfig##name>(const ConvParams&, void*, cudaStream_t); \
  extern template void forward_tma_launch_typed<__nv_bfloat16, TmaConfig##name>(const ConvParams&, void*,       \
                                                                                 cudaStream_t);                 \
  extern template void forward_tma_launch_typed<float, TmaConfig##name>(const ConvParams&, void*, cudaStream_t);  \
  }                                                                                                             \
  const KernelInfo forward_implicit_gemm_##name##_tma = {                                                       \
      Pass::kForward, "implicit_gemm", #name "_tma", igemm::forward_tma_can_implement<igemm::TmaConfig##name>,  \
      igemm::forward_tma_workspace<igemm::TmaConfig##name>, igemm::forward_tma_launch<igemm::TmaConfig##name>}; \
  const KernelInfo backward_data_implicit_gemm_##name##_tma = {                                                 \
      Pass::kBackwardData, "implicit_gemm", #name "_tma",                                                       \
      igemm::backward_data_tma_can_implement<igemm::TmaConfig##name>,                                           \
      igemm::backward_data_tma_workspace<igemm::TmaConfig##name>,                                               \
      igemm::backward_data_tma_launch<igemm::TmaConfig##name>};                                                 \
  }
