// Tiled family, depthwise configuration on tensor cores (written in session 16, first run and fixed in session 17):
// channels-last fp16/bf16, channel multiplier 1, stride 1, dilation 1, filters up to 7x7; the forward and the
// backward-data (the forward of grad_output with the filter flipped and padding R-1-pad). Views not 16-byte aligned
// run on tiled:depthwise. Not chosen by the heuristics yet: on the H200 it runs the depthwise_7x7 16-bit forward
// and backward-data in 0.060 ms (graph time), the FFMA tiles in 0.058 / 0.062 (benchmarks/NOTES.md, session 17).
//
// Why: the FFMA tiles (depthwise.cuh) run the 7x7 16-bit forward at ~15 TFLOP/s, issue-bound (ncu, session 16:
// 1425 instructions per register block of 16 outputs, 784 of them FFMA) where cuDNN takes 0.072 ms and the bytes
// 0.009 ms. Per channel, output row p and column q, y = sum_r sum_s w[r][s] x[p + r][q + s] (staged coordinates).
// For one filter row r, 16 output columns (mma's m) and 8 output rows (its n) that is one m16n8 product over
// k = 24 staged columns: A[m][k] = w[r][k - m] (zero outside 0 <= k - m < S: a band of the filter row),
// B[k][n] = x[n + r][k]: an m16n8k16 and an m16n8k8 per filter row, 14 mma per 128 outputs of a 7x7 channel, against
// 196 FFMA per lane. A's fragments (two distinct registers per filter row and lane) are packed once per call
// (pack_kernel) and held in registers, one channel per warp.
//
// The band's zeros multiply staged columns outside each output's window: 0 x inf would turn an output that PyTorch
// keeps finite into NaN. So the staging checks every staged element, and a tile holding an inf or NaN is computed
// by plain FFMA from the same staged planes instead (block-uniform branch).
//
// Work item: one image, 8 output rows x (16 x mblocks) output columns x 8 channels (16 bytes a pixel); persistent
// blocks of 256 threads, warp w the item's channel w, two items in flight per block.
//   1. The input rows and columns the item reads (8 + R - 1 rows, 16 x mblocks + S - 1 columns; zeros outside the
//      image) arrive by cp.async as 16-byte pixels in a raw buffer (the next item's while this one is computed), are
//      then transposed into one plane per channel (zeros up to 16 x mblocks + 16 columns), row pitch an odd number
//      of 16-byte units (ldmatrix conflict-free).
//   2. Each warp: per filter row and 16-column block one ldmatrix.x4 (B of both steps) and two mma, the fp32 sums
//      (plus bias) to an output tile [row][column][8 channels].
//   3. The output tile to global memory as 16-byte pixel vectors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

#include "common/conv_params.h"
#include "common/cp_async.cuh"
#include "common/dtype.cuh"
#include "common/launch.cuh"
#include "common/mma.cuh"
#include "common/pdl.cuh"
#include "tiled/depthwise.cuh"  // dense_reason, max_shared_memory

namespace conv2d_ext {
namespace dwmma {

constexpr int kThreads = 256;
constexpr int kChannels = 8;      // channels per tile, one per warp: 16 bytes of a pixel
constexpr int kRowsOut = 8;       // output rows per tile: mma's n
constexpr int kMaxTaps = 7;       // R and S at most (A: 7 rows x 2 k-steps x 4 registers per lane)
constexpr int kMaxBlocksM = 4;    // 16-column blocks per tile

enum class Role : int { kForward = 0, kBackwardData = 1 };

struct Geom {
  const void* in;
  void* out;
  const void* w;
  const void* bias;  // forward only, or nullptr
  int64_t w_stride[4];
  int N, C, Hin, Win, Hout, Wout, R, S, pad_h, pad_w;
  int flip;                         // backward-data: tap (r, s) takes w[c, 0, R-1-r, S-1-s]
  int all_ffma;                     // every tile on the FFMA path (CONV2D_EXT_DWMMA_ALL_FFMA=1: a test hook)
  int mblocks, tile_w;              // 16-column blocks per tile, output columns per tile (16 x mblocks)
  int tiles_w, tiles_h;             // tiles per image row, per image column
  int64_t tiles;                    // N * tiles_h * tiles_w
  int srows, scols, swidth, pitch;  // staged rows, staged columns read, staged width (zeros past scols), row pitch
  int plane_elems;                  // srows * pitch
  int out_offset;                   // bytes: the output tile after the planes
  int raw_offset, raw_bytes;        // bytes: two raw buffers of srows x scols pixels (16 bytes each) after it
  int smem;
};

inline Geom plan(const ConvParams& p, Role role) {
  Geom g{};
  const bool dgrad = role == Role::kBackwardData;
  g.in = dgrad ? p.y : p.x;
  g.out = dgrad ? p.x : p.y;
  g.w = p.w;
  g.bias = dgrad ? nullptr : p.bias;
  for (int i = 0; i < 4; ++i) g.w_stride[i] = p.w_stride[i];
  g.N = int(p.N), g.C = int(p.C);
  g.Hin = int(dgrad ? p.P : p.H), g.Win = int(dgrad ? p.Q : p.W);
  g.Hout = int(dgrad ? p.H : p.P), g.Wout = int(dgrad ? p.W : p.Q);
  g.R = int(p.R), g.S = int(p.S);
  g.pad_h = dgrad ? int(p.R - 1 - p.pad_h) : p.pad_h;
  g.pad_w = dgrad ? int(p.S - 1 - p.pad_w) : p.pad_w;
  g.flip = dgrad;
  const char* all_ffma = std::getenv("CONV2D_EXT_DWMMA_ALL_FFMA");  // read per call
  g.all_ffma = all_ffma != nullptr && std::strcmp(all_ffma, "1") == 0;
  g.mblocks = std::max(1, std::min(kMaxBlocksM, (g.Wout + 15) / 16));
  g.tile_w = 16 * g.mblocks;
  g.tiles_w = (g.Wout + g.tile_w - 1) / g.tile_w;
  g.tiles_h = (g.Hout + kRowsOut - 1) / kRowsOut;
  g.srows = kRowsOut + g.R - 1;
  g.scols = g.tile_w + g.S - 1;
  g.swidth = g.tile_w + 16;  // the last block's second k-step reads up to column tile_w + 15
  g.pitch = (((g.swidth + 7) / 8) | 1) * 8;
  g.plane_elems = g.srows * g.pitch;
  g.tiles = int64_t(g.N) * g.tiles_h * g.tiles_w;
  g.out_offset = kChannels * g.plane_elems * 2;
  g.raw_offset = g.out_offset + kRowsOut * g.tile_w * kChannels * 2;
  g.raw_bytes = g.srows * g.scols * 16;
  g.smem = g.raw_offset + 2 * g.raw_bytes;
  return g;
}

// Whether both activations are 16-byte aligned. Views at odd offsets run on tiled:depthwise's tiles instead (the
// registered launchers hand them over; depthwise_mma_forward.cu).
inline bool aligned(const ConvParams& p) {
  return reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && reinterpret_cast<uintptr_t>(p.y) % 16 == 0;
}

// Why the tensor-core depthwise kernel cannot run `role` of `p` with aligned activations, or "".
inline std::string can_implement(const ConvParams& p, Role role) {
  if (p.groups != p.C || p.K != p.C) return "not depthwise with channel multiplier 1";
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) return "fp16 and bf16 only";
  if (p.sm < 80) return "needs sm_80 or newer (mma.sync)";
  if (!p.channels_last) return "channels-last only";
  if (p.C % kChannels != 0) return "channels not a multiple of 8";
  if (p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1) return "stride or dilation other than 1";
  if (p.R > kMaxTaps || p.S > kMaxTaps) return "filters larger than 7x7";
  if (role == Role::kBackwardData && (p.pad_h > p.R - 1 || p.pad_w > p.S - 1))
    return "backward-data with padding past the filter extent";
  const int64_t kLimit = int64_t(1) << 30;
  if (p.H >= kLimit || p.W >= kLimit || p.P >= kLimit || p.Q >= kLimit || p.pad_h >= kLimit || p.pad_w >= kLimit)
    return "a spatial size or padding of 2^30 or more";
  std::string why = dw::dense_reason(p, p.x_stride, p.C, p.H, p.W, "the input");
  if (why.empty()) why = dw::dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");
  if (!why.empty()) return why;
  const Geom g = plan(p, role);
  if (g.smem > dw::max_shared_memory(p.sm)) return "a tile needs more shared memory than this GPU gives a block";
  if (g.tiles * (p.C / kChannels) >= (int64_t(1) << 31)) return "2^31 or more (tile, channel group) items";
  return "";
}

// ---- Device.

// Bit 15 or 31 set where the 16-bit value below it in `word` is an inf or a NaN (exponent all ones): the exponent
// field plus one unit carries into the sign bit exactly then (and never into the other half).
template <typename T>
__device__ __forceinline__ uint32_t nonfinite_bits(uint32_t word) {
  constexpr uint32_t kExp = std::is_same<T, __half>::value ? 0x7c007c00u : 0x7f807f80u;
  constexpr uint32_t kOne = std::is_same<T, __half>::value ? 0x04000400u : 0x00800080u;
  return ((word & kExp) + kOne) & 0x80008000u;
}

// The filter tap (r, s) of channel c as raw 16 bits (flipped for backward-data); 0 outside the filter.
template <typename T>
__device__ __forceinline__ uint32_t tap_bits(const Geom& g, int c, int r, int s) {
  if (s < 0 || s >= g.S) return 0;
  const int rr = g.flip ? g.R - 1 - r : r, ss = g.flip ? g.S - 1 - s : s;
  const unsigned short* w = static_cast<const unsigned short*>(g.w);
  return w[int64_t(c) * g.w_stride[0] + int64_t(rr) * g.w_stride[2] + int64_t(ss) * g.w_stride[3]];
}

// A fragments of every (channel, filter row), lane order. Per filter row the band A[m][k] = w[r][k - m] spans 16
// output columns (m) and 24 staged columns (k): one m16n8k16 step (k 0-15) and one m16n8k8 step (k 16-23). Of their six
// registers a lane holds only two distinct values (PTX ISA fragment layouts, gid = lane / 4, t = lane % 4):
//   x = taps (2t - gid, 2t + 1 - gid): the k16 step's a0 (row gid, columns 2t, 2t + 1) and a3 (row gid + 8,
//       columns 2t + 8, 2t + 9);
//   y = taps (2t + 8 - gid, 2t + 9 - gid): the k16 step's a2 (row gid, columns 2t + 8, 2t + 9) and the k8 step's a1
//       (row gid + 8, columns 16 + 2t, 17 + 2t);
// the k16 step's a1 (row gid + 8, columns 2t, 2t + 1: taps below 0) and the k8 step's a0 (row gid, columns 16 + 2t:
// taps 9 and more) are zero. frags[(c * R + r) * 32 + lane] = {x, y}.
template <typename T>
__global__ void __launch_bounds__(kThreads) pack_kernel(const Geom g, uint2* frags, int total) {
  pdl_launch_dependents();  // the convolution stages its input while this runs
  for (int i = blockIdx.x * kThreads + threadIdx.x; i < total; i += gridDim.x * kThreads) {
    const int lane = i & 31, rest = i >> 5;
    const int r = rest % g.R, c = rest / g.R;
    const int gid = lane >> 2, t = lane & 3;
    const int s = 2 * t - gid;
    frags[i] = make_uint2(tap_bits<T>(g, c, r, s) | (tap_bits<T>(g, c, r, s + 1) << 16),
                          tap_bits<T>(g, c, r, s + 8) | (tap_bits<T>(g, c, r, s + 9) << 16));
  }
}

// 32-bit divisions (64-bit ones are ~100-instruction subroutines): can_implement keeps the items below 2^31.
struct Item {
  int cg, p0, q0, n;
};

__device__ __forceinline__ Item item_at(const Geom& g, int w) {
  const unsigned groups = unsigned(g.C / kChannels);
  Item it;
  unsigned tile = unsigned(w) / groups;
  it.cg = int(unsigned(w) - tile * groups);
  unsigned rest = tile / unsigned(g.tiles_w);
  it.q0 = int(tile - rest * unsigned(g.tiles_w)) * g.tile_w;
  tile = rest / unsigned(g.tiles_h);
  it.p0 = int(rest - tile * unsigned(g.tiles_h)) * kRowsOut;
  it.n = int(tile);
  return it;
}

// A persistent block walks work items (channel group x tile) gridDim.x apart, two in flight: while one tile is
// transposed into planes, multiplied and stored, the next one's pixels arrive by cp.async in the other raw buffer.
// kR: filter rows at most (3, 5 or 7), the A fragments a lane holds.
template <typename T, int kR>
__global__ void __launch_bounds__(kThreads, kR <= 5 ? 4 : 3)
    conv_kernel(const Geom g, const uint2* __restrict__ frags) {
  extern __shared__ __align__(16) unsigned char smem[];
  unsigned short* planes = reinterpret_cast<unsigned short*>(smem);
  unsigned short* out_tile = reinterpret_cast<unsigned short*>(smem + g.out_offset);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int items = int(int64_t(g.C / kChannels) * g.tiles);
  int w = int(blockIdx.x);
  if (w >= items) return;

  // This thread's staged pixels: i = tid + k * kThreads of the srows x scols window (raw: [srows][scols] x 16 B), at
  // row sr and column sc, which `next` steps to pixel i + kThreads.
  const int staged = g.srows * g.scols;
  const int first_r = tid / g.scols, first_c = tid - first_r * g.scols;
  const int step_r = kThreads / g.scols, step_c = kThreads - step_r * g.scols;
  auto next = [&](int& sr, int& sc) {
    sc += step_c, sr += step_r;
    if (sc >= g.scols) sc -= g.scols, ++sr;
  };

  // 1a. Issue the copies of item `v`'s input window into raw buffer `buf` (zeros outside the image).
  auto load = [&](int v, int buf) {
    const Item it = item_at(g, v);
    const int h0 = it.p0 - g.pad_h, w0 = it.q0 - g.pad_w;
    const T* in = static_cast<const T*>(g.in) + int64_t(it.n) * g.Hin * g.Win * g.C + it.cg * kChannels;
    uint32_t dst = smem_addr(smem + g.raw_offset) + uint32_t(buf * g.raw_bytes + tid * 16);
    for (int i = tid, sr = first_r, sc = first_c; i < staged; i += kThreads, dst += kThreads * 16) {
      const int h = h0 + sr, x = w0 + sc;
      const bool inside = unsigned(h) < unsigned(g.Hin) && unsigned(x) < unsigned(g.Win);
      cp_async_16(dst, inside ? in + (int64_t(h) * g.Win + x) * g.C : in, inside);
      next(sr, sc);
    }
  };

  // Planes: zero once (the columns from scols to the staged width stay zero; the rest is rewritten per tile).
  for (int i = tid; i < kChannels * g.plane_elems / 8; i += kThreads)
    reinterpret_cast<uint4*>(smem)[i] = make_uint4(0, 0, 0, 0);
  load(w, 0);
  cp_async_commit();
  pdl_wait();  // the A fragments are pack_kernel's

  const int gid = lane >> 2, t = lane & 3;
  // Lane l points ldmatrix at staged row (l & 7) + r, columns 16 mb + 8 (l >> 3): matrices 0, 1 are B of the k16
  // step (k 0-7, 8-15), matrix 2 of the k8 step (k 16-23); matrix 3 is not used.
  const uint32_t lane_base =
      smem_addr(planes + warp * g.plane_elems) + uint32_t(((lane & 7) * g.pitch + 8 * (lane >> 3)) * 2);
  uint32_t ax[kR], ay[kR];  // this warp's channel's band fragments, per filter row
  float bias = 0.f;
  int have_cg = -1;
  const int step = int(gridDim.x);
  for (int k = 0; w < items; ++k, w += step) {
    if (w < items - step) load(w + step, (k + 1) & 1);
    cp_async_commit();  // possibly empty: the wait below always leaves the newest group in flight
    const Item it = item_at(g, w);
    const int c = it.cg * kChannels + warp;
    if (it.cg != have_cg) {  // block-uniform: this warp's channel's A fragments (written by pack_kernel)
      have_cg = it.cg;
      const uint2* f = frags + int64_t(c) * g.R * 32 + lane;
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        uint2 q = make_uint2(0, 0);
        if (r < g.R) q = __ldg(f + r * 32);
        ax[r] = q.x, ay[r] = q.y;
      }
      bias = g.bias != nullptr ? to_acc(static_cast<const T*>(g.bias)[c]) : 0.f;
    }
    cp_async_wait<1>();
    __syncthreads();  // this item's raw pixels have landed; the previous item's output tile is stored

    // 1b. Raw pixels -> one plane per channel; any inf or NaN sends the tile to the FFMA path.
    uint32_t bad = 0;
    const unsigned char* raw = smem + g.raw_offset + (k & 1) * g.raw_bytes;
    for (int i = tid, sr = first_r, sc = first_c; i < staged; i += kThreads) {
      const uint4 v = *reinterpret_cast<const uint4*>(raw + i * 16);
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
      unsigned short* dst = planes + sr * g.pitch + sc;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        bad |= nonfinite_bits<T>(words[j]);
        dst[(2 * j) * g.plane_elems] = static_cast<unsigned short>(words[j] & 0xffffu);
        dst[(2 * j + 1) * g.plane_elems] = static_cast<unsigned short>(words[j] >> 16);
      }
      next(sr, sc);
    }
    const int any_bad = __syncthreads_or(bad != 0 || g.all_ffma);  // also: the planes are complete

    // 2. The products, to the output tile [row][column][8 channels].
    if (!any_bad) {
      // Up to four 16-column blocks at once (independent accumulators); per filter row and block one ldmatrix.x4
      // (matrices 0-2: staged columns 16 mb + 0-23, row r + n), an m16n8k16 and an m16n8k8.
      float acc[kMaxBlocksM][4];
#pragma unroll
      for (int mb = 0; mb < kMaxBlocksM; ++mb) acc[mb][0] = acc[mb][1] = acc[mb][2] = acc[mb][3] = bias;
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        if (r < g.R) {
          const uint32_t a16[4] = {ax[r], 0u, ay[r], ax[r]}, a8[2] = {0u, ay[r]};
#pragma unroll
          for (int mb = 0; mb < kMaxBlocksM; ++mb) {
            if (mb < g.mblocks) {
              uint32_t b[4];
              ldmatrix_x4(b, lane_base + uint32_t((r * g.pitch + 16 * mb) * 2));
              const uint32_t b16[2] = {b[0], b[1]};
              Mma<T>::run(acc[mb], a16, b16);
              MmaK8<T>::run(acc[mb], a8, b[2]);
            }
          }
        }
      }
      // acc[mb][2 h + j]: output column 16 mb + gid + 8 h (m), output row 2 t + j (n).
#pragma unroll
      for (int mb = 0; mb < kMaxBlocksM; ++mb)
        if (mb < g.mblocks)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int j = 0; j < 2; ++j)
              out_tile[((2 * t + j) * g.tile_w + 16 * mb + gid + 8 * h) * kChannels + warp] =
                  bits16(from_acc<T>(acc[mb][2 * h + j]));
    } else {
      // A tile holding an inf or NaN: plain FFMA over the same planes (no product outside an output's window).
      const int outputs = kRowsOut * g.tile_w * kChannels;
      for (int i = tid; i < outputs; i += kThreads) {
        const int ch = i % kChannels, pix = i / kChannels;
        const int row = pix / g.tile_w, col = pix - row * g.tile_w;
        float sum = g.bias != nullptr ? to_acc(static_cast<const T*>(g.bias)[it.cg * kChannels + ch]) : 0.f;
        const unsigned short* plane = planes + ch * g.plane_elems;
        for (int r = 0; r < g.R; ++r)
          for (int s = 0; s < g.S; ++s) {
            const T wv = from_bits16<T>(static_cast<unsigned short>(tap_bits<T>(g, it.cg * kChannels + ch, r, s)));
            const T xv = from_bits16<T>(plane[(row + r) * g.pitch + col + s]);
            sum = fmaf(to_acc(wv), to_acc(xv), sum);
          }
        out_tile[i] = bits16(from_acc<T>(sum));
      }
    }
    __syncthreads();  // the output tile is complete; the planes are free

    // 3. The output tile's pixels inside the image, 16 bytes each.
    T* out = static_cast<T*>(g.out) + int64_t(it.n) * g.Hout * g.Wout * g.C + it.cg * kChannels;
    for (int i = tid; i < kRowsOut * g.tile_w; i += kThreads) {
      const int row = i / g.tile_w, col = i - row * g.tile_w;
      const int oh = it.p0 + row, ow = it.q0 + col;
      if (oh < g.Hout && ow < g.Wout)
        *reinterpret_cast<uint4*>(out + (int64_t(oh) * g.Wout + ow) * g.C) =
            *reinterpret_cast<const uint4*>(smem + g.out_offset + i * 16);
    }
  }
  cp_async_wait<0>();
}

// 8-byte A fragments of every channel: (channel, filter row, lane).
inline int64_t fragment_count(const ConvParams& p) { return p.C * p.R * 32; }

// Bytes of workspace: the A fragments.
inline int64_t workspace_bytes(const ConvParams& p) {
  return p.N == 0 ? 0 : fragment_count(p) * int64_t(sizeof(uint2));
}

// The persistent grid: as many blocks as are resident (3 per SM for 7x7, shared memory), at most one per item,
// rounded down to a multiple of the channel groups where that costs at most an eighth (a block then keeps its
// channel and its A fragments). H200, depthwise_7x7 fp16 forward at 1 / 2 / 3 blocks per SM: 0.116 / 0.077 / 0.060
// ms (yet session 17's first version, 124 registers, serial mma chains, ran it in 0.053 at two). TUNING
// (temporary): CONV2D_EXT_DWMMA_PER_SM (1-8) caps the blocks per SM.
template <typename T, int kR>
void launch_conv(const Geom& g, const uint2* frags, cudaStream_t stream) {
  constexpr auto kernel = conv_kernel<T, kR>;
  const int64_t items = int64_t(g.C / kChannels) * g.tiles, groups = g.C / kChannels;
  const char* env_per_sm = std::getenv("CONV2D_EXT_DWMMA_PER_SM");
  int64_t blocks = dw::resident_blocks<kernel>(kThreads, g.smem);
  if (env_per_sm != nullptr)
    blocks = std::min<int64_t>(blocks, std::max(1, std::min(8, std::atoi(env_per_sm))) * int64_t(num_sms()));
  if (blocks >= groups && blocks % groups <= blocks / 8) blocks -= blocks % groups;
  blocks = std::max<int64_t>(1, std::min(blocks, items));
  launch_dependent(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), size_t(g.smem), stream, g, frags);
}

// Runs `role` of `p` (can_implement is ""), T = __half or __nv_bfloat16. Instantiated in depthwise_mma_forward.cu.
template <typename T>
void launch(const ConvParams& p, Role role, void* workspace, cudaStream_t stream) {
  if (p.N == 0) return;
  const Geom g = plan(p, role);
  TORCH_CHECK(workspace != nullptr, "conv2d_ext: tiled:depthwise_mma: no workspace for the packed filters");
  uint2* frags = static_cast<uint2*>(workspace);
  const int total = int(fragment_count(p));
  pack_kernel<T><<<static_cast<unsigned>(std::min(1024, (total + kThreads - 1) / kThreads)), kThreads, 0, stream>>>(
      g, frags, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (g.R <= 3) launch_conv<T, 3>(g, frags, stream);
  else if (g.R <= 5) launch_conv<T, 5>(g, frags, stream);
  else launch_conv<T, 7>(g, frags, stream);
}

extern template void launch<__half>(const ConvParams&, Role, void*, cudaStream_t);
extern template void launch<__nv_bfloat16>(const ConvParams&, Role, void*, cudaStream_t);

inline void run(const ConvParams& p, Role role, void* workspace, cudaStream_t stream) {
  if (p.dtype == DType::kFloat16) launch<__half>(p, role, workspace, stream);
  else if (p.dtype == DType::kBFloat16) launch<__nv_bfloat16>(p, role, workspace, stream);
  else TORCH_CHECK(false, "conv2d_ext: tiled:depthwise_mma: fp16 and bf16 only");
}

}  // namespace dwmma
}  // namespace conv2d_ext
