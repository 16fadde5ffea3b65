// Backward-weight, tiled family, depthwise configuration: grad_weight[k,0,r,s] = sum over n, p, q of
// grad_output[n,k,p,q] * x[n, k/M, p*sh - ph + r*dh, q*sw - pw + s*dw].
//
// Blocks are (channel chunk [x tap chunk], split): block (chunk, split) walks the chunk's tiles split, split + splits,
// ... (tiles as in depthwise.cuh: an input tile with its halo and the matching grad_output tile, both staged by
// cp.async or, on the copy-engine plans (dw::with_tma), as two boxes, the next pair in flight while the current one
// is reduced). Each thread owns one output channel and
// accumulates every filter tap over its register blocks of positions; at the end the block adds its threads'
// sums per (channel, tap) in a fixed order and stores them in its split's row of the workspace, and
// finish_splits (common/reduce.cuh) adds the rows in split order. No atomics: bit-identical run to run.
// Specialised taps (3x3, 5x5, 7x7 at stride 1, dilation 1) all live in registers and each staged input row segment
// is read once per register block; other filters go kTapChunk taps per block (the grid's tap chunks).
#include <cstdlib>
#include <type_traits>

#include "common/reduce.cuh"
#include "kernels.h"
#include "tiled/depthwise.cuh"

namespace conv2d_ext {
namespace {

using dw::StoreWeight;
using dw::Plan;
using dw::TileAt;

struct WgradPlan {
  Plan t;
  int tap_chunks;  // 1 on the specialised path
  SplitPlan split;
};

// Blocks per SM: channels-last, the resident ones (kMinBlocks), one wave, never more blocks than fit at once (H200,
// depthwise_7x7 bf16 channels-last, ms for 1 / 2 / 3 / 4 / 6 blocks per SM: 0.0845 / 0.0736 / 0.0769 / 0.0779 /
// 0.0819; a second wave costs every block's final reduction and split row twice). NCHW keeps two waves, rounded up
// (session 18 measured one wave rounded up there: depthwise_7x7 NCHW backward 0.157 -> 0.171 ms bf16, 0.169 -> 0.186
// fp32; inferred cause: one-channel chunks, 96 x 3 = 288 blocks for 264 places; not re-measured).
constexpr int kBlocksPerSmNHWC = dw::kMinBlocks;
constexpr int kBlocksPerSmNCHW = 2 * dw::kMinBlocks;

WgradPlan plan(const ConvParams& p) {
  WgradPlan w;
  w.t = dw::make_plan(p, dw::Role::kBackwardWeight, dw::max_shared_memory(p.sm));
  if (dw::tma_enabled()) w.t = dw::with_tma(p, w.t, dw::max_shared_memory(p.sm), dw::Role::kBackwardWeight);
  w.tap_chunks = w.t.fast ? 1 : static_cast<int>((p.R * p.S + dw::kTapChunk - 1) / dw::kTapChunk);
  const int64_t items = w.t.chunks * w.tap_chunks;
  const int64_t per_chunk = p.N * w.t.tiles_p * w.t.tiles_q;
  // TUNING (temporary): CONV2D_EXT_DW_WGRAD_PER_SM, blocks per SM (session 18).
  const char* env = std::getenv("CONV2D_EXT_DW_WGRAD_PER_SM");
  const int64_t per_sm = env != nullptr ? std::max(1, std::atoi(env))
                                        : p.channels_last ? kBlocksPerSmNHWC : kBlocksPerSmNCHW;
  const int64_t places = per_sm * num_sms(), chunks = std::max<int64_t>(items, 1);
  const int64_t wanted = p.channels_last ? places / chunks : (places + chunks - 1) / chunks;
  const int64_t splits = std::max<int64_t>(1, std::min<int64_t>({wanted, per_chunk, 65535}));
  w.split = SplitPlan{splits, 0};
  return w;
}

// kChannels > 0: the staged channels of both tiles (t.in.channels == t.grad.channels), known at compile time so that
// the NHWC fast path addresses a staged row's pixels by immediate offsets (as in depthwise.cuh's forward).
// kTma: both tiles staged by the copy engine through xmap and gmap (t.tma), else by cp.async.
template <typename T, bool kNHWC, int kR, int kS, int kChannels = 0, bool kTma = false>
__global__ void __launch_bounds__(dw::kMaxThreads, dw::kMinBlocks)
    wgrad_kernel(const ConvParams p, const Plan t, int tap_chunks, SplitOutput<float, StoreWeight<T>> out,
                 const __grid_constant__ CUtensorMap xmap, const __grid_constant__ CUtensorMap gmap) {
  constexpr bool kFast = kR > 0;
  constexpr int kCols = dw::Cols<kNHWC, kR, int(sizeof(T))>::value;
  constexpr int kRows = dw::Rows<kNHWC, kR, int(sizeof(T))>::value;
  constexpr int kTaps = kFast ? kR * kS : dw::kTapChunk;
  extern __shared__ __align__(128) unsigned char smem[];  // 128: the copy engine's destinations
  T* const xbuf = reinterpret_cast<T*>(smem);  // two staged input tiles, then two grad_output tiles
  T* const gbuf = xbuf + 2 * t.in.elems;
  pdl_launch_dependents();  // finish_splits may start its blocks (they wait for this grid to complete)

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ dy = static_cast<const T*>(p.y);
  const int M = static_cast<int>(p.K / p.C);
  const int S = static_cast<int>(p.S), taps = static_cast<int>(p.R * p.S);
  const int out_rows = static_cast<int>(p.P), out_cols = static_cast<int>(p.Q);
  const int64_t chunk = blockIdx.x / tap_chunks;
  const int tap0 = kFast ? 0 : static_cast<int>(blockIdx.x % tap_chunks) * dw::kTapChunk;
  const int live = kFast ? kTaps : min(dw::kTapChunk, taps - tap0);  // taps of this block that exist
  const int64_t per_chunk = p.N * t.tiles_p * t.tiles_q;
  // Thread -> (output channel co of the chunk, lane among the per_channel threads of that channel).
  const int per_channel = blockDim.x / t.cout;
  const int co = kNHWC ? threadIdx.x % t.cout : threadIdx.x / per_channel;
  const int lane = kNHWC ? threadIdx.x / t.cout : threadIdx.x % per_channel;
  const int ci = co / M;  // staged input channel
  const bool has_channel = chunk * t.cout + co < p.K;
  const int col_blocks = t.tq / kCols, blocks = (t.tp / kRows) * col_blocks;

  // General path: row and column offsets of this block's taps in the staged input tile.
  int tap_row[kFast ? 1 : kTaps], tap_col[kFast ? 1 : kTaps];
  if constexpr (!kFast) {
#pragma unroll
    for (int q = 0; q < kTaps; ++q) {
      const int tap = min(tap0 + q, taps - 1);  // past `live`: computed, never used
      tap_row[q] = (tap / S) * p.dil_h;
      tap_col[q] = (tap % S) * p.dil_w;
    }
  }
  float acc[kTaps];
#pragma unroll
  for (int q = 0; q < kTaps; ++q) acc[q] = 0.0f;

  // kTma: one barrier a buffer pair (dw::tma_barriers); bit b of `phases` is the parity of pair b's next completion.
  uint64_t* bars = nullptr;
  uint32_t phases = 0;
  if constexpr (kTma) {
    bars = dw::tma_barriers(smem, t);
    if (threadIdx.x == 0) tma_prefetch_descriptor(&xmap), tma_prefetch_descriptor(&gmap);
    __syncthreads();
  }

  auto issue = [&](int64_t local, int slot) {
    if (kTma && threadIdx.x != 0) return;
    const TileAt a = dw::tile_at(t, p.N, chunk * per_chunk + local);
    const int row0 = static_cast<int>(a.row * p.stride_h - p.pad_h);
    const int col0 = static_cast<int>(a.col * p.stride_w - p.pad_w);
    if constexpr (kTma) {
      // One arrival (the barrier counts one a phase) for both tiles' bytes.
      mbarrier_arrive_expect_tx(&bars[slot], dw::tile_bytes<T>(t.in) + dw::tile_bytes<T>(t.grad));
      dw::tma_copy_tile(xbuf + slot * t.in.elems, &xmap, &bars[slot], chunk * t.ct, row0, col0, a.n);
      dw::tma_copy_tile(gbuf + slot * t.grad.elems, &gmap, &bars[slot], chunk * t.cout, a.row, a.col, a.n);
    } else {
      dw::stage<T, kNHWC>(xbuf + slot * t.in.elems, t.in, x, a.n, p.C, static_cast<int>(p.H), static_cast<int>(p.W),
                          chunk * t.ct, row0, col0);
      dw::stage<T, kNHWC>(gbuf + slot * t.grad.elems, t.grad, dy, a.n, p.K, out_rows, out_cols, chunk * t.cout,
                          a.row, a.col);
    }
  };

  int64_t local = blockIdx.y;
  if (local < per_chunk) issue(local, 0);
  if constexpr (!kTma) cp_async_commit();
  for (int it = 0; local < per_chunk; ++it, local += gridDim.y) {
    const int64_t next = local + gridDim.y;
    if (!kTma && next < per_chunk) issue(next, (it + 1) & 1);
    if constexpr (kTma) {
      mbarrier_wait(&bars[it & 1], phases >> (it & 1) & 1u);
      phases ^= 1u << (it & 1);
      if (next < per_chunk) issue(next, (it + 1) & 1);  // once this pair has landed, as in the forward
    } else {
      cp_async_commit();
      cp_async_wait<1>();
    }
    __syncthreads();

    const TileAt a = dw::tile_at(t, p.N, chunk * per_chunk + local);
    const T* xs = xbuf + (it & 1) * t.in.elems;
    const T* gs = gbuf + (it & 1) * t.grad.elems;
    const int xshift = dw::stage_shift<kNHWC>(t.in, a.col * p.stride_w - p.pad_w);
    const int gshift = dw::stage_shift<kNHWC>(t.grad, a.col);
    for (int b = lane; has_channel && b < blocks; b += per_channel) {
      const int ib = b / col_blocks, jb = b - ib * col_blocks;
      const int i0 = ib * kRows, j0 = jb * kCols;
      if (a.row + i0 >= out_rows || a.col + j0 >= out_cols) continue;
      float g[kRows][kCols];  // grad_output of the block (zero past P x Q: staged so)
      // Positions past P x Q are skipped, not multiplied by their zero gradient: the staged inputs they meet can lie
      // inside the image, and 0 x inf would put a NaN in a tap PyTorch keeps finite.
      const int rows_in = out_rows - a.row - i0, cols_in = out_cols - a.col - j0;  // positions inside: >= 1 each
#pragma unroll
      for (int i = 0; i < kRows; ++i)
#pragma unroll
        for (int j = 0; j < kCols; ++j) {
          if constexpr (kChannels > 0) g[i][j] = to_acc(gs[((i0 + i) * t.grad.cols + j0 + j) * kChannels + co]);
          else g[i][j] = to_acc(gs[dw::staged_index<kNHWC>(t.grad, co, i0 + i, j0 + j, gshift)]);
        }
      if constexpr (kFast) {
        // Position (i, j) meets staged input (i0 + i + r, j0 + j + s) at tap (r, s).
        const T* base = xs + dw::staged_index<kNHWC>(t.in, ci, i0, j0, xshift);
        const int row_step = kNHWC ? t.in.cols * t.in.channels : t.in.pitch;
        const int col_step = kNHWC ? (kChannels > 0 ? kChannels : t.in.channels) : 1;
        // Blocks wholly inside P x Q (all of them when the register block divides the output) run without the
        // per-position predicates (session 18: with four columns a thread their logic was a third of the body).
        auto reduce = [&](auto edge) {
          constexpr bool kEdge = decltype(edge)::value;
          dw::for_staged_rows<T, kRows, kCols, kR, kS>(base, row_step, col_step,
                                                       [&](int xr, const float (&v)[kCols + kS - 1]) {
#pragma unroll
            for (int i = 0; i < kRows; ++i) {
              const int r = xr - i;
              if (r < 0 || r >= kR) continue;
              // Taps innermost: consecutive FMAs update different accumulators.
#pragma unroll
              for (int j = 0; j < kCols; ++j)
#pragma unroll
                for (int s = 0; s < kS; ++s)
                  if (!kEdge || (i < rows_in && j < cols_in))
                    acc[r * kS + s] = fmaf(g[i][j], v[j + s], acc[r * kS + s]);
            }
          });
        };
        if (rows_in >= kRows && cols_in >= kCols) reduce(std::false_type{});
        else reduce(std::true_type{});
      } else {
#pragma unroll
        for (int i = 0; i < kRows; ++i)
#pragma unroll
          for (int j = 0; j < kCols; ++j) {
            const int row = (i0 + i) * p.stride_h, col = (j0 + j) * p.stride_w;
#pragma unroll
            for (int q = 0; q < kTaps; ++q) {
              if (q < live && i < rows_in && j < cols_in)
                acc[q] = fmaf(g[i][j],
                              to_acc(xs[dw::staged_index<kNHWC>(t.in, ci, row + tap_row[q], col + tap_col[q], xshift)]),
                              acc[q]);
            }
          }
      }
    }
    __syncthreads();  // everyone is done with this tile's buffers before they are refilled
  }
  if constexpr (!kTma) cp_async_wait<0>();
  __syncthreads();

  // Per (channel, tap): the sum of the channel's threads in lane order, through shared memory (the tile buffers,
  // now free), as many taps per pass as fit. Rows of blockDim + 1 floats keep the NCHW reads (stride = row) apart.
  float* const scratch = reinterpret_cast<float*>(smem);
  const int pitch = blockDim.x + 1;
  const int64_t scratch_bytes = kTma ? t.smem - 8 * int64_t(t.stages) : t.smem;  // not the barriers
  const int per_pass = max(1, min(kTaps, static_cast<int>(scratch_bytes / 4 / pitch)));
  for (int t0 = 0; t0 < kTaps; t0 += per_pass) {
#pragma unroll
    for (int q = 0; q < kTaps; ++q)
      if (q >= t0 && q < t0 + per_pass) scratch[(q - t0) * pitch + threadIdx.x] = acc[q];
    __syncthreads();
    const int n = min(per_pass, kTaps - t0);
    for (int e = threadIdx.x; e < t.cout * n; e += blockDim.x) {
      const int c = e % t.cout, q = e / t.cout;
      float sum = 0.0f;
      for (int l = 0; l < per_channel; ++l)
        sum += scratch[q * pitch + (kNHWC ? l * t.cout + c : c * per_channel + l)];
      const int64_t k = chunk * t.cout + c;
      if (k < p.K && t0 + q < live) out.put(k * taps + tap0 + t0 + q, sum);
    }
    __syncthreads();
  }
}

template <typename T, bool kNHWC, int kR, int kS, int kChannels = 0, bool kTma = false>
void launch_kernel(const ConvParams& p, const WgradPlan& w, void* workspace, cudaStream_t stream) {
  constexpr auto kernel = wgrad_kernel<T, kNHWC, kR, kS, kChannels, kTma>;
  dw::allow_shared_memory<kernel>(w.t.smem);
  const auto out = split_output<float>(w.split, p.K * p.R * p.S, workspace, dw::store_weight<T>(p));
  const dim3 grid(static_cast<unsigned>(w.t.chunks * w.tap_chunks), static_cast<unsigned>(w.split.splits));
  CUtensorMap xmap{}, gmap{};
  if (kTma) {
    xmap = dw::staged_map<T>(p, w.t.in, p.x, p.C, p.H, p.W);
    gmap = dw::staged_map<T>(p, w.t.grad, p.y, p.K, p.P, p.Q);
  }
  kernel<<<grid, w.t.threads, w.t.smem, stream>>>(p, w.t, w.tap_chunks, out, xmap, gmap);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  finish_splits(out, w.split, stream);
}

// The four-column tiles (fp16/bf16 channels-last 5x5 and 7x7) of kFixedChannels staged channels have their own kernel.
template <typename T, bool kNHWC, int kR>
void launch_fast(const ConvParams& p, const WgradPlan& w, void* workspace, cudaStream_t stream) {
  if constexpr (dw::Cols<kNHWC, kR, int(sizeof(T))>::value == 4) {
    if (w.t.in.channels == dw::kFixedChannels && w.t.grad.channels == dw::kFixedChannels) {
      if (w.t.tma) return launch_kernel<T, kNHWC, kR, kR, dw::kFixedChannels, true>(p, w, workspace, stream);
      return launch_kernel<T, kNHWC, kR, kR, dw::kFixedChannels>(p, w, workspace, stream);
    }
  }
  TORCH_CHECK(!w.t.tma, "conv2d_ext: tiled:depthwise: no copy-engine kernel for this plan");
  launch_kernel<T, kNHWC, kR, kR>(p, w, workspace, stream);
}

template <typename T, bool kNHWC>
void launch_typed(const ConvParams& p, const WgradPlan& w, void* workspace, cudaStream_t stream) {
  if (w.t.fast && p.R == 3) launch_fast<T, kNHWC, 3>(p, w, workspace, stream);
  else if (w.t.fast && p.R == 5) launch_fast<T, kNHWC, 5>(p, w, workspace, stream);
  else if (w.t.fast && p.R == 7) launch_fast<T, kNHWC, 7>(p, w, workspace, stream);
  else {
    TORCH_CHECK(!w.t.tma, "conv2d_ext: tiled:depthwise: no copy-engine kernel for this plan");
    launch_kernel<T, kNHWC, 0, 0>(p, w, workspace, stream);
  }
}

std::string can_implement(const ConvParams& p) { return dw::can_implement(p, dw::Role::kBackwardWeight); }

}  // namespace

int64_t dw::wgrad_workspace_bytes(const ConvParams& p) {
  return split_workspace_bytes(plan(p).split, p.K * p.R * p.S, p.dtype);
}

void dw::launch_wgrad(const ConvParams& p, void* workspace, cudaStream_t stream) {
  // An empty batch still runs: its blocks reduce nothing and store zeros.
  const WgradPlan w = plan(p);
  TORCH_CHECK(w.t.smem > 0, "conv2d_ext: tiled:depthwise: no tile plan for this problem");
  dispatch_float_dtype(p.dtype, "tiled:depthwise", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.channels_last) launch_typed<T, true>(p, w, workspace, stream);
    else launch_typed<T, false>(p, w, workspace, stream);
  });
}

const KernelInfo backward_weight_tiled_depthwise{Pass::kBackwardWeight, "tiled", "depthwise", &can_implement,
                                                 &dw::wgrad_workspace_bytes, &dw::launch_wgrad};

}  // namespace conv2d_ext
