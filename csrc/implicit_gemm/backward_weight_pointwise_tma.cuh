// Backward-weight of a 1x1 NCHW convolution (stride 1, no padding, one group) read in place by Hopper's copy engine:
//   dW (K x C) = sum over images n of dy[n] (K x HW) x x[n]^T (HW x C).
// Both operands are pixel-contiguous, that is K-major for wgmma (the reduction runs along their rows), in every
// dtype, TF32 included: no NHWC copies. The 128x128_tma entry takes it for such problems (pointwise_wgrad_fits):
// r50_1x1 on the H100 0.036 ms fp16 / 0.065 TF32, against 0.095 / 0.098 through the general kernel's NHWC copies
// (cuDNN 0.028 / 0.053).
//
// GEMM mapping: M = output channels in tiles of 128 (64 per consumer warpgroup), N = input channels in tiles of 128
// (or 64 x 256 for K <= 64: PointwiseWgradConfig), the reduction over (image, pixel) in k-tiles of 128 bytes of pixels
// (64 16-bit, 32 fp32): per k-tile one box {pixels, kM channels} of the view {HW, K, N} of grad_output and one
// {pixels, kN channels} of the view {HW, C, N} of x, each a 128-byte
// swizzled row per channel (forward_tma.cuh's K-major operand layout). An image's last box past HW is zero-filled by
// the copy engine in both operands, so it adds nothing; so are channels past K or C. Split-K over the k-tiles
// (split_boxes): each CTA writes its fp32 tile to partials[split]; finish_splits (common/reduce.cuh) adds them in a
// fixed order, 32 lanes of rows per element (r50_1x1: 66 splits of 16K elements; reduce_splits' one thread per
// element would walk 66 rows serially), so the result is bit-identical run to run.
#pragma once

#include <cstdlib>

#include "common/reduce.cuh"
#include "implicit_gemm/backward_weight_tma.cuh"

namespace conv2d_ext {
namespace igemm {

struct PointwiseWgrad {
  int px_tiles;            // k-tiles (boxes of pixels) per image
  int k_tiles, per_split;  // k-tiles of the whole reduction, and of one split
  int K, C;
  float* partials;         // [split][K][C]
};

// Its configurations: kM output channels x kN input channels a CTA, kStages stages of a kM-row grad_output box and a
// kN-row input box. 128 x 128 in 3 stages (two CTAs a SM), or 6 within a wave (one CTA a SM: twice the boxes in
// flight; not yet the default); 64 x 256 in 5 stages for 64 or fewer output channels (r50_1x1's K = 64: a 128-row
// box would be half zero-fill, warpgroup 1's MMAs on zeros, and the grad_output box read once per 128 input channels),
// both warpgroups on the same 64 rows of grad_output and 128 input channels each.
template <int M, int Stages>
struct PointwiseWgradConfig {
  static constexpr int kM = M, kN = 256 / (M / 64), kStages = Stages;
  static constexpr int kBoxA = kM * kTmaRowBytes, kBoxB = kN * kTmaRowBytes, kStageBytes = kBoxA + kBoxB;
  static constexpr int kMinBlocks = kStages * kStageBytes <= 100 * 1024 ? 2 : 1;
};
using PointwiseWgrad128 = PointwiseWgradConfig<128, 3>;
using PointwiseWgrad128Deep = PointwiseWgradConfig<128, 6>;
using PointwiseWgrad64 = PointwiseWgradConfig<64, 5>;

template <typename T, class Cfg>
__global__ void __launch_bounds__(kTmaThreads, Cfg::kMinBlocks)
    backward_weight_pointwise_kernel(const __grid_constant__ CUtensorMap dy_map, const __grid_constant__ CUtensorMap x_map,
                                     const PointwiseWgrad c) {
  constexpr int BK = kTmaRowBytes / int(sizeof(T));  // pixels per k-tile
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = align_shared<1024>(smem_raw);
  const TmaRing<Cfg::kStages, Cfg::kStageBytes> ring(smem);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int m0 = blockIdx.x * Cfg::kM, n0 = blockIdx.y * Cfg::kN, split = blockIdx.z;
  const int kb0 = split * c.per_split, k_tiles = min(c.per_split, c.k_tiles - kb0);
  if (threadIdx.x == 0) ring.init(2);
  __syncthreads();

  if (warp == 8) {  // producer: per k-tile a box of grad_output's channels m0.. and one of the input's n0..
    if (lane == 0) {
      tma_prefetch_descriptor(&dy_map);
      tma_prefetch_descriptor(&x_map);
      int n = kb0 / c.px_tiles, t = kb0 - n * c.px_tiles;
      ring.produce(k_tiles, Cfg::kStageBytes, [&](int, unsigned char* stage, uint64_t* bar) {
        tma_load_4d(stage, &dy_map, bar, t * BK, m0, n, 0);
        tma_load_4d(stage + Cfg::kBoxA, &x_map, bar, t * BK, n0, n, 0);
        if (++t == c.px_tiles) t = 0, ++n;
      });
    }
    return;
  }

  // Consumers: warpgroup wg owns 64 output channels (rows a_row.. of the grad_output box: 64 wg in 128 x 128, 0 in
  // 64 x 256) x 128 input channels (rows b_row.. of the input box: 0, or 128 wg); a k-step is 32 bytes of each row
  // (16 pixels 16-bit, 8 fp32).
  const int wg = warp / 4;
  const int a_row = Cfg::kM == 128 ? wg * 64 : 0, b_row = Cfg::kM == 128 ? 0 : wg * 128;
  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;
  ring.consume(
      k_tiles,
      [&](const unsigned char* stage) {
#pragma unroll
        for (int step = 0; step < kTmaRowBytes / 32; ++step)
          Wgmma64x128<T>::run(acc, wgmma_descriptor<kTmaRowBytes>(stage + a_row * kTmaRowBytes + step * 32),
                              wgmma_descriptor<kTmaRowBytes>(stage + Cfg::kBoxA + b_row * kTmaRowBytes + step * 32));
      },
      [&] { wgmma_fence_operands(acc); });
  pdl_launch_dependents();  // finish_splits may start its blocks (they wait for this grid to complete)

  // The partial tile: accumulator i is row (warp % 4) 16 + lane / 4 (+ 8), column (i / 4) 8 + (lane % 4) 2 (+ 1).
  float* out = c.partials + int64_t(split) * c.K * c.C;
  const int row = m0 + a_row + (warp % 4) * 16 + lane / 4, col = n0 + b_row + (lane % 4) * 2;
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    const int m = row + (i % 4 / 2) * 8, ch = col + (i / 4) * 8 + i % 2;
    if (m < c.K && ch < c.C) out[int64_t(m) * c.C + ch] = acc[i];
  }
}

// finish_splits' store: element e = k C + c of a 1x1 weight.
template <typename T>
struct StorePointwiseWeight {
  T* w;
  int64_t k_stride, c_stride, C;
  __device__ __forceinline__ void operator()(int64_t e, float total) const {
    const int64_t k = e / C;
    w[k * k_stride + (e - k * C) * c_stride] = from_acc<T>(total);
  }
};

// Whether the 128x128_tma entry runs p's backward-weight here (the default since session 27: H100, r50_1x1 NCHW, graph
// ms, fp16 0.0951 -> 0.0356, TF32 0.0978 -> 0.0652; CONV2D_EXT_TMA_POINTWISE_WGRAD=0 turns it off): a 1x1 NCHW problem at
// stride 1 without padding, one group, grad_output and input maps of contiguous pixels (the views {HW, channels, N})
// whose channel and image strides are 16-byte multiples, 16-byte aligned.
inline bool pointwise_wgrad_fits(const ConvParams& p) {
  const char* env = std::getenv("CONV2D_EXT_TMA_POINTWISE_WGRAD");
  if (env != nullptr && env[0] == '0') return false;
  const int64_t elem = p.element_bytes();
  return !p.channels_last && p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
         p.pad_w == 0 && p.dil_h == 1 && p.dil_w == 1 && p.groups == 1 && p.x_stride[3] == 1 && p.x_stride[2] == p.W &&
         p.y_stride[3] == 1 && p.y_stride[2] == p.Q && tma_strides_fit(elem, p.x, {p.x_stride[1], p.x_stride[0]}) &&
         tma_strides_fit(elem, p.y, {p.y_stride[1], p.y_stride[0]}) && p.H * p.W < (int64_t(1) << 31) &&
         p.N * ((p.H * p.W * elem + kTmaRowBytes - 1) / kTmaRowBytes) < (int64_t(1) << 31);
}

// Whether p runs on the 64 x 256 configuration, meant for 64 or fewer output channels: written in session 38, run by
// the H100's tests, and slower there than the 128 x 128 tiles (session 39, r50_1x1 backward-weight, graph ms: bf16
// 0.0400 against 0.0343, TF32 0.0603 against 0.0574; its finish_splits over twice the partials 13 us against 7):
// off unless CONV2D_EXT_TMA_POINTWISE_M64=1 (any K; the workspace and the launch read it alike).
inline bool pointwise_wgrad_m64(const ConvParams&) {
  const char* env = std::getenv("CONV2D_EXT_TMA_POINTWISE_M64");
  return env != nullptr && env[0] == '1';
}

// The split of the reduction: split_boxes over the k-tiles, at least 16 per split (8 for 64 x 256, whose output
// tiles are half as many: r50_1x1 131 splits of 12 k-tiles, a CTA a SM).
inline BoxSplit pointwise_wgrad_split(const ConvParams& p) {
  const bool m64 = pointwise_wgrad_m64(p);
  const int64_t px = kTmaRowBytes / p.element_bytes();
  const int64_t bm = m64 ? PointwiseWgrad64::kM : PointwiseWgrad128::kM;
  const int64_t bn = m64 ? PointwiseWgrad64::kN : PointwiseWgrad128::kN;
  const int64_t k_tiles = p.N * ((p.H * p.W + px - 1) / px), tiles = ((p.K + bm - 1) / bm) * ((p.C + bn - 1) / bn);
  return split_boxes(k_tiles, tiles, 1, m64 ? 8 : 16);
}

// Its workspace: the partial tiles.
inline int64_t backward_weight_pointwise_workspace(const ConvParams& p) {
  return region(int64_t(pointwise_wgrad_split(p).splits) * p.K * p.C * 4);
}

template <typename T, class Cfg>
void backward_weight_pointwise_run(const ConvParams& p, const BoxSplit& split, float* partials, cudaStream_t stream) {
  constexpr int e = sizeof(T), BK = kTmaRowBytes / e;
  const uint64_t hw = uint64_t(p.H * p.W);
  CUtensorMap dy_map, x_map;
  const char* why = encode_tensor_map_4d(&dy_map, tma_dtype<T>(), p.y, {hw, uint64_t(p.K), uint64_t(p.N), 1},
                                         {uint64_t(p.y_stride[1] * e), uint64_t(p.y_stride[0] * e),
                                          uint64_t(p.y_stride[0] * e) * uint64_t(p.N)},
                                         {uint32_t(BK), uint32_t(Cfg::kM), 1, 1}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma pointwise backward_weight (grad_output): ", why);
  why = encode_tensor_map_4d(&x_map, tma_dtype<T>(), p.x, {hw, uint64_t(p.C), uint64_t(p.N), 1},
                             {uint64_t(p.x_stride[1] * e), uint64_t(p.x_stride[0] * e),
                              uint64_t(p.x_stride[0] * e) * uint64_t(p.N)},
                             {uint32_t(BK), uint32_t(Cfg::kN), 1, 1}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma pointwise backward_weight (input): ", why);

  PointwiseWgrad c{};
  c.px_tiles = static_cast<int>((hw + BK - 1) / BK);
  c.k_tiles = static_cast<int>(p.N * c.px_tiles), c.per_split = split.boxes_per_split;
  c.K = static_cast<int>(p.K), c.C = static_cast<int>(p.C);
  c.partials = partials;

  constexpr auto kernel = backward_weight_pointwise_kernel<T, Cfg>;
  constexpr int smem = TmaRing<Cfg::kStages, Cfg::kStageBytes>::bytes() + 1024;  // + alignment
  opt_in_shared_memory<kernel>(smem);
  const dim3 grid(static_cast<unsigned>((p.K + Cfg::kM - 1) / Cfg::kM),
                  static_cast<unsigned>((p.C + Cfg::kN - 1) / Cfg::kN), static_cast<unsigned>(split.splits));
  kernel<<<grid, kTmaThreads, smem, stream>>>(dy_map, x_map, c);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void backward_weight_pointwise_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  const BoxSplit split = pointwise_wgrad_split(p);
  float* partials = static_cast<float*>(workspace);
  if (pointwise_wgrad_m64(p)) {
    backward_weight_pointwise_run<T, PointwiseWgrad64>(p, split, partials, stream);
  } else {
    // 6 stages where the grid is one wave (one CTA a SM), as the other copy-engine backward-weight kernels
    // (wgrad_deep_ring). Session 39, H100, r50_1x1 backward-weight (graph ms, 3 -> 6 stages): bf16 0.0343 -> 0.0329,
    // TF32 0.0574 -> 0.0547
    constexpr int kM = PointwiseWgrad128::kM, kN = PointwiseWgrad128::kN;
    const int64_t ctas = ((p.K + kM - 1) / kM) * ((p.C + kN - 1) / kN) * split.splits;
    if (wgrad_deep_ring(ctas) && ctas <= 132)
      backward_weight_pointwise_run<T, PointwiseWgrad128Deep>(p, split, partials, stream);
    else backward_weight_pointwise_run<T, PointwiseWgrad128>(p, split, partials, stream);
  }
  if (split.splits == 1) {  // one row of partial sums: converted into the weight's layout
    launch_reduce_splits<T>(partials, 1, p, true, stream);
    return;
  }
  const StorePointwiseWeight<T> store{static_cast<T*>(p.w), p.w_stride[0], p.w_stride[1], p.C};
  finish_splits(SplitOutput<float, StorePointwiseWeight<T>>{partials, p.K * p.C, store},
                SplitPlan{split.splits, 0}, stream);
}

// Instantiated per dtype in backward_weight_128x128_tma_{f16,bf16,tf32}.cu.
extern template void backward_weight_pointwise_launch_typed<__half>(const ConvParams&, void*, cudaStream_t);
extern template void backward_weight_pointwise_launch_typed<__nv_bfloat16>(const ConvParams&, void*, cudaStream_t);
extern template void backward_weight_pointwise_launch_typed<float>(const ConvParams&, void*, cudaStream_t);

inline void backward_weight_pointwise_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.dtype == DType::kFloat16) backward_weight_pointwise_launch_typed<__half>(p, workspace, stream);
  else if (p.dtype == DType::kBFloat16) backward_weight_pointwise_launch_typed<__nv_bfloat16>(p, workspace, stream);
  else backward_weight_pointwise_launch_typed<float>(p, workspace, stream);
}

}  // namespace igemm
}  // namespace conv2d_ext
