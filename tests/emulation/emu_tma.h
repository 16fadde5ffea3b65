// Hopper's copy engine (TMA), mbarriers, wgmma, ldmatrix / stmatrix and named barriers on the CPU emulator (emu.h,
// which includes this at its end). The production helpers (common/tma.cuh, tma.cu, wgmma.cuh, mma.cuh) call these
// under CONV2D_EXT_EMULATION.
//
// - Tensor maps: encode_tensor_map stores the cuTensorMapEncodeTiled parameters in the 128-byte CUtensorMap (our own
//   format), after the driver's checks (16-byte aligned base and strides, box sizes, the box's inner bytes within the
//   swizzle span).
// - TMA loads are synchronous: the box is copied at issue (out-of-bounds elements zero, element strides, the swizzle
//   of the shared-window address bits), then its bytes complete on the mbarrier. A box whose innermost start is not
//   a multiple of 16 bytes aborts (an H200 faults). Stores: the reverse, clipped to the tensor.
// - mbarriers: state in a side table keyed by the shared-window address, a magic word in the barrier's 8 bytes (a
//   barrier overwritten while in use aborts). A thread whose wait fails yields (State::kYield); the block aborts with
//   "deadlock" when only spinning threads are left and nothing they could wait for changes.
// - wgmma (shared-memory operands): each thread computes its own accumulators, deferred to the wgmma.wait_group that
//   retires the group (operands are read as late as the kernel allows: a stage released or overwritten before its
//   MMAs were waited for gives wrong products). Register-A TF32: a warpgroup-collective at issue.
#pragma once

#include <cuda.h>

#include <deque>
#include <map>

namespace emu {

// ---- What the kernels used (EMU_TRACE=1: the harnesses print it per run): which paths a case went through.
struct Trace {
  long tma_loads = 0, tma_loads_swizzled = 0, tma_loads_strided = 0, tma_stores = 0, wgmma_ss = 0, wgmma_mn = 0,
       wgmma_rs = 0, ldmatrix = 0, ldmatrix_trans = 0, stmatrix = 0, stmatrix_trans = 0, named = 0, launches = 0;
  void print(const char* what) const {
    std::printf("  trace %s: launches %ld, TMA loads %ld (swizzled %ld, element-strided %ld), TMA stores %ld, wgmma "
                "ss %ld (MN-major operand %ld), rs %ld, ldmatrix %ld (trans %ld), stmatrix %ld (trans %ld), named "
                "barriers %ld\n", what, launches, tma_loads, tma_loads_swizzled, tma_loads_strided, tma_stores,
                wgmma_ss, wgmma_mn, wgmma_rs, ldmatrix, ldmatrix_trans, stmatrix, stmatrix_trans, named);
  }
};
inline Trace& trace() {
  static Trace t;
  return t;
}

// ---- Per-block state.

struct Mbarrier {
  int count = 0, pending = 0;
  int64_t tx = 0;
  uint32_t phase = 0;  // completed phases
};

struct WgmmaOp {
  int kind, n;  // kind: 0 fp16, 1 bf16, 2 tf32
  float* d;
  uint64_t a, b;
  int trans_a, trans_b;
};

struct TmaState {
  std::map<uint32_t, Mbarrier> bars;
  std::vector<std::vector<WgmmaOp>> open;                   // per thread: issued, not committed
  std::vector<std::deque<std::vector<WgmmaOp>>> groups;     // per thread: committed, not retired
};

constexpr uint64_t kBarrierMagic = 0xB4A5A1E7B4A5A1E7ull;

inline void tma_block_start(Block& b, int nthreads) {
  (void)b;
  ++trace().launches;  // blocks run
  auto st = std::make_shared<TmaState>();
  st->open.resize(nthreads);
  st->groups.resize(nthreads);
  b.tma = st;
}
inline TmaState& tma_state() { return *static_cast<TmaState*>(block()->tma.get()); }

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "emu: %s (block %u, %u, %u, thread %d)\n", what.c_str(), blockIdx.x, blockIdx.y, blockIdx.z,
               self().linear);
  std::abort();
}

inline unsigned char* smem_at(uint32_t addr) { return dynamic_smem() + addr; }

// ---- Shared memory by shared-window address.

inline uint32_t ld_shared_b32(uint32_t addr) {
  uint32_t v;
  std::memcpy(&v, smem_at(addr), 4);
  return v;
}
inline void ld_shared_v2(uint32_t (&r)[2], uint32_t addr) { std::memcpy(r, smem_at(addr), 8); }
inline void st_shared_v4(uint32_t addr, const uint4& v) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  std::memcpy(smem_at(addr), w, 16);
}

// ---- ldmatrix / stmatrix (m8n8, 16-bit): warp-collectives. Lane i gives the row address of matrix i / 8, row i % 8;
// a thread's register j holds matrix j's (row lane / 4, columns 2 (lane % 4), + 1), or transposed (.trans) its
// (rows 2 (lane % 4), + 1, column lane / 4).
inline uint16_t ld16(uint32_t addr) {
  uint16_t v;
  std::memcpy(&v, smem_at(addr), 2);
  return v;
}
inline void st16(uint32_t addr, uint16_t v) { std::memcpy(smem_at(addr), &v, 2); }

template <int X>
void ldmatrix(uint32_t (&r)[X], uint32_t addr, bool trans) {
  const uint32_t mine[1] = {addr};
  const int lane = lane_id(), g = lane / 4, t = lane % 4;
  if (lane == 0) ++(trans ? trace().ldmatrix_trans : trace().ldmatrix);
  uint32_t out[X];
  collective(mine, 1, [&] {
    for (int j = 0; j < X; ++j) {
      uint16_t lo, hi;
      if (!trans) {
        const uint32_t row = slots_of_lane(8 * j + g)[0];
        lo = ld16(row + 4 * t), hi = ld16(row + 4 * t + 2);
      } else {
        lo = ld16(slots_of_lane(8 * j + 2 * t)[0] + 2 * g), hi = ld16(slots_of_lane(8 * j + 2 * t + 1)[0] + 2 * g);
      }
      out[j] = uint32_t(lo) | uint32_t(hi) << 16;
    }
  });
  for (int j = 0; j < X; ++j) r[j] = out[j];
}

template <int X>
void stmatrix(uint32_t addr, const uint32_t (&r)[X], bool trans) {
  uint32_t mine[1 + X];
  mine[0] = addr;
  for (int j = 0; j < X; ++j) mine[1 + j] = r[j];
  const int lane = lane_id();
  if (lane == 0) ++(trans ? trace().stmatrix_trans : trace().stmatrix);
  collective(mine, 1 + X, [&] {
    if (lane >= 8 * X) return;
    const int j = lane / 8, row = lane % 8;  // this lane writes row `row` of matrix j (8 elements at its address)
    const uint32_t at = slots_of_lane(lane)[0];
    for (int col = 0; col < 8; ++col) {
      // element (row, col) of the stored matrix: not transposed, fragment (row, col) = lane 4 row + col / 2, half
      // col % 2; transposed, fragment (col, row) = lane 4 col + row / 2, half row % 2
      const int src = trans ? 4 * col + row / 2 : 4 * row + col / 2, half = trans ? row % 2 : col % 2;
      const uint32_t w = slots_of_lane(src)[1 + j];
      st16(at + 2 * col, uint16_t(half ? w >> 16 : w & 0xFFFF));
    }
  });
}

// ---- Named barriers (bar.sync id, count).
inline void named_barrier(int id, int count) {
  Block& b = *block();
  if (id < 0 || id >= 16) fail("bar.sync with barrier id " + std::to_string(id));
  if (b.named_count[id] != 0 && b.named_count[id] != count)
    fail("bar.sync " + std::to_string(id) + " with thread counts " + std::to_string(count) + " and " +
         std::to_string(b.named_count[id]));
  if (id == 0) fail("bar.sync 0 is __syncthreads' barrier");
  b.named_count[id] = count;
  ++trace().named;
  self().barrier_id = id;
  wait(State::kNamedBarrier);
}

// ---- mbarriers.
inline Mbarrier& mbar(uint32_t addr, const char* op) {
  auto& bars = tma_state().bars;
  auto it = bars.find(addr);
  if (it == bars.end())
    fail(std::string("mbarrier.") + op + " on an uninitialised barrier at smem " + std::to_string(addr));
  uint64_t word;
  std::memcpy(&word, smem_at(addr), 8);
  if (word != kBarrierMagic)
    fail(std::string("mbarrier.") + op + ": the barrier's memory at smem " + std::to_string(addr) +
         " was overwritten while in use");
  return it->second;
}
inline void mbarrier_init(uint32_t addr, int count) {
  if (addr % 8) fail("mbarrier.init: address not 8-byte aligned");
  Mbarrier m;
  m.count = m.pending = count;
  tma_state().bars[addr] = m;
  std::memcpy(smem_at(addr), &kBarrierMagic, 8);
  ++block()->progress;
}
inline void mbarrier_inval(uint32_t addr) {
  mbar(addr, "inval");
  tma_state().bars.erase(addr);
  std::memset(smem_at(addr), 0, 8);
}
inline void mbarrier_check_phase(Mbarrier& m) {
  if (m.pending == 0 && m.tx == 0) {
    ++m.phase;
    m.pending = m.count;
  }
  ++block()->progress;
}
inline void mbarrier_arrive(uint32_t addr) {
  Mbarrier& m = mbar(addr, "arrive");
  if (m.pending <= 0) fail("mbarrier.arrive: more arrivals than the barrier's count");
  --m.pending;
  mbarrier_check_phase(m);
}
inline void mbarrier_arrive_expect_tx(uint32_t addr, uint32_t bytes) {
  Mbarrier& m = mbar(addr, "arrive.expect_tx");
  m.tx += bytes;
  if (m.tx > (1 << 20) - 1) fail("mbarrier transaction count past 2^20 - 1 (PTX: tx-count range)");
  if (m.pending <= 0) fail("mbarrier.arrive.expect_tx: more arrivals than the barrier's count");
  --m.pending;
  mbarrier_check_phase(m);
}
inline void mbarrier_complete_tx(uint32_t addr, uint32_t bytes) {
  Mbarrier& m = mbar(addr, "complete_tx");
  m.tx -= bytes;
  mbarrier_check_phase(m);
}
inline bool mbarrier_try_wait_parity(uint32_t addr, uint32_t parity) {
  return (mbar(addr, "try_wait.parity").phase & 1) != (parity & 1);
}
inline void mbarrier_wait(uint32_t addr, uint32_t parity) {
  while (!mbarrier_try_wait_parity(addr, parity)) wait(State::kYield);
}

// ---- Tensor maps (our own format in the CUtensorMap's 128 bytes).
struct TensorMap {
  uint64_t magic;
  uint64_t base;
  uint64_t dims[4];
  uint64_t strides[4];  // bytes; strides[0] = the element size
  uint32_t box[4], step[4];
  int esize, swizzle;   // swizzle: span in bytes (0: none)
};
static_assert(sizeof(TensorMap) <= sizeof(CUtensorMap), "fits a CUtensorMap");
constexpr uint64_t kMapMagic = 0x7E45A0A11AB1E5ull;

inline int map_esize(CUtensorMapDataType t) {
  switch (t) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16: case CU_TENSOR_MAP_DATA_TYPE_FLOAT16: case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16:
      return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32: case CU_TENSOR_MAP_DATA_TYPE_INT32: case CU_TENSOR_MAP_DATA_TYPE_FLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32:
      return 4;
    default: return 8;
  }
}

// cuTensorMapEncodeTiled's checks (CUDA driver API, "Tensor Map Object Management"), then the parameters stored.
inline CUresult encode_tensor_map(CUtensorMap* map, CUtensorMapDataType dtype, uint32_t rank, void* base,
                                  const uint64_t* dims, const uint64_t* strides, const uint32_t* box,
                                  const uint32_t* step, CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle,
                                  CUtensorMapL2promotion, CUtensorMapFloatOOBfill oob) {
  if (rank != 4 || interleave != CU_TENSOR_MAP_INTERLEAVE_NONE || oob != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
    return CUDA_ERROR_INVALID_VALUE;  // all the emulator models
  const int es = map_esize(dtype);
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] == 0 || dims[i] > (uint64_t(1) << 32)) return CUDA_ERROR_INVALID_VALUE;
    if (box[i] == 0 || box[i] > 256) return CUDA_ERROR_INVALID_VALUE;
    if (step[i] == 0 || step[i] > 8) return CUDA_ERROR_INVALID_VALUE;
  }
  for (int i = 0; i < 3; ++i)
    if (strides[i] % 16 != 0 || strides[i] >= (uint64_t(1) << 40)) return CUDA_ERROR_INVALID_VALUE;
  if ((uint64_t(box[0]) * es) % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  const int span = swizzle == CU_TENSOR_MAP_SWIZZLE_128B ? 128 : swizzle == CU_TENSOR_MAP_SWIZZLE_64B ? 64
                 : swizzle == CU_TENSOR_MAP_SWIZZLE_32B ? 32 : 0;
  if (span && uint64_t(box[0]) * es > uint64_t(span)) return CUDA_ERROR_INVALID_VALUE;
  TensorMap m{};
  m.magic = kMapMagic;
  m.base = reinterpret_cast<uint64_t>(base);
  for (int i = 0; i < 4; ++i) m.dims[i] = dims[i], m.box[i] = box[i], m.step[i] = step[i];
  m.strides[0] = es;
  for (int i = 0; i < 3; ++i) m.strides[i + 1] = strides[i];
  m.esize = es, m.swizzle = span;
  std::memset(map, 0, sizeof(CUtensorMap));
  std::memcpy(map, &m, sizeof(m));
  return CUDA_SUCCESS;
}

inline const TensorMap& tensor_map(const CUtensorMap* map) {
  const TensorMap* m = reinterpret_cast<const TensorMap*>(map);
  if (m->magic != kMapMagic) fail("a copy with a tensor map not made by encode_tensor_map");
  return *m;
}

// The swizzle of a shared-window address: the 16-byte chunk bits [4, 4 + log2(span / 16)) XOR the bits above 7.
inline uint32_t swizzle_address(uint32_t addr, int span) {
  if (span == 128) return addr ^ (((addr >> 7) & 7) << 4);
  if (span == 64) return addr ^ (((addr >> 7) & 3) << 4);
  if (span == 32) return addr ^ (((addr >> 7) & 1) << 4);
  return addr;
}

// Visits the box's elements: f(shared offset from the box start (unswizzled), global element pointer or null when
// out of bounds).
template <typename F>
void for_box(const TensorMap& m, const int (&c)[4], F&& f) {
  int count[4];
  for (int i = 0; i < 4; ++i) count[i] = int((m.box[i] + m.step[i] - 1) / m.step[i]);
  const int64_t row_bytes = int64_t(count[0]) * m.esize;
  const int64_t pitch = m.swizzle ? m.swizzle : row_bytes;  // a swizzled box's rows are the span apart
  if (m.swizzle && row_bytes != m.swizzle)
    fail("a swizzled box whose inner extent is not the swizzle span (not modelled)");
  int64_t row = 0;
  for (int i3 = 0; i3 < count[3]; ++i3)
    for (int i2 = 0; i2 < count[2]; ++i2)
      for (int i1 = 0; i1 < count[1]; ++i1, ++row)
        for (int i0 = 0; i0 < count[0]; ++i0) {
          const int64_t x[4] = {int64_t(c[0]) + int64_t(i0) * m.step[0], int64_t(c[1]) + int64_t(i1) * m.step[1],
                                int64_t(c[2]) + int64_t(i2) * m.step[2], int64_t(c[3]) + int64_t(i3) * m.step[3]};
          bool in = true;
          int64_t off = 0;
          for (int i = 0; i < 4; ++i) {
            in = in && x[i] >= 0 && x[i] < int64_t(m.dims[i]);
            off += x[i] * int64_t(m.strides[i]);
          }
          f(row * pitch + int64_t(i0) * m.esize, in ? reinterpret_cast<unsigned char*>(m.base + off) : nullptr);
        }
}

inline void check_box_start(const TensorMap& m, const int (&c)[4], uint32_t smem, const char* op) {
  if ((int64_t(c[0]) * m.esize) % 16 != 0)
    fail(std::string(op) + ": the box's innermost start coordinate " + std::to_string(c[0]) +
         " is not a multiple of 16 bytes (an H200 faults)");
  if (smem % 128 != 0) fail(std::string(op) + ": shared memory not 128-byte aligned (PTX)");
  // Stricter than the PTX ISA says (the swizzle follows the address bits; unsure whether a box may start mid-atom):
  // the kernels do not need it, so a box that does is flagged.
  if (m.swizzle && smem % (8 * m.swizzle) != 0)
    fail(std::string(op) + ": a swizzled box at shared memory " + std::to_string(smem) + ", not at a swizzle atom (" +
         std::to_string(8 * m.swizzle) + " bytes)");
}

inline void tma_load_4d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2, int c3) {
  const TensorMap& m = tensor_map(map);
  const int c[4] = {c0, c1, c2, c3};
  check_box_start(m, c, dst, "TMA load");
  mbar(bar, "complete_tx");  // the barrier must be live when the copy is issued
  ++trace().tma_loads;
  trace().tma_loads_swizzled += m.swizzle != 0;
  trace().tma_loads_strided += m.step[1] > 1 || m.step[2] > 1 || m.step[3] > 1 || m.step[0] > 1;
  int64_t bytes = 0;
  for_box(m, c, [&](int64_t off, const unsigned char* src) {
    const uint32_t at = swizzle_address(dst + uint32_t(off), m.swizzle);
    if (src) std::memcpy(smem_at(at), src, m.esize);
    else std::memset(smem_at(at), 0, m.esize);
    bytes += m.esize;
  });
  mbarrier_complete_tx(bar, uint32_t(bytes));
}

inline void tma_store_4d(uint32_t src, const CUtensorMap* map, int c0, int c1, int c2, int c3) {
  const TensorMap& m = tensor_map(map);
  const int c[4] = {c0, c1, c2, c3};
  check_box_start(m, c, src, "TMA store");
  for (int i = 0; i < 4; ++i)
    if (m.step[i] != 1) fail("TMA store with element strides (not modelled)");
  ++trace().tma_stores;
  for_box(m, c, [&](int64_t off, unsigned char* dst) {
    if (dst) std::memcpy(dst, smem_at(swizzle_address(src + uint32_t(off), m.swizzle)), m.esize);
  });
}

// ---- wgmma.
// Descriptor (common/wgmma.cuh): start address >> 4 in bits 0-13, leading byte offset >> 4 in 16-29, stride byte
// offset >> 4 in 32-45, layout (1: 128-byte swizzle, 2: 64, 3: 32, 0: none) in 62-63. Canonical layouts (PTX ISA
// "Shared Memory Matrix Layout"; CUTLASS's GmmaDescriptor), in bytes, span = the swizzle width, e the element size:
//   K-major:  (row r, k) at start + (r % 8) span + (r / 8) SBO + k e
//   MN-major: (mn, k)   at start + (mn % (span / e)) e + (mn / (span / e)) LBO + (k % 8) span + (k / 8) SBO
// then the swizzle of the address bits.
struct Desc {
  uint32_t start, lbo, sbo;
  int span;
};
inline Desc decode(uint64_t d) {
  Desc r;
  r.start = uint32_t(d & 0x3FFF) << 4;
  r.lbo = uint32_t((d >> 16) & 0x3FFF) << 4;
  r.sbo = uint32_t((d >> 32) & 0x3FFF) << 4;
  const int layout = int(d >> 62);
  r.span = layout == 1 ? 128 : layout == 2 ? 64 : layout == 3 ? 32 : 0;
  if (r.span == 0) fail("wgmma descriptor without swizzle (interleaved layout: not modelled)");
  return r;
}
inline uint32_t operand_address(const Desc& d, int mn, int k, bool mn_major, int e) {
  uint32_t a;
  if (!mn_major) a = d.start + (mn % 8) * d.span + (mn / 8) * d.sbo + k * e;
  else {
    const int per = d.span / e;
    a = d.start + (mn % per) * e + (mn / per) * d.lbo + (k % 8) * d.span + (k / 8) * d.sbo;
  }
  return swizzle_address(a, d.span);
}
inline float element_at(uint32_t addr, int kind) {
  if (kind == 2) return tf32_bits(ld_shared_b32(addr));
  const uint32_t bits = ld16(addr);
  return kind == 0 ? half_bits(bits) : bf16_bits(bits);
}

inline void wgmma_execute(const WgmmaOp& op) {
  const int lin = self().linear % 128, w = lin / 32, lane = lin % 32, g = lane / 4, t = lane % 4;
  const int e = op.kind == 2 ? 4 : 2, kdim = op.kind == 2 ? 8 : 16;
  const Desc a = decode(op.a), b = decode(op.b);
  float A[2][16];
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < kdim; ++k)
      A[h][k] = element_at(operand_address(a, 16 * w + g + 8 * h, k, op.trans_a, e), op.kind);
  for (int i = 0; i < op.n / 2; ++i) {
    const int j = i / 4, q = i % 4, h = q / 2, col = 8 * j + 2 * t + q % 2;
    float sum = 0.f;
    for (int k = 0; k < kdim; ++k) sum += A[h][k] * element_at(operand_address(b, col, k, op.trans_b, e), op.kind);
    op.d[i] += sum;
  }
}

// The PTX strings of common/wgmma.cuh's specializations: the types, and the transpose immediates (", tA, tB").
inline int wgmma_kind(const char* shape) {
  const std::string s(shape);
  return s.find("tf32") != std::string::npos ? 2 : s.find("bf16") != std::string::npos ? 1 : 0;
}
inline int wgmma_trans(const char* immediates, int which) {
  int seen = 0;
  for (const char* c = immediates; *c; ++c)
    if (*c >= '0' && *c <= '9' && seen++ == which) return *c - '0';
  return 0;
}
inline void wgmma_ss(int kind, int n, float* d, uint64_t a, uint64_t b, int trans_a, int trans_b) {
  if (kind == 2 && (trans_a || trans_b)) fail("wgmma tf32 with an MN-major operand (PTX: K-major only)");
  ++trace().wgmma_ss;
  trace().wgmma_mn += trans_a || trans_b;
  tma_state().open[self().linear].push_back(WgmmaOp{kind, n, d, a, b, trans_a, trans_b});
}
inline void wgmma_commit() {
  TmaState& s = tma_state();
  auto& open = s.open[self().linear];
  s.groups[self().linear].push_back(std::move(open));
  open.clear();
}
inline void wgmma_wait(int pending) {
  auto& q = tma_state().groups[self().linear];
  while (int(q.size()) > pending) {
    for (const WgmmaOp& op : q.front()) wgmma_execute(op);
    q.pop_front();
  }
}

// Register-A TF32 (m64nNk8): A per warp as mma.sync m16n8k8's (rows 16 w .. 16 w + 15 for warp w of the warpgroup),
// a warpgroup-collective at issue; B K-major by descriptor.
inline void wgmma_rs_tf32(int n, float* d, const uint32_t (&regs)[4], uint64_t b) {
  ++trace().wgmma_rs;
  uint32_t* slot = &block()->warp_slots[size_t(self().linear) * 64];
  std::memcpy(slot, regs, 16);
  wait(State::kWarpgroupBarrier);
  const int lin = self().linear % 128, base = self().linear - lin;
  const int w = lin / 32, lane = lin % 32, g = lane / 4, t = lane % 4;
  const Desc bd = decode(b);
  auto A = [&](int row, int k) {  // row within the warpgroup's 64
    const int src = base + (row / 16) * 32 + (row % 8) * 4 + k % 4;
    return tf32_bits(block()->warp_slots[size_t(src) * 64 + ((row % 16) >= 8) + 2 * (k >= 4)]);
  };
  for (int i = 0; i < n / 2; ++i) {
    const int j = i / 4, q = i % 4, row = 16 * w + g + 8 * (q / 2), col = 8 * j + 2 * t + q % 2;
    float sum = 0.f;
    for (int k = 0; k < 8; ++k) sum += A(row, k) * element_at(operand_address(bd, col, k, false, 4), 2);
    d[i] += sum;
  }
  wait(State::kWarpgroupBarrier);
}

}  // namespace emu
