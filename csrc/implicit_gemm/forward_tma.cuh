// Forward on Hopper as a warp-specialized implicit GEMM fed by the copy engine (TMA), on wgmma (sm_90a).
//
// GEMM mapping, per group g (blockIdx.z), as forward.cuh: M = output pixels, N = K/groups output channels, the
// reduction = R*S taps x C/groups channels, walked tap by tap in 128-byte k-tiles of channels. A CTA's M tile is a
// box of output pixels, nt images x ht rows x wt columns (at most 128: tma_tile picks the box that wastes fewest
// rows), so that its activations for one tap (r, s) and one k-tile of channels are one box of the NHWC input
// tensor: columns q*sw - pw + s*dw, rows p*sh - ph + r*dh (the copy engine's element strides do the convolution
// stride), and padding is the copy engine's zero fill of coordinates outside the tensor. The filter k-tile is one
// box of the KRSC filters. Both land in shared memory in the 128-byte swizzle that wgmma reads.
//
// Warp roles: warp 8 (one thread of it) issues the copies of every k-tile into a kStages-deep ring of stages (halo
// and NCHW tiles: two rings, below),
// each stage completing on its `full` mbarrier; two consumer warpgroups (warps 0-7) each own 64 rows of the tile
// and run one m64n128 wgmma per 32 bytes of the k-tile, releasing a stage (its `empty` mbarrier) once the MMAs
// that read it are done. No address math in the consumers' loop, and no thread waits on its own loads. Two CTAs
// per SM, so one's epilogue overlaps the other's main loop.
//
// Halo boxes (kHalo, tiles of one output row at stride 1 along it: use_halo): the S taps of a filter row share one
// box of wt + (S - 1) dil_w pixels, tap s starting its A descriptor s dil_w rows in (a separate ring of activation
// stages, one per filter row and k-tile, beside the ring of filter stages, one per tap): a third of the activation
// traffic for 3x3.
//
// Epilogue: bias, rounding to T, then either the copy engine (channels-last outputs it can step: the tile staged
// as 128-byte boxes of channels, one thread stores them) or the tile staged along the output's contiguous dimension
// and stored by the threads in coalesced runs, NHWC (16-byte runs of channels) or NCHW (consecutive threads on
// consecutive pixels of a row, two pixels a thread where the output's alignment allows). The output is written in
// the problem's own layout.
//
// NCHW inputs: NCHW boxes cannot feed wgmma's shared-memory A operand directly: a box's innermost start coordinate
// must be a multiple of 16 bytes (measured: an H200 probe traps on any other start), and with pixels innermost each
// tap shifts it by one pixel. With halo tiles (nchw_fused) kFromNchw loads instead one raw box per filter row and
// k-tile from the aligned pixel at or before the tile's first input pixel (channels x pixels, unswizzled), `shift`
// pixels before it. 16-bit: the consumers transpose the box into a K-major halo stage (ldmatrix.trans + stmatrix)
// and the taps start their descriptors shift + s dil_w rows in. TF32: the consumers load their A fragments from the
// box into registers (wgmma with A in registers; 32-bit elements, no transposition needed). Other NCHW inputs are
// copied to NHWC first (to_nhwc).
#pragma once

#include <algorithm>
#include <cstdlib>

#include "common/tma.cuh"
#include "implicit_gemm/forward.cuh"
#include "implicit_gemm/tma_pipeline.cuh"

namespace conv2d_ext {
namespace igemm {

// A CTA's box of output pixels: nt images x ht rows x wt columns, and how many boxes tile each dimension.
struct TmaTile {
  int wt = 1, ht = 1, nt = 1;
  int64_t q_tiles = 0, p_tiles = 0, n_tiles = 0;
  int64_t count() const { return q_tiles * p_tiles * n_tiles; }
};

// The box of at most `rows` pixels with rows of wt pixels: as many rows as fit (and the copy engine's 256 elements,
// counting the stride's skipped ones, allow), then as many images.
inline TmaTile tma_box(const ConvParams& p, int64_t rows, int64_t wt) {
  const int64_t ht = std::min<int64_t>({p.P, rows / wt, 256 / p.stride_h});
  const int64_t nt = std::min<int64_t>({p.N, rows / (wt * ht), 256});
  return TmaTile{int(wt), int(ht), int(nt), (p.Q + wt - 1) / wt, (p.P + ht - 1) / ht, (p.N + nt - 1) / nt};
}

// The box of at most `rows` pixels that tiles N x P x Q with the fewest boxes (ties: the widest rows), each box
// dimension within the copy engine's 256 elements counting the stride's skipped ones.
inline TmaTile tma_tile(const ConvParams& p, int rows) {
  TmaTile best;
  if (p.N <= 0 || p.P <= 0 || p.Q <= 0) return best;  // an empty output: no tiles (and no division by zero)
  const int64_t max_wt = std::min<int64_t>({p.Q, rows, 256 / p.stride_w});
  for (int64_t wt = max_wt; wt >= 1; --wt) {
    const TmaTile t = tma_box(p, rows, wt);
    if (best.count() == 0 || t.count() < best.count()) best = t;
  }
  return best;
}

// What the kernel needs besides its two tensor maps.
struct TmaConv {
  int wt, ht, nt, q_tiles, p_tiles;        // the M tile's box of pixels, and boxes per row and column
  int N, P, Q;
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int R, S, c_chunks, k_tiles;              // reduction: R*S taps x c_chunks k-tiles of channels
  bool tma_store;                           // NHWC output through the copy engine (the `out` map)
  bool nchw_pairs;                          // NCHW output: pixel pairs aligned (nchw_pairs_fit)
  int Cg, Kg;
  uint32_t tx_bytes;                        // bytes of a stage: both boxes; kHalo / kFromNchw: the activation box
  void* y;
  const void* bias;
  int64_t ys[4];                            // output strides (n, k, p, q)
};

constexpr int kTmaRowBytes = 128;  // bytes of a k-tile row
constexpr int kTmaThreads = 288;   // two consumer warpgroups and one producer warp

// A configuration: each consumer warpgroup owns MI blocks of 64 rows (a tile of 128 MI x BN output channels, BN 64
// or 128: m64nBN wgmma), Stages stages.
template <int MI, int BN, int Stages>
struct TmaConfig {
  static_assert(BN == 64 || BN == 128, "m64n64 or m64n128 MMAs");
  static constexpr int kMI = MI, kBN = BN, kStages = Stages, kBM = 128 * MI;
  static constexpr int kABytes = kBM * kTmaRowBytes, kStageBytes = kABytes + BN * kTmaRowBytes;
  static constexpr int kSmem = Stages * kStageBytes + 2 * Stages * 8 + 1024 /* alignment */;
  static constexpr int kMinBlocks = 2 * kSmem <= 227 * 1024 ? 2 : 1;
  // kHalo: two rings, activations (a halo box of up to kBM + 8 pixels a stage, one per filter row and k-tile of
  // channels) and filters (one BN x k-tile box a stage, one per tap), two CTAs per SM as above.
  static constexpr int kHaloRows = kBM + 8, kHaloAStages = 2, kHaloBStages = Stages + 1;
  static constexpr int kHaloABytes = kHaloRows * kTmaRowBytes, kHaloBBytes = BN * kTmaRowBytes;
  static constexpr int kHaloBRing = (kHaloBStages * kHaloBBytes + 2 * kHaloBStages * 8 + 1023) / 1024 * 1024;
  static constexpr int kHaloSmem = kHaloBRing + kHaloAStages * kHaloABytes + 2 * kHaloAStages * 8 + 1024;
  // kFromNchw: per filter row and k-tile, a raw box of the NCHW input (kRawPx pixels of a k-tile of channels, 64
  // 16-bit or 32 fp32, its channel rows kRawPx elements apart: conflict-free ldmatrix, and TF32 fragment loads with
  // rows 24 banks apart), two stages; 16-bit: transposed by the consumers into one K-major halo stage of kNchwRows
  // pixels. The filters as kHalo's, Stages stages.
  static constexpr int kRawPx = kBM + 24, kRawBytes = 64 * kRawPx * 2, kNchwRows = kBM + 16;
  static constexpr int kNchwBRing = (Stages * kHaloBBytes + 2 * Stages * 8 + 1023) / 1024 * 1024;
  static constexpr int kNchwRawRing = (2 * kRawBytes + 2 * 2 * 8 + 1023) / 1024 * 1024;
  static constexpr int kNchwSmem = kNchwBRing + kNchwRawRing + kNchwRows * kTmaRowBytes + 1024;
  // The halo and NCHW layouts' conditions (checked where a kernel uses them: the deep rings below run neither).
  static constexpr bool kHaloFits = kHaloSmem <= 113 * 1024;  // two CTAs per SM with halo boxes
  static constexpr bool kNchwFits = kBN * (kBM + 8) * 2 <= Stages * kHaloBBytes &&  // 16-bit: the NCHW epilogue's
                                    kBN * (kBM + 4) * 4 <= kNchwBRing + 2 * kRawBytes &&  // stage stays below the
                                    kNchwSmem <= 113 * 1024;  // filter (TF32: raw) ring's barriers; two CTAs per SM
};
// The configurations built (H200 sweep, benchmarks/NOTES.md): 128-row tiles, two CTAs per SM, so that one CTA's
// epilogue runs under the other's MMAs. 256-row tiles (MI = 2, one CTA per SM, 4 stages) were slower on every large
// case (seed bf16 NHWC 1.76 against 1.44 ms) and within noise elsewhere, so they are not instantiated.
using TmaConfig128x128 = TmaConfig<1, 128, 3>;  // 3 stages of 32 KB
using TmaConfig128x64 = TmaConfig<1, 64, 4>;    // 4 stages of 24 KB: 64-channel layers (no half-empty tiles), small grids

// Deep rings: 128x128 tiles in 6 stages (192 KB, one CTA per SM) for the box tiles (not halo, not NCHW in place)
// of grids that have at most one CTA per SM anyway, where more copies in flight hide more of the L2's latency.
// H100, session 35 (graph ms, 3 -> 6 stages): r50_3x3_256 forward bf16 NCHW 0.0304 -> 0.0287, NHWC 0.0171 ->
// 0.0158, TF32 NHWC 0.0310 -> 0.0285; backward-data bf16 0.0305 -> 0.0287; r50_3x3_512 on 128x128 (64 CTAs) NHWC
// bf16 0.0267 -> 0.0245, TF32 0.0486 -> 0.0448. 128x64 tiles in 8 stages were slower (r50_3x3_512 bf16 NHWC 0.0279
// -> 0.0309, batch1_3x3 0.0149 -> 0.0165): they keep 4. CONV2D_EXT_TMA_STAGES=0: the configured stages; =1: deep
// wherever the tiles are 128x128 boxes (tests). Read at launch: the plan and the workspace do not depend on it.
template <class Cfg>
using TmaDeepConfig = TmaConfig<Cfg::kMI, Cfg::kBN, 192 * 1024 / Cfg::kStageBytes>;
inline bool tma_deep_ring(int64_t ctas) {
  return deep_ring(std::getenv("CONV2D_EXT_TMA_STAGES"), ctas <= num_sms());
}

// The kernels' body (forward_tma_kernel, forward_tma_one_cta_kernel).
template <typename T, class Cfg, bool kOutNHWC, bool kHalo, bool kFromNchw>
__device__ __forceinline__ void forward_tma_body(const CUtensorMap& act, const CUtensorMap& filt,
                                                 const CUtensorMap& out, const TmaConv& c) {
  static_assert(!kHalo || Cfg::kMI == 1, "halo boxes: 64 rows per warpgroup");
  static_assert(!kFromNchw || (kHalo && !kOutNHWC), "NCHW input: halo tiles, NCHW output");
  static_assert(!kHalo || Cfg::kHaloFits, "two CTAs per SM with halo boxes");
  static_assert(!kFromNchw || Cfg::kNchwFits, "the NCHW ring and epilogue stage in two CTAs' shared memory");
  constexpr int BK = kTmaRowBytes / sizeof(T);  // channels per k-tile
  constexpr int kAlignPx = 16 / sizeof(T);       // pixels per 16 bytes: kFromNchw's raw boxes start at multiples
  constexpr int kStages = Cfg::kStages, kMI = Cfg::kMI, kTmaBM = Cfg::kBM, kTmaStageBytes = Cfg::kStageBytes;
  constexpr int kABytes = Cfg::kABytes, kTmaBN = Cfg::kBN, kAcc = kTmaBN / 2;
  using Mma = std::conditional_t<kTmaBN == 128, Wgmma64x128<T>, Wgmma64x64<T>>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = align_shared<1024>(smem_raw);
  const TmaRing<kStages, kTmaStageBytes> ring(smem);
  // kHalo: the filter ring at smem, the activation ring after it.
  const TmaRing<Cfg::kHaloBStages, Cfg::kHaloBBytes> b_ring(smem);
  const TmaRing<Cfg::kHaloAStages, Cfg::kHaloABytes> a_ring(smem + Cfg::kHaloBRing);
  // kFromNchw: the filter ring at smem, the raw NCHW ring after it, then the transposed stage.
  const TmaRing<kStages, Cfg::kHaloBBytes> nb_ring(smem);
  const TmaRing<2, Cfg::kRawBytes> raw_ring(smem + Cfg::kNchwBRing);
  unsigned char* const a_nchw = smem + Cfg::kNchwBRing + Cfg::kNchwRawRing;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = blockIdx.z, k0 = blockIdx.y * kTmaBN;
  int64_t tile = blockIdx.x;
  const int q0 = static_cast<int>(tile % c.q_tiles) * c.wt;
  tile /= c.q_tiles;
  const int p0 = static_cast<int>(tile % c.p_tiles) * c.ht;
  const int n0 = static_cast<int>(tile / c.p_tiles) * c.nt;

  if (threadIdx.x == 0) {
    if constexpr (kFromNchw) raw_ring.init(2), nb_ring.init(2);
    else if constexpr (kHalo) a_ring.init(2), b_ring.init(2);
    else ring.init(2);
  }
  __syncthreads();

  if (warp == 8) {  // producer
    if (lane == 0) {
      tma_prefetch_descriptor(&act);
      tma_prefetch_descriptor(&filt);
      const int w_base = q0 * c.stride_w - c.pad_w, h_base = p0 * c.stride_h - c.pad_h;
      // kHalo / kFromNchw: per filter row and k-tile one activation box (into act_ring, at act_at(r, cc)), then each
      // tap's filters (into filt_ring).
      auto produce_rows = [&](const auto& act_ring, const auto& filt_ring, auto act_at) {
        RingCursor a_at, b_at;
        uint64_t* bar;
        for (int r = 0; r < c.R; ++r)
          for (int cc = 0; cc < c.c_chunks; ++cc) {
            unsigned char* a = act_ring.acquire(a_at, c.tx_bytes, bar);
            const int4 at = act_at(r, cc);
            tma_load_4d(a, &act, bar, at.x, at.y, at.z, at.w);
            for (int tap = 0; tap < c.S; ++tap) {
              unsigned char* b = filt_ring.acquire(b_at, Cfg::kHaloBBytes, bar);
              tma_load_4d(b, &filt, bar, cc * BK, tap, r, g * c.Kg + k0);
            }
          }
      };
      if constexpr (kFromNchw) {  // the raw box (W, H, C, N) from the 16-byte aligned pixel at or before w_base
        produce_rows(raw_ring, nb_ring, [&](int r, int cc) {
          return make_int4(w_base & ~(kAlignPx - 1), h_base + r * c.dil_h, g * c.Cg + cc * BK, n0);
        });
      } else if constexpr (kHalo) {  // the halo box (C, W, H, N)
        produce_rows(a_ring, b_ring, [&](int r, int cc) {
          return make_int4(g * c.Cg + cc * BK, w_base, h_base + r * c.dil_h, n0);
        });
      } else {
        int cc = 0, s = 0, r = 0;
        ring.produce(c.k_tiles, c.tx_bytes, [&](int, unsigned char* a, uint64_t* bar) {
          tma_load_4d(a, &act, bar, g * c.Cg + cc * BK, w_base + s * c.dil_w, h_base + r * c.dil_h, n0);
          tma_load_4d(a + kABytes, &filt, bar, cc * BK, s, r, g * c.Kg + k0);
          if (++cc == c.c_chunks) {
            cc = 0;
            if (++s == c.S) s = 0, ++r;
          }
        });
      }
    }
    return;
  }

  // Consumers: warpgroup wg owns rows 64 kMI wg .. 64 kMI (wg + 1) - 1 of the tile.
  const int wg = warp / 4;
  float acc[kMI][kAcc];
#pragma unroll
  for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
    for (int i = 0; i < kAcc; ++i) acc[mi][i] = 0.f;
  // One tap's MMAs: this warpgroup's 64 rows of A from a_tap (K-major, 128-byte rows), the filters' k-tile b; returns
  // once the MMAs issued before them are done. Any row of a swizzle atom may start the operand: the swizzle follows
  // the address bits (the descriptor's base-offset field stays 0; setting it to the row in the atom gave wrong
  // products, H200).
  auto tap_mmas = [&](const unsigned char* a_tap, const unsigned char* b) {
    wgmma_fence();
    wgmma_fence_operands(acc[0]);
#pragma unroll
    for (int step = 0; step < kTmaRowBytes / 32; ++step)
      Mma::run(acc[0], wgmma_descriptor<kTmaRowBytes>(a_tap + step * 32), wgmma_descriptor<kTmaRowBytes>(b + step * 32));
    wgmma_commit();
    wgmma_fence_operands(acc[0]);
    wgmma_wait<1>();
  };
  const int shift = (q0 - c.pad_w) - ((q0 - c.pad_w) & ~(kAlignPx - 1));  // kFromNchw: the tile's first pixel in a raw box
  if constexpr (kFromNchw && sizeof(T) == 4) {  // TF32: A fragments from the raw box into registers, k8 step by step
    // The thread's fragment element (row g (+ 8), k t (+ 4)) of k8 step j: channel 8 j + t (+ 4), pixel px (+ 8) of
    // the box (WgmmaTf32RS's layout); a warp's 32 loads fall in distinct banks (channel rows 24 banks apart). One
    // commit group per step, two register buffers (steps alternate; BK / 8 is even, so step j of every tap uses
    // buffer j % 2): a step's loads wait only for the MMA two steps back (128x64). At 128x128 ptxas still serialises
    // the MMAs (C7512: the pipelined loop needs 98 registers, two CTAs of 9 warps leave 96; measured anyway faster
    // than the NHWC copy, benchmarks/NOTES.md); whole taps double-buffered need 32 registers (C7511).
    static_assert(BK / 8 % 2 == 0, "steps alternate buffers across taps");
    const int px = shift + wg * 64 + (warp % 4) * 16 + lane / 4;
    const uint32_t frag0 = uint32_t(((lane % 4) * Cfg::kRawPx + px) * 4);
    uint32_t a[2][4];
    // The rings' positions follow from the tap count k and the box count (no cursors to keep).
    const int taps = c.R * c.c_chunks * c.S;
    uint32_t raw = 0;
    for (int k = 0, box = 0, tap = 0; k < taps; ++k) {
      if (tap == 0) raw = smem_addr(raw_ring.landed(RingCursor{box % 2, box, uint32_t(box / 2) % 2})) + frag0;
      const unsigned char* b = nb_ring.landed(RingCursor{k % kStages, k, uint32_t(k / kStages) % 2});
      const uint32_t at = raw + uint32_t(tap * c.dil_w * 4);
#pragma unroll
      for (int j = 0; j < BK / 8; ++j) {
        uint32_t(&f)[4] = a[j % 2];
        tf32_box_fragment<Cfg::kRawPx>(f, at, j);
        tf32_rs_step<kTmaBN>(acc[0], f, b + j * 32);  // the step before is done (j = 0: the previous tap's)
        if (j == 0) {  // the previous tap's filter stage (and raw box) are free; no branch (mbarrier_arrive_if)
          nb_ring.release_if((k + kStages - 1) % kStages, k > 0);
          raw_ring.release_if((box + 1) % 2, k > 0 && tap == 0);
        }
      }
      if (++tap == c.S) tap = 0, ++box;
    }
    wgmma_wait<0>();
    wgmma_fence_operands(acc[0]);
  } else if constexpr (kFromNchw) {  // 16-bit: per filter row and k-tile, transpose the raw box, then the S taps on it
    RingCursor raw_at, b_at;
    for (int r = 0; r < c.R; ++r)
      for (int cc = 0; cc < c.c_chunks; ++cc) {
        // 8 x 8 blocks (8 channels x 16 bytes of pixels) in fours: channel rows in, pixel rows out, the pixel rows
        // at their swizzled 16-byte chunk of channels.
        const unsigned char* raw = raw_ring.landed(raw_at);
        for (int group = warp; group < Cfg::kNchwRows / 4; group += 8) {
          const int block = lane / 8, row = lane % 8, chunk = 4 * (group % 2) + block, px = 8 * (group / 2) + row;
          uint32_t v[4];
          ldmatrix_x4_trans(v, raw + (8 * chunk + row) * (2 * Cfg::kRawPx) + (group / 2) * 16);
          stmatrix_x4(smem_addr(a_nchw + px * kTmaRowBytes + ((chunk ^ (px % 8)) * 16)), v);
        }
        fence_proxy_async();    // the transposed stage, to the MMAs' async proxy
        named_barrier(1, 256);  // transposed, and the raw box read by every warp
        raw_ring.release(raw_at.stage);
        raw_at.advance<2>();
        const unsigned char* a = a_nchw + (wg * 64 + shift) * kTmaRowBytes;
        int b_done = -1;
        for (int tap = 0; tap < c.S; ++tap) {
          tap_mmas(a + tap * c.dil_w * kTmaRowBytes, nb_ring.landed(b_at));
          if (b_done >= 0) nb_ring.release(b_done);
          b_done = b_at.stage;
          b_at.advance<kStages>();
        }
        wgmma_wait<0>();
        wgmma_fence_operands(acc[0]);
        nb_ring.release(b_done);
        named_barrier(1, 256);  // both warpgroups' MMAs are done with the transposed stage
      }
  } else if constexpr (kHalo) {  // tap s of a filter row reads the halo box from its pixel s dil_w on
    RingCursor a_at, b_at;
    int b_done = -1, a_done = -1;  // stages whose MMAs complete at the next wgmma_wait<1>
    for (int r = 0; r < c.R; ++r)
      for (int cc = 0; cc < c.c_chunks; ++cc) {
        const unsigned char* a = a_ring.landed(a_at) + wg * 64 * kTmaRowBytes;
        for (int tap = 0; tap < c.S; ++tap) {
          tap_mmas(a + tap * c.dil_w * kTmaRowBytes, b_ring.landed(b_at));  // the previous tap's MMAs are done
          if (b_done >= 0) b_ring.release(b_done);
          if (a_done >= 0) a_ring.release(a_done), a_done = -1;
          b_done = b_at.stage;
          b_at.advance<Cfg::kHaloBStages>();
          if (tap == c.S - 1) a_done = a_at.stage;
        }
        a_at.advance<Cfg::kHaloAStages>();
      }
    wgmma_wait<0>();
    wgmma_fence_operands(acc[0]);
  } else {
    ring.consume(
        c.k_tiles,
        [&](const unsigned char* stage) {
          const unsigned char* a = stage + wg * kMI * 64 * kTmaRowBytes;
          const unsigned char* b = stage + kABytes;
#pragma unroll
          for (int step = 0; step < kTmaRowBytes / 32; ++step)
#pragma unroll
            for (int mi = 0; mi < kMI; ++mi)  // a step: 32 bytes along each row
              Mma::run(acc[mi], wgmma_descriptor<kTmaRowBytes>(a + mi * 64 * kTmaRowBytes + step * 32),
                       wgmma_descriptor<kTmaRowBytes>(b + step * 32));
        },
        [&] {
#pragma unroll
          for (int mi = 0; mi < kMI; ++mi) wgmma_fence_operands(acc[mi]);
        });
  }
  named_barrier(1, 256);  // both warpgroups' MMAs are done reading shared memory

  const int cols = min(kTmaBN, c.Kg - k0);  // columns of the tile that are output channels of group g
  const T* bias = c.bias ? static_cast<const T*>(c.bias) + int64_t(g) * c.Kg + k0 : nullptr;
  // Accumulator i of block mi: tile row and column.
  auto row_of = [&](int mi, int i) { return (wg * kMI + mi) * 64 + (warp % 4) * 16 + lane / 4 + (i % 4 / 2) * 8; };
  auto col_of = [&](int i) { return (i / 4) * 8 + (lane % 4) * 2 + i % 2; };
  auto value = [&](float v, int n) { return from_acc<T>(bias && n < cols ? v + to_acc(bias[n]) : v); };

  if (kOutNHWC && c.tma_store) {
    // Copy-engine store: the tile staged as the output map's boxes (kBoxes boxes of 128 bytes of channels, each one
    // 128-byte row per pixel of the box, 128-byte swizzle: row m of the tile is pixel m of the box, and a warp's
    // 32-bit stores of a column pair fall in distinct banks), then one thread stores them; the copy engine leaves
    // out what lies outside the output (rows past the box, channels past K).
    constexpr int kBoxCh = kTmaRowBytes / sizeof(T), kBoxes = kTmaBN / kBoxCh;
    struct alignas(2 * sizeof(T)) Pair { T v[2]; };
#pragma unroll
    for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
      for (int i = 0; i < kAcc; i += 2) {
        const int m = row_of(mi, i), n = col_of(i), byte = (n % kBoxCh) * int(sizeof(T));
        unsigned char* dst = smem + (n / kBoxCh) * kTmaBM * kTmaRowBytes + m * kTmaRowBytes +
                             ((byte / 16) ^ (m % 8)) * 16 + byte % 16;
        *reinterpret_cast<Pair*>(dst) = Pair{{value(acc[mi][i], n), value(acc[mi][i + 1], n + 1)}};
      }
    fence_proxy_async_shared();
    named_barrier(1, 256);
    if (threadIdx.x == 0) {
#pragma unroll
      for (int b = 0; b < kBoxes; ++b)
        if (b * kBoxCh < cols)
          tma_store_4d(smem + b * kTmaBM * kTmaRowBytes, &out, g * c.Kg + k0 + b * kBoxCh, q0, p0, n0);
      bulk_commit();
      bulk_wait<0, true>();  // the boxes are read before the CTA (and its shared memory) goes
    }
    return;
  }

  // Epilogue: stage the tile (bias added, rounded) along the output's contiguous dimension.
  constexpr int E = 16 / sizeof(T);
  constexpr int kPitch = kOutNHWC ? kTmaBN + E : kTmaBM + E;
  constexpr int kFilterBarriersAt = (kFromNchw ? kStages : Cfg::kHaloBStages) * Cfg::kHaloBBytes;
  if constexpr (kHalo && (kOutNHWC ? kTmaBM : kTmaBN) * kPitch * int(sizeof(T)) > kFilterBarriersAt) {
    // The stage covers the filter ring's barriers (fp32, 128 channels): invalidate them first (no wait is left).
    if (threadIdx.x == 0) {
      if constexpr (kFromNchw) nb_ring.invalidate();
      else b_ring.invalidate();
    }
    named_barrier(1, 256);
  }
  T* staged = reinterpret_cast<T*>(smem);
  if constexpr (!kOutNHWC && sizeof(T) == 2) {
    // Transposed by stmatrix.trans, four 8 x 8 blocks at a time (columns 8 b .. 8 b + 15 of the warp's 16 rows):
    // accumulators 4 b .. 4 b + 7 are blocks (b, rows 0-7), (b, rows 8-15), (b + 1, 0-7), (b + 1, 8-15); lane l
    // addresses column l % 8 of block l / 8. Channel rows kPitch elements (68 banks) apart: conflict-free.
    struct alignas(4) Pair { T v[2]; };
    const int mat = lane / 8;
#pragma unroll
    for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
      for (int b = 0; b < kTmaBN / 8; b += 2) {
        uint32_t r[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int i = 4 * b + 2 * j;
          const Pair pr{{value(acc[mi][i], col_of(i)), value(acc[mi][i + 1], col_of(i + 1))}};
          r[j] = *reinterpret_cast<const uint32_t*>(&pr);
        }
        const int n = 8 * (b + mat / 2) + lane % 8, m = (wg * kMI + mi) * 64 + (warp % 4) * 16 + 8 * (mat % 2);
        stmatrix_x4_trans(smem_addr(staged + n * kPitch + m), r);
      }
  } else {
#pragma unroll
    for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
      for (int i = 0; i < kAcc; ++i) {
        const int m = row_of(mi, i), n = col_of(i);
        staged[kOutNHWC ? m * kPitch + n : n * kPitch + m] = value(acc[mi][i], n);
      }
  }
  named_barrier(1, 256);

  T* y = static_cast<T*>(c.y);
  const int64_t channel0 = int64_t(g) * c.Kg + k0;
  if constexpr (kOutNHWC) {  // 16-byte runs of a pixel's channels; consecutive threads on consecutive runs
    constexpr int kRuns = kTmaBN / E;
    for (int u = threadIdx.x; u < kTmaBM * kRuns; u += 256) {
      const int m = u / kRuns, n = (u % kRuns) * E;
      const int w = m % c.wt, rest = m / c.wt, h = rest % c.ht, i = rest / c.ht;
      const int q = q0 + w, pp = p0 + h, img = n0 + i;
      if (n >= cols || i >= c.nt || img >= c.N || pp >= c.P || q >= c.Q) continue;
      store_run(y + img * c.ys[0] + pp * c.ys[2] + q * c.ys[3] + channel0 + n, staged + m * kPitch + n,
                min(E, cols - n));
    }
  } else if (c.nchw_pairs) {  // two pixels per thread (one 2-element store), consecutive threads on consecutive pairs
    constexpr int kPairs = kTmaBM / 2;  // 256 / kPairs threads per pair, on every (256 / kPairs)-th channel
    struct alignas(2 * sizeof(T)) Pair { T v[2]; };
    const int m = 2 * (threadIdx.x % kPairs);  // w even: both pixels in the tile's row (wt even)
    const int w = m % c.wt, rest = m / c.wt, h = rest % c.ht, i = rest / c.ht;
    const int q = q0 + w, pp = p0 + h, img = n0 + i;
    if (i < c.nt && img < c.N && pp < c.P && q < c.Q) {
      T* dst = y + img * c.ys[0] + pp * c.ys[2] + q * c.ys[3] + channel0 * c.ys[1];
      const bool both = q + 1 < c.Q;
      for (int n = threadIdx.x / kPairs; n < cols; n += 256 / kPairs) {
        const Pair v = *reinterpret_cast<const Pair*>(staged + n * kPitch + m);
        if (both) *reinterpret_cast<Pair*>(dst + n * c.ys[1]) = v;
        else dst[n * c.ys[1]] = v.v[0];
      }
    }
  } else {  // one pixel per thread, consecutive threads on consecutive pixels of a row
    static_assert(kTmaBM <= 256, "a row per consumer thread");
    const int m = threadIdx.x % kTmaBM;  // 256 / kTmaBM threads per row, on every (256 / kTmaBM)-th channel
    const int w = m % c.wt, rest = m / c.wt, h = rest % c.ht, i = rest / c.ht;
    const int q = q0 + w, pp = p0 + h, img = n0 + i;
    if (i < c.nt && img < c.N && pp < c.P && q < c.Q) {
      T* dst = y + img * c.ys[0] + pp * c.ys[2] + q * c.ys[3] + channel0 * c.ys[1];
      for (int n = threadIdx.x / kTmaBM; n < cols; n += 256 / kTmaBM) dst[n * c.ys[1]] = staged[n * kPitch + m];
    }
  }
}

template <typename T, class Cfg, bool kOutNHWC, bool kHalo = false, bool kFromNchw = false>
__global__ void __launch_bounds__(kTmaThreads, Cfg::kMinBlocks)
    forward_tma_kernel(const __grid_constant__ CUtensorMap act, const __grid_constant__ CUtensorMap filt,
                       const __grid_constant__ CUtensorMap out, const TmaConv c) {
  forward_tma_body<T, Cfg, kOutNHWC, kHalo, kFromNchw>(act, filt, out, c);
}

// The TF32 NCHW-in-place kernel (register-A MMAs) at one CTA per SM: at two, ptxas caps the 128x128 kernel at 96
// registers (9 warps a CTA: 5 on some sub-partition) and serialises its MMAs (C7512: the pipelined loop needs 98);
// one CTA keeps them in flight but loses the other CTA's overlap of its epilogue. (A producer warpgroup handing its
// registers to the consumers by setmaxnreg does not help: ptxas allocates the whole kernel within the launch cap,
// 80 for two CTAs of 384 threads, and fails.) EXPERIMENTAL, never run: CONV2D_EXT_TMA_TF32_ONE_CTA=1 (launch_tma).
template <typename T, class Cfg>
__global__ void __launch_bounds__(kTmaThreads, 1)
    forward_tma_one_cta_kernel(const __grid_constant__ CUtensorMap act, const __grid_constant__ CUtensorMap filt,
                               const __grid_constant__ CUtensorMap out, const TmaConv c) {
  forward_tma_body<T, Cfg, false, true, true>(act, filt, out, c);
}

template <typename T> constexpr CUtensorMapDataType tma_dtype() {
  return sizeof(T) == 4 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32
                        : std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
}

// Can the copy engine read a tensor at `base` with element strides `strides` (innermost dimension's stride 1, the
// others multiples of 16 bytes) and 16-byte aligned base?
inline bool tma_strides_fit(int64_t elem, const void* base, std::initializer_list<int64_t> strides) {
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) return false;
  for (int64_t s : strides)
    if ((s * elem) % 16 != 0 || s * elem >= (int64_t(1) << 40)) return false;
  return true;
}
template <typename T>
bool tma_strides_fit(const void* base, std::initializer_list<int64_t> strides) {
  return tma_strides_fit(int64_t(sizeof(T)), base, strides);
}

// Whether the kernel stores its tiles through the copy engine (TmaConv::tma_store): channels-last outputs whose
// strides it can step (16-byte aligned, dense channels), tiles of channels that stay inside their group (one group,
// or channels per group in whole tiles). CONV2D_EXT_TMA_STORE=0 keeps the threads' stores (timing).
template <typename T, class Cfg>
bool tma_store_fits(const ConvParams& p) {
  const char* env = std::getenv("CONV2D_EXT_TMA_STORE");
  return !(env != nullptr && env[0] == '0') && p.channels_last && p.y_stride[1] == 1 &&
         tma_strides_fit<T>(p.y, {p.y_stride[0], p.y_stride[2], p.y_stride[3]}) &&
         (p.groups == 1 || p.K_per_group() % Cfg::kBN == 0);
}

// Whether the NCHW epilogue stores pixel pairs (TmaConv::nchw_pairs): tiles of even width (a pair never straddles
// rows), pixels contiguous, every other output stride and the base aligned to a pair.
template <typename T>
bool nchw_pairs_fit(const ConvParams& p, const TmaTile& t) {
  return t.wt % 2 == 0 && p.y_stride[3] == 1 && p.y_stride[0] % 2 == 0 && p.y_stride[1] % 2 == 0 &&
         p.y_stride[2] % 2 == 0 && reinterpret_cast<uintptr_t>(p.y) % (2 * sizeof(T)) == 0;
}

// The forward's tiles: tma_tile's, but for NCHW outputs boxes of whole output rows (wt = Q) wherever they take at
// most 4/3 as many tiles: the NCHW epilogue's warps store along the box's pixels, so a narrow box scatters each
// warp's store over a sector per lane (tma_tile's pick for r50_3x3_512, 14 boxes of 1 x 7 x 18 against 16 of 7 x 7 x
// 2: 25 sectors a store request, ~12 us of its 60 us forward; ncu, session 43). 4/3: 7 x 7 maps take 2 images a box
// (98 rows) against 1 x 7 x 18 (126) at any batch; one-wave grids lose nothing to the extra boxes, and many-wave
// grids of narrow boxes pay the scatter on every tile. The rows are then made 16-byte multiples of the output where
// that keeps the count (the fewest rows at least P / p_tiles): r50_3x3_256, 14 x 14 maps, 9 -> 8 rows, H100 session
// 44 (graph ms, TF32 NCHW) forward 0.0428 -> 0.0384, backward-data 0.0426 -> 0.0384; bf16 0.0260 / 0.0259 both ways.
// (Session 43's bulk-copy NCHW epilogues, per-channel runs on these tiles and whole-image blocks, were slower on
// every shape timed and are gone: r50_3x3_64 TF32 0.0742 -> 0.0806, r50_3x3_512 blocks 0.0540 -> 0.0560.)
inline TmaTile forward_tile(const ConvParams& p, int rows) {
  TmaTile t = tma_tile(p, rows);
  if (p.channels_last || t.count() == 0) return t;
  if (t.wt < p.Q && p.Q <= rows && p.Q * p.stride_w <= 256) {
    const TmaTile w = tma_box(p, rows, p.Q);
    if (w.count() * 3 <= t.count() * 4) t = w;
  }
  const int64_t e = p.element_bytes();
  if (t.wt != p.Q || t.ht >= p.P || p.P * p.Q * e % 16 != 0) return t;
  for (int64_t h = t.ht; h >= (p.P + t.p_tiles - 1) / t.p_tiles; --h)
    if (h * p.Q * e % 16 == 0) {
      t.ht = int(h);
      break;
    }
  return t;
}

// Runs the kernel on NHWC activations `act` (strides `as` in (n, c, h, w) order, as[1] == 1) and KRSC filters
// `filt` (strides fs, fs.c == 1), writing p.y in its own layout (kOutNHWC), in tiles t (forward_tile(p, Cfg::kBM)).
// kHalo: halo boxes (use_halo). kFromNchw: `act` is the NCHW input itself (strides `as`, as[3] == 1), read in raw
// boxes (nchw_fused).
template <typename T, class Cfg, bool kOutNHWC, bool kHalo = false, bool kFromNchw = false>
void launch_tma(const ConvParams& p, const TmaTile& t, const T* act, const int64_t (&as)[4], const T* filt,
                FilterStrides fs, cudaStream_t stream) {
  constexpr int e = sizeof(T), BK = kTmaRowBytes / e;
  const int Cg = static_cast<int>(p.C_per_group()), Kg = static_cast<int>(p.K_per_group());
  const uint64_t act_dims[4] = {uint64_t(p.C), uint64_t(p.W), uint64_t(p.H), uint64_t(p.N)};
  const uint64_t act_strides[3] = {uint64_t(as[3] * e), uint64_t(as[2] * e), uint64_t(as[0] * e)};
  CUtensorMap act_map, filt_map, out_map{};
  const char* why = kFromNchw  // kRawPx pixels of one row of a k-tile of channels, unswizzled
      ? encode_tensor_map_4d(&act_map, tma_dtype<T>(), act, {uint64_t(p.W), uint64_t(p.H), uint64_t(p.C), uint64_t(p.N)},
                             {uint64_t(as[2] * e), uint64_t(as[1] * e), uint64_t(as[0] * e)},
                             {uint32_t(Cfg::kRawPx), 1, uint32_t(BK), 1}, {1, 1, 1, 1}, false)
      : kHalo  // one row of wt + (S - 1) dil_w pixels
      ? encode_tensor_map_4d(&act_map, tma_dtype<T>(), act, act_dims, act_strides,
                             {uint32_t(BK), uint32_t(t.wt + (p.S - 1) * p.dil_w), 1, 1}, {1, 1, 1, 1}, true)
      : encode_tensor_map_4d(&act_map, tma_dtype<T>(), act, act_dims, act_strides,
                             {uint32_t(BK), uint32_t(t.wt * p.stride_w), uint32_t(t.ht * p.stride_h), uint32_t(t.nt)},
                             {1, uint32_t(p.stride_w), uint32_t(p.stride_h), 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma (activations): ", why);
  why = encode_tensor_map_4d(&filt_map, tma_dtype<T>(), filt, {uint64_t(Cg), uint64_t(p.S), uint64_t(p.R), uint64_t(p.K)},
                             {uint64_t(fs.s * e), uint64_t(fs.r * e), uint64_t(fs.k * e)},
                             {uint32_t(BK), 1, 1, uint32_t(Cfg::kBN)}, {1, 1, 1, 1}, true);
  TORCH_CHECK(why[0] == '\0', "conv2d_ext: implicit_gemm tma (filters): ", why);
  // The output's boxes (tma_store): 128 bytes of channels of the tile's pixels.
  const bool tma_store = kOutNHWC && tma_store_fits<T, Cfg>(p) &&
      encode_tensor_map_4d(&out_map, tma_dtype<T>(), p.y, {uint64_t(p.K), uint64_t(p.Q), uint64_t(p.P), uint64_t(p.N)},
                           {uint64_t(p.y_stride[3] * e), uint64_t(p.y_stride[2] * e), uint64_t(p.y_stride[0] * e)},
                           {uint32_t(BK), uint32_t(t.wt), uint32_t(t.ht), uint32_t(t.nt)}, {1, 1, 1, 1}, true)[0] == '\0';

  TmaConv c{};
  c.wt = t.wt, c.ht = t.ht, c.nt = t.nt, c.q_tiles = int(t.q_tiles), c.p_tiles = int(t.p_tiles);
  c.N = int(p.N), c.P = int(p.P), c.Q = int(p.Q);
  c.stride_h = p.stride_h, c.stride_w = p.stride_w, c.pad_h = p.pad_h, c.pad_w = p.pad_w;
  c.dil_h = p.dil_h, c.dil_w = p.dil_w;
  c.R = int(p.R), c.S = int(p.S), c.c_chunks = (Cg + BK - 1) / BK, c.k_tiles = int(p.R * p.S) * c.c_chunks;
  c.Cg = Cg, c.Kg = Kg;
  // Bytes of a stage: kHalo, the activation ring's (the filter ring's are Cfg::kHaloBBytes); else both boxes.
  c.tx_bytes = kFromNchw ? uint32_t(Cfg::kRawBytes)
                         : uint32_t(kTmaRowBytes) * (kHalo ? t.wt + (p.S - 1) * p.dil_w : t.wt * t.ht * t.nt + Cfg::kBN);
  c.tma_store = tma_store;
  c.nchw_pairs = !kOutNHWC && nchw_pairs_fit<T>(p, t);
  c.y = p.y, c.bias = p.bias;
  for (int i = 0; i < 4; ++i) c.ys[i] = p.y_stride[i];

  constexpr int smem = kFromNchw ? Cfg::kNchwSmem : kHalo ? Cfg::kHaloSmem : Cfg::kSmem;
  const dim3 grid(static_cast<unsigned>(t.count()), static_cast<unsigned>((Kg + Cfg::kBN - 1) / Cfg::kBN),
                  static_cast<unsigned>(p.groups));
  if constexpr (kFromNchw && sizeof(T) == 4 && Cfg::kBN == 128) {
    const char* env = std::getenv("CONV2D_EXT_TMA_TF32_ONE_CTA");
    if (env != nullptr && env[0] == '1') {
      constexpr auto kernel = forward_tma_one_cta_kernel<T, Cfg>;
      opt_in_shared_memory<kernel>(smem);
      kernel<<<grid, kTmaThreads, smem, stream>>>(act_map, filt_map, out_map, c);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      return;
    }
  }
  constexpr auto kernel = forward_tma_kernel<T, Cfg, kOutNHWC, kHalo, kFromNchw>;
  opt_in_shared_memory<kernel>(smem);
  kernel<<<grid, kTmaThreads, smem, stream>>>(act_map, filt_map, out_map, c);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The fallback for channels-last tensors the copy engine cannot read (a base pointer off 16 bytes, strides off
// 16-byte multiples: sliced inputs): configuration 128x128_wg on the same problem, instantiated in its own files.
extern template void forward_launch_typed<__half, Config128x128_wg>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<__nv_bfloat16, Config128x128_wg>(const ConvParams&, void*, cudaStream_t);
extern template void forward_launch_typed<float, Config128x128_wg>(const ConvParams&, void*, cudaStream_t);

// Whether launch_tma loads halo boxes (kHalo): with tiles of one output row (tma_tile's ht = nt = 1) and stride 1
// along it, the S taps of a filter row read one box of wt + (S - 1) dil_w pixels, each from its own pixel on (the
// A descriptor's start), instead of S boxes of wt: a third of the activation traffic for 3x3. CONV2D_EXT_TMA_HALO=0
// turns them off (timing). t: p's tiles, forward_tile(p, Cfg::kBM).
template <class Cfg>
bool use_halo(const ConvParams& p, const TmaTile& t) {
  const char* env = std::getenv("CONV2D_EXT_TMA_HALO");
  return !(env != nullptr && env[0] == '0') && Cfg::kMI == 1 && p.stride_w == 1 && p.S >= 2 &&
         (p.S - 1) * p.dil_w <= Cfg::kHaloRows - Cfg::kBM && t.ht == 1 && t.nt == 1;
}

// Whether launch_tma reads p's NCHW input itself (kFromNchw) instead of an NHWC copy: halo tiles, rows the copy
// engine can step (pixels contiguous, the other strides in 16-byte multiples, at least a raw box wide).
// CONV2D_EXT_TMA_NCHW_FUSED=0 turns it off (timing). halo: use_halo's answer.
template <class Cfg>
bool nchw_fused(const ConvParams& p, bool halo) {
  const char* env = std::getenv("CONV2D_EXT_TMA_NCHW_FUSED");
  const int64_t elem = p.element_bytes();
  return !(env != nullptr && env[0] == '0') && !p.channels_last && p.x_stride[3] == 1 && p.W >= Cfg::kRawPx && halo &&
         tma_strides_fit(elem, p.x, {p.x_stride[0], p.x_stride[1], p.x_stride[2]});
}

// Whether forward_tma_launch_typed runs a 1x1 NCHW problem on forward_pointwise_tma.cuh's kernels (NCHW read and
// written in place): stride 1, no padding, one group, maps whose rows are contiguous (the view {HW, C, N}) and whose
// channel and image strides are 16-byte multiples. On by default since session 26 (H200, r50_1x1 NCHW forward: TF32
// 0.038 ms against 0.102 through the NHWC copy, fp16 0.021 against 0.061); CONV2D_EXT_TMA_POINTWISE=0 turns it off.
template <class Cfg>
bool pointwise_fits(const ConvParams& p) {
  const char* env = std::getenv("CONV2D_EXT_TMA_POINTWISE");
  const int64_t elem = p.element_bytes();
  const bool fits = tma_strides_fit(elem, p.x, {p.x_stride[1], p.x_stride[0]}) &&
                    tma_strides_fit(elem, p.y, {p.y_stride[1], p.y_stride[0]});
  return !(env != nullptr && env[0] == '0') && Cfg::kMI == 1 && fits && !p.channels_last &&
         p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0 &&
         p.groups == 1 && p.x_stride[3] == 1 && p.x_stride[2] == p.W && p.y_stride[3] == 1 && p.y_stride[2] == p.Q &&
         p.H * p.W < (int64_t(1) << 31) - 256 &&
         (p.H * p.W + 127) / 128 * p.N * ((p.K + Cfg::kBN - 1) / Cfg::kBN) < (int64_t(1) << 31);  // work items
}
template <typename T, class Cfg>  // forward_pointwise_tma.cuh (included by the configuration files)
void launch_pointwise_tma(const ConvParams& p, const T* filt, FilterStrides fs, cudaStream_t stream);

// forward_tma_launch_typed's workspace: the KRSC repack of the filters (where the copy engine cannot read them in
// place: NCHW's KCRS, or sliced), then the NHWC copy of NCHW activations not read in place (nchw_fused), then the
// NHWC output stage (out_stage). Offsets of the copy and of the stage, and the total.
struct TmaWorkspace {
  int64_t copy, stage, bytes;
};

// Whether an NCHW call's GEMM (activations through the NHWC copy) writes its output as dense NHWC into the workspace
// (the channels-last epilogue: the copy engine's store) and one to_nchw then writes p's dense NCHW output, instead
// of the NCHW epilogue's stores: only where CONV2D_EXT_TMA_OUT_STAGE=1 (tests, timing). It was the default on maps of
// fewer than 64 pixels while tma_tile's 1 x 7 x 18 boxes scattered the NCHW stores (session 42); with forward_tile's
// whole-row boxes the threads' stores beat it. H100, session 44 (graph ms, r50_3x3_512 NCHW, stage off / on):
// forward TF32 0.0540 / 0.0585 (cuDNN 0.0567), bf16 0.0303 / 0.0334 (0.0334); backward-data TF32 0.0542 / 0.0593,
// bf16 0.0310 / 0.0339; r50_3x3_256 forward TF32 0.0421 / 0.0484, bf16 0.0253 / 0.0307.
template <class Cfg>
bool out_stage(const ConvParams& p, bool halo) {
  const char* env = std::getenv("CONV2D_EXT_TMA_OUT_STAGE");
  return env != nullptr && env[0] == '1' && !p.channels_last && !nchw_fused<Cfg>(p, halo) && !pointwise_fits<Cfg>(p) &&
         to_nchw_fits(p.y, p.y_stride, p.K, p.P, p.Q);
}

template <class Cfg>
TmaWorkspace tma_workspace(const ConvParams& p, bool halo) {
  const int64_t elem = p.element_bytes();
  const int64_t filters = region(p.K * p.C_per_group() * p.R * p.S * elem);
  const int64_t copy = p.channels_last || nchw_fused<Cfg>(p, halo) ? 0 : region(p.N * p.C * p.H * p.W * elem);
  const int64_t stage = out_stage<Cfg>(p, halo) ? region(p.N * p.K * p.P * p.Q * elem) : 0;
  return TmaWorkspace{filters, filters + copy, filters + copy + stage};
}

template <class Cfg>
int64_t forward_tma_workspace(const ConvParams& p) {
  if (pointwise_fits<Cfg>(p)) return region(p.K * p.C_per_group() * p.element_bytes());
  const TmaTile t = forward_tile(p, Cfg::kBM);
  return tma_workspace<Cfg>(p, use_halo<Cfg>(p, t)).bytes;
}

// launch_tma, with halo boxes where use_halo said (`halo`).
template <typename T, class Cfg, bool kOutNHWC>
void launch_tma_boxes(const ConvParams& p, const TmaTile& t, bool halo, const T* act, const int64_t (&as)[4],
                      const T* filt, FilterStrides fs, cudaStream_t stream) {
  if (halo) return launch_tma<T, Cfg, kOutNHWC, true>(p, t, act, as, filt, fs, stream);
  if constexpr (Cfg::kBN == 128) {  // 128x64 tiles keep their stages (above)
    if (tma_deep_ring(t.count() * ((p.K_per_group() + Cfg::kBN - 1) / Cfg::kBN) * p.groups))
      return launch_tma<T, TmaDeepConfig<Cfg>, kOutNHWC>(p, t, act, as, filt, fs, stream);
  }
  launch_tma<T, Cfg, kOutNHWC>(p, t, act, as, filt, fs, stream);
}

// Whether the copy engine reads p's activations (and its kernels write the output) where p is channels-last: dense
// channels, 16-byte strides, a 16-byte aligned base. Where not (sliced or offset tensors), forward_tma_launch_typed
// runs the cp.async configuration 128x128_wg instead, whose epilogue writes a dense output.
inline bool tma_reads_channels_last(const ConvParams& p) {
  const int64_t elem = p.element_bytes();
  return !p.channels_last || (p.x_stride[1] == 1 && p.y_stride[1] == 1 &&
                              tma_strides_fit(elem, p.x, {p.x_stride[0], p.x_stride[2], p.x_stride[3]}));
}

template <typename T, class Cfg>
void forward_tma_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.N * p.P * p.Q == 0 || p.K == 0) return;  // an empty output: nothing to launch
  const T* filters = static_cast<const T*>(p.w);
  FilterStrides fs{p.w_stride[0], p.w_stride[1], p.w_stride[2], p.w_stride[3]};
  if (!tma_reads_channels_last(p)) {
    forward_launch_typed<T, Config128x128_wg>(p, workspace, stream);  // sliced activations: the cp.async loaders
    return;
  }
  if (pointwise_fits<Cfg>(p)) {  // 1x1 NCHW in place; KCRS at 1x1 is KRSC (the size-1 taps' strides are unused)
    FilterStrides f1{fs.k, fs.c, fs.k, fs.k};
    if (fs.c != 1 || !tma_strides_fit<T>(filters, {fs.k})) {
      repack_krsc<T>(p, filters, f1, static_cast<T*>(workspace), stream);
    }
    launch_pointwise_tma<T, Cfg>(p, filters, f1, stream);
    return;
  }
  if (fs.c != 1 || !tma_strides_fit<T>(filters, {fs.k, fs.r, fs.s})) {  // KCRS (or sliced) -> KRSC
    repack_krsc<T>(p, filters, fs, static_cast<T*>(workspace), stream);
  }
  const TmaTile t = forward_tile(p, Cfg::kBM);  // the tiles, once: every choice below and the launch use them
  const bool halo = use_halo<Cfg>(p, t);
  if (p.channels_last) {
    launch_tma_boxes<T, Cfg, true>(p, t, halo, static_cast<const T*>(p.x), p.x_stride, filters, fs, stream);
  } else if (nchw_fused<Cfg>(p, halo)) {  // the NCHW input read in place
    launch_tma<T, Cfg, false, true, true>(p, t, static_cast<const T*>(p.x), p.x_stride, filters, fs, stream);
  } else {  // NHWC copy of the activations, NCHW output
    const TmaWorkspace ws = tma_workspace<Cfg>(p, halo);
    T* x = reinterpret_cast<T*>(static_cast<unsigned char*>(workspace) + ws.copy);
    int64_t xs[4];
    const T* staged = staged_nhwc<T>(p.x, p.x_stride, x, p.N, p.C, p.H, p.W, xs, stream);
    if (ws.bytes > ws.stage) {  // out_stage: dense NHWC output in the workspace, then to_nchw
      ConvParams q = p;
      q.y = static_cast<unsigned char*>(workspace) + ws.stage;
      q.channels_last = true;
      dense_nhwc_strides(q.y_stride, p.K, p.P, p.Q);
      launch_tma_boxes<T, Cfg, true>(q, t, halo, staged, xs, filters, fs, stream);
      launch_to_nchw<T>(static_cast<const T*>(q.y), q.y_stride, static_cast<T*>(p.y), p.N, p.K, p.P, p.Q, stream);
      return;
    }
    launch_tma_boxes<T, Cfg, false>(p, t, halo, staged, xs, filters, fs, stream);
  }
}

// What the TMA configuration can run: wgmma's conditions (gemm_reason), channels the copy engine can stride over,
// strides within its element strides, groups in whole k-tiles, and a grid of tiles that fits.
template <class Cfg>
std::string forward_tma_can_implement(const ConvParams& p) {
  std::string why = gemm_reason<Config128x128_wg>(p, p.K_per_group(), p.C_per_group() * p.R * p.S);
  if (!why.empty()) return why;
  const int64_t elem = p.element_bytes(), E = 16 / elem, BK = kTmaRowBytes / elem;
  if (p.C % E != 0 || p.C_per_group() % E != 0)
    return "channels (and channels per group) must fill 16-byte vectors (the copy engine's strides)";
  if (p.groups > 1 && p.C_per_group() % BK != 0)
    return "grouped convolutions need channels per group in whole 128-byte k-tiles";
  if (p.stride_h > 8 || p.stride_w > 8) return "strides above 8 (the copy engine's element strides)";
  if ((p.K_per_group() + Cfg::kBN - 1) / Cfg::kBN > 65535) return "more than 65535 tiles of channels per group";
  if (p.N >= (int64_t(1) << 31)) return "2^31 or more images";
  if (!p.channels_last && p.H * p.W >= (int64_t(1) << 31)) return "NCHW images of 2^31 or more pixels (the NHWC copy)";
  const int64_t tiles = forward_tile(p, Cfg::kBM).count();
  if (tiles >= (int64_t(1) << 31)) return "2^31 or more tiles of output pixels";
  return "";
}

template <class Cfg>
void forward_tma_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  dispatch_float_dtype(p.dtype, "implicit_gemm tma", [&](auto tag) {
    forward_tma_launch_typed<typename decltype(tag)::type, Cfg>(p, workspace, stream);
  });
}

}  // namespace igemm
}  // namespace conv2d_ext
