// Backward-weight, tiled family, grouped configuration: grad_weight[k,c,r,s] = sum over n, p, q of
// grad_output[n,k,p,q] * x[n, g*C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw] (g = k / (K/groups)): 8 filters x
// 8 taps per thread over staged input and grad_output tiles, per-block partial sums reduced in a fixed order
// (csrc/tiled/grouped.cuh). No atomics: bit-identical run to run.
#include "kernels.h"
#include "tiled/grouped.cuh"

namespace conv2d_ext {
namespace {

using grp::WPlan;

template <typename T, bool kNHWC>
void launch_wgrad_kernel(const ConvParams& p, const WPlan& t, void* workspace, cudaStream_t stream) {
  constexpr auto kernel = grp::wgrad_kernel<T, kNHWC>;
  dw::allow_shared_memory<kernel>(t.smem);
  const grp::StoreWeight<T> store{static_cast<T*>(p.w), p.w_stride[0], p.w_stride[1], p.w_stride[2], p.w_stride[3],
                             static_cast<int>(p.R), static_cast<int>(p.S), t.ftaps};
  const SplitPlan split{t.splits, 0};
  const auto out = split_output<float>(split, p.K * t.ftaps, workspace, store);
  const dim3 grid(static_cast<unsigned>(int64_t(p.groups) * t.wchunks), static_cast<unsigned>(t.splits));
  kernel<<<grid, t.threads, t.smem, stream>>>(p, t, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  finish_splits(out, split, stream);
}

// Workspace bytes of backward-weight: the splits' rows of partial sums (none for one split).
int64_t wgrad_workspace_bytes(const ConvParams& p) {
  const WPlan t = grp::make_wgrad_plan(p, num_sms());
  return split_workspace_bytes(SplitPlan{t.splits, 0}, p.K * p.C_per_group() * p.R * p.S, p.dtype);
}

// Backward-weight of `p` (can_implement(p, Role::kBackwardWeight) is ""). An empty batch still runs: its blocks
// reduce nothing and store zeros.
void launch_wgrad(const ConvParams& p, void* workspace, cudaStream_t stream) {
  const WPlan t = grp::make_wgrad_plan(p, num_sms());
  TORCH_CHECK(t.smem > 0, "conv2d_ext: tiled:grouped: no tile plan for this problem");
  dispatch_float_dtype(p.dtype, "tiled:grouped", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.channels_last) launch_wgrad_kernel<T, true>(p, t, workspace, stream);
    else launch_wgrad_kernel<T, false>(p, t, workspace, stream);
  });
}


std::string can_implement(const ConvParams& p) { return grp::can_implement(p, grp::Role::kBackwardWeight); }

int64_t workspace_bytes(const ConvParams& p) { return wgrad_workspace_bytes(p); }

void launch(const ConvParams& p, void* workspace, cudaStream_t stream) { launch_wgrad(p, workspace, stream); }

}  // namespace

const KernelInfo backward_weight_tiled_grouped{Pass::kBackwardWeight, "tiled", "grouped", &can_implement,
                                               &workspace_bytes, &launch};

}  // namespace conv2d_ext
