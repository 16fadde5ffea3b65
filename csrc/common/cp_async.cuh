// Asynchronous global -> shared copies (cp.async, sm_80+): the multi-stage pipelines' loads.
#pragma once

#include <cstdint>

#include "common/mma.cuh"

namespace conv2d_ext {

// Copies 16 bytes, or writes 16 zero bytes when `valid` is false (then `src` is not read, but must be a valid
// address). Both addresses 16-byte aligned. Bypasses L1 (.cg): tiles are staged in shared memory anyway.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#ifdef CONV2D_EXT_EMULATION
  emu::cp_async(dst, src, 16, valid);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
#endif
}

// The same to shared-window address `dst`.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
#ifdef CONV2D_EXT_EMULATION
  emu::cp_async(emu::shared_at(dst), src, 16, valid);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#ifdef CONV2D_EXT_EMULATION
  emu::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most `kPending` committed groups of this thread are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
#ifdef CONV2D_EXT_EMULATION
  emu::cp_async_wait(kPending);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
#endif
}

}  // namespace conv2d_ext
