// CPU emulation of the CUDA execution model, for running mma.sync-family kernels on a machine without a GPU
// (tests/emulation/README.md). Force-included (-include) ahead of the kernel sources, which build_emulation.py
// copies with each `kernel<<<grid, block, smem, stream>>>(args)` rewritten to emu::launch(...) and each dynamic
// __shared__ array turned into a pointer at emu::dynamic_smem(). Production headers take the emulated path of their
// few inline-assembly helpers (mma.sync, predicated loads) under CONV2D_EXT_EMULATION.
//
// A block's threads are coroutines on one OS thread (a 6-register stack switch, emulation_runtime.cpp; ucontext
// under AddressSanitizer), each run until it finishes or waits: at
// __syncthreads() (released when every live thread of the block waits there) or at a warp-collective (mma.sync,
// shuffles: released when every live lane of the warp waits). Blocks run one after another, so static __shared__
// arrays are plain statics and a launch's dynamic shared memory is one heap buffer of exactly its size (an
// AddressSanitizer build catches accesses past it). A barrier that can never be released stops the run with a
// message: on a GPU that is a hang or undefined behaviour. Not modelled: blocks running at the same time (inter-block
// races, atomics), the memory model, asynchronous copies (cp.async, TMA), wgmma.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#undef __grid_constant__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __grid_constant__

// The built-in variables as plain globals: one block's coroutines run at a time, and the scheduler sets threadIdx to
// the index of the one it resumes.
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace emu {

// kYield: runnable, but only after the others have had their turn (a thread spinning on an mbarrier); kNamedBarrier:
// bar.sync id, count (Thread::barrier_id); kWarpgroupBarrier: a warpgroup-collective (wgmma with A in registers).
enum class State { kRunnable, kBlockBarrier, kWarpBarrier, kWarpgroupBarrier, kNamedBarrier, kYield, kDone };

// An asynchronous copy (cp.async) in flight: done at the cp.async.wait_group that covers its group.
struct Copy {
  void* dst;
  const void* src;
  int bytes;
  bool valid;
};

struct Thread {
  ucontext_t context;  // AddressSanitizer builds
  void* sp;            // the fast switch: the saved stack pointer
  std::unique_ptr<char[]> stack;
  uint3 index;
  int linear;
  State state;
  int barrier_id = 0;                     // at a named barrier
  std::vector<Copy> open;                 // cp.async since the last commit
  std::vector<std::vector<Copy>> groups;  // committed, oldest first
};

struct Block;
inline void tma_block_start(Block& b, int nthreads);  // emu_tma.h: the block's mbarriers, named barriers, wgmma groups

struct Block {
  std::vector<Thread> threads;
  ucontext_t scheduler;
  void* scheduler_sp;
  int current = 0;
  std::function<void()> body;
  std::vector<uint32_t> warp_slots;  // a warp-collective's operands: 64 words per lane
  std::vector<int> block_slots;      // __syncthreads_or's predicates: one per thread
  std::vector<int> named_count;      // bar.sync: the thread count of each named barrier in use (0: none)
  uint64_t progress = 0;             // bumped by anything a spinning thread may wait for (emu_tma.h)
  std::shared_ptr<void> tma;         // emu_tma.h's per-block state
};

inline Block*& block() {
  static Block* b = nullptr;
  return b;
}
inline Thread& self() { return block()->threads[block()->current]; }

constexpr size_t kStackBytes = 256 * 1024;

inline unsigned char*& dynamic_smem_base() {
  static unsigned char* base = nullptr;
  return base;
}
inline unsigned char* dynamic_smem() { return dynamic_smem_base(); }

// Context switches. The fast one (x86-64: callee-saved registers and the stack pointer) is defined once in
// emulation_runtime.cpp; AddressSanitizer builds keep ucontext, whose stack switches it understands.
#if defined(__SANITIZE_ADDRESS__) || !defined(__x86_64__)
#define EMU_UCONTEXT 1
#endif
extern "C" void emu_switch(void** save_sp, void* load_sp);

inline void to_scheduler(Thread& t) {
#ifdef EMU_UCONTEXT
  swapcontext(&t.context, &block()->scheduler);
#else
  emu_switch(&t.sp, block()->scheduler_sp);
#endif
}

inline void wait(State s) {
  Thread& t = self();
  t.state = s;
  to_scheduler(t);
}
inline void sync_block() { wait(State::kBlockBarrier); }
inline void sync_warp() { wait(State::kWarpBarrier); }

inline void finish_copies(Thread& t);

inline void thread_entry() {
  block()->body();
  finish_copies(self());  // copies never waited for still land (the kernel's exit waits for them)
  block()->block_slots[self().linear] = 0;
  ++block()->progress;
  self().state = State::kDone;
  to_scheduler(self());
  std::abort();  // a finished thread is never resumed
}

// A fresh context for thread t at thread_entry.
inline void start(Thread& t) {
#ifdef EMU_UCONTEXT
  getcontext(&t.context);
  t.context.uc_stack.ss_sp = t.stack.get();
  t.context.uc_stack.ss_size = kStackBytes;
  t.context.uc_link = nullptr;
  makecontext(&t.context, thread_entry, 0);
#else
  // emu_switch pops r15 r14 r13 r12 rbx rbp and returns: to thread_entry, with the stack aligned as after a call.
  uintptr_t top = (reinterpret_cast<uintptr_t>(t.stack.get()) + kStackBytes) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top - 64);
  for (int i = 0; i < 6; ++i) sp[i] = nullptr;
  sp[6] = reinterpret_cast<void*>(&thread_entry);
  sp[7] = nullptr;
  t.sp = sp;
#endif
}

inline void resume(Block& b, Thread& t) {
#ifdef EMU_UCONTEXT
  swapcontext(&b.scheduler, &t.context);
#else
  emu_switch(&b.scheduler_sp, t.sp);
#endif
}

// Runs one block to completion: every runnable thread in turn; when none is, the warps (warpgroups) whose live lanes
// all wait at a warp (warpgroup) barrier go on, and the named barriers that have their count; else the block barrier
// opens if every live thread waits there; else the spinning threads (kYield) go again, unless nothing they could wait
// for changed for four rounds; else it is a deadlock.
inline void run_block(Block& b, int nthreads) {
  for (int i = 0; i < nthreads; ++i) {
    Thread& t = b.threads[i];
    t.state = State::kRunnable;
    start(t);
  }
  b.named_count.assign(16, 0);
  tma_block_start(b, nthreads);
  uint64_t seen = ~uint64_t(0);
  int idle_rounds = 0;
  // Releases the groups of `size` threads whose live threads all wait in state s.
  auto release_groups = [&](int size, State s) {
    bool released = false;
    for (int w = 0; w * size < nthreads; ++w) {
      const int end = std::min(nthreads, size * w + size);
      int live = 0, waiting = 0;
      for (int i = size * w; i < end; ++i) {
        if (b.threads[i].state == State::kDone) continue;
        ++live;
        waiting += b.threads[i].state == s;
      }
      if (live == 0 || waiting != live) continue;
      for (int i = size * w; i < end; ++i)
        if (b.threads[i].state == s) b.threads[i].state = State::kRunnable;
      released = true;
    }
    return released;
  };
  for (;;) {
    bool ran = false;
    for (int i = 0; i < nthreads; ++i) {
      if (b.threads[i].state != State::kRunnable) continue;
      b.current = i;
      threadIdx = b.threads[i].index;
      resume(b, b.threads[i]);
      ran = true;
    }
    if (ran) continue;
    bool released = release_groups(32, State::kWarpBarrier);
    released = release_groups(128, State::kWarpgroupBarrier) || released;
    for (int id = 0; id < 16; ++id) {  // named barriers: `count` threads there
      if (b.named_count[id] == 0) continue;
      int at = 0;
      for (int i = 0; i < nthreads; ++i)
        at += b.threads[i].state == State::kNamedBarrier && b.threads[i].barrier_id == id;
      if (at < b.named_count[id]) continue;
      if (at > b.named_count[id]) {
        std::fprintf(stderr, "emu: %d threads at named barrier %d of %d threads (block %u, %u, %u)\n", at, id,
                     b.named_count[id], blockIdx.x, blockIdx.y, blockIdx.z);
        std::abort();
      }
      for (int i = 0; i < nthreads; ++i)
        if (b.threads[i].state == State::kNamedBarrier && b.threads[i].barrier_id == id)
          b.threads[i].state = State::kRunnable;
      b.named_count[id] = 0;
      released = true;
    }
    if (released) {
      ++b.progress;
      continue;
    }
    int live = 0, at_block = 0, yielding = 0;
    for (int i = 0; i < nthreads; ++i) {
      if (b.threads[i].state == State::kDone) continue;
      ++live;
      at_block += b.threads[i].state == State::kBlockBarrier;
      yielding += b.threads[i].state == State::kYield;
    }
    if (live == 0) return;
    if (at_block == live) {
      for (int i = 0; i < nthreads; ++i)
        if (b.threads[i].state == State::kBlockBarrier) b.threads[i].state = State::kRunnable;
      ++b.progress;
      continue;
    }
    if (yielding > 0) {  // the spinning threads go again; if nothing they could wait for changed, it is a livelock
      idle_rounds = b.progress == seen ? idle_rounds + 1 : 0;
      seen = b.progress;
      if (idle_rounds < 4) {
        for (int i = 0; i < nthreads; ++i)
          if (b.threads[i].state == State::kYield) b.threads[i].state = State::kRunnable;
        continue;
      }
    }
    std::fprintf(stderr, "emu: deadlock in block (%u, %u, %u): %d live threads, %d at __syncthreads, %d spinning on "
                 "an mbarrier; states:", blockIdx.x, blockIdx.y, blockIdx.z, live, at_block, yielding);
    for (int i = 0; i < nthreads; ++i)
      if (b.threads[i].state != State::kDone) std::fprintf(stderr, " %d:%d", i, int(b.threads[i].state));
    std::fprintf(stderr, "\n");
    std::abort();
  }
}

// kernel<<<grid, block, smem, stream>>>(args) becomes launch(grid, block, smem, stream, [&] { kernel(args); }).
template <typename Body>
void launch(dim3 grid, dim3 bdim, size_t smem, cudaStream_t, Body&& body) {
  const int nthreads = int(bdim.x * bdim.y * bdim.z);
  Block b;
  b.body = body;
  b.threads.resize(nthreads);
  b.warp_slots.assign(size_t(nthreads) * 64, 0);
  b.block_slots.assign(size_t(nthreads), 0);
  for (int i = 0; i < nthreads; ++i) {
    b.threads[i].stack.reset(new char[kStackBytes]);
    b.threads[i].linear = i;
    b.threads[i].index = make_uint3(i % bdim.x, (i / bdim.x) % bdim.y, i / (bdim.x * bdim.y));
    b.threads[i].open.clear(), b.threads[i].groups.clear();
  }
  if (smem > 227 * 1024) {
    std::fprintf(stderr, "emu: a launch with %zu bytes of dynamic shared memory (sm_90: 227 KB at most)\n", smem);
    std::abort();
  }
  // 1024-byte aligned (the kernels' pointer alignment and the shared-window addresses' swizzle bits agree); under
  // AddressSanitizer the bytes past `smem` are poisoned, so an access past the launch's shared memory is caught.
  const size_t rounded = (smem + 1023) / 1024 * 1024 + 1024;
  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  std::unique_ptr<unsigned char, Free> shared(static_cast<unsigned char*>(std::aligned_alloc(1024, rounded)));
#ifdef __SANITIZE_ADDRESS__
  __asan_poison_memory_region(shared.get() + smem, rounded - smem);
#endif
  Block* saved = block();
  unsigned char* saved_smem = dynamic_smem_base();
  const dim3 saved_grid = gridDim, saved_dim = blockDim;
  const uint3 saved_index = blockIdx;
  block() = &b;
  dynamic_smem_base() = shared.get();
  gridDim = grid;
  blockDim = bdim;
  // The blocks in order, or (EMU_BLOCK_ORDER=reverse | shuffle) not: inter-block protocols (split-K's counters: which
  // CTA arrives last) must not depend on it.
  std::vector<uint3> order;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) order.push_back(make_uint3(x, y, z));
  if (const char* o = std::getenv("EMU_BLOCK_ORDER")) {
    if (std::strcmp(o, "reverse") == 0) std::reverse(order.begin(), order.end());
    if (std::strcmp(o, "shuffle") == 0) {
      uint64_t state = 0x9E3779B97F4A7C15ull + order.size();
      for (size_t i = order.size(); i > 1; --i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        std::swap(order[i - 1], order[(state >> 33) % i]);
      }
    }
  }
  for (const uint3& index : order) {
    blockIdx = index;
    std::memset(shared.get(), 0xA5, smem);  // garbage, as a GPU's shared memory starts
    run_block(b, nthreads);
  }
#ifdef __SANITIZE_ADDRESS__
  __asan_unpoison_memory_region(shared.get() + smem, rounded - smem);
#endif
  block() = saved;
  dynamic_smem_base() = saved_smem;
  gridDim = saved_grid, blockDim = saved_dim, blockIdx = saved_index;
}

// A warp-collective: each lane puts `words` words in its slot, waits for the warp, reads what it needs, and waits
// again (the next collective reuses the slots).
inline int lane_id() { return self().linear % 32; }
inline uint32_t* slots_of_lane(int lane) {
  const int warp = self().linear / 32;
  return &block()->warp_slots[size_t(warp * 32 + lane) * 64];
}
template <typename F>
void collective(const uint32_t* mine, int words, F&& read) {
  std::memcpy(slots_of_lane(lane_id()), mine, size_t(words) * 4);
  sync_warp();
  read();
  sync_warp();
}

// Element bits as the tensor cores read them.
inline float half_bits(uint32_t bits) {
  __half_raw r;
  r.x = uint16_t(bits);
  return __half2float(__half(r));
}
inline float bf16_bits(uint32_t bits) {
  const uint32_t f = (bits & 0xFFFF) << 16;
  float v;
  std::memcpy(&v, &f, 4);
  return v;
}
inline float tf32_bits(uint32_t bits) {  // the TF32 part (10 mantissa bits; the rest ignored)
  bits &= 0xFFFFE000u;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// mma.sync m16n8k16 (kind 0 fp16, 1 bf16) and m16n8k8 (kind 2, TF32), row.col, fp32 accumulators. Fragments (PTX
// ISA, g = lane / 4, t = lane % 4): 16-bit A regs (g, 2t..), (g + 8, 2t..), (g, 2t + 8..), (g + 8, 2t + 8..), B
// regs (k 2t.., n g), (k 2t + 8.., n g); TF32 A (g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4), B (t, g), (t + 4, g);
// C (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1).
inline void mma(int kind, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  const int lane = lane_id(), g = lane / 4, t = lane % 4;
  float out[4] = {d[0], d[1], d[2], d[3]};
  collective(mine, 6, [&] {
    auto element = [&](uint32_t word, int high) -> float {
      if (kind == 2) return tf32_bits(word);
      const uint32_t bits = high ? word >> 16 : word & 0xFFFF;
      return kind == 0 ? half_bits(bits) : bf16_bits(bits);
    };
    auto A = [&](int row, int k) -> float {
      if (kind == 2) return element(slots_of_lane((row % 8) * 4 + k % 4)[(row >= 8) + 2 * (k >= 4)], 0);
      return element(slots_of_lane((row % 8) * 4 + (k % 8) / 2)[(row >= 8) + 2 * (k >= 8)], k % 2);
    };
    auto B = [&](int k, int col) -> float {
      if (kind == 2) return element(slots_of_lane(col * 4 + k % 4)[4 + (k >= 4)], 0);
      return element(slots_of_lane(col * 4 + (k % 8) / 2)[4 + (k >= 8)], k % 2);
    };
    const int kdim = kind == 2 ? 8 : 16;
    for (int e = 0; e < 4; ++e) {
      const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + e % 2;
      float sum = 0.f;
      for (int k = 0; k < kdim; ++k) sum += A(row, k) * B(k, col);
      out[e] += sum;
    }
  });
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

// mma.sync m16n8k8 with 16-bit inputs (kind 0 fp16, 1 bf16): A regs (g, 2t..), (g + 8, 2t..), B (k 2t.., n g).
inline void mma_k8(int kind, float (&d)[4], const uint32_t (&a)[2], uint32_t b) {
  const uint32_t mine[3] = {a[0], a[1], b};
  const int lane = lane_id(), g = lane / 4, t = lane % 4;
  float out[4] = {d[0], d[1], d[2], d[3]};
  collective(mine, 3, [&] {
    auto element = [&](uint32_t word, int high) -> float {
      const uint32_t bits = high ? word >> 16 : word & 0xFFFF;
      return kind == 0 ? half_bits(bits) : bf16_bits(bits);
    };
    for (int e = 0; e < 4; ++e) {
      const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + e % 2;
      float sum = 0.f;
      for (int k = 0; k < 8; ++k)
        sum += element(slots_of_lane((row % 8) * 4 + k / 2)[row >= 8], k % 2) *
               element(slots_of_lane(col * 4 + k / 2)[2], k % 2);
      out[e] += sum;
    }
  });
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

// A shared-window address (smem_addr: an offset into the launch's dynamic shared memory) as a pointer.
inline unsigned char* shared_at(uint32_t addr) { return dynamic_smem() + addr; }

// cp.async: queued in the thread's open group; commit closes it; wait_group n does all but the newest n groups (the
// latest moment a GPU may land them: a read of the destination before its wait sees the old bytes).
inline void cp_async(void* dst, const void* src, int bytes, bool valid) {
  self().open.push_back(Copy{dst, src, bytes, valid});
}
inline void do_copy(const Copy& c) {
  if (c.valid) std::memcpy(c.dst, c.src, size_t(c.bytes));
  else std::memset(c.dst, 0, size_t(c.bytes));
}
inline void cp_async_commit() {
  Thread& t = self();
  t.groups.push_back(std::move(t.open));
  t.open.clear();
}
inline void cp_async_wait(int pending) {
  Thread& t = self();
  while (int(t.groups.size()) > pending) {
    for (const Copy& c : t.groups.front()) do_copy(c);
    t.groups.erase(t.groups.begin());
  }
}
inline void finish_copies(Thread& t) {
  for (const auto& g : t.groups)
    for (const Copy& c : g) do_copy(c);
  for (const Copy& c : t.open) do_copy(c);
  t.groups.clear(), t.open.clear();
}

inline int sync_block_or(int predicate) {
  block()->block_slots[self().linear] = predicate != 0;
  sync_block();
  int any = 0;
  for (int v : block()->block_slots) any |= v;
  sync_block();
  return any;
}

// Lets the other threads run (a spin-wait's turn): the thread stays runnable.
inline void yield() { wait(State::kYield); }

template <typename T>
T shfl_idx(T v, int src_lane) {
  static_assert(sizeof(T) <= 8, "shuffles of up to 8 bytes");
  uint32_t mine[2] = {0, 0};
  std::memcpy(mine, &v, sizeof(T));
  T out = v;
  collective(mine, 2, [&] { std::memcpy(&out, slots_of_lane(src_lane & 31), sizeof(T)); });
  return out;
}

// __shfl_down_sync within segments of `width` lanes: a lane whose source lies past its segment keeps its value.
template <typename T>
T shfl_down(T v, unsigned delta, int width = 32) {
  static_assert(sizeof(T) <= 8, "shuffles of up to 8 bytes");
  uint32_t mine[2] = {0, 0};
  std::memcpy(mine, &v, sizeof(T));
  T out = v;
  collective(mine, 2, [&] {
    const int lane = lane_id();
    if (lane % width + int(delta) < width) std::memcpy(&out, slots_of_lane(lane + int(delta)), sizeof(T));
  });
  return out;
}

}  // namespace emu

#define __syncthreads() ::emu::sync_block()
#define __syncwarp(...) ::emu::sync_warp()
#define __shfl_down_sync(mask, v, ...) ::emu::shfl_down(v, __VA_ARGS__)
#define __trap() std::abort()
#define __syncthreads_or(predicate) ::emu::sync_block_or(predicate)
#define __shfl_sync(mask, v, lane, ...) ::emu::shfl_idx(v, lane)
#define __threadfence() ((void)0)
#define __threadfence_block() ((void)0)
#define __nanosleep(ns) ::emu::yield()

template <typename T>
inline T __ldcg(const T* p) { return *p; }
template <typename T>
inline void __stcg(T* p, T v) { *p = v; }
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((uint64_t(a) * b) >> 32); }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {  // selector nibbles 0-7 (no sign replication)
  const uint64_t bytes = (uint64_t(y) << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= unsigned((bytes >> (8 * ((s >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
  return unsigned(((uint64_t(hi) << 32) | lo) >> (shift & 31));
}
// Blocks run one at a time and a thread is never interrupted between its own instructions: plain read-modify-writes.
template <typename T>
inline T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}

template <typename T>
inline T __ldg(const T* p) { return *p; }
inline float __uint_as_float(uint32_t v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t v;
  std::memcpy(&v, &f, 4);
  return v;
}
// Shared-window addresses: offsets into the launch's dynamic shared memory.
inline size_t __cvta_generic_to_shared(const void* p) {
  return size_t(static_cast<const unsigned char*>(p) - ::emu::dynamic_smem());
}

// The runtime's kernel-pointer overloads (nvcc only in cuda_runtime.h); the C calls are in emulation_runtime.cpp.
template <typename F>
cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int) { return cudaSuccess; }
template <typename F>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, F*, int, size_t) {
  *blocks = 2;
  return cudaSuccess;
}

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max(int64_t a, int64_t b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

#include "emu_tma.h"  // copy engine (TMA), mbarriers, wgmma, ldmatrix / stmatrix, named barriers
