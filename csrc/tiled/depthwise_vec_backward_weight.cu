// Backward-weight, tiled family, configuration depthwise_vec: channels-last 3x3 depthwise at stride 1, a thread per
// 4-channel vector accumulating the 9 taps over strips of output pixels, inputs and grad_output read from global
// memory, a fixed-order split reduction (csrc/tiled/depthwise_vec.cuh).
#include "kernels.h"
#include "tiled/depthwise_vec.cuh"

namespace conv2d_ext {

const KernelInfo backward_weight_tiled_depthwise_vec{Pass::kBackwardWeight, "tiled", "depthwise_vec",
                                                     &dwv::wgrad_can_implement, &dwv::wgrad_workspace_bytes,
                                                     &dwv::launch_wgrad};

}  // namespace conv2d_ext
