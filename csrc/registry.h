// The kernel registry: every compiled kernel of every family, one KernelInfo each, all with one signature.
// The binding looks kernels up by pass and name; Python lists them and asks each why it cannot run a problem.
// Adding a kernel is adding its file under csrc/ and one line to the table in registry.cpp; nothing in the binding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "common/conv_params.h"

namespace conv2d_ext {

enum class Pass : int { kForward = 0, kBackwardData = 1, kBackwardWeight = 2 };

struct KernelInfo {
  Pass pass;
  const char* family;  // "direct", "tiled" or "implicit_gemm"
  const char* config;  // "" for a family with one configuration, else e.g. "128x128x32_s3"
  // "" when the kernel can run `p`, else why not, as one short clause ("groups > 1", "needs sm_80 or newer").
  // Pure host code: looks only at sizes, geometry, dtype, layout, flags, sm and pointer alignment.
  std::string (*can_implement)(const ConvParams& p);
  // Bytes of scratch `launch` needs for `p` (the binding allocates it); nullptr means none.
  int64_t (*workspace_bytes)(const ConvParams& p);
  // Runs the pass on `stream`. Only called when can_implement(p) is "". Checks every launch.
  void (*launch)(const ConvParams& p, void* workspace, cudaStream_t stream);
};

// "family" or "family:config": the name Python uses for a kernel (variant="implicit_gemm:128x128x32_s3").
std::string kernel_name(const KernelInfo& k);

// Every registered kernel, in the table's order.
const std::vector<const KernelInfo*>& registry();

// The kernel of `pass` named `name`, or nullptr.
const KernelInfo* find_kernel(Pass pass, const std::string& name);

}  // namespace conv2d_ext
