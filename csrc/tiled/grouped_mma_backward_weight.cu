// Backward-weight, tiled family, grouped configuration on tensor cores (fp16/bf16, and fp32 as TF32):
// grad_weight[g*K/g + k, c, r, s] = sum over n, p, q of grad_output[n, g*K/g + k, p, q] *
// x[n, g*C/g + c, p*sh - ph + r*dh, q*sw - pw + s*dw], for narrow groups whose input channels fill 16-byte rows
// (C/groups a multiple of 8 fp16/bf16 or 4 fp32, at most 64 bytes; K/groups <= 16).
//
// Per group it is a GEMM of M = the forward's reduction rows (tap, channel), N = K/groups, reduced over output
// pixels. The staging is the forward's (grouped_mma.cuh: the input tile with its halo in 16-byte planes) plus the
// tile's grad_output, pixel-major in 16-byte planes of 8 (fp32: 4) channels. Pixels past the tile or the image
// point at a zero row and have zero grad_output, so nothing there reaches the sums (no 0 x inf).
// - fp16/bf16: mma m16n8k16 with k = 16 pixels; both operands through ldmatrix.trans (stored rows are pixels): A's
//   lanes point at their pixel's tap-shifted input row of the segment (two segments = 16 reduction rows per
//   m-tile), B's at the pixel's grad_output row.
// - TF32: mma m16n8k8 with k = 8 pixels (four segments of 4 channels = 16 reduction rows per m-tile); ldmatrix has
//   no 32-bit transpose, so each lane reads its fragment words with 32-bit shared loads: A (row, pixel) = the
//   pixel's tap-shifted input row, word (row % 4) of segment row / 4; B (pixel, channel) likewise from grad_output.
//
// Block (group block x, split y): every warp keeps its (group, m-tile) jobs' accumulators across the split's
// (image, tile) items, double-buffered like the forward; at the end the block's sums go to its split's row of the
// workspace and finish_splits (common/reduce.cuh) adds the rows in split order: bit-identical run to run.
#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "kernels.h"
#include "common/reduce.cuh"
#include "tiled/grouped_mma.cuh"

namespace conv2d_ext {
namespace gmma {
namespace {

constexpr int64_t kWgradSmemBudget = 40 * 1024;  // per block, fp16/bf16 (fp32: twice): 4 groups of 3x3 with 8 channels
// (group, m-tile) jobs per warp, at most: accumulators max_jobs * nt * 4 (TF32 with two n8 tiles keeps fewer, its
// A offsets taking two registers a job; 128 registers a thread at two blocks per SM).
constexpr int max_jobs(bool tf32, int nt) { return tf32 && nt == 2 ? 6 : 8; }
// fp16/bf16 plans of one n8 tile and at most kFewJobs jobs per warp run on a variant with that many accumulators:
// 63 registers, four blocks per SM instead of two. Their groups per block are the most that give each warp at most
// two jobs (H200, grouped_g32 bf16: 3 groups, 15 of 16 job slots; with four jobs a warp, 80 registers and three
// blocks per SM, 0.035 / 0.052 ms channels-last / NCHW, against 4 groups on the eight-job variant 0.035 / 0.058).
// Filters of more than 16 m-tiles (7x7 over 8 channels: 25) take the eight-job variant. TF32 stays on it too
// (0.062 / 0.090 against 0.071 / 0.103 ms with four jobs).
constexpr int kFewJobs = 2;
constexpr bool few_jobs_variant(int esize, int nt) { return esize == 2 && nt == 1; }

// Writes the total of grad_weight element e = ((g*K/g + k) * C/g + c) * R*S + r*S + s.
template <typename T>
struct StoreGroupWeight {
  T* w;
  int64_t stride[4];
  int cg, RS, S;
  __device__ __forceinline__ void operator()(int64_t e, float total) const {
    const int tap = int(e % RS);
    const int64_t kc = e / RS;
    const int c = int(kc % cg);
    const int64_t k = kc / cg;
    const int r = tap / S, s = tap - r * S;
    w[k * stride[0] + c * stride[1] + r * stride[2] + s * stride[3]] = from_acc<T>(total);
  }
};

struct WPlan {
  Geom g;                     // the forward's geometry of x (tiles, halo, planes)
  int mtiles;                 // m-tiles of 16 reduction rows per group: 2 segments (fp16/bf16) or 4 (fp32) each
  const void* dy;
  int64_t dy_stride[4];
  int vec_dy;                 // grad_output read as 16-byte cp.async pieces (NHWC, aligned, whole segments)
  int dsegs;                  // 16-byte planes of grad_output per group: ceil(K/groups / 8) fp16/bf16, fp32 whole
                              // n8 tiles (2 or 4 planes, those past K/groups zero)
  int dy_offset;              // bytes from a buffer's start to its grad_output planes
  int pix_offset;             // bytes from a buffer's start to its pixel table (one int per grad_output row)
  int buffer_bytes, zero_offset, smem;
  int jobs_per_warp;
  int splits;
  int overlap;  // launched as the programmatic dependent of this call's backward-data kernel (after_backward_data),
                // which it waits for only at its end: its completion still implies that kernel's (common/pdl.cuh)
  int dy_step, dy_step_y, dy_step_x;  // vec_dy: kThreads / (gb * dsegs) threads per plane (the rest stage nothing),
                                      // the tile pixels between a thread's copies as (rows, columns); else 0
  FastDivmod div_dplanes, div_rows, div_dsegs;  // by gb * dsegs, chunks * 16, dsegs (stage_dy)
};

inline WPlan wgrad_plan(const ConvParams& p, int gb = 0) {
  WPlan t{};
  const int64_t max_smem = dw::max_shared_memory(p.sm);
  const int esize = p.element_bytes(), e = 16 / esize;
  // Fit the groups per block: each group costs its x planes and grad_output planes, twice (double buffering).
  Geom g = plan(p, Role::kForward, esize, max_smem, 1);
  if (g.smem == 0) return t;
  const int nt = p.K_per_group() > 8 ? 2 : 1;
  const int dsegs = esize == 4 ? 2 * nt : (int(p.K_per_group()) + 7) / 8;
  const int mtiles = ceil_div_i(int64_t(g.R) * g.S * g.segs, 16 / e);
  const int64_t per_group = 2 * (int64_t(g.segs) * g.pitch * 16 + int64_t(dsegs) * g.chunks * 16 * 16);
  const int64_t pix_bytes = ((g.chunks * 16 * 4 + 15) / 16) * 16;  // the pixel table
  const int64_t fixed = 16 + 2 * pix_bytes;                         // the zero row, the tables
  if (per_group + fixed > max_smem) return t;
  const int jobs_cap = max_jobs(esize == 4, nt);
  const int most_by_jobs = std::max(1, kWarps * jobs_cap / mtiles);
  const int64_t budget = kWgradSmemBudget * esize / 2;
  if (gb <= 0) {
    gb = int(std::max<int64_t>(1, std::min<int64_t>(kMaxGroupsPerBlock, (budget - fixed) / per_group)));
    if (few_jobs_variant(esize, nt)) gb = std::min(gb, std::max(1, 2 * kWarps / mtiles));
  }
  gb = std::min({gb, most_by_jobs, p.groups});
  if (int64_t(gb) * per_group + fixed > max_smem) gb = 1;
  if (mtiles > kWarps * jobs_cap) return t;
  g = plan(p, Role::kForward, esize, max_smem, gb);
  t.g = g;
  t.mtiles = mtiles;
  t.dy = p.y;
  for (int i = 0; i < 4; ++i) t.dy_stride[i] = p.y_stride[i];
  t.dsegs = dsegs;
  const auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  t.vec_dy = p.channels_last && p.K_per_group() % e == 0 && aligned(p.y) && p.y_stride[1] == 1 &&
             p.y_stride[0] % e == 0 && p.y_stride[2] % e == 0 && p.y_stride[3] % e == 0;
  t.dy_offset = g.gb * g.segs * g.pitch * 16;
  t.pix_offset = t.dy_offset + g.gb * dsegs * g.chunks * 16 * 16;
  t.buffer_bytes = int(t.pix_offset + pix_bytes);
  t.zero_offset = 2 * t.buffer_bytes;
  t.smem = t.zero_offset + 16;
  t.jobs_per_warp = (g.gb * mtiles + kWarps - 1) / kWarps;
  if (t.vec_dy) {
    t.dy_step = kThreads / (g.gb * dsegs);  // at most 32 planes
    t.dy_step_y = t.dy_step / g.tile_w, t.dy_step_x = t.dy_step % g.tile_w;
  }
  t.div_dplanes = FastDivmod(unsigned(g.gb * dsegs));
  t.div_rows = FastDivmod(unsigned(g.chunks * 16));
  t.div_dsegs = FastDivmod(unsigned(dsegs));
  return t;
}

// Stages the grad_output of the tile at `at` for the block's groups: plane (group, 16-byte segment of channels) x
// tile pixel m (16 bytes each), zeros past the tile, the image and the group's channels.
template <typename T>
__device__ __forceinline__ void stage_dy(const WPlan& t, const TileAt& at, int g0, uint32_t planes) {
  const Geom& g = t.g;
  const int rows = g.chunks * 16, nplanes = g.gb * t.dsegs, items = nplanes * rows;
  const int tile_pixels = g.tile_h * g.tile_w;
  const T* dy = static_cast<const T*>(t.dy);
  constexpr int kE = Vec16<T>::value;
  if (t.dy_step > 0) {  // each thread keeps one plane and walks the tile: down one column or by a fixed step
    unsigned first, plane, grp, seg;
    t.div_dplanes.divmod(threadIdx.x, first, plane);
    if (int(first) >= t.dy_step) return;  // the threads past dy_step * planes
    t.div_dsegs.divmod(plane, grp, seg);
    const bool group_ok = g0 + int(grp) < g.groups && int(seg) * kE < g.kg;
    const T* src0 = dy + at.n * t.dy_stride[0] + (int64_t(g0 + int(grp)) * g.kg + seg * kE) * t.dy_stride[1];
    const uint32_t dst0 = planes + uint32_t(int(plane) * rows * 16);
    const unsigned s2 = unsigned(t.dy_stride[2]), s3 = unsigned(t.dy_stride[3]);  // 32-bit within an image
    if (t.dy_step >= g.tile_w) {  // by columns (dy_step_y threads per column), then zeros in the rows past the tile
      stage_column(dst0, src0, dy, first, g.div_tile_w, g.tile_w, g.tile_h, t.dy_step_y, at.oh0, at.ow0, g.Hout, g.Wout,
                   s2, s3, group_ok);
      for (int m = tile_pixels + int(first); m < rows; m += t.dy_step) cp_async_16(dst0 + uint32_t(m * 16), dy, false);
      return;
    }
    unsigned ty, tx;
    g.div_tile_w.divmod(first, ty, tx);
    for (int m = int(first); m < rows; m += t.dy_step) {
      const unsigned oh = unsigned(at.oh0) + ty, ow = unsigned(at.ow0) + tx;
      const bool valid = group_ok && m < tile_pixels && oh < unsigned(g.Hout) && ow < unsigned(g.Wout);
      cp_async_16(dst0 + uint32_t(m * 16), valid ? src0 + int(oh * s2 + ow * s3) : dy, valid);
      tx += unsigned(t.dy_step_x), ty += unsigned(t.dy_step_y);
      if (tx >= unsigned(g.tile_w)) tx -= unsigned(g.tile_w), ++ty;
    }
    return;
  }
  for (int i = threadIdx.x; i < items; i += kThreads) {
    unsigned planeu, mu, grpu, segu, ty, tx;
    if (g.channels_last) t.div_dplanes.divmod(unsigned(i), mu, planeu);
    else t.div_rows.divmod(unsigned(i), planeu, mu);
    t.div_dsegs.divmod(planeu, grpu, segu);
    g.div_tile_w.divmod(mu, ty, tx);
    const int plane = int(planeu), m = int(mu), grp = int(grpu), seg = int(segu);
    const int oh = at.oh0 + int(ty), ow = at.ow0 + int(tx);
    const bool valid = m < tile_pixels && oh < g.Hout && ow < g.Wout && g0 + grp < g.groups && seg * kE < g.kg;
    const int64_t k0 = int64_t(g0 + grp) * g.kg + seg * kE;
    const T* src = dy + at.n * t.dy_stride[0] + k0 * t.dy_stride[1] + int64_t(oh) * t.dy_stride[2] +
                   int64_t(ow) * t.dy_stride[3];
    const uint32_t dst = planes + uint32_t((plane * rows + m) * 16);
    if (t.vec_dy) {
      cp_async_16(dst, valid ? src : dy, valid);
      continue;
    }
    uint32_t words[4] = {0, 0, 0, 0};
    if (valid) {
#pragma unroll
      for (int e = 0; e < kE; ++e) {
        if (seg * kE + e >= g.kg) continue;
        if constexpr (sizeof(T) == 4) words[e] = __float_as_uint(__ldg(src + e * t.dy_stride[1]));
        else words[e / 2] |= uint32_t(__ldg(reinterpret_cast<const unsigned short*>(src + e * t.dy_stride[1])))
                             << (16 * (e & 1));
      }
    }
    st_shared_v4(dst, make_uint4(words[0], words[1], words[2], words[3]));
  }
}

// Stages item (image, tile) `item` into the buffer at byte `buffer` of shared memory (`smem_base` its shared-window
// address): the input tile with its halo, the grad_output tile and the pixel table.
template <typename T>
__device__ __forceinline__ void stage_item(const WPlan& t, int64_t item, int g0, unsigned char* smem, uint32_t smem_base,
                                           int buffer) {
  const Geom& g = t.g;
  const TileAt at = tile_at(g, item);
  const T* in = static_cast<const T*>(g.in);
  if (g.vec_in) stage_tile<T, true>(g, in, at, g0, smem_base + buffer);
  else stage_tile<T, false>(g, in, at, g0, smem_base + buffer);
  stage_dy<T>(t, at, g0, smem_base + buffer + t.dy_offset);
  // The pixel table (fill_pixel_table: -1 past the tile and the image), so the k-loops read one int per lane and step.
  fill_pixel_table(g, g.chunks * 16, &at, -1, reinterpret_cast<int*>(smem + buffer + t.pix_offset));
}

// A lane's A row for tile pixel m: the pixel's staged input row (tap 0) in `planes`, or the zero row past the tile
// and the image; `mask` keeps a job's offset (all ones) or drops it (zero) so the zero row stays the zero row.
struct PixelRow {
  uint32_t base, mask;
};

__device__ __forceinline__ PixelRow pixel_row(const int* table, int m, uint32_t planes, uint32_t zero_row) {
  const int off = table[m];
  return off >= 0 ? PixelRow{planes + uint32_t(off), ~0u} : PixelRow{zero_row, 0u};
}

template <typename T, int kNt, int kMaxJobs>
__global__ void __launch_bounds__(kThreads, kMaxJobs <= kFewJobs ? 4 : 2)
    wgrad_kernel(const WPlan t, SplitOutput<float, StoreGroupWeight<T>> out) {
  const Geom& g = t.g;
  extern __shared__ __align__(16) unsigned char smem[];
  const uint32_t smem_base = smem_addr(smem);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g0 = int(blockIdx.x) * g.gb;
  const int64_t total = int64_t(g.N) * g.tiles;
  pdl_launch_dependents();  // finish_splits may start its blocks (they wait for this grid to complete)

  if (tid < 4) reinterpret_cast<uint32_t*>(smem + t.zero_offset)[tid] = 0;
  int64_t item = blockIdx.y;
  if (item < total) stage_item<T>(t, item, g0, smem, smem_base, 0);
  cp_async_commit();

  // This warp's jobs: (group, m-tile) = warp * jobs_per_warp + i, m-tile fastest.
  const int jobs = g.gb * t.mtiles;
  const int job0 = warp * t.jobs_per_warp;
  const int my_jobs = min(t.jobs_per_warp, jobs - job0);  // this warp's, at most kMaxJobs (the plan's cap)
  float acc[kMaxJobs][kNt][4];
#pragma unroll
  for (int j = 0; j < kMaxJobs; ++j)
#pragma unroll
    for (int u = 0; u < kNt; ++u) acc[j][u][0] = acc[j][u][1] = acc[j][u][2] = acc[j][u][3] = 0.f;

  // A's lanes: pixel (lane & 7) + 8 * (lane >> 4) of a chunk, segment 2 * m-tile + ((lane >> 3) & 1); B's lanes:
  // pixel (lane & 7) + 8 * ((lane >> 3) & 1), grad_output plane lane >> 4.
  const int a_pix = (lane & 7) + 8 * (lane >> 4), a_hi = (lane >> 3) & 1;
  const int b_pix = (lane & 7) + 8 * ((lane >> 3) & 1), b_plane = kNt == 2 ? lane >> 4 : 0;
  const uint32_t zero_row = smem_base + t.zero_offset;
  // Per job, fixed for the kernel: A's offset in a buffer (the group's planes plus the m-tile's segment shift; TF32:
  // a_off for the lane's rows gid, a_off2 for rows gid + 8, each with the lane's word), B's in the buffer's
  // grad_output planes (chunk 0) for the first job, and in `fresh` which jobs start a group (B fragments reloaded;
  // jobs are m-tile fastest, so each fresh job after the first is the next group).
  constexpr bool kTf32 = sizeof(T) == 4;
  const int gid = lane >> 2, tq = lane & 3;
  uint32_t a_off[kMaxJobs], a_off2[kMaxJobs];
  unsigned fresh = 0;
  const int rows = g.chunks * 16;                                     // staged grad_output rows (pixels) per plane
  const uint32_t b_group = uint32_t(t.dsegs * rows * 16);             // bytes between groups' grad_output planes
  uint32_t b_first = 0;
#pragma unroll
  for (int j = 0; j < kMaxJobs; ++j) {
    const int job = job0 + j;
    a_off[j] = a_off2[j] = 0;
    if (j >= my_jobs) continue;
    const int grp = job / t.mtiles, mt = job - grp * t.mtiles;
    const uint32_t group_planes = uint32_t(grp * g.segs * g.pitch * 16);
    if constexpr (kTf32) {
      a_off[j] = group_planes + uint32_t(segment_offset(g, 4 * mt + (gid >> 2)) + (gid & 3) * 4);
      a_off2[j] = group_planes + uint32_t(segment_offset(g, 4 * mt + 2 + (gid >> 2)) + (gid & 3) * 4);
      if (j == 0) b_first = uint32_t(((grp * t.dsegs + (gid >> 2)) * rows + tq) * 16 + (gid & 3) * 4);
    } else {
      a_off[j] = group_planes + uint32_t(segment_offset(g, 2 * mt + a_hi));
      if (j == 0) b_first = uint32_t(((grp * t.dsegs + b_plane) * rows + b_pix) * 16);
    }
    if (j == 0 || mt == 0) fresh |= 1u << j;
  }
  int buf = 0;
  for (; item < total; item += gridDim.y, buf ^= 1) {
    const int64_t next = item + gridDim.y;
    if (next < total) stage_item<T>(t, next, g0, smem, smem_base, (buf ^ 1) * t.buffer_bytes);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const uint32_t planes = smem_base + buf * t.buffer_bytes;
    const int* pix_table = reinterpret_cast<const int*>(smem + buf * t.buffer_bytes + t.pix_offset);
    const uint32_t dplanes = planes + t.dy_offset;
    if constexpr (kTf32) {
      // Plain C++ shared loads (not asm volatile), so the compiler can hoist them above the previous mma.
      const auto lds = [&](uint32_t addr) { return *reinterpret_cast<const uint32_t*>(smem + (addr - smem_base)); };
      for (int k8 = 0; k8 < 2 * g.chunks; ++k8) {  // 8 pixels per mma: the lane's pixel columns tq and tq + 4
        const PixelRow p0 = pixel_row(pix_table, k8 * 8 + tq, planes, zero_row);
        const PixelRow p1 = pixel_row(pix_table, k8 * 8 + tq + 4, planes, zero_row);
        uint32_t baddr = dplanes + uint32_t(k8 * 8 * 16) + b_first - b_group;
        uint32_t b[kNt][2] = {};
#pragma unroll
        for (int j = 0; j < kMaxJobs; ++j) {
          if (j >= my_jobs) break;
          if (fresh & (1u << j)) {  // grad_output words (pixel tq / tq + 4, channel gid of each n8 tile)
            baddr += b_group;
#pragma unroll
            for (int u = 0; u < kNt; ++u) {
              b[u][0] = lds(baddr + uint32_t(u * 2 * rows * 16));
              b[u][1] = lds(baddr + uint32_t(u * 2 * rows * 16 + 4 * 16));
            }
          }
          uint32_t a[4];
          a[0] = lds(p0.base + (a_off[j] & p0.mask));
          a[1] = lds(p0.base + (a_off2[j] & p0.mask));
          a[2] = lds(p1.base + (a_off[j] & p1.mask));
          a[3] = lds(p1.base + (a_off2[j] & p1.mask));
#pragma unroll
          for (int u = 0; u < kNt; ++u) Mma<T>::run(acc[j][u], a, b[u]);
        }
      }
    } else {
      for (int c = 0; c < g.chunks; ++c) {
        const PixelRow pr = pixel_row(pix_table, c * 16 + a_pix, planes, zero_row);  // the lane's A pixel
        uint32_t baddr = dplanes + uint32_t(c * 16 * 16) + b_first - b_group;
        uint32_t b[kNt][2] = {};
#pragma unroll
        for (int j = 0; j < kMaxJobs; ++j) {
          if (j >= my_jobs) break;
          if (fresh & (1u << j)) {  // grad_output fragments of this group's 16 pixels
            baddr += b_group;
            if constexpr (kNt == 2) {
              uint32_t r4[4];
              ldmatrix_x4_trans(r4, baddr);
              b[0][0] = r4[0], b[0][1] = r4[1], b[1][0] = r4[2], b[1][1] = r4[3];
            } else {
              ldmatrix_x2_trans(b[0], baddr);
            }
          }
          uint32_t a[4];
          ldmatrix_x4_trans(a, pr.base + (a_off[j] & pr.mask));
#pragma unroll
          for (int u = 0; u < kNt; ++u) Mma<T>::run(acc[j][u], a, b[u]);
        }
      }
    }
    __syncthreads();  // this buffer is free for the tile after next
  }
  cp_async_wait<0>();

  // The block's sums: lane (gid, tq) holds reduction rows gid and gid + 8 of each m-tile (16 rows: segments of
  // kE channels), output channels 2 tq and 2 tq + 1 of each n8 tile.
  constexpr int kE = Vec16<T>::value;
  const int RS = g.R * g.S;
#pragma unroll
  for (int j = 0; j < kMaxJobs; ++j) {
    const int job = job0 + j;
    if (j >= my_jobs) break;
    const int grp = job / t.mtiles, mt = job - grp * t.mtiles;
    if (g0 + grp >= g.groups) break;
#pragma unroll
    for (int hi = 0; hi < 2; ++hi) {
      const int row = 16 * mt + 8 * hi + gid;  // the reduction row: segment row / kE, channel row % kE in it
      const int seg = row / kE;
      const int tap = seg / g.segs;
      const int c = (seg - tap * g.segs) * kE + row % kE;
      if (tap >= RS || c >= g.cg) continue;
#pragma unroll
      for (int u = 0; u < kNt; ++u)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int k = u * 8 + 2 * tq + e;
          if (k < g.kg) out.put((int64_t((g0 + grp) * g.kg + k) * g.cg + c) * RS + tap, acc[j][u][2 * hi + e]);
        }
    }
  }
  if (t.overlap) pdl_wait();  // backward-data's kernel complete before this grid is (finish_splits waits for it)
}

std::string wgrad_can_implement(const ConvParams& p) {
  if (p.dtype == DType::kFloat64) return "float64 runs on the direct family";
  if (p.dtype == DType::kFloat32 && !p.allow_tf32)
    return "exact fp32 (TF32 disallowed) runs on CUDA cores, not tensor cores";
  if (p.sm < 80) return "needs sm_80 or newer (mma.sync)";
  if (p.groups == 1) return "groups == 1 (not grouped)";
  if (p.groups == p.C) return "depthwise (groups == input channels) runs on tiled:depthwise";
  if (p.dtype == DType::kFloat32 && (p.C_per_group() % 4 != 0 || p.C_per_group() > 16))
    return "C/groups not a multiple of 4 up to 16 (fp32)";
  if (p.dtype != DType::kFloat32 && (p.C_per_group() % 8 != 0 || p.C_per_group() > 32))
    return "C/groups not a multiple of 8 up to 32";
  if (p.K_per_group() > kMaxOut) return "more than 16 output channels per group (K/groups)";
  std::string why = can_implement_sizes(p);
  if (!why.empty()) return why;
  const WPlan t = wgrad_plan(p, 1);
  if (t.smem == 0) return "one group's tiles need more shared memory than this GPU gives a block, or too many taps";
  if (t.g.group_blocks > 65535) return "too many groups for one grid";
  return "";
}

// TUNING (temporary): groups per block and splits from the environment.
WPlan launch_wplan(const ConvParams& p) {
  const char* env_gb = std::getenv("CONV2D_EXT_GMMA_GB");
  return wgrad_plan(p, env_gb ? std::atoi(env_gb) : 0);
}

template <typename T, int kNt, int kJobs>
SplitPlan splits_of(const WPlan& t) {
  constexpr auto kernel = wgrad_kernel<T, kNt, kJobs>;
  const int64_t items = int64_t(t.g.N) * t.g.tiles;
  int64_t splits = (dw::resident_blocks<kernel>(kThreads, t.smem) + t.g.group_blocks - 1) / t.g.group_blocks;
  if (const char* env = std::getenv("CONV2D_EXT_GMMA_SPLITS")) splits = std::atoi(env);
  splits = std::max<int64_t>(1, std::min<int64_t>({splits, items, 65535}));
  return SplitPlan{splits, 0};
}

int64_t elements_of(const ConvParams& p) { return p.K * p.C_per_group() * p.R * p.S; }

template <typename T, int kNt, int kJobs>
int64_t workspace_typed(const ConvParams& p, const WPlan& t) {
  return split_workspace_bytes(splits_of<T, kNt, kJobs>(t), elements_of(p), p.dtype);
}

template <typename T, int kNt, int kJobs>
void launch_typed(const ConvParams& p, const WPlan& t, void* workspace, cudaStream_t stream) {
  constexpr auto kernel = wgrad_kernel<T, kNt, kJobs>;
  dw::allow_shared_memory<kernel>(t.smem);
  const SplitPlan sp = splits_of<T, kNt, kJobs>(t);
  const StoreGroupWeight<T> store{static_cast<T*>(p.w), {p.w_stride[0], p.w_stride[1], p.w_stride[2], p.w_stride[3]},
                                  int(p.C_per_group()), int(p.R * p.S), int(p.S)};
  const auto out = split_output<float>(sp, elements_of(p), workspace, store);
  // After this call's backward-data (the op of both passes), its blocks fill the SMs that kernel's last wave leaves
  // idle (session 20, H200, grouped_g32 backward, graph time: fp16 NHWC 0.0504 -> 0.0458 ms, NCHW 0.0744 -> 0.0691,
  // bf16 likewise, TF32 -4 us; waiting at the start instead: -0.3 us).
  WPlan u = t;
  u.overlap = p.after_backward_data ? 1 : 0;
  const dim3 grid(static_cast<unsigned>(t.g.group_blocks), static_cast<unsigned>(sp.splits));
  if (u.overlap) launch_dependent(kernel, grid, dim3(kThreads), size_t(t.smem), stream, u, out);
  else kernel<<<grid, kThreads, t.smem, stream>>>(u, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  finish_splits(out, sp, stream);
}

// Calls f(TypeTag<T>, n8 tiles, jobs per warp at most) for the kernel that runs `t`.
// (With two n8 tiles the few-jobs variant would spill at 64 registers.)
template <typename T, int kNt, typename F>
void dispatch_jobs(const WPlan& t, F&& f) {
  constexpr int kMost = max_jobs(sizeof(T) == 4, kNt);
  constexpr int kFew = few_jobs_variant(int(sizeof(T)), kNt) ? kFewJobs : kMost;
  if (t.jobs_per_warp <= kFew) f(TypeTag<T>{}, std::integral_constant<int, kNt>{}, std::integral_constant<int, kFew>{});
  else f(TypeTag<T>{}, std::integral_constant<int, kNt>{}, std::integral_constant<int, kMost>{});
}

template <typename F>
void dispatch(const ConvParams& p, const WPlan& t, F&& f) {
  const bool two = p.K_per_group() > 8;
  if (p.dtype == DType::kFloat32) {
    if (two) dispatch_jobs<float, 2>(t, f);
    else dispatch_jobs<float, 1>(t, f);
  } else if (p.dtype == DType::kFloat16) {
    if (two) dispatch_jobs<__half, 2>(t, f);
    else dispatch_jobs<__half, 1>(t, f);
  } else {
    if (two) dispatch_jobs<__nv_bfloat16, 2>(t, f);
    else dispatch_jobs<__nv_bfloat16, 1>(t, f);
  }
}

int64_t wgrad_workspace_bytes(const ConvParams& p) {
  const WPlan t = launch_wplan(p);
  int64_t bytes = 0;
  dispatch(p, t, [&](auto tag, auto nt, auto jobs) {
    bytes = workspace_typed<typename decltype(tag)::type, decltype(nt)::value, decltype(jobs)::value>(p, t);
  });
  return bytes;
}

void wgrad_launch(const ConvParams& p, void* workspace, cudaStream_t stream) {
  const WPlan t = launch_wplan(p);
  TORCH_CHECK(t.smem > 0, "conv2d_ext: tiled:grouped_mma: no backward-weight plan for this problem");
  // An empty batch still runs: one split whose blocks reduce nothing and store zeros.
  dispatch(p, t, [&](auto tag, auto nt, auto jobs) {
    launch_typed<typename decltype(tag)::type, decltype(nt)::value, decltype(jobs)::value>(p, t, workspace, stream);
  });
}

}  // namespace
}  // namespace gmma

const KernelInfo backward_weight_tiled_grouped_mma{Pass::kBackwardWeight, "tiled", "grouped_mma",
                                                   &gmma::wgrad_can_implement, &gmma::wgrad_workspace_bytes,
                                                   &gmma::wgrad_launch};

}  // namespace conv2d_ext
