// The kernels of every family, as registry entries (csrc/registry.h), plus the bias gradient. Each KernelInfo is
// defined beside its launcher in csrc/<pass>/<family>.cu and listed in the table in csrc/registry.cpp.
#pragma once

#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include "common/conv_params.h"
#include "registry.h"

namespace conv2d_ext {

// can_implement of a kernel that runs every problem.
inline std::string runs_everything(const ConvParams&) { return std::string(); }

// Direct family (csrc/<pass>/direct.cu): plain loops, every dtype, layout, stride, padding, dilation and group count.
//   forward:         y[n,k,p,q] = bias[k] + sum_{c,r,s} x[n, g*C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw] * w[k,c,r,s]
//   backward_data:   writes x (grad_input) from y (grad_output) and w
//   backward_weight: writes w (grad_weight) from y (grad_output) and x; a workspace for its split reduction
extern const KernelInfo forward_direct;
extern const KernelInfo backward_data_direct;
extern const KernelInfo backward_weight_direct;

// Implicit-GEMM family (csrc/implicit_gemm/): tensor cores through mma.sync (fp16, bf16, fp32 as TF32), sm_80+,
// NCHW and NHWC natively. One entry per pass and tile configuration (<pass>_<config>.cu).
extern const KernelInfo forward_implicit_gemm_128x128_w4;
extern const KernelInfo forward_implicit_gemm_128x128_w8;
extern const KernelInfo forward_implicit_gemm_128x128_wg;
extern const KernelInfo forward_implicit_gemm_256x128_wgk128;
extern const KernelInfo forward_implicit_gemm_128x128_k128;
extern const KernelInfo forward_implicit_gemm_64x64;
// Short reductions (C x R x S <= 160: first layers): the pixel tile's whole im2col gathered into shared memory
// (im2col.cuh), every pass (backward-data: col2im of Z = dy W). CONV2D_EXT_IM2COL=0 makes it refuse every
// problem (timing the other kernels).
extern const KernelInfo forward_implicit_gemm_im2col;
extern const KernelInfo backward_weight_implicit_gemm_im2col;
extern const KernelInfo backward_data_implicit_gemm_im2col;
// Hopper: activations and filters brought in by the copy engine (TMA boxes of NHWC pixels, zero-filled padding),
// one producer warp and two wgmma consumer warpgroups on an mbarrier ring (forward_tma.cuh).
extern const KernelInfo forward_implicit_gemm_128x128_tma;
extern const KernelInfo forward_implicit_gemm_128x64_tma;
// Backward-data (stride 1): grad_output gathered with negative tap steps, filters repacked to [C][R][S][K/groups].
extern const KernelInfo backward_data_implicit_gemm_128x128_w4;
extern const KernelInfo backward_data_implicit_gemm_128x128_w8;
extern const KernelInfo backward_data_implicit_gemm_128x128_wg;
extern const KernelInfo backward_data_implicit_gemm_256x128_wg;
extern const KernelInfo backward_data_implicit_gemm_64x64;
// Stride 1 on the copy-engine forward (flipped, transposed filters; backward_data_tma.cuh).
extern const KernelInfo backward_data_implicit_gemm_128x128_tma;
extern const KernelInfo backward_data_implicit_gemm_128x64_tma;
// Backward-weight: split-K over output pixels, the splits reduced in a fixed order by a second kernel.
extern const KernelInfo backward_weight_implicit_gemm_128x128_w4;
extern const KernelInfo backward_weight_implicit_gemm_128x128_w8;
extern const KernelInfo backward_weight_implicit_gemm_64x64;
// Hopper: copy-engine boxes of output pixels, MN-major wgmma (fp16/bf16), split-K (backward_weight_tma.cuh).
extern const KernelInfo backward_weight_implicit_gemm_128x128_tma;
// Exact FP32 (allow_tf32 = False) on CUDA cores: the same loaders and pipeline with FFMA register blocks.
extern const KernelInfo forward_implicit_gemm_ffma;
extern const KernelInfo backward_data_implicit_gemm_ffma;
extern const KernelInfo backward_weight_implicit_gemm_ffma;
extern const KernelInfo forward_implicit_gemm_128x64_ffma;
extern const KernelInfo backward_data_implicit_gemm_128x64_ffma;
extern const KernelInfo backward_weight_implicit_gemm_64x128_ffma;

// Tiled family (csrc/tiled/): shared-memory tiles with their halo, FP32 FFMA (exact; fp16/bf16 accumulate in fp32),
// NCHW and NHWC natively, fp32/fp16/bf16 on sm_80+. Depthwise configuration (groups == C, any channel multiplier):
// forward and backward-data on one tile kernel (depthwise.cuh), backward-weight reducing per-block partial sums in
// a fixed order (no atomics).
extern const KernelInfo forward_tiled_depthwise;
extern const KernelInfo backward_data_tiled_depthwise;
extern const KernelInfo backward_weight_tiled_depthwise;
// Depthwise_vec (channels-last, 3x3 / 5x5 / 7x7, stride 1, multiplier 1, channels in 16-byte vectors; backward-weight
// 3x3): a thread per channel vector and strip of output pixels, inputs from global memory, no activation tiles
// (depthwise_vec.cuh).
extern const KernelInfo forward_tiled_depthwise_vec;
extern const KernelInfo backward_data_tiled_depthwise_vec;
extern const KernelInfo backward_weight_tiled_depthwise_vec;
// Depthwise_mma (channels-last fp16/bf16, multiplier 1, stride 1, filters up to 7x7, forward and backward-data): each
// filter row a band matrix on mma.sync against 8 staged rows, persistent blocks with the next tile's pixels in flight
// (depthwise_mma.cuh).
extern const KernelInfo forward_tiled_depthwise_mma;
extern const KernelInfo backward_data_tiled_depthwise_mma;
// Depthwise_rows (NCHW, 3x3 / 5x5 / 7x7, stride 1, "same" column padding, rows of 16-byte multiples; backward-data
// multiplier 1): a thread per 16-byte column vector and strip of output rows, inputs from global memory, filter and
// accumulators in registers (depthwise_rows.cuh).
extern const KernelInfo forward_tiled_depthwise_rows;
extern const KernelInfo backward_data_tiled_depthwise_rows;
// Grouped configuration (narrow groups and first layers, not depthwise: at most 64 output channels per group for the
// forward and backward-data, the reduction staged in chunks; C/groups <= 32 and K/groups <= 64 for backward-weight):
// a block per (group, tile of pixels of a few images), input tile and the group's filters staged as fp32, 8 (or 4)
// channels x 7 pixels FFMA register blocks per thread (grouped.cuh); backward-data by stride phase (a gather, no
// atomics; every phase of a stride up to 2 x 2 in one block); backward-weight reducing per-block partial sums in a
// fixed order.
extern const KernelInfo forward_tiled_grouped;
extern const KernelInfo backward_data_tiled_grouped;
extern const KernelInfo backward_weight_tiled_grouped;
// Grouped_mma (narrow groups on tensor cores: fp16/bf16/TF32, K/groups <= 16, C/groups up to 64 bytes; backward-data
// at stride 1): a block per (image tile of up to 128 pixels, up to 8 groups), the input tile staged in 16-byte planes,
// one ldmatrix (a lane per tap-shifted pixel row) and mma.sync per 32 bytes of reduction (grouped_mma.cuh).
extern const KernelInfo forward_tiled_grouped_mma;
extern const KernelInfo backward_data_tiled_grouped_mma;
// Its backward-weight (fp16/bf16, C/groups a multiple of 8 up to 32): input and grad_output tiles through
// ldmatrix.trans, m16n8k16 over 16 output pixels at a time, split over the tiles, the splits added in a fixed order.
extern const KernelInfo backward_weight_tiled_grouped_mma;

// Bias gradient (csrc/backward_bias.cu): grad_bias[k] = sum over n, p, q of y[n,k,p,q]. One kernel, no choice,
// so not in the registry. Reads p.N, p.K, p.P, p.Q, p.y_stride, p.y and p.dtype only.
int64_t backward_bias_workspace(const ConvParams& p);
void backward_bias(const ConvParams& p, void* grad_bias, void* workspace, cudaStream_t stream);

// Dense NHWC copy of the N x C x H x W tensor p.x (strides p.x_stride; fp32/fp16/bf16, H * W < 2^31) at `out`
// (16-byte aligned): grad_output staged once for both copy-engine backward passes of an NCHW call
// (csrc/implicit_gemm/to_nhwc.cu). Reads p.N, p.C, p.H, p.W, p.x, p.x_stride and p.dtype only.
void to_channels_last(const ConvParams& p, void* out, cudaStream_t stream);

}  // namespace conv2d_ext
