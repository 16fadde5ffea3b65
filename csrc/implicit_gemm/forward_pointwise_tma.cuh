// 1x1 forward (and, through backward_data_as_forward, 1x1 backward-data) of 16-bit NCHW tensors read and written in
// place, on Hopper's copy engine and wgmma. Per image a 1x1 convolution at stride 1 without padding is one GEMM,
//   y[n] (K x HW) = w (K x C) x[n] (C x HW),
// whose activation operand is pixel-major: wgmma reads it MN-major (the transpose bit, 16-bit types only). GEMM
// mapping as forward_tma.cuh's: M = pixels of the flattened map in tiles of 128 (one 64-pixel box per consumer
// warpgroup), N = output channels, the reduction C in k-tiles of 64 channels. Boxes of the view {HW, C, N} of x: 64
// pixels (one 128-byte swizzled row per channel) x 64 channels, a swizzle atom of 8 channel rows 1024 bytes apart,
// one atom wide (the layout Wgmma64x64MN reads in backward_weight_tma.cuh); the filters' boxes are forward_tma's
// (KCRS at 1x1 is K-major). The tile leaves through the copy engine: staged transposed by stmatrix.trans as one
// 128-byte swizzled row of 64 pixels per output channel, stored as boxes of the view {HW, K, N} of y (the copy
// engine clips pixels past HW and channels past K). No NHWC copy, no threads' stores.
//
// EXPERIMENTAL (session 23, written after the device budget was spent, never run): off unless
// CONV2D_EXT_TMA_POINTWISE=1 (pointwise_fits); test_tma_pointwise runs only with CONV2D_EXT_TEST_TMA_POINTWISE=1.
#pragma once

#include "implicit_gemm/forward_tma.cuh"

namespace conv2d_ext {
namespace igemm {

struct PointwiseConv {
  int tiles;    // 128-pixel tiles per image
  int hw;       // pixels per image
  int k_tiles;  // 64-channel k-tiles of C
  int K;
  const void* bias;
};

template <typename T, class Cfg>
__global__ void __launch_bounds__(kTmaThreads, Cfg::kMinBlocks)
    forward_pointwise_tma_kernel(const __grid_constant__ CUtensorMap act, const __grid_constant__ CUtensorMap filt,
                                 const __grid_constant__ CUtensorMap out, const PointwiseConv c) {
  static_assert(sizeof(T) == 2 && Cfg::kMI == 1, "16-bit (the transpose bit), 64 pixels a consumer warpgroup");
  constexpr int BK = kTmaRowBytes / 2, kBN = Cfg::kBN, kAcc = kBN / 2, kBox = 64 * kTmaRowBytes;  // an 8 KB box
  static_assert(2 * kBox == Cfg::kABytes, "a stage: two pixel boxes, then the filters' box");
  using Mma = std::conditional_t<kBN == 128, Wgmma64x128AMN<T>, Wgmma64x64AMN<T>>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  const TmaRing<Cfg::kStages, Cfg::kStageBytes> ring(smem);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int k0 = blockIdx.y * kBN, px0 = static_cast<int>(blockIdx.x % c.tiles) * 128;
  const int n = static_cast<int>(blockIdx.x / c.tiles);
  if (threadIdx.x == 0) ring.init(2);
  __syncthreads();

  if (warp == 8) {  // producer: per k-tile both pixel boxes and the filters' box
    if (lane == 0) {
      tma_prefetch_descriptor(&act);
      tma_prefetch_descriptor(&filt);
      ring.produce(c.k_tiles, Cfg::kStageBytes, [&](int kb, unsigned char* a, uint64_t* bar) {
        tma_load_4d(a, &act, bar, px0, kb * BK, n, 0);
        tma_load_4d(a + kBox, &act, bar, px0 + 64, kb * BK, n, 0);
        tma_load_4d(a + Cfg::kABytes, &filt, bar, kb * BK, 0, 0, k0);
      });
    }
    return;
  }

  // Consumers: warpgroup wg owns pixels px0 + 64 wg .. + 63 (box wg of each stage); a k16 step is 16 channel rows of
  // the box (2048 bytes on) and 32 bytes along each filter row.
  const int wg = warp / 4;
  float acc[kAcc];
#pragma unroll
  for (int i = 0; i < kAcc; ++i) acc[i] = 0.f;
  ring.consume(
      c.k_tiles,
      [&](const unsigned char* stage) {
        const unsigned char* a = stage + wg * kBox;
        const unsigned char* b = stage + Cfg::kABytes;
#pragma unroll
        for (int step = 0; step < BK / 16; ++step)
          Mma::run(acc, wgmma_descriptor<kTmaRowBytes>(a + step * 16 * kTmaRowBytes),
                   wgmma_descriptor<kTmaRowBytes>(b + step * 32));
      },
      [&] { wgmma_fence_operands(acc); });
  named_barrier(1, 256);  // both warpgroups' MMAs are done reading the stages

  // Epilogue: box wg of the output at smem + wg kBN 128: row = output channel, 64 pixels in 16-byte chunks swizzled
  // by the row (chunk ^ row % 8). stmatrix.trans writes 8 x 8 blocks (8 channels x 8 pixels) as 8 channel rows of one
  // chunk: accumulators 4 b .. 4 b + 7 are blocks (channels 8 b.., pixels 0-7 of the warp's 16), (8 b.., 8-15),
  // (8 b + 8.., 0-7), (8 b + 8.., 8-15); lane l addresses channel row l % 8 of block l / 8. Distinct chunks: no
  // bank conflicts.
  const int cols = min(kBN, c.K - k0);
  const T* bias = c.bias ? static_cast<const T*>(c.bias) + k0 : nullptr;
  struct alignas(4) Pair { T v[2]; };
  auto value = [&](float v, int ch) { return from_acc<T>(bias && ch < cols ? v + to_acc(bias[ch]) : v); };
  unsigned char* box = smem + wg * kBN * kTmaRowBytes;
  const int mat = lane / 8;
#pragma unroll
  for (int b = 0; b < kBN / 8; b += 2) {
    uint32_t r[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int i = 4 * b + 2 * j, ch = (i / 4) * 8 + (lane % 4) * 2;
      const Pair pr{{value(acc[i], ch), value(acc[i + 1], ch + 1)}};
      r[j] = *reinterpret_cast<const uint32_t*>(&pr);
    }
    const int ch = 8 * (b + mat / 2) + lane % 8, chunk = 2 * (warp % 4) + mat % 2;
    stmatrix_x4_trans(smem_addr(box + ch * kTmaRowBytes + ((chunk ^ (ch % 8)) * 16)), r);
  }
  fence_proxy_async_shared();
  named_barrier(1, 256);
  if (threadIdx.x == 0) {
    for (int w = 0; w < 2; ++w)
      if (px0 + 64 * w < c.hw) tma_store_4d(smem + w * kBN * kTmaRowBytes, &out, px0 + 64 * w, k0, n, 0);
    bulk_commit();
    bulk_wait<0, true>();  // the boxes are read before the CTA (and its shared memory) goes
  }
}

// Runs it on p (pointwise_fits), the filters at `filt` with strides fs (fs.c == 1, as launch_tma's).
template <typename T, class Cfg>
void launch_pointwise_tma(const ConvParams& p, const T* filt, FilterStrides fs, cudaStream_t stream) {
  constexpr int e = sizeof(T), BK = kTmaRowBytes / e;
  const uint64_t hw = uint64_t(p.H * p.W);
  CUtensorMap act_map, filt_map, out_map;
  const char* why = encode_tensor_map_4d(&act_map, tma_dtype<T>(), p.x, {hw, uint64_t(p.C), uint64_t(p.N), 1},
                                         {uint64_t(p.x_stride[1] * e), uint64_t(p.x_stride[0] * e),
                                          uint64_t(p.x_stride[0] * e) * uint64_t(p.N)},
                                         {64, uint32_t(BK), 1, 1}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma pointwise (activations): ", why);
  why = encode_tensor_map_4d(&filt_map, tma_dtype<T>(), filt, {uint64_t(p.C), 1, 1, uint64_t(p.K)},
                             {uint64_t(fs.s * e), uint64_t(fs.r * e), uint64_t(fs.k * e)},
                             {uint32_t(BK), 1, 1, uint32_t(Cfg::kBN)}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma pointwise (filters): ", why);
  why = encode_tensor_map_4d(&out_map, tma_dtype<T>(), p.y, {hw, uint64_t(p.K), uint64_t(p.N), 1},
                             {uint64_t(p.y_stride[1] * e), uint64_t(p.y_stride[0] * e),
                              uint64_t(p.y_stride[0] * e) * uint64_t(p.N)},
                             {64, uint32_t(Cfg::kBN), 1, 1}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma pointwise (output): ", why);

  PointwiseConv c{};
  c.tiles = static_cast<int>((hw + 127) / 128), c.hw = static_cast<int>(hw);
  c.k_tiles = static_cast<int>((p.C + BK - 1) / BK), c.K = static_cast<int>(p.K), c.bias = p.bias;
  constexpr auto kernel = forward_pointwise_tma_kernel<T, Cfg>;
  constexpr int smem = Cfg::kSmem;
  opt_in_shared_memory<kernel>(smem);
  const dim3 grid(static_cast<unsigned>(int64_t(c.tiles) * p.N), static_cast<unsigned>((p.K + Cfg::kBN - 1) / Cfg::kBN));
  kernel<<<grid, kTmaThreads, smem, stream>>>(act_map, filt_map, out_map, c);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace igemm
}  // namespace conv2d_ext
