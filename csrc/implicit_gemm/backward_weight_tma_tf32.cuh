// Backward-weight on Hopper's copy engine in TF32: the GEMM of backward_weight_tma.cuh (M = output channels,
// N = (tap, channel) columns, the reduction over output pixels) with the operands TF32 wgmma can read. TF32 MMAs take
// shared-memory operands K-major only (the reduction contiguous), and NHWC boxes are MN-major, so:
//   B (the input's window of a tap) comes from the NCHW input itself: a box of 32 consecutive pixels of one input row
//     x 32 channels is 32 rows of 128 bytes with the pixels contiguous -- K-major, in the copy engine's 128-byte
//     swizzle, read by wgmma through a descriptor as the forward reads its filters. A channels-last input is copied
//     to dense NCHW first (launch_to_nchw, forward.cuh: seed 1.07 GB in TF32, about 0.8 ms against the 6 ms the
//     channel-gathering 128x128_w8 loses).
//   A (grad_output) comes from NHWC boxes (32 output channels x the same 32 output pixels: MN-major) and goes into the
//     MMAs from registers: each thread loads its fragments from the swizzled box (2-way bank conflicts), after which
//     the layout in shared memory does not matter.
// The copy engine faults (illegal instruction) on a box whose innermost coordinate is not a multiple of 16 bytes
// (H200, session 8), so the input's boxes start at aligned columns and the tap's horizontal shift goes to grad_output,
// whose column is not its innermost dimension: a k-tile is 32 input columns u0 .. u0 + 31 (u0 a multiple of 32, from
// 0 to W) of input row p*sh - ph + r*dh, image n, output row p; for filter column s they meet output columns
// q = u - s*dw + pw, whose grad_output box starts at u0 - s*dw + pw (zero fill outside 0..Q-1, as for rows outside
// the image). So stride_w must be 1; stride_h is free. Input columns that meet no output column for a filter column s
// multiply zeros: an infinite or NaN input anywhere in a row (a border column a tap never reads included) makes that
// tap's gradient NaN (0 x inf), where PyTorch's stays finite for the taps that never read it.
// A tile's columns share one filter column s (its grad_output boxes): column block b of s is (filter row r, 32-channel
// chunk), 4 blocks per tile (128 columns), ceil(R * chunks / 4) tiles per s. Each consumer warpgroup owns 64 output
// channels x 128 columns: 4 m64n128k8 MMAs per k-tile. Splits of the k-tiles write fp32 partial tiles, reduced in
// split order by reduce_splits (bit-identical from run to run).
#pragma once

#include "implicit_gemm/backward_weight_pointwise_tma.cuh"  // and backward_weight_tma.cuh

namespace conv2d_ext {
namespace igemm {

constexpr int kTf32WgradPixels = 32;                            // a k-tile: 32 output pixels of one row
constexpr int kTf32WgradBox = kTf32WgradPixels * kTmaRowBytes;  // 4 KB: 32 pixels x 32 channels (either operand)
constexpr int kTf32WgradBlocks = 4;                             // column blocks per tile (128 columns)

// Stages of 32 KB (four grad_output boxes, four input boxes). One CTA per SM (4 stages): two would cap the registers
// at 96 a thread (5 warps per scheduler), too few for 64 accumulators and two buffers of A fragments.
template <int Stages>
struct TmaWgradTf32Config {
  static constexpr int kStages = Stages, kStageBytes = (4 + kTf32WgradBlocks) * kTf32WgradBox;
  static constexpr int kSmem = Stages * kStageBytes + 2 * Stages * 8 + 1024 /* alignment */;
  static constexpr int kMinBlocks = 2 * kSmem <= 227 * 1024 ? 2 : 1;
};
using TmaWgradTf32Config128x128 = TmaWgradTf32Config<4>;

struct TmaWgradTf32 {
  int u_tiles, P;                    // k-tiles per row (32 input columns each); output rows
  int boxes, boxes_per_split;        // k-tiles of the whole reduction, and of one split
  int groups, Cg, Kg;
  int stride_h, pad_h, pad_w, dil_h, dil_w;
  int S, c_chunks, blocks, tiles_per_s;  // column blocks of one filter column s: R*c_chunks (r, chunk) pairs
  int64_t K, taps;                   // partial rows (all output channels) and columns (Cg*R*S)
  float* partials;                   // [split][K][taps], taps in (r, s, c) order
};

template <class Cfg>
__global__ void __launch_bounds__(kTmaThreads, Cfg::kMinBlocks)
    backward_weight_tma_tf32_kernel(const __grid_constant__ CUtensorMap dy_map,
                                    const __grid_constant__ CUtensorMap x_map, const TmaWgradTf32 c) {
  constexpr int BC = kTmaRowBytes / 4;  // 32 channels per box
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  const TmaRing<Cfg::kStages, Cfg::kStageBytes> ring(smem);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = blockIdx.z % c.groups, split = blockIdx.z / c.groups;
  const int s = blockIdx.y / c.tiles_per_s, block0 = (blockIdx.y - s * c.tiles_per_s) * kTf32WgradBlocks;
  const int m0 = blockIdx.x * 128;
  const int box0 = split * c.boxes_per_split, k_tiles = min(c.boxes_per_split, c.boxes - box0);

  if (threadIdx.x == 0) ring.init(2);
  __syncthreads();

  if (warp == 8) {  // producer
    if (lane == 0) {
      tma_prefetch_descriptor(&dy_map);
      tma_prefetch_descriptor(&x_map);
      int chan[kTf32WgradBlocks], dh[kTf32WgradBlocks];  // each input box's channel and filter row offset
#pragma unroll
      for (int j = 0; j < kTf32WgradBlocks; ++j) {
        const int b = min(block0 + j, c.blocks - 1);  // past the last block: any valid box, its columns unused
        const int r = b / c.c_chunks;
        chan[j] = g * c.Cg + (b - r * c.c_chunks) * BC, dh[j] = r * c.dil_h - c.pad_h;
      }
      const int shift = c.pad_w - s * c.dil_w;  // output column = input column + shift
      int ui = box0 % c.u_tiles, rest = box0 / c.u_tiles, pi = rest % c.P, ni = rest / c.P;
      ring.produce(k_tiles, uint32_t(Cfg::kStageBytes), [&](int, unsigned char* stage, uint64_t* bar) {
        const int u0 = ui * kTf32WgradPixels, h = pi * c.stride_h;
#pragma unroll
        for (int b = 0; b < 4; ++b)
          tma_load_4d(stage + b * kTf32WgradBox, &dy_map, bar, g * c.Kg + m0 + b * BC, u0 + shift, pi, ni);
#pragma unroll
        for (int j = 0; j < kTf32WgradBlocks; ++j)
          tma_load_4d(stage + (4 + j) * kTf32WgradBox, &x_map, bar, u0, h + dh[j], chan[j], ni);
        if (++ui == c.u_tiles) {
          ui = 0;
          if (++pi == c.P) pi = 0, ++ni;
        }
      });
    }
    return;
  }

  // Consumers: warpgroup wg owns output channels m0 + 64 wg .. + 63; warp w of it rows 16 w .. 16 w + 15. Its A
  // fragments (row = channel, k = pixel) sit in grad_output box (64 wg + 16 w) / 32 at pixel row k, channel chunk
  // swizzled by the pixel: byte k*128 + ((ch / 4) ^ (k % 8)) * 16 + (ch % 4) * 4, k % 8 being t or t + 4 at every step.
  const int wg = warp / 4, w = warp % 4, gid = lane / 4, t = lane % 4;
  const int box = (wg * 64 + w * 16) / BC, chunk = ((w % 2) * 16 + gid) / 4;
  uint32_t frag[4];  // byte offsets in the stage of a0..a3 at step 0 (rows g, g + 8; pixels t, t + 4)
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int k = t + (i / 2) * 4, ch_chunk = chunk + (i % 2) * 2;
    frag[i] = box * kTf32WgradBox + k * kTmaRowBytes + ((ch_chunk ^ k) * 16) + (gid % 4) * 4;
  }
  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;
  uint32_t a[2][kTf32WgradPixels / 8][4];  // two k-tiles' fragments: one in the MMAs, one being loaded
  ring.consume_with_registers(
      k_tiles,
      [&](const unsigned char* stage, auto buf) {
#pragma unroll
        for (int step = 0; step < kTf32WgradPixels / 8; ++step)
#pragma unroll
          for (int i = 0; i < 4; ++i)
            a[buf][step][i] = ld_shared_b32(smem_addr(stage) + frag[i] + step * 8 * kTmaRowBytes);
      },
      [&](const unsigned char* stage, auto buf) {
#pragma unroll
        for (int step = 0; step < kTf32WgradPixels / 8; ++step)  // 8 pixels (32 bytes of each B row) per MMA
          WgmmaTf32RS<128>::run(acc, a[buf][step],
                                wgmma_descriptor<kTmaRowBytes>(stage + 4 * kTf32WgradBox + step * 32));
      },
      [&] { wgmma_fence_operands(acc); });  // A's registers: ptxas keeps them live until the wait that covers them

  // The partial tile: row m (output channel), column n = 32 j + (channel within block j) -> (tap (r, s), channel).
  float* out = c.partials + (int64_t(split) * c.K + int64_t(g) * c.Kg) * c.taps;
  const int row = m0 + wg * 64 + w * 16 + gid;
#pragma unroll
  for (int j = 0; j < kTf32WgradBlocks; ++j) {
    const int b = block0 + j;
    if (b >= c.blocks) continue;
    const int r = b / c.c_chunks, tap = r * c.S + s, ch0 = (b - r * c.c_chunks) * BC;
#pragma unroll
    for (int jj = 0; jj < 4; ++jj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int m = row + (e / 2) * 8, ch = ch0 + jj * 8 + t * 2 + e % 2;
        if (m < c.Kg && ch < c.Cg) out[int64_t(m) * c.taps + int64_t(tap) * c.Cg + ch] = acc[(j * 4 + jj) * 4 + e];
      }
  }
}

// The split of the reduction (split_boxes): at least 16 k-tiles per split.
struct TmaWgradTf32Plan {
  int u_tiles, c_chunks, blocks, tiles_per_s, col_tiles, m_tiles, splits, boxes_per_split;
  int64_t boxes;
};

// Input columns a k-tile walks: 0 .. min(W, the last column any tap reads + 1) (columns outside 0..W-1 are zero
// padding: they add nothing).
inline int64_t tf32_wgrad_columns(const ConvParams& p) {
  return std::max<int64_t>(0, std::min<int64_t>(p.W, (p.Q - 1) + (p.S - 1) * p.dil_w - p.pad_w + 1));
}

inline TmaWgradTf32Plan tma_wgrad_tf32_plan(const ConvParams& p) {
  TmaWgradTf32Plan plan{};
  plan.u_tiles = static_cast<int>((tf32_wgrad_columns(p) + kTf32WgradPixels - 1) / kTf32WgradPixels);
  plan.boxes = p.N * p.P * plan.u_tiles;
  plan.c_chunks = static_cast<int>((p.C_per_group() + 31) / 32);
  plan.blocks = static_cast<int>(p.R * plan.c_chunks);
  plan.tiles_per_s = (plan.blocks + kTf32WgradBlocks - 1) / kTf32WgradBlocks;
  plan.col_tiles = static_cast<int>(p.S * plan.tiles_per_s);
  plan.m_tiles = static_cast<int>((p.K_per_group() + 127) / 128);
  const int64_t tiles = int64_t(plan.m_tiles) * plan.col_tiles * p.groups;
  const BoxSplit split = split_boxes(plan.boxes, tiles, p.groups, 16);
  plan.boxes_per_split = split.boxes_per_split, plan.splits = split.splits;
  return plan;
}

// Does the input get a dense NCHW copy first (its pixels not contiguous: channels-last), and can it (one stride per
// pixel, as to_nchw reads it)? Otherwise (a sliced NCHW input, or no single pixel stride) 128x128_w8 runs it.
inline bool tf32_wgrad_copies_input(const ConvParams& p) { return p.x_stride[3] != 1; }
inline bool tf32_wgrad_input_fits(const ConvParams& p) {
  const int64_t(&xs)[4] = p.x_stride;
  if (tf32_wgrad_copies_input(p)) return xs[2] == p.W * xs[3];
  return tma_strides_fit<float>(p.x, {xs[0], xs[1], xs[2]});
}

// What the TF32 kernel can run: wgmma's conditions, an NCHW input the copy engine reads in place (pixels contiguous,
// rows of whole 16-byte multiples) or a channels-last one it copies to NCHW, stride_w 1, grad_output channels in
// 16-byte vectors (its NHWC boxes).
inline std::string backward_weight_tma_tf32_can_implement(const ConvParams& p) {
  std::string why = gemm_reason<Config128x128_wg>(p, p.C_per_group() * p.R * p.S, p.N * p.P * p.Q);
  if (!why.empty()) return why;
  if (tf32_wgrad_copies_input(p) && p.H * p.W > kMaxNchwCopyPixels)  // channels-last: copied to NCHW first
    return "TF32, channels-last: images of more than 65535 x 32 pixels (the grid of the input's NCHW copy)";
  if (p.stride_w != 1) return "TF32: horizontal stride 1 only (a box's 32 pixels are contiguous input pixels)";
  if (p.W % 4 != 0) return "TF32: input rows must be whole 16-byte multiples (W % 4 == 0) for the copy engine";
  if (p.K % 4 != 0 || p.K_per_group() % 4 != 0)  // grad_output boxes start at 16-byte channel offsets
    return "TF32: output channels (and per group) must fill 16-byte vectors (K % 4 == 0)";
  if (p.P * p.Q >= (int64_t(1) << 31)) return "images of 2^31 or more output pixels (the NHWC copy of grad_output)";
  if (p.N * p.P * ((tf32_wgrad_columns(p) + kTf32WgradPixels - 1) / kTf32WgradPixels) >= (int64_t(1) << 31))
    return "2^31 or more k-tiles of input columns";
  if (p.K_per_group() * p.C_per_group() * p.R * p.S >= (int64_t(1) << 31))
    return "a weight of 2^31 elements or more per group";
  if (tma_wgrad_tf32_plan(p).col_tiles > 65535) return "more than 65535 tiles of (tap, channel) columns";
  return "";
}

// Workspace: the partials, grad_output's NHWC copy (none when it comes dense NHWC: channels-last, or staged by
// conv2d.py) and the input's NCHW copy (channels-last), or what the fallback (128x128_w8, sliced inputs) needs.
inline int64_t backward_weight_tma_tf32_workspace(const ConvParams& p) {
  const int64_t count = p.K * p.C_per_group() * p.R * p.S;
  const int64_t dy_copy = region(staged_nhwc_bytes(p.y, p.y_stride, p.N, p.K, p.P, p.Q, 4));
  const int64_t x_copy = tf32_wgrad_copies_input(p) ? p.N * p.C * p.H * p.W * 4 : 0;
  const int64_t bytes = region(int64_t(tma_wgrad_tf32_plan(p).splits) * count * 4) + dy_copy + x_copy;
  return std::max(bytes, backward_weight_workspace<Config128x128_w8>(p));
}

extern template void backward_weight_launch_typed<float, Config128x128_w8>(const ConvParams&, void*, cudaStream_t);

template <class Cfg>
void backward_weight_tma_tf32_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  constexpr int e = 4, BC = kTmaRowBytes / e;
  const int64_t count = p.K * p.C_per_group() * p.R * p.S;
  if (count == 0) return;
  float* partials = static_cast<float*>(workspace);
  if (p.N * p.P * p.Q == 0) return zero_weight_gradient<float>(p, partials, count, stream);
  const TmaWgradTf32Plan plan = tma_wgrad_tf32_plan(p);
  if (!tf32_wgrad_input_fits(p)) {
    backward_weight_launch_typed<float, Config128x128_w8>(p, workspace, stream);  // sliced input: the gathers
    return;
  }
  // grad_output in NHWC: as it comes (channels-last, or staged once for both backward passes by conv2d.py), else
  // copied; then the input's NCHW copy when it is channels-last.
  int64_t ys[4];
  unsigned char* free_space = static_cast<unsigned char*>(workspace) + region(int64_t(plan.splits) * count * 4);
  const float* dy = staged_nhwc<float>(p.y, p.y_stride, reinterpret_cast<float*>(free_space), p.N, p.K, p.P, p.Q,
                                       ys, stream);
  free_space += region(staged_nhwc_bytes(p.y, p.y_stride, p.N, p.K, p.P, p.Q, 4));
  const float* x = static_cast<const float*>(p.x);
  int64_t xs[4] = {p.x_stride[0], p.x_stride[1], p.x_stride[2], p.x_stride[3]};
  if (tf32_wgrad_copies_input(p)) {
    float* x_copy = reinterpret_cast<float*>(free_space);
    launch_to_nchw<float>(x, p.x_stride, x_copy, p.N, p.C, p.H, p.W, stream);
    x = x_copy;
    xs[0] = p.C * p.H * p.W, xs[1] = p.H * p.W, xs[2] = p.W, xs[3] = 1;
  }
  CUtensorMap dy_map, x_map;
  const char* why = encode_tensor_map_4d(
      &dy_map, tma_dtype<float>(), dy, {uint64_t(p.K), uint64_t(p.Q), uint64_t(p.P), uint64_t(p.N)},
      {uint64_t(ys[3] * e), uint64_t(ys[2] * e), uint64_t(ys[0] * e)},
      {uint32_t(BC), uint32_t(kTf32WgradPixels), 1, 1}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma tf32 backward_weight (grad_output): ", why);
  why = encode_tensor_map_4d(&x_map, tma_dtype<float>(), x, {uint64_t(p.W), uint64_t(p.H), uint64_t(p.C), uint64_t(p.N)},
                             {uint64_t(xs[2] * e), uint64_t(xs[1] * e), uint64_t(xs[0] * e)},
                             {uint32_t(kTf32WgradPixels), 1, uint32_t(BC), 1}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma tf32 backward_weight (input): ", why);

  TmaWgradTf32 c{};
  c.u_tiles = plan.u_tiles, c.P = int(p.P);
  c.boxes = int(plan.boxes), c.boxes_per_split = plan.boxes_per_split;
  c.groups = p.groups, c.Cg = int(p.C_per_group()), c.Kg = int(p.K_per_group());
  c.stride_h = p.stride_h, c.pad_h = p.pad_h, c.pad_w = p.pad_w, c.dil_h = p.dil_h, c.dil_w = p.dil_w;
  c.S = int(p.S), c.c_chunks = plan.c_chunks, c.blocks = plan.blocks;
  c.tiles_per_s = plan.tiles_per_s;
  c.K = p.K, c.taps = p.C_per_group() * p.R * p.S;
  c.partials = partials;

  constexpr auto kernel = backward_weight_tma_tf32_kernel<Cfg>;
  opt_in_shared_memory<kernel>(Cfg::kSmem);
  const dim3 grid(static_cast<unsigned>(plan.m_tiles), static_cast<unsigned>(plan.col_tiles),
                  static_cast<unsigned>(plan.splits * p.groups));
  kernel<<<grid, kTmaThreads, Cfg::kSmem, stream>>>(dy_map, x_map, c);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  reduce_splits<float><<<grid_for(count, 256, 4), 256, 0, stream>>>(partials, plan.splits, p, true);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The registry entry 128x128_tma: the 16-bit kernel (MN-major operands) or, for float32 with TF32, this one; a 1x1 NCHW
// problem, under CONV2D_EXT_TMA_POINTWISE_WGRAD=1, backward_weight_pointwise_tma.cuh's kernel in every dtype.
template <class Cfg16, class CfgTf32>
std::string backward_weight_tma_entry_can_implement(const ConvParams& p) {
  return p.dtype == DType::kFloat32 ? backward_weight_tma_tf32_can_implement(p)
                                    : backward_weight_tma_can_implement<Cfg16>(p);
}

template <class Cfg16, class CfgTf32>
int64_t backward_weight_tma_entry_workspace(const ConvParams& p) {
  const int64_t bytes =
      p.dtype == DType::kFloat32 ? backward_weight_tma_tf32_workspace(p) : backward_weight_tma_workspace<Cfg16>(p);
  return pointwise_wgrad_fits(p) ? std::max(bytes, backward_weight_pointwise_workspace(p)) : bytes;
}

template <class Cfg16, class CfgTf32>
void backward_weight_tma_entry_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.K * p.C > 0 && p.N * p.P * p.Q > 0 && pointwise_wgrad_fits(p))  // 1x1 NCHW read in place
    return backward_weight_pointwise_launch(p, workspace, stream);
  if (p.dtype == DType::kFloat32) backward_weight_tma_tf32_launch<CfgTf32>(p, workspace, stream);
  else backward_weight_tma_launch<Cfg16>(p, workspace, stream);
}

}  // namespace igemm
}  // namespace conv2d_ext
