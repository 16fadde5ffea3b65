// Hopper's bulk tensor copies (TMA, sm_90) and the shared-memory barriers they complete on (mbarrier): the
// producer side of a warp-specialized pipeline. Device code: mbarrier init / arrive / expect-tx / wait, and 4-D tiled
// tensor loads and stores. Host code: the tensor map (CUtensorMap) of a strided tensor, encoded through
// the driver's cuTensorMapEncodeTiled, reached through the runtime (no link against libcuda).
//
// PTX ISA: "cp.async.bulk.tensor", "mbarrier"; CUDA driver API: "Tensor Map Object Management". Compiled only for
// sm_90a like wgmma.cuh (CONV2D_EXT_WGMMA_DEVICE); elsewhere the device calls trap, and can_implement keeps the
// kernels that use them from running.
#pragma once

#include <cstdint>

#include <cuda.h>
#include <cuda_runtime.h>

#include "common/mma.cuh"
#include "common/wgmma.cuh"

namespace conv2d_ext {

// ---- Device side.

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, int count) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::mbarrier_init(smem_addr(bar), count);  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
#endif
}

// Ends a barrier's life (PTX: before its memory is used for anything else).
__device__ __forceinline__ void mbarrier_inval(uint64_t* bar) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::mbarrier_inval(smem_addr(bar));  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("mbarrier.inval.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}

// Makes the barriers' initialisation visible to the async proxy (the copy engine) before any copy completes on them.
__device__ __forceinline__ void fence_barrier_init() {
#ifdef CONV2D_EXT_WGMMA_DEVICE
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// One arrival, and `bytes` more transaction bytes the phase waits for (the copies issued next complete them).
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::mbarrier_arrive_expect_tx(smem_addr(bar), bytes);  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
#endif
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::mbarrier_arrive(smem_addr(bar));  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}

// mbarrier_arrive where `pred` holds, as one predicated instruction: no branch (a branch between an MMA and the
// next MMA's register loads makes ptxas serialise the MMAs, C7513).
__device__ __forceinline__ void mbarrier_arrive_if(uint64_t* bar, bool pred) {
#if defined(CONV2D_EXT_EMULATION)
  if (pred) ::emu::mbarrier_arrive(smem_addr(bar));  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %1, 0;\n@p mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n" ::"r"(
                   smem_addr(bar)),
               "r"(int(pred))
               : "memory");
#endif
}

// Waits until the phase of parity `parity` of the barrier has completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::mbarrier_wait(smem_addr(bar), parity);  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile(
      "{\n.reg .pred done;\nwait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
#endif
}

// Tiled tensor copy of the box at coordinates c (innermost dimension first; out-of-bounds elements are written as
// zeros) into shared memory at `dst`, completing `bytes` of the barrier's transaction count.
__device__ __forceinline__ void tma_load_4d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1, int c2,
                                            int c3) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::tma_load_4d(smem_addr(dst), map, smem_addr(bar), c0, c1, c2, c3);  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(smem_addr(dst)),
      "l"(map), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
#else
  __trap();
#endif
}

// Tiled tensor copy of the box at coordinates c (innermost dimension first) from shared memory at `src` to global
// memory; elements outside the tensor are not written. Joins the thread's current bulk group (bulk_commit). The
// writing threads' shared-memory stores must be ordered before it by fence_proxy_async_shared.
__device__ __forceinline__ void tma_store_4d(const void* src, const CUtensorMap* map, int c0, int c1, int c2, int c3) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::tma_store_4d(smem_addr(src), map, c0, c1, c2, c3);  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(map),
               "r"(smem_addr(src)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
               : "memory");
#else
  __trap();
#endif
}

// Closes the thread's current bulk group (tma_store_4d).
__device__ __forceinline__ void bulk_commit() {
#ifdef CONV2D_EXT_WGMMA_DEVICE
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most kPending of the thread's bulk groups still read their shared-memory source (kRead) or have
// not completed their writes (!kRead).
template <int kPending, bool kRead>
__device__ __forceinline__ void bulk_wait() {
#ifdef CONV2D_EXT_WGMMA_DEVICE
  if constexpr (kRead) asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
  else asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Orders this thread's shared-memory writes before later copy-engine (async proxy) reads of them.
__device__ __forceinline__ void fence_proxy_async_shared() {
#ifdef CONV2D_EXT_WGMMA_DEVICE
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Asks the copy engine to fetch a tensor map's descriptor ahead of its first copy.
__device__ __forceinline__ void tma_prefetch_descriptor(const CUtensorMap* map) {
#ifdef CONV2D_EXT_WGMMA_DEVICE
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(map) : "memory");
#endif
}

// Barrier among `threads` threads (a multiple of 32) of the CTA on hardware barrier `id` (1..15; 0 is
// __syncthreads'), so that some warps can synchronise while others run on.
__device__ __forceinline__ void named_barrier(int id, int threads) {
#ifdef CONV2D_EXT_EMULATION
  ::emu::named_barrier(id, threads);  // tests/emulation/emu_tma.h
#else
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
#endif
}

// ---- Host side.

// The tensor map of a 4-D tensor of `dtype` elements at `base`: dims and byte strides innermost first (strides[0]
// of dim 1, ...), a box of `box`
// elements traversed with `step` elements between loaded ones, 128-byte swizzle when `swizzle128` (the box's inner
// extent must then be 128 bytes). Returns "" or why the driver refused it.
const char* encode_tensor_map_4d(CUtensorMap* map, CUtensorMapDataType dtype, const void* base, const uint64_t (&dims)[4],
                                 const uint64_t (&strides)[3], const uint32_t (&box)[4], const uint32_t (&step)[4],
                                 bool swizzle128);

}  // namespace conv2d_ext
