// 1x1 forward (and, through backward_data_as_forward, 1x1 backward-data) of NCHW tensors read and written in place,
// on Hopper's copy engine and wgmma (16-bit below; TF32 further down). Per image a 1x1 convolution at stride 1 without padding is one GEMM,
//   y[n] (K x HW) = w (K x C) x[n] (C x HW),
// whose activation operand is pixel-major: wgmma reads it MN-major (the transpose bit, 16-bit types only). GEMM
// mapping as forward_tma.cuh's: M = pixels of the flattened map in tiles of 128 (one 64-pixel box per consumer
// warpgroup), N = output channels, the reduction C in 128-byte k-tiles of channels. Boxes of the view {HW, C, N} of x: 64
// pixels (one 128-byte swizzled row per channel) x 64 channels, a swizzle atom of 8 channel rows 1024 bytes apart,
// one atom wide (the layout Wgmma64x64MN reads in backward_weight_tma.cuh); the filters' boxes are forward_tma's
// (KCRS at 1x1 is K-major). The tile leaves through the copy engine: staged transposed by stmatrix.trans as one
// 128-byte swizzled row of 64 pixels per output channel, stored as boxes of the view {HW, K, N} of y (the copy
// engine clips pixels past HW and channels past K). No NHWC copy, no threads' stores.
//
// TF32: wgmma has no transpose bit for 32-bit types, so the consumers load their A
// fragments from the box into registers (as forward_tma.cuh's fused TF32 path): one box {136 pixels, 32 channels}
// per k-tile, unswizzled, channel rows 136 floats = 8 banks apart (a warp's 32 fragment loads conflict-free); the
// fp32 tile staged by the threads as four boxes of 32 pixels (128 bytes) per channel, stored by the copy engine.
//
// Persistent CTAs (kPersistent; written in session 27, the 16-bit default since its one device call:
// pointwise_persistent): a CTA walks work items (a pixel tile and a block of kBN output channels; the channel block fastest, so
// the CTAs reading one pixel tile run together and share it through L2: backward-data's 256 channels of r50_1x1 read
// grad_output's tile from DRAM once) and its producer runs on into the next item's k-tiles while the consumers stage
// and store this one's output, from a staging buffer of its own beside the stages. A 1x1 convolution has few
// k-tiles an item (r50_1x1: 4 forward, 1 backward-data), so one item per CTA leaves each CTA's load latency, MMAs
// and store in series. TF32 128x128 has no room for the staging buffer beside two stages: one item per CTA there.
//
// Written in session 23 without a device, first run in session 25, the default since session 26 (pointwise_fits;
// CONV2D_EXT_TMA_POINTWISE=0 turns it off).
#pragma once

#include "implicit_gemm/forward_tma.cuh"

namespace conv2d_ext {
namespace igemm {

struct PointwiseConv {
  int tiles;    // 128-pixel tiles per image
  int hw;       // pixels per image
  int k_tiles;  // k-tiles of C (64 channels 16-bit, 32 TF32)
  int K;
  int blocks;   // blocks of kBN output channels
  int items;    // work items: blocks x tiles x N, the channel block fastest
  const void* bias;
};

// A stage: the activations (16-bit: two boxes {64 pixels, 64 channels}, one per consumer warpgroup; TF32: one box
// {kActPx pixels, 32 channels}, unswizzled), then the filters' box; the output leaves as boxes of kOutPx pixels
// (128 bytes) per channel, staged at kOut: in the stages (one item per CTA) or, kPersistent, in a buffer after the
// ring's barriers (as many stages as fit beside it in half an SM's shared memory).
template <typename T, class Cfg, bool kPersistent = false>
struct PointwiseLayout {
  static constexpr bool kTf32 = sizeof(T) == 4;
  static constexpr int kBox16 = 64 * kTmaRowBytes;  // 16-bit: an 8 KB box
  static constexpr int kActPx = kTf32 ? 136 : 64, kActBytes = kTf32 ? kActPx * 32 * 4 : 2 * kBox16;
  static constexpr int kStageBytes = kActBytes + Cfg::kBN * kTmaRowBytes;
  static constexpr int kOutPx = kTmaRowBytes / int(sizeof(T)), kOutBoxes = 128 / kOutPx;
  static constexpr int kOutBytes = kOutBoxes * Cfg::kBN * kTmaRowBytes;
  static constexpr int kBudget = 113 * 1024 - 1024;  // two CTAs per SM, less the alignment slack
  static constexpr int ring_bytes(int stages) { return (tma_ring_bytes(stages, kStageBytes) + 1023) / 1024 * 1024; }
  static constexpr int max_stages() {
    int stages = 1;
    while (stages < Cfg::kStages && ring_bytes(stages + 1) + kOutBytes <= kBudget) ++stages;
    return stages;
  }
  static constexpr bool kFits = !kPersistent || max_stages() >= 2;  // a persistent CTA needs two stages at least
  static constexpr int kStages = kPersistent ? max_stages() : Cfg::kStages;
  static constexpr int kOut = kPersistent ? ring_bytes(kStages) : 0;
  static constexpr int kSmem = (kPersistent ? kOut + kOutBytes : tma_ring_bytes(kStages, kStageBytes)) + 1024;
  static_assert(kActBytes % 1024 == 0 && kSmem <= 113 * 1024, "swizzled filters; two CTAs per SM");
  static_assert(kPersistent || kOutBytes <= kStages * kStageBytes, "the output below the barriers");
};

template <typename T, class Cfg, bool kPersistent>
__global__ void __launch_bounds__(kTmaThreads, Cfg::kMinBlocks)
    forward_pointwise_kernel(const __grid_constant__ CUtensorMap act, const __grid_constant__ CUtensorMap filt,
                             const __grid_constant__ CUtensorMap out, const PointwiseConv c) {
  static_assert(Cfg::kMI == 1, "64 pixels a consumer warpgroup");
  using L = PointwiseLayout<T, Cfg, kPersistent>;
  constexpr int BK = kTmaRowBytes / int(sizeof(T)), kBN = Cfg::kBN, kAcc = kBN / 2, kStages = L::kStages;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = align_shared<1024>(smem_raw);
  const TmaRing<kStages, L::kStageBytes> ring(smem);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Work item i: channel block i % blocks of pixel tile i / blocks (image t / tiles, tile t % tiles).
  struct Item {
    int px0, n, k0;
  };
  auto item_at = [&](int i) {
    const int t = i / c.blocks;
    return Item{(t % c.tiles) * 128, t / c.tiles, (i - t * c.blocks) * kBN};
  };
  if (threadIdx.x == 0) ring.init(2);
  __syncthreads();

  if (warp == 8) {  // producer: per item and k-tile the activation box(es) and the filters' box
    if (lane == 0) {
      tma_prefetch_descriptor(&act);
      tma_prefetch_descriptor(&filt);
      RingCursor at;
      for (int i = blockIdx.x; i < c.items; i += gridDim.x) {
        const Item it = item_at(i);
        for (int kb = 0; kb < c.k_tiles; ++kb) {
          uint64_t* bar;
          unsigned char* a = ring.acquire(at, L::kStageBytes, bar);
          tma_load_4d(a, &act, bar, it.px0, kb * BK, it.n, 0);
          if constexpr (!L::kTf32) tma_load_4d(a + L::kBox16, &act, bar, it.px0 + 64, kb * BK, it.n, 0);
          tma_load_4d(a + L::kActBytes, &filt, bar, kb * BK, 0, 0, it.k0);
        }
      }
    }
    return;
  }

  const int wg = warp / 4;
  unsigned char* staged = smem + L::kOut;  // the output tile's boxes (kPersistent: a buffer of its own)
  RingCursor at;                           // the consumers' place in the ring, carried from item to item
  for (int i = blockIdx.x; i < c.items; i += gridDim.x) {
    const Item it = item_at(i);
    float acc[kAcc];
#pragma unroll
    for (int j = 0; j < kAcc; ++j) acc[j] = 0.f;
    if constexpr (!L::kTf32) {
      // 16-bit: warpgroup wg reads box wg of each stage MN-major; a k16 step is 16 channel rows of it (2048 bytes
      // on) and 32 bytes along each filter row.
      using Mma = std::conditional_t<kBN == 128, Wgmma64x128AMN<T>, Wgmma64x64AMN<T>>;
      ring.consume_from(
          at, c.k_tiles,
          [&](const unsigned char* stage) {
            const unsigned char* a = stage + wg * L::kBox16;
            const unsigned char* b = stage + L::kActBytes;
#pragma unroll
            for (int step = 0; step < BK / 16; ++step)
              Mma::run(acc, wgmma_descriptor<kTmaRowBytes>(a + step * 16 * kTmaRowBytes),
                       wgmma_descriptor<kTmaRowBytes>(b + step * 32));
          },
          [&] { wgmma_fence_operands(acc); });
    } else {
      // TF32: the fragment element (row g (+ 8), k t (+ 4)) of k8 step j is channel 8 j + t (+ 4), pixel px (+ 8)
      // of the box (WgmmaTf32RS's layout; channel rows 136 floats = 8 banks apart: conflict-free). One commit group
      // per step, two register buffers (4 steps a k-tile: step j of every k-tile uses buffer j % 2); the stage of
      // the k-tile before is released after the first step's wait by a predicated arrive (no branch there, see
      // tf32_rs_step); the item's last stage once its MMAs are done.
      const uint32_t frag0 = uint32_t(((lane % 4) * L::kActPx + wg * 64 + (warp % 4) * 16 + lane / 4) * 4);
      uint32_t a[2][4];
      for (int kb = 0; kb < c.k_tiles; ++kb) {
        const unsigned char* st = ring.landed(at);
        const uint32_t addr = smem_addr(st) + frag0;
#pragma unroll
        for (int j = 0; j < BK / 8; ++j) {
          uint32_t(&f)[4] = a[j % 2];
          tf32_box_fragment<L::kActPx>(f, addr, j);
          tf32_rs_step<kBN>(acc, f, st + L::kActBytes + j * 32);  // the step before is done
          if (j == 0) ring.release_if(at.stage == 0 ? kStages - 1 : at.stage - 1, kb > 0);
        }
        at.advance<kStages>();
      }
      wgmma_wait<0>();
      wgmma_fence_operands(acc);
      ring.release(at.stage == 0 ? kStages - 1 : at.stage - 1);
    }
    // Both warpgroups' MMAs are done reading the stages (one item per CTA: the output is staged over them); with a
    // buffer of its own, the previous item's boxes have left it (thread 0 issued their stores).
    if constexpr (kPersistent) {
      if (threadIdx.x == 0) bulk_wait<0, true>();
    }
    named_barrier(1, 256);

    // Epilogue: box b of the output (pixels kOutPx b .. of the tile) at staged + b kBN 128: row = output channel,
    // its pixels in 16-byte chunks swizzled by the row (chunk ^ row % 8), as the copy engine's 128-byte swizzle
    // stores them.
    const int cols = min(kBN, c.K - it.k0);
    const T* bias = c.bias ? static_cast<const T*>(c.bias) + it.k0 : nullptr;
    auto value = [&](float v, int ch) { return from_acc<T>(bias && ch < cols ? v + to_acc(bias[ch]) : v); };
    if constexpr (!L::kTf32) {
      // stmatrix.trans writes 8 x 8 blocks (8 channels x 8 pixels) as 8 channel rows of one chunk: accumulators
      // 4 b .. 4 b + 7 are blocks (channels 8 b.., pixels 0-7 of the warp's 16), (8 b.., 8-15), (8 b + 8.., 0-7),
      // (8 b + 8.., 8-15); lane l addresses channel row l % 8 of block l / 8. Distinct chunks: no bank conflicts.
      struct alignas(4) Pair { T v[2]; };
      unsigned char* box = staged + wg * kBN * kTmaRowBytes;
      const int mat = lane / 8;
#pragma unroll
      for (int b = 0; b < kBN / 8; b += 2) {
        uint32_t r[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int e = 4 * b + 2 * j, ch = (e / 4) * 8 + (lane % 4) * 2;
          const Pair pr{{value(acc[e], ch), value(acc[e + 1], ch + 1)}};
          r[j] = *reinterpret_cast<const uint32_t*>(&pr);
        }
        const int ch = 8 * (b + mat / 2) + lane % 8, chunk = 2 * (warp % 4) + mat % 2;
        stmatrix_x4_trans(smem_addr(box + ch * kTmaRowBytes + ((chunk ^ (ch % 8)) * 16)), r);
      }
    } else {
      // A warp's stores of one accumulator: 8 pixels x 4 channel pairs -> 8 distinct chunks (the pixel's chunk bit
      // against the even channels' row bits) x 4 words: no bank conflicts.
#pragma unroll
      for (int e = 0; e < kAcc; ++e) {
        const int px = wg * 64 + (warp % 4) * 16 + lane / 4 + (e % 4 / 2) * 8;
        const int ch = (e / 4) * 8 + (lane % 4) * 2 + e % 2;
        *reinterpret_cast<float*>(staged + (px / 32) * kBN * kTmaRowBytes + ch * kTmaRowBytes +
                                  ((((px % 32) / 4) ^ (ch % 8)) * 16) + (px % 4) * 4) = value(acc[e], ch);
      }
    }
    fence_proxy_async_shared();
    named_barrier(1, 256);
    if (threadIdx.x == 0) {
      for (int b = 0; b < L::kOutBoxes; ++b)
        if (it.px0 + L::kOutPx * b < c.hw)
          tma_store_4d(staged + b * kBN * kTmaRowBytes, &out, it.px0 + L::kOutPx * b, it.k0, it.n, 0);
      bulk_commit();
    }
  }
  if (threadIdx.x == 0) bulk_wait<0, true>();  // the boxes are read before the CTA (and its shared memory) goes
}

// Whether launch_pointwise_tma runs persistent CTAs (a wave of them walking the work items) where the staging buffer
// fits beside two stages (not TF32 128x128): by default for 16-bit types (H100, r50_1x1 fp16 NCHW, graph ms:
// backward-data 0.0371 -> 0.0281 on 128x128_tma, 0.0471 -> 0.0286 on 128x64_tma; forward 0.0266 -> 0.0262), not TF32
// (forward 0.0487 -> 0.0505 on 128x64_tma). CONV2D_EXT_TMA_POINTWISE_PERSISTENT=1 / 0 forces it on / off.
inline bool pointwise_persistent(bool tf32) {
  const char* env = std::getenv("CONV2D_EXT_TMA_POINTWISE_PERSISTENT");
  return env != nullptr && env[0] != '\0' ? env[0] == '1' : !tf32;
}

// Runs it on p (pointwise_fits), the filters at `filt` with strides fs (fs.c == 1, as launch_tma's).
template <typename T, class Cfg>
void launch_pointwise_tma(const ConvParams& p, const T* filt, FilterStrides fs, cudaStream_t stream) {
  constexpr int e = sizeof(T), BK = kTmaRowBytes / e;
  constexpr bool kTf32 = sizeof(T) == 4;
  const uint64_t hw = uint64_t(p.H * p.W);
  CUtensorMap act_map, filt_map, out_map;
  const char* why = encode_tensor_map_4d(&act_map, tma_dtype<T>(), p.x, {hw, uint64_t(p.C), uint64_t(p.N), 1},
                                         {uint64_t(p.x_stride[1] * e), uint64_t(p.x_stride[0] * e),
                                          uint64_t(p.x_stride[0] * e) * uint64_t(p.N)},
                                         {uint32_t(PointwiseLayout<T, Cfg>::kActPx), uint32_t(BK), 1, 1},
                                         {1, 1, 1, 1}, !kTf32);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma pointwise (activations): ", why);
  why = encode_tensor_map_4d(&filt_map, tma_dtype<T>(), filt, {uint64_t(p.C), 1, 1, uint64_t(p.K)},
                             {uint64_t(fs.s * e), uint64_t(fs.r * e), uint64_t(fs.k * e)},
                             {uint32_t(BK), 1, 1, uint32_t(Cfg::kBN)}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma pointwise (filters): ", why);
  why = encode_tensor_map_4d(&out_map, tma_dtype<T>(), p.y, {hw, uint64_t(p.K), uint64_t(p.N), 1},
                             {uint64_t(p.y_stride[1] * e), uint64_t(p.y_stride[0] * e),
                              uint64_t(p.y_stride[0] * e) * uint64_t(p.N)},
                             {uint32_t(kTmaRowBytes / e), uint32_t(Cfg::kBN), 1, 1}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma pointwise (output): ", why);

  PointwiseConv c{};
  c.tiles = static_cast<int>((hw + 127) / 128), c.hw = static_cast<int>(hw);
  c.k_tiles = static_cast<int>((p.C + BK - 1) / BK), c.K = static_cast<int>(p.K), c.bias = p.bias;
  c.blocks = static_cast<int>((p.K + Cfg::kBN - 1) / Cfg::kBN);
  c.items = static_cast<int>(int64_t(c.blocks) * c.tiles * p.N);  // < 2^31: pointwise_fits
  if constexpr (PointwiseLayout<T, Cfg, true>::kFits) {
    if (pointwise_persistent(kTf32)) {  // a wave of CTAs walking the items
      constexpr auto kernel = forward_pointwise_kernel<T, Cfg, true>;
      constexpr int smem = PointwiseLayout<T, Cfg, true>::kSmem;
      opt_in_shared_memory<kernel>(smem);
      const auto grid = static_cast<unsigned>(std::min<int64_t>(c.items, int64_t(Cfg::kMinBlocks) * num_sms()));
      kernel<<<grid, kTmaThreads, smem, stream>>>(act_map, filt_map, out_map, c);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      return;
    }
  }
  constexpr auto kernel = forward_pointwise_kernel<T, Cfg, false>;  // one item per CTA
  constexpr int smem = PointwiseLayout<T, Cfg>::kSmem;
  opt_in_shared_memory<kernel>(smem);
  kernel<<<static_cast<unsigned>(c.items), kTmaThreads, smem, stream>>>(act_map, filt_map, out_map, c);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace igemm
}  // namespace conv2d_ext
