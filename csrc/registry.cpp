// The table of every compiled kernel. Adding a kernel: define its KernelInfo beside its launcher, declare it in
// kernels.h, and list it here, in the order the heuristics should try a family's kernels.
#include "registry.h"

#include <cstring>

#include "kernels.h"

namespace conv2d_ext {

std::string kernel_name(const KernelInfo& k) {
  return k.config[0] == '\0' ? std::string(k.family) : std::string(k.family) + ":" + k.config;
}

const std::vector<const KernelInfo*>& registry() {
  static const std::vector<const KernelInfo*> table = {
      &forward_direct,
      &backward_data_direct,
      &backward_weight_direct,
      &forward_tiled_depthwise_vec,
      &backward_data_tiled_depthwise_vec,
      &backward_weight_tiled_depthwise_vec,
      &forward_tiled_depthwise_rows,
      &backward_data_tiled_depthwise_rows,
      &forward_tiled_depthwise,
      &backward_data_tiled_depthwise,
      &backward_weight_tiled_depthwise,
      &forward_tiled_depthwise_mma,
      &backward_data_tiled_depthwise_mma,
      &forward_tiled_grouped_mma,
      &backward_data_tiled_grouped_mma,
      &backward_weight_tiled_grouped_mma,
      &forward_tiled_grouped,
      &backward_data_tiled_grouped,
      &backward_weight_tiled_grouped,
      &forward_implicit_gemm_128x128_tma,
      &forward_implicit_gemm_128x64_tma,
      &forward_implicit_gemm_128x128_w4,
      &forward_implicit_gemm_256x128_wgk128,
      &forward_implicit_gemm_128x128_wg,
      &forward_implicit_gemm_128x128_w8,
      &forward_implicit_gemm_128x128_k128,
      &forward_implicit_gemm_64x64,
      &backward_data_implicit_gemm_128x128_tma,
      &backward_data_implicit_gemm_128x64_tma,
      &backward_data_implicit_gemm_256x128_wg,
      &backward_data_implicit_gemm_128x128_wg,
      &backward_data_implicit_gemm_128x128_w4,
      &backward_data_implicit_gemm_128x128_w8,
      &backward_data_implicit_gemm_64x64,
      &backward_weight_implicit_gemm_128x128_w4,
      &backward_weight_implicit_gemm_128x128_w8,
      &backward_weight_implicit_gemm_64x64,
      &backward_weight_implicit_gemm_128x128_tma,
      &forward_implicit_gemm_ffma,
      &backward_data_implicit_gemm_ffma,
      &backward_weight_implicit_gemm_ffma,
      &forward_implicit_gemm_128x64_ffma,
      &backward_data_implicit_gemm_128x64_ffma,
      &backward_weight_implicit_gemm_64x128_ffma,
      &forward_implicit_gemm_im2col,
      &backward_weight_implicit_gemm_im2col,
      &backward_data_implicit_gemm_im2col,
  };
  return table;
}

namespace {

// Does `name` spell kernel_name(k)? Compared in place: the binding looks a kernel up on every call.
bool is_named(const KernelInfo& k, const std::string& name) {
  const size_t family = std::strlen(k.family), config = std::strlen(k.config);
  if (name.compare(0, family, k.family) != 0) return false;
  if (config == 0) return name.size() == family;
  return name.size() == family + 1 + config && name[family] == ':' && name.compare(family + 1, config, k.config) == 0;
}

}  // namespace

const KernelInfo* find_kernel(Pass pass, const std::string& name) {
  for (const KernelInfo* k : registry()) {
    if (k->pass == pass && is_named(*k, name)) return k;
  }
  return nullptr;
}

}  // namespace conv2d_ext
