// Forward as an implicit GEMM on tensor cores (mma.sync: fp16/bf16, and fp32 as TF32), NCHW and NHWC natively.
//
// GEMM mapping, per group g (blockIdx.z):
//   M = N*P*Q output pixels (A rows: the im2col gather of the input), N = K/groups output channels (B rows: the
//   filters), reduction = R*S*Cg taps x input channels. D lands in y in the input's layout: along channels in
//   NHWC, along pixels in NCHW (both through a shared-memory staged epilogue, so the global stores are
//   coalesced runs). Bias is added in the epilogue.
// Launch variants (implicit_gemm.cuh): NHWC with 16-byte aligned channels loads both operands with cp.async;
// NCHW loads the activations with scalar coalesced loads and the filters, repacked to KRSC in the workspace by a
// small kernel first (K*C/groups*R*S elements), with cp.async. When Cg is small or not a multiple of 16 bytes,
// both operands take scalar loads over the flat reduction.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>

#include <c10/cuda/CUDAException.h>

#include "common/launch.cuh"
#include "implicit_gemm/implicit_gemm.cuh"
#include "kernels.h"

namespace conv2d_ext {
namespace igemm {

struct FilterStrides { int64_t k, c, r, s; };

// Filters with their taps moved between the two channel dimensions: out[(o R S + r S + s) I + i] =
// w[(o / og) gstride + (o % og) so + i si + r sr + s ss] for o < O, i < I (KRSC from KCRS: o = k, i = c;
// backward-data's [C][R][S][K/groups]: o = c, i = k, og = C/groups). Two kernels, pack_taps picks by the strides:
//
// pack_taps_rows, where i's stride is the smaller (KRSC from KCRS): a thread takes one i of one o and walks its R S
// taps: no division, the taps' loads back to back in the same line or two (a warp's 32 i's a contiguous run), each
// tap's stores a coalesced run of the block's i's. Grid: O x min(ceil(I / 256), 65535) blocks, striding over the
// i's. On the H100 (session 29) 5 us for r50_3x3_512's 2.4 M elements, where the element-wise kernel it replaced (an
// element a thread, four 64-bit divisions each) took 15 us and session 23's shared-memory tiles 17 us.
//
// pack_taps_tiles, where o's stride is the smaller (backward-data's: i = k strides over whole filters): rows read a
// warp's 32 i's a filter apart, each a sector of its own that 16 other blocks (the neighbouring o's) read again: 17 us
// for r50_3x3_512 fp16 channels-last (H100, session 30 trace), 3x the GEMM's share. Here a block transposes the
// 32 o x 32 i tiles of kPackTileTaps taps through shared memory: reads along o (the filters' channels: contiguous in
// KRSC, R S apart in KCRS, the other taps of those lines read by the neighbouring blocks in z from L2), writes along
// i. Grid: ceil(O / 32) x min(ceil(I / 32), 65535) x ceil(R S / kPackTileTaps) blocks of 256 threads, striding over
// the i tiles. r50_3x3_512 fp16: 17 -> 8 us with one tap a block, ~6 at four taps; r50_3x3_128_s2 3 us at one tap,
// 7 at four (session 30 traces): each load went to shared memory before the next was issued (SASS: LDG, STS, LDG,
// ...), so a thread's loads were serial round trips. Both kernels now load a chunk of taps into registers first
// (tiles: 16 LDG then 16 STS; rows: kPackRowTaps LDG then as many STG), not yet timed on the GPU.
constexpr int kPackTileTaps = 4;  // pack_taps_tiles: taps a block (16 loads in flight a thread)
constexpr int kPackRowTaps = 8;   // pack_taps_rows: taps loaded before they are stored (8 loads in flight a thread)

struct TapPack {
  int64_t gstride, so, si, sr, ss;  // element strides: per group of og o's, per o, per i, per filter row and column
  int og, O, I, R, S;
};

template <typename T>
__global__ void __launch_bounds__(256) pack_taps_rows(const T* __restrict__ w, TapPack m, T* __restrict__ out) {
  const int o = blockIdx.x, RS = m.R * m.S;
  for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < m.I; i += gridDim.y * blockDim.x) {
    const T* src = w + int64_t(o / m.og) * m.gstride + int64_t(o % m.og) * m.so + int64_t(i) * m.si;
    T* dst = out + int64_t(o) * RS * m.I + i;
    for (int t0 = 0; t0 < RS; t0 += kPackRowTaps) {  // all of a chunk's loads first: in flight together
      T v[kPackRowTaps];
      int r = t0 / m.S, s = t0 - r * m.S;
#pragma unroll
      for (int u = 0; u < kPackRowTaps; ++u) {
        v[u] = t0 + u < RS ? src[r * m.sr + s * m.ss] : T();
        if (++s == m.S) s = 0, ++r;
      }
#pragma unroll
      for (int u = 0; u < kPackRowTaps; ++u)
        if (t0 + u < RS) dst[int64_t(t0 + u) * m.I] = v[u];
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(256, 4) pack_taps_tiles(const T* __restrict__ w, TapPack m, T* __restrict__ out) {
  constexpr int kTaps = kPackTileTaps;
  __shared__ T tile[kTaps][32][33];  // [tap][i][o], padded: the column reads of the store phase hit distinct banks
  const int lane = threadIdx.x % 32, row = threadIdx.x / 32, RS = m.R * m.S, tap0 = blockIdx.z * kTaps;
  const int o_read = blockIdx.x * 32 + lane;  // the o this thread reads
  const T* src = w + int64_t(o_read / m.og) * m.gstride + int64_t(o_read % m.og) * m.so;
  int64_t tap_offset[kTaps];
#pragma unroll
  for (int t = 0; t < kTaps; ++t) {
    const int r = (tap0 + t) / m.S, s = tap0 + t - r * m.S;
    tap_offset[t] = r * m.sr + s * m.ss;
  }
  for (int i0 = blockIdx.y * 32; i0 < m.I; i0 += gridDim.y * 32) {
    T v[kTaps][4];  // all the loads first, in flight together (a load stored to shared memory at once waits)
#pragma unroll
    for (int t = 0; t < kTaps; ++t)
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        const int j = row + 8 * jj;
        v[t][jj] = o_read < m.O && i0 + j < m.I && tap0 + t < RS ? src[int64_t(i0 + j) * m.si + tap_offset[t]] : T();
      }
#pragma unroll
    for (int t = 0; t < kTaps; ++t)
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) tile[t][row + 8 * jj][lane] = v[t][jj];
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kTaps; ++t)
#pragma unroll
      for (int j = row; j < 32; j += 8) {
        const int o = blockIdx.x * 32 + j;
        if (o < m.O && i0 + lane < m.I && tap0 + t < RS)
          out[(int64_t(o) * RS + tap0 + t) * m.I + i0 + lane] = tile[t][lane][j];
      }
    __syncthreads();
  }
}

// pack_taps_runs, where the taps of a filter are one dense run (|ss| = 1, sr = S ss: KCRS, flipped or not) and the
// run continues along i (si = R S: the forward's KCRS -> KRSC) or along o (so = R S: backward-data's flipped KCRS ->
// [C][R][S][K/g]): then a tile of kRunI i's x `to` o's x all R S taps is `to` (along i) or kRunI (along o) contiguous
// runs of source elements, each read by consecutive threads in address order into shared memory, then written as
// R S x `to` destination rows of kRunI consecutive i's (coalesced). pack_taps_rows reads each tap separately (a
// warp's loads 2 R S bytes apart) and pack_taps_tiles a 32 x 32 tile's runs of R S; both ran ~8 us for r50_3x3_512's
// 2.4 M 16-bit elements (H100, session 37 trace) where the bytes need ~3. Grid: ceil(I / kRunI) x o tiles (`to` o's
// of one group each) x 1; 256 threads, kRunLoads loads a thread in flight; to R S kRunI elements of shared memory
// (sized by the host: about kRunSmemBytes at most, the padding a little past it, under the 48 KB default).
constexpr int kRunI = 64;
constexpr int kRunLoads = 16;  // loads in flight a thread
constexpr int64_t kRunTileElems = 256 * kRunLoads;
constexpr int kRunSmemBytes = 24 * 1024;

struct TapRuns {
  int to;             // o's a tile (within one group)
  int o_tiles;        // tiles a group: ceil(og / to)
  int along_i;        // 1: runs along i (si == R S), 0: along o (so == R S)
  int flip;           // the taps in memory backwards (ss = -1): the run starts R S - 1 elements before tap 0
  int stride_i, stride_o;  // shared-memory element strides of (i, o) in the tile; a tap is +1
};

template <typename T>
__global__ void __launch_bounds__(256) pack_taps_runs(const T* __restrict__ w, TapPack m, TapRuns q,
                                                       T* __restrict__ out) {
  extern __shared__ __align__(16) unsigned char runs_smem[];
  T* tile = reinterpret_cast<T*>(runs_smem);
  const int RS = m.R * m.S, tid = threadIdx.x;
  const int i0 = blockIdx.x * kRunI, g = blockIdx.y / q.o_tiles;
  const int o0 = g * m.og + (blockIdx.y - g * q.o_tiles) * q.to;
  const int ni = min(kRunI, m.I - i0), no = min(q.to, min(m.O - o0, (g + 1) * m.og - o0));
  // source element (o, i, tap memory index tm) at base + (o % og) so + i si + tm, tm = flip ? R S - 1 - tap : tap
  const T* base = w + int64_t(g) * m.gstride + (q.flip ? -(RS - 1) : 0);
  const int runs = q.along_i ? no : ni, len = (q.along_i ? ni : no) * RS;
  // The loads: the runs back to back, kRunLoads in flight a thread before their shared-memory stores.
  int run = 0, off = tid;
  while (off >= len && run < runs) off -= len, ++run;
  while (run < runs) {
    T v[kRunLoads];
    int at[kRunLoads];
#pragma unroll
    for (int u = 0; u < kRunLoads; ++u) {
      at[u] = -1;
      if (run < runs) {
        const int o = q.along_i ? o0 + run : o0, i = q.along_i ? i0 : i0 + run;
        v[u] = base[int64_t(o - g * m.og) * m.so + int64_t(i) * m.si + off];
        at[u] = q.along_i ? run * q.stride_o + off : run * q.stride_i + off;
        off += 256;
        while (off >= len && run < runs) off -= len, ++run;
      }
    }
#pragma unroll
    for (int u = 0; u < kRunLoads; ++u)
      if (at[u] >= 0) tile[at[u]] = v[u];
  }
  __syncthreads();
  // The stores: destination rows (o, tap) of ni consecutive i's; four rows at a time (64 threads a row).
  const int i = tid % kRunI;
  if (i >= ni) return;
  int ol = tid / kRunI / RS, t = tid / kRunI - ol * RS;  // row ol R S + t; four rows a pass
  while (ol < no) {
    const int tm = q.flip ? RS - 1 - t : t;
    // along i the run of o holds (i, tm) at i R S + tm (stride_i = R S);
    // along o the run of i holds (o, tm) at o R S + tm (stride_o = R S)
    out[(int64_t(o0 + ol) * RS + t) * m.I + i0 + i] = tile[i * q.stride_i + ol * q.stride_o + tm];
    t += 256 / kRunI;
    while (t >= RS) t -= RS, ++ol;
  }
}

// pack_taps_runs' plan for m, or to = 0 where it does not apply (taps not one dense run, no run along i or o, a tile
// of one o past kRunSmemBytes). Written in session 38, checked on the emulator (bit-exact) and the H100 (tests), and
// slower there than the kernels it would replace (session 39, H100, r50_3x3_512 bf16: 13 us a repack against 8 for
// pack_taps_rows and pack_taps_tiles): off unless CONV2D_EXT_PACK_RUNS=1.
template <typename T>
TapRuns plan_tap_runs(const TapPack& m) {
  TapRuns q{};
  const char* env = std::getenv("CONV2D_EXT_PACK_RUNS");
  if (env == nullptr || env[0] != '1') return q;
  const int64_t RS = int64_t(m.R) * m.S;
  const bool dense_taps = (m.ss == 1 || m.ss == -1) && m.sr == m.S * m.ss;
  if (!dense_taps || RS * kRunI * int64_t(sizeof(T)) > kRunSmemBytes) return q;
  if (m.si == RS) q.along_i = 1;
  else if (m.so == RS) q.along_i = 0;
  else return q;
  q.flip = m.ss < 0;
  // o's a tile: about kRunTileElems elements (one batch of loads a thread: r50_3x3_512's 2.4 M elements in ~590
  // blocks, all resident at once), at most 32, within a group and kRunSmemBytes (the padding below included)
  const int64_t per_o = RS * kRunI + 4;
  q.to = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({kRunTileElems / (RS * kRunI), 32, m.og, kRunSmemBytes / int64_t(sizeof(T)) / per_o})));
  q.o_tiles = (m.og + q.to - 1) / q.to;
  // Shared-memory strides with an odd word stride between the lanes' rows of the store phase (a 2-byte element:
  // even element strides of 2 mod 4; fp32: odd): along i the lanes read i R S apart (R S odd for the square filters),
  // along o i (to R S + pad) apart.
  if (q.along_i) {
    q.stride_i = static_cast<int>(RS), q.stride_o = static_cast<int>(RS * kRunI);
  } else {
    int64_t row = q.to * RS;
    if (sizeof(T) == 2) row += (row % 4 == 2) ? 0 : (row % 2 == 0 ? 2 : 1);
    else row += (row % 2 == 1) ? 0 : 1;
    q.stride_i = static_cast<int>(row), q.stride_o = static_cast<int>(RS);
  }
  return q;
}

template <typename T>
void pack_taps(const T* w, const TapPack& m, T* out, cudaStream_t stream) {
  if (m.O <= 0 || m.I <= 0) return;
  const TapRuns q = plan_tap_runs<T>(m);
  if (q.to > 0 && int64_t(m.O / m.og) * q.o_tiles <= 65535) {
    const int64_t smem = (q.along_i ? int64_t(q.to) * q.stride_o : int64_t(kRunI) * q.stride_i) * int64_t(sizeof(T));
    const dim3 grid(static_cast<unsigned>((m.I + kRunI - 1) / kRunI), static_cast<unsigned>((m.O / m.og) * q.o_tiles));
    pack_taps_runs<T><<<grid, 256, smem, stream>>>(w, m, q, out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  const bool o_closer = (m.si < 0 ? -m.si : m.si) > (m.so < 0 ? -m.so : m.so);
  if (o_closer && m.R * m.S <= 65535 * kPackTileTaps) {
    const dim3 grid(static_cast<unsigned>((m.O + 31) / 32), static_cast<unsigned>(std::min((m.I + 31) / 32, 65535)),
                    static_cast<unsigned>((m.R * m.S + kPackTileTaps - 1) / kPackTileTaps));
    pack_taps_tiles<T><<<grid, 256, 0, stream>>>(w, m, out);
  } else {
    const int threads = std::min(256, (m.I + 31) / 32 * 32);
    const dim3 grid(static_cast<unsigned>(m.O), static_cast<unsigned>(std::min((m.I + threads - 1) / threads, 65535)));
    pack_taps_rows<T><<<grid, threads, 0, stream>>>(w, m, out);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Dense NHWC copy of an N x C x H x W tensor with strides `s` (n, c, h, w): the activations of an NCHW problem for
// the channel-vector loaders. 32 x 32 (channels x pixels) tiles through shared memory, so both the reads (along
// pixels) and the writes (along channels) are coalesced; one division per thread. H * W < 2^31. The general
// version; to_nhwc_vec below moves 16-byte vectors where the layout allows.
template <typename T>
__global__ void __launch_bounds__(256) to_nhwc(const T* __restrict__ x, FilterStrides s, T* __restrict__ out,
                                               int C, int H, int W) {
  __shared__ T tile[32][33];
  const int HW = H * W, p0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
  const int64_t n = blockIdx.z;
  const int px = p0 + threadIdx.x, h = px / W, w = px - h * W;
#pragma unroll
  for (int i = threadIdx.y; i < 32; i += 8)
    if (c0 + i < C && px < HW) tile[i][threadIdx.x] = x[n * s.k + (c0 + i) * s.c + h * s.r + w * s.s];
  __syncthreads();
#pragma unroll
  for (int i = threadIdx.y; i < 32; i += 8)
    if (c0 + int(threadIdx.x) < C && p0 + i < HW) out[(n * HW + p0 + i) * C + c0 + threadIdx.x] = tile[threadIdx.x][i];
}

// Loads of `bytes` bytes (16, 8, 4 or 2) as one unsigned integer type.
template <int bytes> struct VecOf;
template <> struct VecOf<16> { using type = uint4; };
template <> struct VecOf<8> { using type = uint2; };
template <> struct VecOf<4> { using type = uint32_t; };
template <> struct VecOf<2> { using type = uint16_t; };

// The same copy with 16-byte stores and loads of LV elements (16 bytes where H * W and the strides allow, else 8 or
// 4: seed's grad_output has 510 x 1022 pixels, a multiple of 4 but not of 8). The one-element version is bound by
// instructions issued: ncu, seed bf16 on the H100, 832 us at 1.3 TB/s with 82% of issue slots busy. Needs dense
// channel planes (s.s == 1, s.r == W), H * W and the plane and image strides in whole loads, C in whole 16-byte
// vectors, and x aligned to a load. A block moves 64 channels x 64 pixels: reads of a channel's 64 pixels
// (coalesced), stored in shared memory with their 16-byte chunk index XORed by the row's vector group (row / E), so
// that the column reads of the write phase, E rows of one pixel per thread, hit distinct banks; writes of E channels
// of a pixel per thread, a warp covering whole 128-byte runs of channels.
//
// The same transposition repacks dense filters for backward-data (repack_crsk): each group's Kg x (Cg R S) matrix
// (KCRS: pixel j = c R S + tap; channels-last KRSC: j = tap Cg + c; the taps read backwards when flipped) is an image
// of Kg "channels" of Cg R S "pixels" whose transposition is [c][tap][k] once each pixel's row is moved to c R S +
// tap (TapRows; the identity for activations).
struct TapRows {
  int taps = 0;  // 0: pixel j is row j; else R S taps per filter channel, laid out as below
  int cg = 0;    // channels per filter
  bool taps_inner = false;  // j = c taps + t (KCRS), else j = t cg + c (KRSC)
  bool flip = false;        // the memory order of the taps reversed: row c taps + taps - 1 - t
  __device__ __forceinline__ int row(int j) const {
    if (taps == 0) return j;
    int c, t;
    if (taps_inner) c = j / taps, t = j - c * taps;
    else t = j / cg, c = j - t * cg;
    return c * taps + (flip ? taps - 1 - t : t);
  }
};

template <typename T, int LV>
__global__ void __launch_bounds__(256) to_nhwc_vec(const T* __restrict__ x, FilterStrides s, T* __restrict__ out,
                                                   int C, int HW, TapRows rows = {}) {
  constexpr int E = 16 / sizeof(T), kTile = 64, kChunks = kTile / E;  // chunks (16-byte vectors) per 64-element row
  constexpr int kLoads = kTile / LV;                                    // loads per 64-element row
  using L = typename VecOf<LV * sizeof(T)>::type;
  __shared__ __align__(16) T tile[kTile][kTile];
  const int p0 = blockIdx.x * kTile, c0 = blockIdx.y * kTile;
  const int64_t n = blockIdx.z;
  const T* src = x + n * s.k + p0;
#pragma unroll
  for (int u = threadIdx.x; u < kTile * kLoads; u += 256) {
    const int c = u / kLoads, px = u % kLoads * LV;  // pixels px .. px + LV - 1 of channel c (one 16-byte chunk)
    if (c0 + c < C && p0 + px < HW)
      *reinterpret_cast<L*>(&tile[c][((px / E) ^ (c / E % kChunks)) * E + px % E]) =
          *reinterpret_cast<const L*>(src + (c0 + c) * s.c + px);
  }
  __syncthreads();
  T* dst = out + n * HW * C + c0;
#pragma unroll
  for (int u = threadIdx.x; u < kTile * kChunks; u += 256) {
    const int cv = u % kChunks, px = u / kChunks;  // channels cv*E .. cv*E + E - 1 of pixel px
    if (c0 + cv * E >= C || p0 + px >= HW) continue;
    union { uint4 v; T e[E]; } pack;
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const int c = cv * E + j;
      pack.e[j] = tile[c][((px / E) ^ (c / E % kChunks)) * E + px % E];
    }
    *reinterpret_cast<uint4*>(dst + int64_t(rows.row(p0 + px)) * C + cv * E) = pack.v;
  }
}

// The copy for small planes whose pixel count is not a whole number of 16-byte vectors (7x7 maps: 49 pixels, where
// to_nhwc_vec falls to 2-byte loads: session 28's trace, 5 us for r50_3x3_512's 1.6 MB in fp16, 8 us in fp32). In
// dense planes channels c0 .. c0 + kPlanesC - 1 of one image are one contiguous run of kPlanesC x HW elements: read as
// 16-byte vectors into shared memory in that order, then written as 16-byte vectors of E channels of one pixel (a
// thread's E reads HW elements apart: for odd HW, a warp's reads spread over the banks). Needs dense planes (s.s ==
// 1, s.r == W, s.c == H W), C and the image stride in whole vectors, x 16-byte aligned and kPlanesC planes in
// kMaxPlanesBytes of shared memory (to_nhwc_planes_fit). Grid: ceil(C / pc) x images, pc channels a block (kPlanesC
// for activations; a filter's repack, repack_krsc, takes whole images of up to kMaxPlanesBytes).
constexpr int kPlanesC = 64;
constexpr int64_t kMaxPlanesBytes = 48 * 1024;

template <typename T>
__global__ void __launch_bounds__(256) to_nhwc_planes(const T* __restrict__ x, int64_t image_stride,
                                                      T* __restrict__ out, int C, int HW, int pc) {
  constexpr int E = 16 / sizeof(T);
  extern __shared__ __align__(16) unsigned char planes_smem[];
  T* tile = reinterpret_cast<T*>(planes_smem);  // [cn][HW]
  const int c0 = blockIdx.x * pc, cn = min(pc, C - c0);  // cn: a multiple of E
  const int64_t n = blockIdx.y;
  const uint4* src = reinterpret_cast<const uint4*>(x + n * image_stride + int64_t(c0) * HW);
  for (int u = threadIdx.x; u < cn * HW / E; u += blockDim.x) reinterpret_cast<uint4*>(tile)[u] = src[u];
  __syncthreads();
  const int vectors = cn / E;  // channel vectors per pixel
  T* dst = out + n * int64_t(HW) * C + c0;
  for (int u = threadIdx.x; u < HW * vectors; u += blockDim.x) {
    const int px = u / vectors, cv = u - px * vectors;
    union { uint4 v; T e[E]; } pack;
#pragma unroll
    for (int j = 0; j < E; ++j) pack.e[j] = tile[(cv * E + j) * HW + px];
    *reinterpret_cast<uint4*>(dst + int64_t(px) * C + cv * E) = pack.v;
  }
}

// Can to_nhwc_planes copy x (strides `stride`, N x C x H x W)?
template <typename T>
bool to_nhwc_planes_fit(const T* x, const int64_t (&stride)[4], int64_t C, int64_t H, int64_t W) {
  constexpr int64_t E = 16 / sizeof(T);
  return stride[3] == 1 && stride[2] == W && stride[1] == H * W && C % E == 0 && stride[0] % E == 0 &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 && kPlanesC * H * W * int64_t(sizeof(T)) <= kMaxPlanesBytes;
}

// Elements per load of to_nhwc_vec for x (strides `stride`, N x C x H x W): the widest of 16, 8 and 4 bytes (and 2
// for 2-byte types) that the layout allows, or 0 when it needs the one-element to_nhwc (channels not in 16-byte
// vectors, planes not dense, or nothing aligned).
template <typename T>
int to_nhwc_load_elems(const T* x, const int64_t (&stride)[4], int64_t C, int64_t H, int64_t W) {
  constexpr int64_t E = 16 / sizeof(T);
  if (stride[3] != 1 || stride[2] != W || C % E != 0) return 0;
  for (int64_t lv = E; lv >= 1 && lv * int64_t(sizeof(T)) >= 2; lv /= 2)
    if ((H * W) % lv == 0 && stride[1] % lv == 0 && stride[0] % lv == 0 &&
        reinterpret_cast<uintptr_t>(x) % (lv * sizeof(T)) == 0)
      return static_cast<int>(lv);
  return 0;
}

// to_nhwc_vec<T, LV> for the run-time load width lv (a power of two from 16 bytes down), or the one-element to_nhwc
// for lv == 0 (rows: the identity only).
template <typename T, int LV = 16 / sizeof(T)>
void launch_to_nhwc_kernel(int lv, dim3 grid, const T* src, FilterStrides s, T* dst, int64_t C, int64_t H, int64_t W,
                           cudaStream_t stream, TapRows rows = {}) {
  if (lv == LV) to_nhwc_vec<T, LV><<<grid, 256, 0, stream>>>(src, s, dst, int(C), int(H * W), rows);
  else if constexpr (LV > 1) launch_to_nhwc_kernel<T, LV / 2>(lv, grid, src, s, dst, C, H, W, stream, rows);
  else to_nhwc<T><<<grid, dim3(32, 8), 0, stream>>>(src, s, dst, int(C), int(H), int(W));
}

// to_nhwc_planes over N images (image stride `image_stride`) of C channels of HW pixels into dense NHWC at `out`, pc
// channels a block (a multiple of 16 bytes; pc x HW elements of shared memory within kMaxPlanesBytes).
template <typename T>
void launch_to_nhwc_planes(const T* x, int64_t image_stride, T* out, int64_t N, int64_t C, int64_t HW, int64_t pc,
                           cudaStream_t stream) {
  for (int64_t n0 = 0; n0 < N; n0 += 65535) {  // grid.y: at most 65535 images per launch
    const int64_t images = N - n0 < 65535 ? N - n0 : 65535;
    const dim3 grid(static_cast<unsigned>((C + pc - 1) / pc), static_cast<unsigned>(images));
    const int64_t smem = std::min<int64_t>(C, pc) * HW * sizeof(T);
    to_nhwc_planes<T><<<grid, 256, smem, stream>>>(x + n0 * image_stride, image_stride, out + n0 * HW * C, int(C),
                                                   int(HW), int(pc));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

// `out`: 16-byte aligned (a workspace region).
template <typename T>
void launch_to_nhwc(const T* x, const int64_t (&stride)[4], T* out, int64_t N, int64_t C, int64_t H, int64_t W,
                    cudaStream_t stream) {
  const FilterStrides s{stride[0], stride[1], stride[2], stride[3]};
  const int lv = to_nhwc_load_elems(x, stride, C, H, W);
  const int64_t tile = lv > 0 ? 64 : 32;
  // loads narrower than 8 bytes (planes of an odd number of pixels): whole runs of planes where they fit;
  // CONV2D_EXT_TO_NHWC_PLANES=1 also for 8-byte loads (timing: r50_3x3_256's 196-pixel 16-bit planes)
  const char* planes_env = std::getenv("CONV2D_EXT_TO_NHWC_PLANES");
  const int64_t narrow = planes_env != nullptr && planes_env[0] == '1' ? 16 : 8;
  if (lv * int64_t(sizeof(T)) < narrow && to_nhwc_planes_fit(x, stride, C, H, W))
    return launch_to_nhwc_planes(x, stride[0], out, N, C, H * W, kPlanesC, stream);
  for (int64_t n0 = 0; n0 < N; n0 += 65535) {  // grid.z: at most 65535 images per launch
    const int64_t images = N - n0 < 65535 ? N - n0 : 65535;
    const dim3 grid(static_cast<unsigned>((H * W + tile - 1) / tile), static_cast<unsigned>((C + tile - 1) / tile),
                    static_cast<unsigned>(images));
    launch_to_nhwc_kernel<T>(lv, grid, x + n0 * stride[0], s, out + n0 * H * W * C, C, H, W, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

// Repacks p's filters (`filters`, strides `fs`) to dense KRSC at `dst` and points `filters` and `fs` there. Dense
// KCRS filters (PyTorch's default) are an NCHW tensor of K images of Cg channels of R x S pixels whose NHWC copy is
// KRSC: to_nhwc_planes copies them, whole filters of up to kMaxPlanesBytes a block (r50_3x3_512: 512 blocks of 9 KB
// in 16-bit, all resident at once; 16-byte loads and stores), where they are in whole 16-byte vectors and aligned;
// pack_taps otherwise. Session 39 (H100, r50_3x3_512 bf16 NCHW forward trace): pack_taps_rows 8 us for its 4.7 MB.
// H100, session 40 (r50_3x3_512 NCHW forward, graph ms): bf16 0.0434 -> 0.0395, TF32 0.0702 -> 0.0672 against
// pack_taps_rows. CONV2D_EXT_PACK_PLANES=0 turns it off (and CONV2D_EXT_PACK_RUNS=1, pack_taps_runs' switch).
template <typename T>
void repack_krsc(const ConvParams& p, const T*& filters, FilterStrides& fs, T* dst, cudaStream_t stream) {
  const int64_t Cg = p.C_per_group(), RS = p.R * p.S;
  constexpr int64_t E = 16 / sizeof(T);
  const char* planes_env = std::getenv("CONV2D_EXT_PACK_PLANES");
  const char* runs_env = std::getenv("CONV2D_EXT_PACK_RUNS");
  // channels a block: a whole filter where it fits, else the whole vectors that do
  const int64_t pc = std::min<int64_t>(Cg, kMaxPlanesBytes / std::max<int64_t>(1, RS * int64_t(sizeof(T))) / E * E);
  const bool dense_kcrs = fs.s == 1 && fs.r == p.S && fs.c == RS && fs.k == Cg * RS;
  if (!(planes_env != nullptr && planes_env[0] == '0') && !(runs_env != nullptr && runs_env[0] == '1') &&
      dense_kcrs && RS > 1 && Cg % E == 0 && pc >= E && reinterpret_cast<uintptr_t>(filters) % 16 == 0 &&
      Cg * RS < (int64_t(1) << 31)) {
    launch_to_nhwc_planes(filters, fs.k, dst, p.K, Cg, RS, pc, stream);
  } else {
    pack_taps<T>(filters, TapPack{0, fs.k, fs.c, fs.r, fs.s, int(p.K), int(p.K), int(Cg), int(p.R), int(p.S)}, dst,
                 stream);
  }
  filters = dst;
  fs = FilterStrides{RS * Cg, 1, p.S * Cg, Cg};
}

// Dense NCHW copy at `out` (16-byte aligned) of an N x C x H x W tensor whose pixels have one stride (stride[2] ==
// W * stride[3]: channels-last, say): to_nhwc's transpose with the roles of channels and pixels swapped. Seen as
// H * W "channels" of C "pixels" each, an image's NHWC copy is its NCHW copy. The grid's y is (H * W) / 32 tiles or
// fewer: callers keep H * W <= kMaxNchwCopyPixels.
constexpr int64_t kMaxNchwCopyPixels = int64_t(65535) * 32;

template <typename T>
void launch_to_nchw(const T* x, const int64_t (&stride)[4], T* out, int64_t N, int64_t C, int64_t H, int64_t W,
                    cudaStream_t stream) {
  const int64_t swapped[4] = {stride[0], stride[3], C * stride[1], stride[1]};  // (n, pixel, unused row, channel)
  launch_to_nhwc<T>(x, swapped, out, N, H * W, 1, C, stream);
}

// Is the tensor at `ptr` (N x C x H x W, strides `stride` in (n, c, h, w) order) dense NCHW and 16-byte aligned, a
// destination launch_to_nchw can write (within its kMaxNchwCopyPixels)?
inline bool to_nchw_fits(const void* ptr, const int64_t (&stride)[4], int64_t C, int64_t H, int64_t W) {
  return stride[3] == 1 && stride[2] == W && stride[1] == H * W && stride[0] == C * H * W &&
         reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && H * W <= kMaxNchwCopyPixels;
}

// Is the tensor at `ptr` (N x C x H x W, strides `stride` in (n, c, h, w) order) dense NHWC and 16-byte aligned, so
// that staged_nhwc reads it in place (and a workspace needs no room for its copy)?
inline bool dense_nhwc(const void* ptr, const int64_t (&stride)[4], int64_t C, int64_t H, int64_t W) {
  return stride[0] == H * W * C && stride[1] == 1 && stride[2] == W * C && stride[3] == C &&
         reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

// Bytes staged_nhwc needs at its `dst` for activations `act` of `elem`-byte elements: none when read in place.
inline int64_t staged_nhwc_bytes(const void* act, const int64_t (&stride)[4], int64_t N, int64_t C, int64_t H,
                                 int64_t W, int64_t elem) {
  return dense_nhwc(act, stride, C, H, W) ? 0 : N * C * H * W * elem;
}

// The (n, c, h, w) element strides of a dense NHWC tensor of C x H x W images.
inline void dense_nhwc_strides(int64_t (&nhwc)[4], int64_t C, int64_t H, int64_t W) {
  nhwc[0] = H * W * C, nhwc[1] = 1, nhwc[2] = W * C, nhwc[3] = C;
}

// Stages activations `act` (N x C x H x W, strides `stride`) for the channel-vector loaders: their dense NHWC copy at
// `dst` (to_nhwc), whose strides go to `nhwc`. Returns where the NHWC activations are: dst, or act itself when it is
// dense NHWC already.
template <typename T>
const T* staged_nhwc(const void* act, const int64_t (&stride)[4], T* dst, int64_t N, int64_t C, int64_t H,
                     int64_t W, int64_t (&nhwc)[4], cudaStream_t stream) {
  dense_nhwc_strides(nhwc, C, H, W);
  // Already dense NHWC and 16-byte aligned (the backward of an NCHW call hands its copy-engine kernels grad_output
  // staged once, conv2d.py): read in place.
  if (dense_nhwc(act, stride, C, H, W)) return static_cast<const T*>(act);
  launch_to_nhwc<T>(static_cast<const T*>(act), stride, dst, N, C, H, W, stream);
  return dst;
}

template <typename T, class Cfg, bool kNHWC>
constexpr int forward_smem_bytes() {
  constexpr int E = 16 / sizeof(T);
  const int pipeline = Cfg::kStages * stage_bytes<Cfg>();
  const int epilogue = (kNHWC ? Cfg::kBM * (Cfg::kBN + E) : Cfg::kBN * (Cfg::kBM + E)) * int(sizeof(T));
  return pipeline > epilogue ? pipeline : epilogue;
}

// `filters`: w itself (NHWC: KRSC already) or its KRSC copy in the workspace (NCHW). kNHWC: the activations' layout
// as loaded (p.x, p.x_stride); kOutNHWC: the output's.
template <typename T, class Cfg, bool kNHWC, bool kVec, bool kFlat, bool kOutNHWC = kNHWC>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) forward_kernel(const ConvParams p, const T* filters,
                                                                 FilterStrides fs) {
  extern __shared__ __align__(1024) unsigned char smem[];  // 1024: wgmma's swizzle atoms
  constexpr int BK = Cfg::kBKBytes / sizeof(T);
  const int g = blockIdx.z;
  const int Cg = static_cast<int>(p.C_per_group()), Kg = static_cast<int>(p.K_per_group());
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);
  const int64_t M = p.N * p.P * p.Q;
  const int64_t m0 = int64_t(blockIdx.x) * Cfg::kBM;  // the CTA's first pixel and output channel
  const int n0 = blockIdx.y * Cfg::kBN;

  // A: output pixels m = (img, p, q), whose tap (r, s) reads input pixel (p*sh - ph + r*dh, q*sw - pw + s*dw).
  const T* x = static_cast<const T*>(p.x) + int64_t(g) * Cg * p.x_stride[1];
  const TapGather<T> ga{x, p.x_stride[2], p.x_stride[3], p.x_stride[1], static_cast<int>(p.H),
                        static_cast<int>(p.W), p.dil_h, p.dil_w, Cg, R, S};
  const int64_t PQ = p.P * p.Q;
  OperandLoader<T, Cfg, kVec && kNHWC, kFlat, !kNHWC, Cfg::kBM> la;
  la.init([&](int64_t m) -> typename TapGather<T>::Row {
    if (m < 0) return {x, INT_MIN / 2, INT_MIN / 2};
    const int64_t img = m / PQ, pq = m - img * PQ;
    const int oh = static_cast<int>(pq / p.Q), ow = static_cast<int>(pq - int64_t(oh) * p.Q);
    const int h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    return {x + img * p.x_stride[0] + h0 * p.x_stride[2] + w0 * p.x_stride[3], h0, w0};
  }, m0, M);
  // B: filters of the group's output channels; tap (r, s) is w[k, :, r, s], always inside R x S.
  const T* wg = filters + int64_t(g) * Kg * fs.k;
  const TapGather<T> gb{wg, fs.r, fs.s, fs.c, R, S, 1, 1, Cg, R, S};
  OperandLoader<T, Cfg, kVec, kFlat, false, Cfg::kBN> lb;
  lb.init([&](int64_t k) -> typename TapGather<T>::Row {
    if (k < 0) return {wg, INT_MIN / 2, INT_MIN / 2};
    return {wg + k * fs.k, 0, 0};
  }, n0, Kg);
  const int k_tiles = kFlat ? (R * S * Cg + BK - 1) / BK : R * S * ((Cg + BK - 1) / BK);

  WarpCompute<T, Cfg> mma;
  mma.zero();
  main_loop<T, Cfg, kFlat>(smem, ga, gb, la, lb, k_tiles, mma);

  const T* bias = p.bias ? static_cast<const T*>(p.bias) + int64_t(g) * Kg + n0 : nullptr;
  store_tile<T, Cfg, kOutNHWC>(smem, mma, static_cast<T*>(p.y), bias, m0, n0, M, Kg, p.K, PQ, int64_t(g) * Kg);
}

constexpr int kMaxDevices = 64;

// The opt-in of `kernel` for `smem` bytes of dynamic shared memory (more than 48 KB needs it). It holds for the
// device current when it is made: once per kernel and device (the binding's device guard makes the tensors' device
// current).
template <auto kernel>
void opt_in_shared_memory(int smem) {
  static std::once_flag configured[kMaxDevices];
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  TORCH_CHECK(device < kMaxDevices, "conv2d_ext: implicit_gemm supports device indices below ", kMaxDevices);
  std::call_once(configured[device], [&] {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  });
}

template <typename T, class Cfg, bool kNHWC, bool kVec, bool kFlat, bool kOutNHWC = kNHWC>
void launch_variant(const ConvParams& p, const T* filters, FilterStrides fs, cudaStream_t stream) {
  constexpr auto kernel = forward_kernel<T, Cfg, kNHWC, kVec, kFlat, kOutNHWC>;
  constexpr int smem = forward_smem_bytes<T, Cfg, kOutNHWC>();
  opt_in_shared_memory<kernel>(smem);
  const int64_t M = p.N * p.P * p.Q;
  const dim3 grid(static_cast<unsigned>((M + Cfg::kBM - 1) / Cfg::kBM),
                  static_cast<unsigned>((p.K_per_group() + Cfg::kBN - 1) / Cfg::kBN), static_cast<unsigned>(p.groups));
  kernel<<<grid, Cfg::kThreads, smem, stream>>>(p, filters, fs);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

inline bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Flat walk when it saves more than a quarter of the k-tiles (few channels in the reduction).
template <typename T, class Cfg>
bool flat_walk_pays(int64_t channels, int64_t taps) {
  constexpr int64_t BK = Cfg::kBKBytes / sizeof(T);
  const int64_t by_tap = taps * ((channels + BK - 1) / BK), flat = (taps * channels + BK - 1) / BK;
  return 4 * flat < 3 * by_tap;
}

// The vector pipeline needs every row chunk of both operands contiguous and 16-byte aligned: the gathered
// activations `act` (strides in (n, c, h, w) order; only read with vectors when channels-last) and the filters.
// `channels`: the reduction's channels per group.
template <typename T, class Cfg>
bool vector_loads_fit(const ConvParams& p, int64_t channels, const void* act, const int64_t (&act_stride)[4],
                      const void* filters, FilterStrides fs) {
  constexpr int64_t E = 16 / sizeof(T);
  const bool filters_fit = fs.c == 1 && aligned16(filters) && fs.k % E == 0 && fs.r % E == 0 && fs.s % E == 0;
  const bool activations_fit = !p.channels_last || (act_stride[1] == 1 && aligned16(act) && act_stride[0] % E == 0 &&
                                                    act_stride[2] % E == 0 && act_stride[3] % E == 0);
  return channels % E == 0 && filters_fit && activations_fit && !flat_walk_pays<T, Cfg>(channels, p.R * p.S);
}

// Whether a configuration copies an NCHW operand to NHWC (to_nhwc) before its kernel: wgmma configurations, whose
// element-by-element NCHW loads are the limit and which read each element once per tap, when the operand's
// `channels` (and `per_group` of them per group) fill 16-byte vectors, the walk is by tap over `taps` > 1 taps, and
// its images have fewer than 2^31 `pixels`. Not for one tap: each element is read once, and the copy costs more
// than it saves (r50_1x1 on the H100: 0.111 ms staged against 0.090 ms native, bf16). `ffma`: the exact-fp32 FFMA
// configurations too (ffma_stages_nhwc).
template <class Cfg>
bool stages_nhwc(const ConvParams& p, int64_t channels, int64_t per_group, int64_t taps, int64_t pixels,
                 bool ffma = false) {
  if (!(Cfg::kWgmma || (ffma && Cfg::kFfma)) || p.channels_last || taps == 1 || pixels >= (int64_t(1) << 31))
    return false;
  const bool fp32 = p.dtype == DType::kFloat32;
  const int64_t E = fp32 ? 4 : 8;
  const bool flat = fp32 ? flat_walk_pays<float, Cfg>(per_group, taps) : flat_walk_pays<__half, Cfg>(per_group, taps);
  return channels % E == 0 && per_group % E == 0 && !flat;
}

// Whether the exact-fp32 FFMA configurations' forward copies NCHW activations to NHWC too: at stride 1 (at stride 2
// the channels-last kernels are no faster: r50_3x3_128_s2 0.250 ms against NCHW's 0.248). Their NCHW main loop
// gathers 4-byte elements (SASS: 1316 instructions a k-tile, 78% FFMA, against the NHWC loop's 1225, 84%). The default
// since session 27 (H100, graph ms, on 128x64_ffma, which the heuristics then pick: seed 18.72 -> 16.82 (ffma
// unstaged 18.14), r50_3x3_64 0.235 -> 0.220, unet_3x3 2.34 -> 2.05 (ffma 2.26), dilated 1.15 -> 0.97 (ffma 1.11),
// r50_3x3_512 0.372 -> 0.338, batch1_3x3 0.182 -> 0.167; ffma itself gains nothing from it).
// CONV2D_EXT_FFMA_STAGE_NHWC=0 turns it off.
inline bool ffma_stages_nhwc(const ConvParams& p) {
  const char* env = std::getenv("CONV2D_EXT_FFMA_STAGE_NHWC");
  return !(env != nullptr && env[0] == '0') && p.stride_h == 1 && p.stride_w == 1;
}

// The forward's activations: stages_nhwc over x.
template <class Cfg>
bool stages_nhwc(const ConvParams& p) {
  return stages_nhwc<Cfg>(p, p.C, p.C_per_group(), p.R * p.S, p.H * p.W, Cfg::kFfma && ffma_stages_nhwc(p));
}

// Bytes of a workspace region, rounded up so the next one starts 256-byte aligned.
inline int64_t region(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// NCHW: the KRSC filters, then (stages_nhwc) the NHWC activations.
template <class Cfg>
int64_t forward_workspace(const ConvParams& p) {
  const int64_t elem = p.element_bytes();
  if (p.channels_last) return 0;
  const int64_t filters = region(p.K * p.C_per_group() * p.R * p.S * elem);
  return stages_nhwc<Cfg>(p) ? filters + p.N * p.C * p.H * p.W * elem : filters;
}

// The configuration whose kernels run Cfg's launches off the vector path: Cfg itself, or for a kVectorShapesOnly one
// (no scalar variants compiled) the configuration of 4 or 8 warps and 64-byte k-tiles on the same unit (specialized
// below the configurations).
template <class Cfg> struct ScalarFallback { using type = Cfg; };

template <typename T, class Cfg>
void forward_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.N * p.P * p.Q == 0 || p.K == 0) return;  // an empty output: nothing to launch (a grid of 0 is an error)
  if constexpr (Cfg::kVectorShapesOnly) {  // channels-last off the vector path (a misaligned base pointer)
    static_assert(!std::is_same_v<typename ScalarFallback<Cfg>::type, Cfg>, "a configuration to fall back on");
    if (p.channels_last && !vector_loads_fit<T, Cfg>(p, p.C_per_group(), p.x, p.x_stride, p.w,
                                                     FilterStrides{p.w_stride[0], p.w_stride[1], p.w_stride[2],
                                                                   p.w_stride[3]}))
      return forward_launch_typed<T, typename ScalarFallback<Cfg>::type>(p, workspace, stream);
  }
  const T* filters = static_cast<const T*>(p.w);
  FilterStrides fs{p.w_stride[0], p.w_stride[1], p.w_stride[2], p.w_stride[3]};
  if (!p.channels_last) {  // repack KCRS -> KRSC
    const int64_t total = p.K * p.C_per_group() * p.R * p.S;
    repack_krsc<T>(p, filters, fs, static_cast<T*>(workspace), stream);
    if constexpr (Cfg::kWgmma || Cfg::kFfma) {
      if (stages_nhwc<Cfg>(p)) {  // NHWC activations in, NCHW output out (the epilogue writes it directly)
        T* x = reinterpret_cast<T*>(static_cast<unsigned char*>(workspace) + region(total * int64_t(sizeof(T))));
        ConvParams q = p;
        q.x = const_cast<T*>(staged_nhwc<T>(p.x, p.x_stride, x, p.N, p.C, p.H, p.W, q.x_stride, stream));
        launch_variant<T, Cfg, true, true, false, false>(q, filters, fs, stream);
        return;
      }
    }
  }
  if constexpr (Cfg::kVectorShapesOnly) {  // its can_implement turns the rest away: no scalar variant compiled
    TORCH_CHECK(p.channels_last, "conv2d_ext: this implicit_gemm configuration takes NCHW problems only staged to NHWC");
    launch_variant<T, Cfg, true, true, false>(p, filters, fs, stream);
  } else {
    const bool vec = vector_loads_fit<T, Cfg>(p, p.C_per_group(), p.x, p.x_stride, filters, fs);
    if (p.channels_last) {
      if (vec) launch_variant<T, Cfg, true, true, false>(p, filters, fs, stream);
      else launch_variant<T, Cfg, true, false, true>(p, filters, fs, stream);  // also a misaligned base pointer
    } else {
      if (vec) launch_variant<T, Cfg, false, true, false>(p, filters, fs, stream);
      else launch_variant<T, Cfg, false, false, true>(p, filters, fs, stream);
    }
  }
}

// Largest dynamic shared memory a block may opt in to, by compute capability (CUDA programming guide, "Technical
// Specifications"): 227 KB on sm_90/sm_100, 163 KB on sm_80/sm_87, 99 KB on sm_86/sm_89/sm_120 and anything else.
inline int64_t max_shared_memory_per_block(int sm) {
  if (sm == 90 || sm == 100) return 232448;
  if (sm == 80 || sm == 87) return 166912;
  return 101376;
}

// Why configuration Cfg cannot run pass `p` at all (dtype: tensor-core dtypes, or float32 for FFMA configurations; GPU, sizes its 32-bit window math and grid allow, shared
// memory), or "". `n_extent`: the GEMM's N per group (tiles along grid.y); `reduction`: channels x taps.
template <class Cfg>
std::string gemm_reason(const ConvParams& p, int64_t n_extent, int64_t reduction) {
  if constexpr (Cfg::kFfma) {
    if (p.sm < 80) return "needs compute capability 8.0 or newer (cp.async)";
    if (p.dtype != DType::kFloat32)
      return "exact FP32 on CUDA cores takes float32 only (fp16/bf16 run on tensor cores, float64 on the direct family)";
  } else {
    if constexpr (Cfg::kWgmma) {
      if (!wgmma_built_for(p.sm))
        return p.sm == 90 ? "this build has no sm_90a code (build with TORCH_CUDA_ARCH_LIST including 9.0, CUDA 12+)"
                          : "needs a compute capability 9.0 GPU (wgmma: H100, H200)";
    }
    if (p.sm < 80) return "needs compute capability 8.0 or newer (mma.sync tensor cores)";
    if (p.dtype == DType::kFloat64) return "float64 runs on the direct family (no fp64 tensor-core path)";
    if (p.dtype == DType::kFloat32 && !p.allow_tf32)
      return "float32 with allow_tf32 = False needs exact FP32 arithmetic (CUDA cores), not TF32 tensor cores";
  }
  if (p.groups > 65535) return "more than 65535 groups";
  if ((n_extent + Cfg::kBN - 1) / Cfg::kBN > 65535) return "more than 65535 tiles of channels per group";
  // Window corners, tap offsets and the "past the end" row marker (INT_MIN / 2) are 32-bit: keep them far from
  // overflow.
  const int64_t kLimit = int64_t(1) << 30;
  if (p.H >= kLimit || p.W >= kLimit || p.P >= kLimit || p.Q >= kLimit) return "a spatial size of 2^30 or more";
  if (p.pad_h >= kLimit || p.pad_w >= kLimit || (p.P - 1) * p.stride_h >= kLimit ||
      (p.Q - 1) * p.stride_w >= kLimit || (p.R - 1) * p.dil_h >= kLimit || (p.S - 1) * p.dil_w >= kLimit)
    return "padding, strided output extent or dilated filter extent of 2^30 or more";
  if (reduction >= kLimit) return "a reduction (channels per group x R x S) of 2^30 or more";
  const bool fp32 = p.dtype == DType::kFloat32;
  const int64_t smem = fp32 ? (p.channels_last ? forward_smem_bytes<float, Cfg, true>() : forward_smem_bytes<float, Cfg, false>())
                            : (p.channels_last ? forward_smem_bytes<__half, Cfg, true>() : forward_smem_bytes<__half, Cfg, false>());
  if (smem > max_shared_memory_per_block(p.sm)) return "its tiles need more shared memory than this GPU gives a block";
  return "";
}

// "" when `stride` (n, c, h, w order) is the dense layout of an N x channels x rows x cols tensor in p's layout.
inline std::string dense_reason(const ConvParams& p, const int64_t (&stride)[4], int64_t channels, int64_t rows,
                                int64_t cols, const char* what) {
  const int64_t nhwc[4] = {rows * cols * channels, 1, cols * channels, channels};
  const int64_t nchw[4] = {channels * rows * cols, rows * cols, cols, 1};
  const int64_t* dense = p.channels_last ? nhwc : nchw;
  for (int i = 0; i < 4; ++i)
    if (stride[i] != dense[i] && !(i == 0 && p.N == 1)) return std::string(what) + " is not dense in its layout";
  return "";
}

// What forward configuration Cfg can run.
template <class Cfg>
std::string forward_can_implement(const ConvParams& p) {
  std::string why = gemm_reason<Cfg>(p, p.K_per_group(), p.C_per_group() * p.R * p.S);
  if (why.empty()) why = dense_reason(p, p.y_stride, p.K, p.P, p.Q, "the output");  // the epilogue writes it so
  if (why.empty() && Cfg::kVectorShapesOnly) {  // no scalar variants: only shapes that take the vector path
    const bool fp32 = p.dtype == DType::kFloat32;
    const int64_t E = fp32 ? 4 : 8, Cg = p.C_per_group(), taps = p.R * p.S;
    const bool flat = fp32 ? flat_walk_pays<float, Cfg>(Cg, taps) : flat_walk_pays<__half, Cfg>(Cg, taps);
    if (!(p.channels_last || stages_nhwc<Cfg>(p)) || Cg % E != 0 || flat)
      return Cfg::kWgmma ? "takes only problems whose channels fill whole 16-byte vectors and its k-tiles"
                         : "takes only channels-last problems with channels in whole 16-byte vectors filling its k-tiles";
  }
  return why;
}

// Dtype dispatch of one configuration: its kernels for each dtype are instantiated in their own files.
template <class Cfg>
void forward_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  dispatch_float_dtype(p.dtype, "implicit_gemm", [&](auto tag) {
    forward_launch_typed<typename decltype(tag)::type, Cfg>(p, workspace, stream);
  });
}

// The configurations, each instantiated in csrc/implicit_gemm/forward_<name>_<dtype>.cu. Measured on the H100
// (benchmarks/NOTES.md): 128x128_w8 leads on NCHW fp16/bf16 (its scalar activation loads want more warps), 128x128_w4
// on NCHW TF32, 128x128_k128 on NHWC (vector loads, half the barriers), 64x64 when the larger tiles leave SMs idle.
using Config128x128_w4 = TileConfig<128, 128, 2, 2, 4>;            // 4 warps of 64 x 64, 64-byte k-tiles
using Config128x128_w8 = TileConfig<128, 128, 2, 4, 3, 64, 2>;     // 8 warps of 64 x 32, two CTAs per SM
using Config128x128_k128 = TileConfig<128, 128, 2, 2, 3, 128>;     // 4 warps of 64 x 64, 128-byte k-tiles
using Config64x64 = TileConfig<64, 64, 2, 2, 4>;                   // 4 warps of 32 x 32
// Hopper (sm_90a): 2 warpgroups of 64 x 128 on wgmma, 5 stages of 64-byte k-tiles, two CTAs per SM.
using Config128x128_wg = TileConfig<128, 128, 2, 4, 5, 64, 2, Unit::kWgmma>;
// Hopper: 4 warpgroups of 64 x 128 (a 256 x 128 tile: a third fewer operand bytes per FLOP than 128 x 128; the
// H100 sweep found no L2 limit to lift, but it pays on large problems), 6 stages of 64-byte k-tiles, one CTA per SM;
// vector shapes only (channels-last, or NCHW staged to NHWC): backward-data's large problems (the forward's large
// ones take the 128-byte k-tiles below).
using Config256x128_wg = TileConfig<256, 128, 4, 4, 6, 64, 1, Unit::kWgmma>;
// The same with 128-byte k-tiles (4 stages), vector shapes only as 128x128_k128.
using Config256x128_wgk128 = TileConfig<256, 128, 4, 4, 4, 128, 1, Unit::kWgmma>;
// Exact FP32 on CUDA cores (FfmaWarp): 8 warps of 64 x 32, 8 x 8 accumulators per thread, float only.
using Configffma = TileConfig<128, 128, 2, 4, 3, 64, 1, Unit::kFfma>;
// The same warps, 4 of them, two CTAs per SM: 128 x 64 tiles (forward and backward-data of 64 or fewer channels on the
// GEMM's N: seed's backward-data, r50_3x3_64, whose 128-wide tiles are half empty) and 64 x 128 (backward-weight of 64
// or fewer output channels).
using Config128x64_ffma = TileConfig<128, 64, 2, 2, 3, 64, 2, Unit::kFfma>;
using Config64x128_ffma = TileConfig<64, 128, 1, 4, 3, 64, 2, Unit::kFfma>;

// Where the kVectorShapesOnly configurations' launches off the vector path go, and those launchers' instantiations
// (in their own files).
template <> struct ScalarFallback<Config128x128_k128> { using type = Config128x128_w8; };
template <> struct ScalarFallback<Config256x128_wg> { using type = Config128x128_wg; };
template <> struct ScalarFallback<Config256x128_wgk128> { using type = Config128x128_wg; };
extern template void forward_launch_typed<__half, Config128x128_w8>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<__nv_bfloat16, Config128x128_w8>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<float, Config128x128_w8>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<__half, Config128x128_wg>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<__nv_bfloat16, Config128x128_wg>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<float, Config128x128_wg>(const ConvParams&, void*, cudaStream_t);

// The launcher of a configuration instantiated for float alone (the FFMA configurations).
template <void (*kLaunch)(const ConvParams&, void*, cudaStream_t)>
void float_only_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  TORCH_CHECK(p.dtype == DType::kFloat32, "conv2d_ext: this implicit_gemm configuration runs float32 only");
  kLaunch(p, workspace, stream);
}

}  // namespace igemm
}  // namespace conv2d_ext

// The registry entry <pass>_implicit_gemm_<name> (pass: forward, backward_data or backward_weight; kPass its Pass)
// of configuration Config<name>, whose kernels are instantiated per dtype in <pass>_<name>_{f16,bf16,tf32}.cu
// (declared here so the entry's file does not compile them again). Every pass's mapping supplies
// <pass>_launch_typed, <pass>_can_implement, <pass>_workspace and <pass>_launch, templated on the configuration.
#define CONV2D_EXT_IGEMM_ENTRY(pass, kPass, name)                                                                 \
  namespace conv2d_ext {                                                                                        \
  namespace igemm {                                                                                             \
  extern template void pass##_launch_typed<__half, Config##name>(const ConvParams&, void*, cudaStream_t);       \
  extern template void pass##_launch_typed<__nv_bfloat16, Config##name>(const ConvParams&, void*, cudaStream_t); \
  extern template void pass##_launch_typed<float, Config##name>(const ConvParams&, void*, cudaStream_t);        \
  }                                                                                                             \
  const KernelInfo pass##_implicit_gemm_##name = {Pass::kPass, "implicit_gemm", #name,                          \
                                                  igemm::pass##_can_implement<igemm::Config##name>,             \
                                                  igemm::pass##_workspace<igemm::Config##name>,                 \
                                                  igemm::pass##_launch<igemm::Config##name>};                   \
  }
#define CONV2D_EXT_IGEMM_FORWARD_ENTRY(name) CONV2D_EXT_IGEMM_ENTRY(forward, kForward, name)

// The registry entry `pass##_implicit_gemm_##name` of an FFMA configuration Config##name (float only), with its one
// instantiation: a .cu per configuration and pass.
#define CONV2D_EXT_IGEMM_FFMA_ENTRY(pass, kPass, name)                                                    \
  namespace conv2d_ext {                                                                                  \
  namespace igemm {                                                                                       \
  template void pass##_launch_typed<float, Config##name>(const ConvParams&, void*, cudaStream_t);        \
  }                                                                                                       \
  const KernelInfo pass##_implicit_gemm_##name = {                                                        \
      Pass::kPass, "implicit_gemm", #name, igemm::pass##_can_implement<igemm::Config##name>,             \
      igemm::pass##_workspace<igemm::Config##name>,                                                       \
      igemm::float_only_launch<igemm::pass##_launch_typed<float, igemm::Config##name>>};                 \
  }
