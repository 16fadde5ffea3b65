// The implicit-GEMM machinery shared by every pass: tile configuration, operand loaders (the im2col gather done
// while filling shared memory), the multi-stage main loop on tensor cores (mma.sync through ldmatrix) and the
// epilogue. A pass supplies only its mapping (csrc/implicit_gemm/forward.cuh): which tensor feeds the GEMM's A
// rows and B rows, how a row and a filter tap turn into an address, and where D lands.
//
// The GEMM: D[m][n] = sum over the reduction of A[m][k] * B[n][k]. Both operands are stored in shared memory
// reduction-contiguous ("K-major", one 16-byte padded row per m or n), so ldmatrix without transposition feeds
// the A and B fragments of every dtype. The reduction runs tap by tap (r, s) and, inside a tap, over channels
// c: k = (r * S + s) * Cg + c.
//
// Two ways to walk the reduction, chosen per launch:
//  - by tap (kFlat = false): a k-tile is BK channels of one tap; a row's address is computed once per k-tile and
//    stepped by the channel stride. Channels past Cg are zero. The fast path whenever Cg fills a k-tile.
//  - flat (kFlat = true): a k-tile is BK consecutive k of the flattened reduction, each element decomposed into
//    (r, s, c). Wastes nothing when Cg is small (a 7x7 first layer on 3 channels).
// And two ways to load each operand:
//  - vector (kVec): 16-byte cp.async per row chunk, for operands whose channels are contiguous and 16-byte
//    aligned (NHWC activations, KRSC filters, Cg a multiple of 16 bytes); by tap only; kStages - 1 tiles ahead.
//  - scalar: element loads into registers one k-tile ahead, stored to shared memory after the current tile's
//    MMAs; any layout, any alignment. For NCHW activations consecutive threads take consecutive pixels, so each
//    load instruction of a warp is one coalesced run along W.
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_runtime.h>

#include "common/conv_params.h"
#include "common/cp_async.cuh"
#include "common/dtype.cuh"
#include "common/mma.cuh"
#include "common/wgmma.cuh"

namespace conv2d_ext {
namespace igemm {

// What computes a configuration's tiles: warp-level tensor-core MMAs (mma.sync, sm_80+), exact FP32 FFMA on CUDA
// cores (float only), or Hopper's warpgroup MMAs (wgmma, sm_90a), which read both operands from shared memory.
enum class Unit { kMma, kFfma, kWgmma };

// A CTA computes a kBM x kBN tile of D with kWarpsM x kWarpsN warps; each k-tile is kBKBytes of the reduction.
// kMinBlocks: CTAs per SM the register allocation must allow (__launch_bounds__).
template <int BM, int BN, int WarpsM, int WarpsN, int Stages, int BKBytes = 64, int MinBlocks = 1, Unit U = Unit::kMma>
struct TileConfig {
  static constexpr int kBM = BM, kBN = BN, kWarpsM = WarpsM, kWarpsN = WarpsN, kStages = Stages;
  static constexpr bool kFfma = U == Unit::kFfma, kWgmma = U == Unit::kWgmma;
  static constexpr int kMinBlocks = MinBlocks;
  // Scalar loads (operands not in 16-byte vectors) need registers that 128-byte k-tiles (twice the loads) or 16 warps
  // (128 registers a thread, 64 of them accumulators) do not leave: those variants spilled (ptxas, sessions 28-39).
  // Such a configuration compiles no scalar variant and takes only problems on the vector path (the passes'
  // can_implement); a launch that leaves it anyway (a base pointer off 16 bytes, which can_implement cannot see)
  // runs on its ScalarFallback's kernels (forward.cuh).
  static constexpr bool kVectorShapesOnly = BKBytes > 64 || WarpsM * WarpsN > 8;
  static constexpr int kBKBytes = BKBytes;
  static constexpr int kThreads = 32 * WarpsM * WarpsN;
  static constexpr int kWarpM = BM / WarpsM, kWarpN = BN / WarpsN;  // a warp's tile of D
  static constexpr int kMTiles = kWarpM / 16, kNTiles = kWarpN / 8;  // its MMA tiles
  static constexpr int kChunks = BKBytes / 16;                      // 16-byte chunks per row of a k-tile
  // Bytes per row in shared memory: padded so that ldmatrix's 8 rows hit 8 distinct bank groups; wgmma's swizzled
  // layout (offset below) needs no padding.
  static constexpr int kPitch = kWgmma ? BKBytes : BKBytes + 16;
  static_assert(!kWgmma || BKBytes == 32 || BKBytes == 64 || BKBytes == 128, "wgmma swizzles 32, 64 or 128-byte rows");
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "warp tile must be a multiple of 16 x 16");
  static_assert(BKBytes % 32 == 0, "a k-tile is a whole number of 32-byte MMA steps");
  static_assert((BM * kChunks) % kThreads == 0 && (BN * kChunks) % kThreads == 0, "chunks must split evenly");

  // Byte offset of 16-byte chunk `chunk` of row `row` in an operand's tile: rows of kPitch bytes; for wgmma, rows of
  // kBKBytes with the chunks of row r stored at chunk ^ (r % 8) / (8 / kChunks), the hardware's 32/64/128-byte swizzle
  // (wgmma_descriptor), so that 8 rows' same chunk (ldmatrix, cp.async of 8 threads, an MMA's read) hit 8 distinct
  // bank groups. Tiles start 1024-byte aligned.
  __device__ __forceinline__ static int offset(int row, int chunk) {
    if constexpr (kWgmma) return row * BKBytes + (chunk ^ (row % 8) / (8 / kChunks)) * 16;
    else return row * kPitch + chunk * 16;
  }
};

// Shared memory of one pipeline stage: A rows then B rows.
template <class Cfg> constexpr int stage_bytes() { return (Cfg::kBM + Cfg::kBN) * Cfg::kPitch; }

// Position of a k-tile in the reduction, advanced tile by tile (no divisions in the main loop).
struct KTile {
  int r = 0, s = 0, c0 = 0;  // by tap: the tap and the first channel of the tile
  int k0 = 0;                // flat: the first reduction index of the tile
  // `g`: the gather of operand A (by tap: its Cg channels per tap and S taps per filter row).
  template <int BK, bool kFlat, class Gather>
  __device__ __forceinline__ void advance(const Gather& g) {
    if constexpr (kFlat) {
      k0 += BK;
    } else if ((c0 += BK) >= g.Cg) {
      c0 = 0;
      if (++s == g.S) { s = 0; ++r; }
    }
  }
};

// One operand of the GEMM as a gather over filter taps. Row i of the operand is a pointer plus a window corner
// (h0, w0); tap (r, s) moves it by (r * dil_h, s * dil_w) and by `delta` elements, the same for every row, and is
// valid where the moved corner lies inside [0, H) x [0, W) (the zero padding outside). Channel c of a valid
// (row, tap) is at row.ptr + delta + c * c_stride. The pass's mapping (e.g. forward.cuh) fills one of these per
// operand: activations (rows = pixels, H x W the input) and filters (rows = output channels, H x W = R x S, so
// every tap is valid).
template <typename T>
struct TapGather {
  struct Row { const T* ptr; int h0, w0; };  // h0 = INT_MIN / 2 marks a row past the end (all zeros)
  struct Tap { int dh, dw; int64_t delta; };
  const T* any_address;  // a valid address (the source of a zero-filling cp.async)
  int64_t sH, sW, c_stride;
  int H, W, dil_h, dil_w;
  int Cg, R, S;  // channels per group and filter size: the reduction

  __device__ __forceinline__ Tap tap(int r, int s) const {
    const int dh = r * dil_h, dw = s * dil_w;
    return {dh, dw, dh * sH + dw * sW};
  }
  __device__ __forceinline__ bool valid(const Row& row, const Tap& t) const {
    return static_cast<unsigned>(row.h0 + t.dh) < static_cast<unsigned>(H) &&
           static_cast<unsigned>(row.w0 + t.dw) < static_cast<unsigned>(W);
  }
};

// The (row, 16-byte chunk) units of a kRows x kBKBytes tile, spread over the CTA's threads (rows fastest across
// threads when kRowsFastest, for pixel-contiguous NCHW), and the row of each unit as the pass's mapping describes it
// (a pointer plus whatever its gather needs), made once per CTA. The loaders of every pass build on it.
template <class Cfg, bool kRowsFastest, int kRows, class Row>
struct RowUnits {
  static constexpr int kUnits = kRows * Cfg::kChunks / Cfg::kThreads;  // (row, chunk) pairs per thread

  Row rows[kUnits];

  // Unit i of this thread: row and 16-byte chunk of the tile (recomputed, not kept in registers). Chunks fastest
  // (channel-contiguous rows) take 8 rows at a time under wgmma, so 8 consecutive threads fill one core matrix.
  __device__ __forceinline__ static int row_of(int i) {
    const int u = threadIdx.x + i * Cfg::kThreads;
    if constexpr (kRowsFastest) return u % kRows;
    else if constexpr (Cfg::kWgmma) return u % 8 + u / (8 * Cfg::kChunks) * 8;
    else return u / Cfg::kChunks;
  }
  __device__ __forceinline__ static int chunk_of(int i) {
    const int u = threadIdx.x + i * Cfg::kThreads;
    if constexpr (kRowsFastest) return u / kRows;
    else if constexpr (Cfg::kWgmma) return u / 8 % Cfg::kChunks;
    else return u % Cfg::kChunks;
  }

  // make_row(index) for index in [row0, row0 + kRows), or -1 past `row_count`.
  template <typename MakeRow>
  __device__ void init(MakeRow&& make_row, int64_t row0, int64_t row_count) {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      const int64_t index = row0 + row_of(i);
      rows[i] = make_row(index < row_count ? index : -1);
    }
  }
};

// Loads one operand's k-tiles into shared memory: kRows rows x kBKBytes, split into RowUnits. `rows` come from the
// pass's mapping, once per CTA.
template <typename T, class Cfg, bool kVec, bool kFlat, bool kRowsFastest, int kRows>
struct OperandLoader : RowUnits<Cfg, kRowsFastest, kRows, typename TapGather<T>::Row> {
  using Units = RowUnits<Cfg, kRowsFastest, kRows, typename TapGather<T>::Row>;
  using Units::kUnits, Units::rows, Units::row_of, Units::chunk_of;
  using Gather = TapGather<T>;
  static constexpr int kElems = 16 / sizeof(T);  // elements per chunk
  static constexpr int BK = Cfg::kBKBytes / sizeof(T);
  static_assert(!(kVec && kFlat), "vector loads walk the reduction by tap");

  uint4 staged[kVec ? 1 : kUnits];  // scalar path: the next k-tile, in registers

  // Vector path: cp.async the k-tile's chunks into `dst` (this operand's rows of one stage).
  __device__ __forceinline__ void issue_async(const Gather& g, const KTile& t, unsigned char* dst) const {
    const typename Gather::Tap tap = g.tap(t.r, t.s);
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      const int c = t.c0 + chunk_of(i) * kElems;
      const bool valid = g.valid(rows[i], tap) && c < g.Cg;
      const T* src = rows[i].ptr + tap.delta + c;
      cp_async_16(dst + Cfg::offset(row_of(i), chunk_of(i)), valid ? src : g.any_address, valid);
    }
  }

  // Scalar path: load the k-tile's elements into registers ...
  __device__ __forceinline__ void load_registers(const Gather& g, const KTile& t) {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      union { uint4 v; T e[kElems]; } pack;
      pack.v = make_uint4(0, 0, 0, 0);
      if (kFlat) {  // decompose the chunk's first k once, then step (c, s, r)
        const int k = t.k0 + chunk_of(i) * kElems;
        int c = k % g.Cg, tap = k / g.Cg;
        int r = tap / g.S, s = tap - r * g.S;
#pragma unroll
        for (int e = 0; e < kElems; ++e) {
          const typename Gather::Tap tp = g.tap(r, s);
          if (r < g.R && g.valid(rows[i], tp)) pack.e[e] = rows[i].ptr[tp.delta + c * g.c_stride];
          if (++c == g.Cg) {
            c = 0;
            if (++s == g.S) { s = 0; ++r; }
          }
        }
      } else {  // one address per tap, stepped along channels
        const typename Gather::Tap tp = g.tap(t.r, t.s);
        const int c = t.c0 + chunk_of(i) * kElems;
        const bool valid = g.valid(rows[i], tp);
        const T* src = rows[i].ptr + tp.delta + c * g.c_stride;
#pragma unroll
        for (int e = 0; e < kElems; ++e)
          if (valid && c + e < g.Cg) pack.e[e] = src[e * g.c_stride];
      }
      staged[i] = pack.v;
    }
  }

  // ... and store them to shared memory once the stage they go to is free.
  __device__ __forceinline__ void store_registers(unsigned char* dst) const {
    if constexpr (!kVec) {
#pragma unroll
      for (int i = 0; i < kUnits; ++i)
        *reinterpret_cast<uint4*>(dst + Cfg::offset(row_of(i), chunk_of(i))) = staged[i];
    }
  }

  // Starts loading k-tile t into `dst`: asynchronously (vector) or into registers (scalar, stored later).
  __device__ __forceinline__ void load(const Gather& g, const KTile& t, unsigned char* dst) {
    if constexpr (kVec) issue_async(g, t, dst);
    else load_registers(g, t);
  }
};

// Bytes per k-row of an operand stored transposed (M- or N-major: kRows contiguous elements per reduction index,
// padded so that ldmatrix's 8 k-rows hit 8 distinct bank groups). 16-bit types only (ldmatrix.trans).
template <typename T, int kRows>
constexpr int trans_pitch() { return kRows * int(sizeof(T)) + 16; }

// One warp's share of the MMAs of a k-tile: fragments through ldmatrix, fp32 accumulators. The fragments of
// step i + 1 are loaded before the MMAs of step i, so shared-memory latency hides behind tensor-core work.
// Each operand is stored reduction-contiguous (K-major: a kPitch-byte row per m or n) unless its kTrans flag is set:
// then transposed (a trans_pitch-byte row per reduction index, m or n contiguous), read with ldmatrix.trans (16-bit
// types), which fits in the same stage region as long as the k-tile is at most twice the rows in bytes.
template <typename T, class Cfg, bool kATrans = false, bool kBTrans = false>
struct WarpMma {
  static_assert(!(kATrans || kBTrans) || sizeof(T) == 2, "transposed operands need 16-bit elements (ldmatrix.trans)");
  static_assert(Cfg::kBKBytes <= 2 * Cfg::kBM && Cfg::kBKBytes <= 2 * Cfg::kBN, "a transposed tile must fit its region");
  static constexpr int kPitchA = kATrans ? trans_pitch<T, Cfg::kBM>() : Cfg::kPitch;
  static constexpr int kPitchB = kBTrans ? trans_pitch<T, Cfg::kBN>() : Cfg::kPitch;
  static constexpr bool kAsync = false;  // done with its stage when run() returns
  float acc[Cfg::kMTiles][Cfg::kNTiles][4];

  // Byte offsets of warp (wm, wn)'s first row of A and of B within their regions of a stage.
  __device__ __forceinline__ static int a_warp_offset(int wm) {
    return kATrans ? wm * Cfg::kWarpM * int(sizeof(T)) : wm * Cfg::kWarpM * Cfg::kPitch;
  }
  __device__ __forceinline__ static int b_warp_offset(int wn) {
    return kBTrans ? wn * Cfg::kWarpN * int(sizeof(T)) : wn * Cfg::kWarpN * Cfg::kPitch;
  }

  __device__ void zero() {
#pragma unroll
    for (int i = 0; i < Cfg::kMTiles; ++i)
#pragma unroll
      for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
  }

  struct Fragments { uint32_t a[Cfg::kMTiles][4], b[Cfg::kNTiles][2]; };

  // ldmatrix row addresses: A matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15) give a0..a3; B matrices
  // (k 0-7 | 8-15) x (rows 0-7 | 8-15) give b0, b1 of two 8-wide n tiles. One step is 32 bytes of the reduction.
  __device__ __forceinline__ static void load(Fragments& f, const unsigned char* a_row, const unsigned char* b_row,
                                              int step) {
#pragma unroll
    for (int i = 0; i < Cfg::kMTiles; ++i) {
      if constexpr (kATrans) ldmatrix_x4_trans(f.a[i], a_row + i * 32 + step * 16 * kPitchA);
      else ldmatrix_x4(f.a[i], a_row + i * 16 * Cfg::kPitch + step * 32);
    }
#pragma unroll
    for (int j = 0; j < Cfg::kNTiles; j += 2) {
      uint32_t r[4];
      if constexpr (kBTrans) ldmatrix_x4_trans(r, b_row + j * 16 + step * 16 * kPitchB);
      else ldmatrix_x4(r, b_row + j * 8 * Cfg::kPitch + step * 32);
      f.b[j][0] = r[0]; f.b[j][1] = r[1]; f.b[j + 1][0] = r[2]; f.b[j + 1][1] = r[3];
    }
  }

  // a_tile, b_tile: this warp's first row of A and of B in the stage.
  __device__ __forceinline__ void run(const unsigned char* a_tile, const unsigned char* b_tile) {
    constexpr int kSteps = Cfg::kBKBytes / 32;
    const int lane = threadIdx.x % 32;
    const unsigned char* a_row =
        kATrans ? a_tile + ((lane / 16) * 8 + lane % 8) * kPitchA + ((lane / 8) % 2) * 16
                : a_tile + ((lane / 8) % 2 * 8 + lane % 8) * Cfg::kPitch + (lane / 16) * 16;
    const unsigned char* b_row =
        kBTrans ? b_tile + ((lane / 8) % 2 * 8 + lane % 8) * kPitchB + (lane / 16) * 16
                : b_tile + ((lane / 16) * 8 + lane % 8) * Cfg::kPitch + ((lane / 8) % 2) * 16;
    Fragments f[2];
    load(f[0], a_row, b_row, 0);
#pragma unroll
    for (int step = 0; step < kSteps; ++step) {
      if (step + 1 < kSteps) load(f[(step + 1) % 2], a_row, b_row, step + 1);
#pragma unroll
      for (int i = 0; i < Cfg::kMTiles; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j) Mma<T>::run(acc[i][j], f[step % 2].a[i], f[step % 2].b[j]);
    }
  }
};

// The CUDA-core counterpart of WarpMma for exact FP32 (float operands, K-major tiles as the loaders write them): each
// thread accumulates a (kWarpM / 8) x (kWarpN / 4) block of D with FFMA, reading 16 bytes (4 reduction steps) of each
// of its A and B rows per shared-memory load. Lanes are 8 (m) x 4 (n); a quarter-warp reads 2 A rows and 4 B rows,
// 80 bytes apart, so the 16-byte loads hit distinct bank groups or broadcast.
template <class Cfg>
struct FfmaWarp {
  static constexpr int kTM = Cfg::kWarpM / 8, kTN = Cfg::kWarpN / 4;
  static_assert(Cfg::kWarpM % 8 == 0 && Cfg::kWarpN % 4 == 0, "warp tile must split over 8 x 4 lanes");
  static constexpr bool kAsync = false;
  float acc[kTM][kTN];

  __device__ __forceinline__ static int a_warp_offset(int wm) { return wm * Cfg::kWarpM * Cfg::kPitch; }
  __device__ __forceinline__ static int b_warp_offset(int wn) { return wn * Cfg::kWarpN * Cfg::kPitch; }

  __device__ void zero() {
#pragma unroll
    for (int i = 0; i < kTM; ++i)
#pragma unroll
      for (int j = 0; j < kTN; ++j) acc[i][j] = 0.f;
  }

  __device__ __forceinline__ void run(const unsigned char* a_tile, const unsigned char* b_tile) {
    const int lane = threadIdx.x % 32, lm = lane / 4, ln = lane % 4;
    const unsigned char* a_row = a_tile + lm * Cfg::kPitch;
    const unsigned char* b_row = b_tile + ln * Cfg::kPitch;
#pragma unroll
    for (int kk = 0; kk < Cfg::kBKBytes / 16; ++kk) {
      float4 a[kTM], b[kTN];
#pragma unroll
      for (int i = 0; i < kTM; ++i) a[i] = *reinterpret_cast<const float4*>(a_row + i * 8 * Cfg::kPitch + kk * 16);
#pragma unroll
      for (int j = 0; j < kTN; ++j) b[j] = *reinterpret_cast<const float4*>(b_row + j * 4 * Cfg::kPitch + kk * 16);
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) {
          acc[i][j] = fmaf(a[i].x, b[j].x, acc[i][j]);
          acc[i][j] = fmaf(a[i].y, b[j].y, acc[i][j]);
          acc[i][j] = fmaf(a[i].z, b[j].z, acc[i][j]);
          acc[i][j] = fmaf(a[i].w, b[j].w, acc[i][j]);
        }
    }
  }
};

// Hopper's counterpart of WarpMma: each warpgroup (4 consecutive warps) owns 64 rows of the CTA's 128 columns and runs
// one m64n128 wgmma per 32-byte step of the k-tile, both operands read by the tensor cores straight from the stage
// (Cfg::offset's swizzled layout, K-major). Asynchronous: run() issues the k-tile's MMAs as one group and returns
// once the previous k-tile's group is done, so the stage of k-tile kt - 1 is free when run(kt) returns and the
// tensor cores always have a group queued; finish() waits for the last.
template <typename T, class Cfg>
struct WgmmaUnit {
  static_assert(Cfg::kWgmma && Cfg::kBN == 128 && Cfg::kBM == 64 * (Cfg::kThreads / 128),
                "a warpgroup computes 64 rows x 128 columns");
  static constexpr bool kAsync = true;
  float acc[64];  // the m64n128 fp32 fragment: 16 column blocks of 8, 4 values each

  __device__ __forceinline__ static int a_warp_offset(int) { return (threadIdx.x / 128) * 64 * Cfg::kBKBytes; }
  __device__ __forceinline__ static int b_warp_offset(int) { return 0; }

  __device__ void zero() {
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
  }

  __device__ __forceinline__ void run(const unsigned char* a_tile, const unsigned char* b_tile) {
    wgmma_fence();
    wgmma_fence_operands(acc);
#pragma unroll
    for (int step = 0; step < Cfg::kBKBytes / 32; ++step)  // 32 bytes of the reduction, inside the swizzled rows
      Wgmma64x128<T>::run(acc, wgmma_descriptor<Cfg::kBKBytes>(a_tile + step * 32),
                          wgmma_descriptor<Cfg::kBKBytes>(b_tile + step * 32));
    wgmma_commit();
    wgmma_fence_operands(acc);
    wgmma_wait<1>();
  }

  __device__ __forceinline__ void finish() {
    wgmma_wait<0>();
    wgmma_fence_operands(acc);
  }
};

// The compute unit of configuration Cfg for element type T: tensor cores (mma.sync or wgmma), or FFMA for kFfma
// configurations.
template <typename T, class Cfg>
using WarpCompute = std::conditional_t<Cfg::kFfma, FfmaWarp<Cfg>,
                                       std::conditional_t<Cfg::kWgmma, WgmmaUnit<T, Cfg>, WarpMma<T, Cfg>>>;

// The main loop: every k-tile of the reduction through a kStages-deep shared-memory pipeline. Vector operands
// are in flight kStages - 1 tiles ahead (cp.async; kStages - 2 under asynchronous wgmma, whose previous k-tile may
// still be reading its stage); scalar ones one tile ahead, in registers, stored to shared memory after the current
// tile's MMAs (into the stage every warp finished with before this iteration's barrier).
// Leaves the accumulators in `mma` and shared memory free for the epilogue.
// `ga`, `gb`: the operands' gathers (TapGather, or a pass's own with the same role); `first`: the first k-tile (a
// split of the reduction starts past 0).
template <typename T, class Cfg, bool kFlat, class GatherA, class GatherB, class LoaderA, class LoaderB, class Mmas>
__device__ __forceinline__ void main_loop(unsigned char* smem, const GatherA& ga, const GatherB& gb, LoaderA& la,
                                          LoaderB& lb, int k_tiles, Mmas& mma, KTile first = KTile()) {
  constexpr int kStages = Cfg::kStages, BK = Cfg::kBKBytes / sizeof(T);
  constexpr int kStage = stage_bytes<Cfg>(), kBOffset = Cfg::kBM * Cfg::kPitch;
  constexpr int kAhead = Mmas::kAsync ? kStages - 2 : kStages - 1;  // k-tiles loaded ahead of the one computed
  static_assert(kAhead >= 1, "the pipeline needs a stage to load into");
  const int warp = threadIdx.x / 32;
  const int wm = warp % Cfg::kWarpsM, wn = warp / Cfg::kWarpsM;
  const int a_off = Mmas::a_warp_offset(wm), b_off = kBOffset + Mmas::b_warp_offset(wn);
  KTile next_tile = first;  // the next k-tile to load

  // Prologue: the first kAhead k-tiles.
#pragma unroll
  for (int s = 0; s < kAhead; ++s) {
    if (s < k_tiles) {
      unsigned char* stage = smem + s * kStage;
      la.load(ga, next_tile, stage);
      lb.load(gb, next_tile, stage + kBOffset);
      la.store_registers(stage);
      lb.store_registers(stage + kBOffset);
      next_tile.advance<BK, kFlat>(ga);
    }
    cp_async_commit();
  }

  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kAhead - 1>();
    if constexpr (Mmas::kAsync) fence_proxy_async();  // this thread's writes of k-tile kt, seen by wgmma
    __syncthreads();  // k-tile kt is in shared memory; every warp is done with the stage it replaces
    const int next = kt + kAhead;
    unsigned char* next_stage = smem + (next % kStages) * kStage;
    if (next < k_tiles) {
      la.load(ga, next_tile, next_stage);
      lb.load(gb, next_tile, next_stage + kBOffset);
    }
    const unsigned char* stage = smem + (kt % kStages) * kStage;
    mma.run(stage + a_off, stage + b_off);
    if (next < k_tiles) {
      la.store_registers(next_stage);
      lb.store_registers(next_stage + kBOffset);
      next_tile.advance<BK, kFlat>(ga);
    }
    cp_async_commit();
  }
  cp_async_wait<0>();
  if constexpr (Mmas::kAsync) mma.finish();
  __syncthreads();
}

// Calls f(m, n, value) for a thread's mma.sync accumulators acc[kMTiles][kNTiles][4] (m16n8 blocks), with m, n
// their coordinates in the CTA's tile (kWarpsM x kWarpsN warps of kWarpM x kWarpN).
template <class Cfg, typename Acc, typename F>
__device__ __forceinline__ void for_each_mma_accumulator(const Acc& acc, F&& f) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp % Cfg::kWarpsM, wn = warp / Cfg::kWarpsM;
#pragma unroll
  for (int i = 0; i < Cfg::kMTiles; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int m = wm * Cfg::kWarpM + i * 16 + lane / 4 + (e / 2) * 8;
        const int n = wn * Cfg::kWarpN + j * 8 + (lane % 4) * 2 + e % 2;
        f(m, n, acc[i][j][e]);
      }
}

// Calls f(m, n, value) for every accumulator of this thread, with m, n its coordinates in the CTA's tile.
template <typename T, class Cfg, bool kATrans, bool kBTrans, typename F>
__device__ __forceinline__ void for_each_accumulator(const WarpMma<T, Cfg, kATrans, kBTrans>& mma, F&& f) {
  for_each_mma_accumulator<Cfg>(mma.acc, f);
}

template <class Cfg, typename F>
__device__ __forceinline__ void for_each_accumulator(const FfmaWarp<Cfg>& mma, F&& f) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp % Cfg::kWarpsM, wn = warp / Cfg::kWarpsM;
#pragma unroll
  for (int i = 0; i < FfmaWarp<Cfg>::kTM; ++i)
#pragma unroll
    for (int j = 0; j < FfmaWarp<Cfg>::kTN; ++j)
      f(wm * Cfg::kWarpM + lane / 4 + i * 8, wn * Cfg::kWarpN + lane % 4 + j * 4, mma.acc[i][j]);
}

template <typename T, class Cfg, typename F>
__device__ __forceinline__ void for_each_accumulator(const WgmmaUnit<T, Cfg>& mma, F&& f) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = (warp / 4) * 64 + (warp % 4) * 16 + lane / 4;  // warp w of a warpgroup holds its rows 16w ..
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) f(row + (e / 2) * 8, j * 8 + (lane % 4) * 2 + e % 2, mma.acc[j * 4 + e]);
}

// Stores `count` consecutive elements from shared memory (16-byte aligned) to global memory, in the widest
// pieces the destination's alignment allows.
template <typename T>
__device__ __forceinline__ void store_run(T* dst, const T* src, int count) {
  constexpr int kElems = 16 / sizeof(T);
  const uintptr_t addr = reinterpret_cast<uintptr_t>(dst);
  if (count == kElems && addr % 16 == 0) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  } else if (count == kElems && addr % 8 == 0) {
    const uint4 v = *reinterpret_cast<const uint4*>(src);
    reinterpret_cast<uint2*>(dst)[0] = make_uint2(v.x, v.y);
    reinterpret_cast<uint2*>(dst)[1] = make_uint2(v.z, v.w);
  } else {
    for (int e = 0; e < count; ++e) dst[e] = src[e];
  }
}

// The epilogue of every pass: D (plus bias[n] where given), rounded to T, staged in shared memory along the output's
// contiguous dimension, then stored in coalesced runs. The output is dense with `channels` channels of `pixels`
// pixels per image, NHWC (D's row m = image pixel m, contiguous channels) or NCHW (pixel m = (image, pixel in
// image), contiguous pixels); the CTA's tile is D[m0 .. m0 + kBM)[n0 .. n0 + kBN), its column n is channel
// channel_base + n0 + n, and only m < M, n0 + n < cols exist. `bias` points at the tile's column 0. Shared memory
// must be free (after main_loop).
template <typename T, class Cfg, bool kNHWC, class Compute>
__device__ __forceinline__ void store_tile(unsigned char* smem, const Compute& mma, T* out, const T* bias,
                                           int64_t m0, int n0, int64_t M, int cols, int64_t channels, int64_t pixels,
                                           int64_t channel_base) {
  constexpr int E = 16 / sizeof(T);
  T* tile = reinterpret_cast<T*>(smem);
  constexpr int kPitch = kNHWC ? Cfg::kBN + E : Cfg::kBM + E;
  for_each_accumulator(mma, [&](int m, int n, float v) {
    if (bias && n0 + n < cols) v += to_acc(bias[n]);
    tile[kNHWC ? m * kPitch + n : n * kPitch + m] = from_acc<T>(v);
  });
  __syncthreads();

  const int64_t c_base = channel_base + n0;  // output channel of the tile's column 0
  if (kNHWC) {  // pixel m starts at m * channels
    constexpr int kRuns = Cfg::kBN / E;
    for (int u = threadIdx.x; u < Cfg::kBM * kRuns; u += Cfg::kThreads) {
      const int row = u / kRuns, n = (u % kRuns) * E;
      const int64_t m = m0 + row;
      if (m >= M || n0 + n >= cols) continue;
      store_run(out + m * channels + c_base + n, tile + row * kPitch + n, min(E, cols - n0 - n));
    }
  } else {  // pixel m = (img, q) of channel c at img * channels * pixels + c * pixels + q
    constexpr int kRuns = Cfg::kBM / E;
    const int64_t img0 = m0 / pixels;  // the tile's first image: runs in it need no division
    for (int u = threadIdx.x; u < Cfg::kBN * kRuns; u += Cfg::kThreads) {
      const int n = u / kRuns, row = (u % kRuns) * E;
      const int64_t m = m0 + row;
      if (m >= M || n0 + n >= cols) continue;
      const int count = static_cast<int>(M - m < E ? M - m : E);
      int64_t img = img0, q = m - img0 * pixels;
      if (q >= pixels) img = m / pixels, q = m - img * pixels;
      for (int done = 0; done < count;) {  // a run of pixels may cross into the next image
        const int run = static_cast<int>(pixels - q < count - done ? pixels - q : count - done);
        store_run(out + img * channels * pixels + (c_base + n) * pixels + q, tile + n * kPitch + row + done, run);
        done += run;
        q += run;
        if (q == pixels) q = 0, ++img;
      }
    }
  }
}

}  // namespace igemm
}  // namespace conv2d_ext
