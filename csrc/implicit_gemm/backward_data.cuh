// Backward-data as an implicit GEMM on tensor cores, on the machinery of implicit_gemm.cuh, at any stride: split into
// stride phases, so that no MMA multiplies a structural zero.
//
// dx[n, c, h, w] = sum over k, r, s of dy[n, k, (h + pad_h - r*dil_h) / stride_h, (w + ...) / stride_w] * w[k, c, r, s],
// over the taps whose quotients are exact and inside P x Q. Stride phases: the input rows h with (h + pad_h) mod
// stride_h = a fixed phase form a sub-grid h = first + i*stride_h, and only the taps r with r*dil_h = phase (mod
// stride_h) reach them: r = tap0 + j*tap_step (tap_step = stride_h / gcd(stride_h, dil_h)), and tap j reads
// grad_output row out0 + i - j*out_step (out_step = dil_h / gcd). Columns likewise. So each phase (a pair of row and
// column phases) is a stride-1-like implicit GEMM over its sub-grid of input pixels with its own, possibly empty, tap
// set; at stride 1 there is one phase, the plain mapping.
//
// GEMM mapping, per group g and phase (blockIdx.z = g * phases + phase):
//   M = N*Hp*Wp input pixels of the phase (A rows: grad_output gathered at (out0_h + i - j*out_step_h, ...): a
//   TapGather with negative tap steps), N = C/groups input channels (B rows: the filters, repacked to
//   [C][R][S][K/groups] in the workspace so that the reduction's channels, the output channels, are contiguous; a
//   phase's taps are a strided subset of them), reduction = Rp*Sp*K/groups (the phase's taps).
//   D lands in grad_input in its layout, no bias: store_tile at stride 1, store_phase_tile (a per-row pixel address)
//   for strided phases. Every element of grad_input belongs to exactly one phase; a phase without taps writes zeros.

#pragma once

#include "implicit_gemm/forward.cuh"

namespace conv2d_ext {
namespace igemm {

// Repacks filters `w` (strides `in`; negative tap strides read them flipped, w at the last tap) to dense
// [C][R][S][K/groups] at `out` (16-byte aligned): out[c][r][s][k] = w[g Kg + k][c - g Cg][r][s] for the group g of
// input channel c (all C channels). Dense filters, KCRS or channels-last, with Kg and their Cg R S in whole 16-byte
// vectors (every layer of r50's backward): each group's Kg x Cg R S matrix transposed as an image by to_nhwc_vec,
// 16-byte loads and stores, each pixel's row moved to its (c, tap) (TapRows); pack_taps otherwise. H100, session 40
// (r50_3x3_512 bf16 backward-data, graph ms): NCHW 0.0434 -> 0.0398, channels-last 0.0314 -> 0.0285 against
// pack_taps_tiles. CONV2D_EXT_PACK_TRANSPOSE=0 turns it off (and CONV2D_EXT_PACK_RUNS=1, pack_taps_runs' switch).
template <typename T>
void repack_crsk(const T* w, FilterStrides in, T* out, int64_t C, int64_t Cg, int64_t Kg, int64_t R, int64_t S,
                 cudaStream_t stream) {
  const int64_t RS = R * S, groups = Cg > 0 ? C / Cg : 0;
  const bool flip = in.r < 0 && in.s < 0;
  const int64_t ar = flip ? -in.r : in.r, as = flip ? -in.s : in.s;
  const bool kcrs = in.k == Cg * RS && in.c == RS && ar == S && as == 1;
  const bool krsc = in.k == RS * Cg && in.c == 1 && ar == S * Cg && as == Cg;
  const T* base = flip ? w + (R - 1) * in.r + (S - 1) * in.s : w;  // the first element in memory
  const char* env = std::getenv("CONV2D_EXT_PACK_TRANSPOSE");
  const char* runs_env = std::getenv("CONV2D_EXT_PACK_RUNS");
  const int64_t image[4] = {Kg * Cg * RS, Cg * RS, Cg * RS, 1};  // a group: Kg channels of 1 x Cg R S pixels
  const int lv = to_nhwc_load_elems(base, image, Kg, 1, Cg * RS);
  if (!(env != nullptr && env[0] == '0') && !(runs_env != nullptr && runs_env[0] == '1') && (kcrs || krsc) && RS > 1 &&
      lv * int64_t(sizeof(T)) == 16 &&
      Cg * RS < (int64_t(1) << 31) && groups <= 65535) {
    const FilterStrides s{image[0], image[1], image[2], image[3]};
    const dim3 grid(static_cast<unsigned>((Cg * RS + 63) / 64), static_cast<unsigned>((Kg + 63) / 64),
                    static_cast<unsigned>(groups));
    const TapRows rows{int(RS), int(Cg), kcrs, flip};
    launch_to_nhwc_kernel<T>(lv, grid, base, s, out, Kg, 1, Cg * RS, stream, rows);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  pack_taps<T>(w, TapPack{Kg * in.k, in.c, in.k, in.r, in.s, int(Cg), int(C), int(Kg), int(R), int(S)}, out, stream);
}

CONV2D_EXT_HOST_DEVICE inline int gcd(int a, int b) {
  while (b != 0) { const int t = a % b; a = b; b = t; }
  return a;
}

// What every phase shares, per dimension: a phase's taps are every tap_step-th filter tap (tap_step = stride /
// gcd(stride, dil)), and consecutive ones read grad_output out_step = dil / gcd(stride, dil) rows apart (down: the
// gather's tap step is -out_step). A kernel argument, computed on the host (constants in the main loop, not
// registers).
struct PhaseSteps {
  int tap_h, tap_w;    // tap_step
  int down_h, down_w;  // -out_step
};

inline PhaseSteps phase_steps(const ConvParams& p) {
  const int gh = gcd(p.stride_h, p.dil_h), gw = gcd(p.stride_w, p.dil_w);
  return {p.stride_h / gh, p.stride_w / gw, -(p.dil_h / gh), -(p.dil_w / gw)};
}

// One spatial dimension (h or w) of stride phase `phase` (0 <= phase < stride: the input coordinates x with
// (x + pad) mod stride = phase): inputs first + i*stride for i < count, filter taps tap0 + j*tap_step for j < taps,
// and the grad_output coordinate out0 + i - j*out_step that tap j of input i reads. 64-bit where products of the
// geometry could pass 2^31; can_implement keeps the results in int.
struct PhaseDim {
  int first, count;  // the phase's input coordinates
  int tap0, taps;    // its filter taps (taps = 0: none reach it, its pixels get zeros)
  int out0;          // grad_output coordinate of input 0, tap 0
};

CONV2D_EXT_HOST_DEVICE inline PhaseDim phase_dim(int phase, int extent, int stride, int pad, int dil, int R,
                                                 int tap_step) {
  PhaseDim d;
  d.first = static_cast<int>(((int64_t(phase) - pad) % stride + stride) % stride);
  d.count = d.first < extent ? (extent - d.first + stride - 1) / stride : 0;
  d.tap0 = 0;
  d.taps = 0;
  d.out0 = 0;
  const int limit = R < tap_step ? R : tap_step;  // r * dil mod stride repeats with period tap_step
  const int dil_mod = dil % stride;
  for (int r = 0, rem = 0; r < limit; ++r) {  // rem = r * dil mod stride
    if (rem == phase) {
      d.tap0 = r;
      d.taps = (R - r + tap_step - 1) / tap_step;
      d.out0 = static_cast<int>((int64_t(d.first) + pad - int64_t(r) * dil) / stride);  // an exact division
      break;
    }
    if ((rem += dil_mod) >= stride) rem -= stride;
  }
  return d;
}

// The group and the two phase dimensions of CTA z (blockIdx.z = group * phases + phase, phase = ph * sw + pw).
struct Phase {
  int g;
  PhaseDim h, w;
  __device__ __forceinline__ int64_t pixels() const { return int64_t(h.count) * w.count; }  // per image
};

__device__ __forceinline__ Phase phase_of(const ConvParams& p, const PhaseSteps& steps, unsigned z) {
  const int phases = p.stride_h * p.stride_w;
  const int g = static_cast<int>(z) / phases, phase = static_cast<int>(z) - g * phases;
  return {g, phase_dim(phase / p.stride_w, static_cast<int>(p.H), p.stride_h, p.pad_h, p.dil_h, static_cast<int>(p.R),
                       steps.tap_h),
          phase_dim(phase % p.stride_w, static_cast<int>(p.W), p.stride_w, p.pad_w, p.dil_w, static_cast<int>(p.S),
                    steps.tap_w)};
}

// blockIdx.z read afresh (a volatile read the compiler cannot merge with an earlier one): what the epilogue derives
// from it is recomputed there rather than held in registers through the main loop.
__device__ __forceinline__ unsigned ctaid_z_again() {
#ifdef CONV2D_EXT_EMULATION
  return blockIdx.z;
#else
  unsigned z;
  asm volatile("mov.u32 %0, %%ctaid.z;" : "=r"(z));
  return z;
#endif
}

// Shared memory of the backward-data kernels: the pipeline, or the epilogue's staged tile plus one 64-bit pixel
// offset per tile row (store_phase_tile).
template <typename T, class Cfg, bool kNHWC>
constexpr int backward_data_smem_bytes() {
  constexpr int E = 16 / sizeof(T);
  const int pipeline = Cfg::kStages * stage_bytes<Cfg>();
  const int epilogue = (kNHWC ? Cfg::kBM * (Cfg::kBN + E) : Cfg::kBN * (Cfg::kBM + E)) * int(sizeof(T)) +
                       Cfg::kBM * int(sizeof(int64_t));
  return pipeline > epilogue ? pipeline : epilogue;
}

// The epilogue of a strided phase: as store_tile (D rounded to T, staged in shared memory), but the tile's rows are
// pixels spread over grad_input with the phase's strides, so each row's element offset (`row_offset(m)` for m < M,
// channel 0 of its pixel; `c_stride` per channel) is computed once per row into shared memory. NHWC: runs of
// channels of a row, 16-byte stores where aligned, as store_tile; NCHW: one element per thread, consecutive threads
// on consecutive rows of one channel (grad_input addresses `stride_w` apart: as coalesced as the phase allows).
template <typename T, class Cfg, bool kNHWC, class Compute, typename RowOffset>
__device__ __forceinline__ void store_phase_tile(unsigned char* smem, const Compute& mma, T* out, int64_t m0, int n0,
                                                 int64_t M, int cols, int64_t c_stride, RowOffset&& row_offset) {
  constexpr int E = 16 / sizeof(T);
  T* tile = reinterpret_cast<T*>(smem);
  constexpr int kPitch = kNHWC ? Cfg::kBN + E : Cfg::kBM + E;
  constexpr int kTileBytes = (kNHWC ? Cfg::kBM * kPitch : Cfg::kBN * kPitch) * int(sizeof(T));
  int64_t* offsets = reinterpret_cast<int64_t*>(smem + kTileBytes);
  for_each_accumulator(mma, [&](int m, int n, float v) { tile[kNHWC ? m * kPitch + n : n * kPitch + m] = from_acc<T>(v); });
  for (int row = threadIdx.x; row < Cfg::kBM; row += Cfg::kThreads)
    offsets[row] = m0 + row < M ? row_offset(m0 + row) : -1;
  __syncthreads();

  if (kNHWC) {
    constexpr int kRuns = Cfg::kBN / E;
    for (int u = threadIdx.x; u < Cfg::kBM * kRuns; u += Cfg::kThreads) {
      const int row = u / kRuns, n = (u % kRuns) * E;
      const int64_t offset = offsets[row];
      if (offset < 0 || n0 + n >= cols) continue;
      store_run(out + offset + (n0 + n) * c_stride, tile + row * kPitch + n, min(E, cols - n0 - n));
    }
  } else {
    static_assert(Cfg::kThreads % Cfg::kBM == 0, "a thread keeps its row across the channels it stores");
    const int row = threadIdx.x % Cfg::kBM;
    const int64_t offset = offsets[row];
    if (offset < 0) return;
    for (int n = threadIdx.x / Cfg::kBM; n < Cfg::kBN && n0 + n < cols; n += Cfg::kThreads / Cfg::kBM)
      out[offset + (n0 + n) * c_stride] = tile[n * kPitch + row];
  }
}

// `filters`: the [C][R][S][Kg] copy in the workspace; `steps`: phase_steps(p). kNHWC: grad_output's layout as loaded
// (p.y, p.y_stride); kOutNHWC: grad_input's.
template <typename T, class Cfg, bool kNHWC, bool kVec, bool kFlat, bool kOutNHWC = kNHWC>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) backward_data_kernel(const ConvParams p,
                                                                                       const T* filters,
                                                                                       const PhaseSteps steps) {
  extern __shared__ __align__(1024) unsigned char smem[];  // 1024: wgmma's swizzle atoms
  constexpr int BK = Cfg::kBKBytes / sizeof(T);
  const Phase ph = phase_of(p, steps, blockIdx.z);
  const int g = ph.g;
  const PhaseDim hp = ph.h, wp = ph.w;  // its row and column phases
  const int64_t HWp = ph.pixels(), M = p.N * HWp;
  const int64_t m0 = int64_t(blockIdx.x) * Cfg::kBM;  // the CTA's first input pixel (of the phase) and input channel
  if (m0 >= M) return;  // the grid covers the largest phase
  const int n0 = blockIdx.y * Cfg::kBN;
  const int Cg = static_cast<int>(p.C_per_group()), Kg = static_cast<int>(p.K_per_group());
  const int R = static_cast<int>(p.R), S = static_cast<int>(p.S);

  // A: the phase's input pixels m = (img, i, j) at (first_h + i*sh, first_w + j*sw), whose tap (jr, js) reads
  // grad_output pixel (out0_h + i - jr*out_step_h, out0_w + j - js*out_step_w).
  const T* dy = static_cast<const T*>(p.y) + int64_t(g) * Kg * p.y_stride[1];
  const TapGather<T> ga{dy, p.y_stride[2], p.y_stride[3], p.y_stride[1], static_cast<int>(p.P),
                        static_cast<int>(p.Q), steps.down_h, steps.down_w, Kg, hp.taps, wp.taps};
  OperandLoader<T, Cfg, kVec && kNHWC, kFlat, !kNHWC, Cfg::kBM> la;
  la.init([&](int64_t m) -> typename TapGather<T>::Row {
    if (m < 0) return {dy, INT_MIN / 2, INT_MIN / 2};
    const int64_t img = m / HWp, ij = m - img * HWp;
    const int i = static_cast<int>(ij / wp.count), j = static_cast<int>(ij - int64_t(i) * wp.count);
    const int h0 = hp.out0 + i, w0 = wp.out0 + j;
    return {dy + img * p.y_stride[0] + h0 * p.y_stride[2] + w0 * p.y_stride[3], h0, w0};
  }, m0, M);
  // B: row c of the packed filters from the phase's first tap on: tap (jr, js) is filter tap (tap0_h + jr*tap_step_h,
  // tap0_w + js*tap_step_w), holding w[g*Kg + k, c, r, s] for k = 0 .. Kg-1, contiguous; inside R x S for every
  // jr < taps_h, js < taps_w (so the rows' corners are 0: nothing to check per tap).
  const int64_t row_stride = int64_t(R) * S * Kg;
  const T* fg = filters + int64_t(g) * Cg * row_stride + (int64_t(hp.tap0) * S + wp.tap0) * Kg;
  const TapGather<T> gb{fg, int64_t(S) * Kg, Kg, 1, R, S, steps.tap_h, steps.tap_w, Kg, hp.taps, wp.taps};
  OperandLoader<T, Cfg, kVec, kFlat, false, Cfg::kBN> lb;
  lb.init([&](int64_t c) -> typename TapGather<T>::Row {
    if (c < 0) return {fg, INT_MIN / 2, INT_MIN / 2};
    return {fg + c * row_stride, 0, 0};
  }, n0, Cg);
  const int taps = hp.taps * wp.taps;
  const int k_tiles = kFlat ? (taps * Kg + BK - 1) / BK : taps * ((Kg + BK - 1) / BK);  // 0: zeros

  WarpCompute<T, Cfg> mma;
  mma.zero();
  main_loop<T, Cfg, kFlat>(smem, ga, gb, la, lb, k_tiles, mma);
  T* dx = static_cast<T*>(p.x);
  if (p.stride_h == 1 && p.stride_w == 1) {  // one phase, group blockIdx.z; rows are consecutive pixels: the
                                             // forward's epilogue (16-byte runs)
    store_tile<T, Cfg, kOutNHWC>(smem, mma, dx, nullptr, m0, n0, p.N * p.H * p.W, Cg, p.C, p.H * p.W,
                              int64_t(blockIdx.z) * Cg);
  } else {
    const Phase e = phase_of(p, steps, ctaid_z_again());  // recomputed: not held through the main loop
    const int64_t pixels = e.pixels(), sh = p.stride_h, sw = p.stride_w;
    store_phase_tile<T, Cfg, kOutNHWC>(smem, mma, dx + int64_t(e.g) * Cg * p.x_stride[1], m0, n0, p.N * pixels, Cg,
                                    p.x_stride[1], [&](int64_t m) {
      const int64_t img = m / pixels, ij = m - img * pixels;
      const int64_t i = ij / e.w.count, j = ij - i * e.w.count;
      return img * p.x_stride[0] + (e.h.first + i * sh) * p.x_stride[2] + (e.w.first + j * sw) * p.x_stride[3];
    });
  }
}

template <typename T, class Cfg, bool kNHWC, bool kVec, bool kFlat, bool kOutNHWC = kNHWC>
void launch_backward_data_variant(const ConvParams& p, const T* filters, cudaStream_t stream) {
  constexpr auto kernel = backward_data_kernel<T, Cfg, kNHWC, kVec, kFlat, kOutNHWC>;
  constexpr int smem = backward_data_smem_bytes<T, Cfg, kOutNHWC>();
  opt_in_shared_memory<kernel>(smem);
  // grid.x covers the largest phase (the one starting at row and column 0); grid.z = groups x phases.
  const int64_t rows = p.N * ((p.H + p.stride_h - 1) / p.stride_h) * ((p.W + p.stride_w - 1) / p.stride_w);
  const dim3 grid(static_cast<unsigned>((rows + Cfg::kBM - 1) / Cfg::kBM),
                  static_cast<unsigned>((p.C_per_group() + Cfg::kBN - 1) / Cfg::kBN),
                  static_cast<unsigned>(int64_t(p.groups) * p.stride_h * p.stride_w));
  kernel<<<grid, Cfg::kThreads, smem, stream>>>(p, filters, phase_steps(p));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The most taps any stride phase has (every tap_step-th filter row and column), as R and S of a copy of p.
inline ConvParams with_phase_taps(const ConvParams& p) {
  ConvParams q = p;
  const PhaseSteps steps = phase_steps(p);
  q.R = (p.R + steps.tap_h - 1) / steps.tap_h;
  q.S = (p.S + steps.tap_w - 1) / steps.tap_w;
  return q;
}

// Backward-data's grad_output: stages_nhwc over dy, with the most taps a stride phase has.
template <class Cfg>
bool backward_data_stages_nhwc(const ConvParams& p) {
  const ConvParams q = with_phase_taps(p);
  return stages_nhwc<Cfg>(p, p.K, p.K_per_group(), q.R * q.S, p.P * p.Q);
}

// The [C][R][S][Kg] filters, then (backward_data_stages_nhwc) the NHWC grad_output.
template <class Cfg>
int64_t backward_data_workspace(const ConvParams& p) {
  const int64_t elem = p.element_bytes();
  const int64_t filters = p.C * p.R * p.S * p.K_per_group() * elem;
  return backward_data_stages_nhwc<Cfg>(p) ? region(filters) + p.N * p.K * p.P * p.Q * elem : filters;
}

template <typename T, class Cfg>
void backward_data_launch_typed(const ConvParams& p, void* workspace, cudaStream_t stream) {
  if (p.N * p.H * p.W == 0 || p.C == 0) return;  // an empty grad_input: nothing to launch
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group();
  T* packed = static_cast<T*>(workspace);
  // The packed rows as vector_loads_fit sees filters: row (c), channel (k), tap (r, s) strides. Whether the flat walk
  // pays is judged on a phase's taps (the most any phase has: every tap_step-th filter row and column).
  const FilterStrides fs{p.R * p.S * Kg, 1, p.S * Kg, Kg};
  if constexpr (Cfg::kVectorShapesOnly) {  // channels-last off the vector path (a misaligned base pointer)
    static_assert(!std::is_same_v<typename ScalarFallback<Cfg>::type, Cfg>, "a configuration to fall back on");
    if (p.channels_last && !vector_loads_fit<T, Cfg>(with_phase_taps(p), Kg, p.y, p.y_stride, packed, fs))
      return backward_data_launch_typed<T, typename ScalarFallback<Cfg>::type>(p, workspace, stream);
  }
  const FilterStrides w_strides{p.w_stride[0], p.w_stride[1], p.w_stride[2], p.w_stride[3]};
  const int64_t total = p.C * p.R * p.S * Kg;
  repack_crsk<T>(static_cast<const T*>(p.w), w_strides, packed, p.C, Cg, Kg, p.R, p.S, stream);
  if constexpr (Cfg::kWgmma) {
    if (backward_data_stages_nhwc<Cfg>(p)) {  // NHWC grad_output in, NCHW grad_input out
      T* dy = reinterpret_cast<T*>(static_cast<unsigned char*>(workspace) + region(total * int64_t(sizeof(T))));
      ConvParams q = p;
      q.y = const_cast<T*>(staged_nhwc<T>(p.y, p.y_stride, dy, p.N, p.K, p.P, p.Q, q.y_stride, stream));
      launch_backward_data_variant<T, Cfg, true, true, false, false>(q, packed, stream);
      return;
    }
  }
  if constexpr (Cfg::kVectorShapesOnly) {  // its can_implement turns the rest away: no scalar variant compiled
    TORCH_CHECK(p.channels_last, "conv2d_ext: this implicit_gemm configuration takes NCHW problems only staged to NHWC");
    launch_backward_data_variant<T, Cfg, true, true, false>(p, packed, stream);
  } else {
    const bool vec = vector_loads_fit<T, Cfg>(with_phase_taps(p), Kg, p.y, p.y_stride, packed, fs);
    if (p.channels_last) {
      if (vec) launch_backward_data_variant<T, Cfg, true, true, false>(p, packed, stream);
      else launch_backward_data_variant<T, Cfg, true, false, true>(p, packed, stream);
    } else {
      if (vec) launch_backward_data_variant<T, Cfg, false, true, false>(p, packed, stream);
      else launch_backward_data_variant<T, Cfg, false, false, true>(p, packed, stream);
    }
  }
}

extern template void backward_data_launch_typed<__half, Config128x128_wg>(const ConvParams&, void*, cudaStream_t);
extern template void backward_data_launch_typed<__nv_bfloat16, Config128x128_wg>(const ConvParams&, void*,
                                                                                 cudaStream_t);
extern template void backward_data_launch_typed<float, Config128x128_wg>(const ConvParams&, void*, cudaStream_t);

// What backward-data configuration Cfg can run.
template <class Cfg>
std::string backward_data_can_implement(const ConvParams& p) {
  std::string why = gemm_reason<Cfg>(p, p.C_per_group(), p.K_per_group() * p.R * p.S);
  if (why.empty()) why = dense_reason(p, p.x_stride, p.C, p.H, p.W, "grad_input");  // the epilogue writes it so
  if (!why.empty()) return why;
  if constexpr (Cfg::kVectorShapesOnly) {  // no scalar variants: only shapes that take the vector path
    const bool fp32 = p.dtype == DType::kFloat32;
    const int64_t E = fp32 ? 4 : 8, Kg = p.K_per_group();
    const ConvParams q = with_phase_taps(p);
    const bool flat = fp32 ? flat_walk_pays<float, Cfg>(Kg, q.R * q.S) : flat_walk_pays<__half, Cfg>(Kg, q.R * q.S);
    if (!(p.channels_last || (Cfg::kWgmma && backward_data_stages_nhwc<Cfg>(p))) || Kg % E != 0 || flat)
      return "takes only problems whose output channels (its reduction) fill whole 16-byte vectors and its k-tiles "
             "(NCHW: with more than one tap a stride phase, staged to NHWC)";
  }
  // grid.z = groups x stride phases; the phase geometry (phase_dim) is int, within gemm_reason's 2^30 limits once
  // the strides are this small.
  if (int64_t(p.groups) * p.stride_h * p.stride_w > 65535) return "more than 65535 groups x stride phases";
  const bool fp32 = p.dtype == DType::kFloat32;
  const int64_t smem = fp32 ? (p.channels_last ? backward_data_smem_bytes<float, Cfg, true>()
                                               : backward_data_smem_bytes<float, Cfg, false>())
                            : (p.channels_last ? backward_data_smem_bytes<__half, Cfg, true>()
                                               : backward_data_smem_bytes<__half, Cfg, false>());
  if (smem > max_shared_memory_per_block(p.sm)) return "its tiles need more shared memory than this GPU gives a block";
  return "";
}

template <class Cfg>
void backward_data_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  dispatch_float_dtype(p.dtype, "implicit_gemm", [&](auto tag) {
    backward_data_launch_typed<typename decltype(tag)::type, Cfg>(p, workspace, stream);
  });
}

}  // namespace igemm
}  // namespace conv2d_ext

// The registry entry backward_data_implicit_gemm_<name> (forward.cuh).
#define CONV2D_EXT_IGEMM_BACKWARD_DATA_ENTRY(name) CONV2D_EXT_IGEMM_ENTRY(backward_data, kBackwardData, name)
