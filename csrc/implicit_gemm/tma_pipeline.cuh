// The warp-specialized pipeline of the copy-engine kernels (forward_tma.cuh, backward_weight_tma.cuh), written once:
// a ring of kStages shared-memory stages, each with a `full` mbarrier (the producer's arrival plus the bytes its
// copies bring) and an `empty` mbarrier (one arrival per consumer warpgroup once the MMAs that read the stage are
// done). The pass supplies what a k-tile's copies are (issue) and what its MMAs are (mma).
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/tma.cuh"
#include "common/wgmma.cuh"

namespace conv2d_ext {
namespace igemm {

// Whether a launch takes a deeper ring than its configuration's (forward_tma.cuh's tma_deep_ring,
// backward_weight_tma.cuh's wgrad_deep_ring), `env` its switch's value (std::getenv at the caller: test_api finds the
// variables there): 0 never, 1 wherever the kernel has one (tests), else where `fits` (at most one CTA per SM).
inline bool deep_ring(const char* env, bool fits) {
  if (env != nullptr && env[0] == '0') return false;
  return (env != nullptr && env[0] == '1') || fits;
}

// A position in a ring (stage, phase and how many k-tiles passed it), for passes whose loops walk two rings at
// different rates (forward_tma.cuh's halo boxes: one activation stage per filter row, one filter stage per tap).
struct RingCursor {
  int stage = 0, count = 0;
  uint32_t phase = 0;
  template <int kStages>
  __device__ __forceinline__ void advance() {
    ++count;
    if (++stage == kStages) stage = 0, phase ^= 1;
  }
};

// Bytes of a ring of `stages` stages of `stage_bytes` each and its 2 x stages barriers (TmaRing::bytes).
constexpr int tma_ring_bytes(int stages, int stage_bytes) { return stages * stage_bytes + 2 * stages * 8; }

// The stages start at `smem` (1024-byte aligned), kStageBytes apart; the 2 x kStages barriers follow them.
template <int kStages, int kStageBytes>
struct TmaRing {
  unsigned char* smem;
  uint64_t* full;
  uint64_t* empty;

  __device__ __forceinline__ explicit TmaRing(unsigned char* base)
      : smem(base), full(reinterpret_cast<uint64_t*>(base + kStages * kStageBytes)), empty(full + kStages) {}

  static constexpr int bytes() { return tma_ring_bytes(kStages, kStageBytes); }

  // One thread, before the roles split (a __syncthreads follows).
  __device__ __forceinline__ void init(int consumer_warpgroups) const {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&full[s], 1);                     // the producer's arrival (with the stage's bytes)
      mbarrier_init(&empty[s], consumer_warpgroups);  // one arrival per consumer warpgroup
    }
    fence_barrier_init();
  }

  // One thread, once no thread waits on or arrives at the barriers any more: before their memory holds anything else.
  __device__ __forceinline__ void invalidate() const {
    for (int s = 0; s < kStages; ++s) mbarrier_inval(&full[s]), mbarrier_inval(&empty[s]);
  }

  // The producer (one thread): for each k-tile kb, once its stage is free, issue(kb, stage, &full[stage]) starts the
  // copies that complete `tx_bytes` on the stage's barrier.
  template <class Issue>
  __device__ __forceinline__ void produce(int k_tiles, uint32_t tx_bytes, Issue&& issue) const {
    int stage = 0;
    uint32_t phase = 0;
    for (int kb = 0; kb < k_tiles; ++kb) {
      if (kb >= kStages) mbarrier_wait(&empty[stage], phase ^ 1);  // its previous k-tile's MMAs are done
      mbarrier_arrive_expect_tx(&full[stage], tx_bytes);
      issue(kb, smem + stage * kStageBytes, &full[stage]);
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
  }

  // Step by step, for loops that produce() and consume() do not fit. The producer: waits until the cursor's stage is
  // free, announces `tx_bytes` on its barrier and advances; returns the stage and its barrier for the copies.
  __device__ __forceinline__ unsigned char* acquire(RingCursor& at, uint32_t tx_bytes, uint64_t*& bar) const {
    if (at.count >= kStages) mbarrier_wait(&empty[at.stage], at.phase ^ 1);
    bar = &full[at.stage];
    mbarrier_arrive_expect_tx(bar, tx_bytes);
    unsigned char* stage = smem + at.stage * kStageBytes;
    at.advance<kStages>();
    return stage;
  }
  // A consumer warpgroup: waits until the cursor's stage has landed; returns it (the cursor does not move).
  __device__ __forceinline__ const unsigned char* landed(const RingCursor& at) const {
    mbarrier_wait(&full[at.stage], at.phase);
    return smem + at.stage * kStageBytes;
  }
  // A consumer warpgroup: its MMAs that read `stage` are done.
  __device__ __forceinline__ void release(int stage) const {
    if (threadIdx.x % 128 == 0) mbarrier_arrive(&empty[stage]);
  }
  // release where `pred` holds, without a branch (mbarrier_arrive_if).
  __device__ __forceinline__ void release_if(int stage, bool pred) const {
    mbarrier_arrive_if(&empty[stage], pred && threadIdx.x % 128 == 0);
  }

  // A consumer warpgroup: for each k-tile, once its bytes have landed, mma(stage) issues the MMAs (between the
  // fences, as one commit group; `fence_operands` orders the accumulators around them); the stage of the k-tile
  // before is released once wgmma.wait_group 1 says its MMAs are done. Returns with every MMA complete.
  template <class Mma, class FenceOperands>
  __device__ __forceinline__ void consume(int k_tiles, Mma&& mma, FenceOperands&& fence_operands) const {
    int stage = 0, prev = 0;
    uint32_t phase = 0;
    for (int kb = 0; kb < k_tiles; ++kb) {
      mbarrier_wait(&full[stage], phase);
      wgmma_fence();
      fence_operands();
      mma(static_cast<const unsigned char*>(smem + stage * kStageBytes));
      wgmma_commit();
      fence_operands();
      wgmma_wait<1>();  // k-tile kb - 1's MMAs are done: its stage is free
      if (kb > 0 && threadIdx.x % 128 == 0) mbarrier_arrive(&empty[prev]);
      prev = stage;
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
    wgmma_wait<0>();
    fence_operands();
  }

  // consume for a CTA that walks several output tiles (forward_pointwise_tma.cuh's persistent CTAs): `at` carries
  // the ring's position from one tile's k-tiles to the next's, and the tile's last stage is released too once its
  // MMAs are done (the producer is filling the stages for the next tile meanwhile).
  template <class Mma, class FenceOperands>
  __device__ __forceinline__ void consume_from(RingCursor& at, int k_tiles, Mma&& mma,
                                               FenceOperands&& fence_operands) const {
    int prev = 0;
    for (int kb = 0; kb < k_tiles; ++kb) {
      const unsigned char* s = landed(at);
      wgmma_fence();
      fence_operands();
      mma(s);
      wgmma_commit();
      fence_operands();
      wgmma_wait<1>();  // k-tile kb - 1's MMAs are done: its stage is free
      if (kb > 0) release(prev);
      prev = at.stage;
      at.advance<kStages>();
    }
    wgmma_wait<0>();
    fence_operands();
    if (k_tiles > 0) release(prev);
  }

  // consume for MMAs with an operand in registers, double-buffered: load(stage, buf) fills register buffer buf (0 or
  // 1, a std::integral_constant, alternating by k-tile) from the landed stage before the fence; mma(stage, buf) issues
  // the MMAs. A buffer is refilled two k-tiles later, once wgmma.wait_group 1 has said its MMAs are done.
  template <class Load, class Mma, class FenceOperands>
  __device__ __forceinline__ void consume_with_registers(int k_tiles, Load&& load, Mma&& mma,
                                                         FenceOperands&& fence_operands) const {
    int stage = 0, prev = 0;
    uint32_t phase = 0;
    auto tile = [&](int kb, auto buf) {
      mbarrier_wait(&full[stage], phase);
      const unsigned char* s = smem + stage * kStageBytes;
      load(s, buf);
      wgmma_fence();
      fence_operands();
      mma(s, buf);
      wgmma_commit();
      fence_operands();
      wgmma_wait<1>();  // k-tile kb - 1's MMAs are done: its stage and its register buffer are free
      fence_operands();
      if (kb > 0 && threadIdx.x % 128 == 0) mbarrier_arrive(&empty[prev]);
      prev = stage;
      if (++stage == kStages) stage = 0, phase ^= 1;
    };
    int kb = 0;
    for (; kb + 1 < k_tiles; kb += 2) {  // no path refills a buffer whose MMAs may be in flight (ptxas checks)
      tile(kb, std::integral_constant<int, 0>{});
      tile(kb + 1, std::integral_constant<int, 1>{});
    }
    if (kb < k_tiles) tile(kb, std::integral_constant<int, 0>{});
    wgmma_wait<0>();
    fence_operands();
  }
};

}  // namespace igemm
}  // namespace conv2d_ext
