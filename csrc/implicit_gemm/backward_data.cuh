// Backward-data as an implicit GEMM on tensor cores, on the machinery of implicit_gemm.cuh, stride 1 for now
// (strided backward-data without wasted zeros needs the stride-phase decomposition: planned, issue 8).
//
// GEMM mapping, per group g (blockIdx.z):
//   M = N*H*W input pixels (A rows: grad_output gathered at (h + ph - r*dh, w + pw - s*dw): a TapGather with negative
//   tap steps), N = C/groups input channels (B rows: the filters, repacked to [C][R][S][K/groups] in the workspace so
//   that the reduction's channels, the output channels, are contiguous), reduction = R*S*K/groups.
//   D lands in grad_input in its layout (store_tile), no bias.

#pragma once

#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {

// out[c][r][s][k] = w[g*Kg + k][c - g*Cg][r][s] for the group g of input channel c (all C channels).
template <typename T>
__global__ void pack_filters_crsk(const T* __restrict__ w, FilterStrides in, T* __restrict__ out, int64_t C,
                                  int64_t Cg, int64_t Kg, int64_t R, int64_t S) {
  const int64_t total = C * R * S * Kg;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % Kg, s = (i / Kg) % S, r = (i / Kg / S) % R, c = i / Kg / S / R;
    const int64_t g = c / Cg;
    out[i] = w[(g * Kg + k) * in.k + (c - g * Cg) * in.c + r * in.r + s * in.s];
  }
}

// `filters`: the [C][R][S][Kg] copy in the workspace.
template <typename T, class Cfg, bool kNHWC, bool kVec, bool kFlat>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) backward_data_kernel(const ConvParams p,
                                                                                       const T* filters) {
  extern __shared__ __align__(1024) unsigned char smem[];  // 1024: wgmma's swizzle atoms
  constexpr int BK = Cfg::kBKBytes / sizeof(T);
  const int g = blockIdx.z;
  const int Cg = static_cast<int>(p.C_per_group()), Kg = static_cast<int>(p.K_per_group());
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int64_t HW = p.H * p.W, M = p.N * HW;
  const int64_t m0 = int64_t(blockIdx.x) * Cfg::kBM;  // the CTA's first input pixel and input channel
  const int n0 = blockIdx.y * Cfg::kBN;

  // A: input pixels m = (img, h, w), whose tap (r, s) reads grad_output pixel (h + ph - r*dh, w + pw - s*dw).
  const T* dy = static_cast<const T*>(p.y) + int64_t(g) * Kg * p.y_stride[1];
  const TapGather<T> ga{dy, p.y_stride[2], p.y_stride[3], p.y_stride[1], static_cast<int>(p.P),
                        static_cast<int>(p.Q), -p.dil_h, -p.dil_w, Kg, R, S};
  OperandLoader<T, Cfg, kVec && kNHWC, kFlat, !kNHWC, Cfg::kBM> la;
  la.init([&](int64_t m) -> typename TapGather<T>::Row {
    if (m < 0) return {dy, INT_MIN / 2, INT_MIN / 2};
    const int64_t img = m / HW, hw = m - img * HW;
    const int h = static_cast<int>(hw / p.W), w = static_cast<int>(hw - int64_t(h) * p.W);
    const int h0 = h + p.pad_h, w0 = w + p.pad_w;
    return {dy + img * p.y_stride[0] + h0 * p.y_stride[2] + w0 * p.y_stride[3], h0, w0};
  }, m0, M);
  // B: row c of the packed filters; tap (r, s) holds w[g*Kg + k, c, r, s] for k = 0 .. Kg-1, contiguous.
  const int64_t row_stride = int64_t(R) * S * Kg;
  const T* fg = filters + int64_t(g) * Cg * row_stride;
  const TapGather<T> gb{fg, int64_t(S) * Kg, Kg, 1, R, S, 1, 1, Kg, R, S};
  OperandLoader<T, Cfg, kVec, kFlat, false, Cfg::kBN> lb;
  lb.init([&](int64_t c) -> typename TapGather<T>::Row {
    if (c < 0) return {fg, INT_MIN / 2, INT_MIN / 2};
    return {fg + c * row_stride, 0, 0};
  }, n0, Cg);
  const int k_tiles = kFlat ? (R * S * Kg + BK - 1) / BK : R * S * ((Kg + BK - 1) / BK);

  WarpCompute<T, Cfg> mma;
  mma.zero();
  main_loop<T, Cfg, kFlat>(smem, ga, gb, la, lb, k_tiles, mma);
  store_tile<T, Cfg, kNHWC>(smem, mma, static_cast<T*>(p.x), nullptr, m0, n0, M, Cg, p.C, HW, int64_t(g) * Cg);
}

template <typename T, class Cfg, bool kNHWC, bool kVec, bool kFlat>
void launch_backward_data_variant(const ConvParams& p, const T* filters, cudaStream_t stream) {
  constexpr auto kernel = backward_data_kernel<T, Cfg, kNHWC, kVec, kFlat>;
  constexpr int smem = forward_smem_bytes<T, Cfg, kNHWC>();  // same stages and epilogue tile as the forward
  opt_in_shared_memory<kernel>(smem);
  const int64_t M = p.N * p.H * p.W;
  const dim3 grid(static_cast<unsigned>((M + Cfg::kBM - 1) / Cfg::kBM),
                  static_cast<unsigned>((p.C_per_group() + Cfg::kBN - 1) / Cfg::kBN), static_cast<unsigned>(p.groups));
  kernel<<<grid, Cfg::kThreads, smem, stream>>>(p, filters);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

inline int64_t backward_data_workspace(const ConvParams& p) {
  const int64_t elem = p.dtype == DType::kFloat32 ? 4 : 2;
  return p.C * p.R * p.S * p.K_per_group() * elem;
}

template <typename T, class Cfg>
void backward_data_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.N * p.H * p.W == 0 || p.C == 0) return;  // an empty grad_input: nothing to launch
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group();
  T* packed = static_cast<T*>(workspace);
  const FilterStrides w_strides{p.w_stride[0], p.w_stride[1], p.w_stride[2], p.w_stride[3]};
  const int64_t total = p.C * p.R * p.S * Kg;
  pack_filters_crsk<T><<<grid_for(total, 256, 4), 256, 0, stream>>>(static_cast<const T*>(p.w), w_strides, packed,
                                                                      p.C, Cg, Kg, p.R, p.S);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // The packed rows as vector_loads_fit sees filters: row (c), channel (k), tap (r, s) strides.
  const FilterStrides fs{p.R * p.S * Kg, 1, p.S * Kg, Kg};
  const bool vec = vector_loads_fit<T, Cfg>(p, Kg, p.y, p.y_stride, packed, fs);
  if (p.channels_last) {
    if (vec) launch_backward_data_variant<T, Cfg, true, true, false>(p, packed, stream);
    else launch_backward_data_variant<T, Cfg, true, false, true>(p, packed, stream);
  } else {
    if (vec) launch_backward_data_variant<T, Cfg, false, true, false>(p, packed, stream);
    else launch_backward_data_variant<T, Cfg, false, false, true>(p, packed, stream);
  }
}

// What backward-data configuration Cfg can run.
template <class Cfg>
std::string backward_data_can_implement(const ConvParams& p) {
  static_assert(!Cfg::kVectorShapesOnly, "backward-data compiles every variant of its configurations");
  if (p.stride_h != 1 || p.stride_w != 1)
    return "strided backward-data is planned (stride-phase decomposition); the direct family runs it";
  std::string why = gemm_reason<Cfg>(p, p.C_per_group(), p.K_per_group() * p.R * p.S);
  if (why.empty()) why = dense_reason(p, p.x_stride, p.C, p.H, p.W, "grad_input");  // the epilogue writes it so
  return why;
}

template <class Cfg>
void backward_data_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  dispatch_tensor_core_dtype(p.dtype, [&](auto tag) {
    backward_data_launch_typed<typename decltype(tag)::type, Cfg>(p, workspace, stream);
  });
}

}  // namespace igemm
}  // namespace conv2d_ext

// The registry entry backward_data_implicit_gemm_<name> of configuration Config<name> (kernels instantiated per dtype
// in backward_data_<name>_{f16,bf16,tf32}.cu).
#define CONV2D_EXT_IGEMM_BACKWARD_DATA_ENTRY(name)                                                                  \
  namespace conv2d_ext {                                                                                            \
  namespace igemm {                                                                                                 \
  extern template void backward_data_launch_typed<__half, Config##name>(const ConvParams&, void*, cudaStream_t);     \
  extern template void backward_data_launch_typed<__nv_bfloat16, Config##name>(const ConvParams&, void*,             \
                                                                               cudaStream_t);                        \
  extern template void backward_data_launch_typed<float, Config##name>(const ConvParams&, void*, cudaStream_t);      \
  }                                                                                                                 \
  const KernelInfo backward_data_implicit_gemm_##name = {                                                           \
      Pass::kBackwardData, "implicit_gemm", #name, igemm::backward_data_can_implement<igemm::Config##name>,         \
      igemm::backward_data_workspace, igemm::backward_data_launch<igemm::Config##name>};                            \
  }
