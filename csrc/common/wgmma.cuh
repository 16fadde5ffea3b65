// Hopper warpgroup MMA (wgmma, sm_90a): shared-memory matrix descriptors, the fences and group waits around the
// asynchronous MMAs, and m64n128 MMAs with fp32 accumulators for bf16/fp16 (k16) and TF32 (k8). Every MMA consumes 32
// bytes of the reduction per row, like mma.cuh's, so a k-tile's steps are the same for every dtype.
//
// Operands are K-major in shared memory, rows swizzled in 16-byte chunks (PTX ISA, "Matrix Descriptor Format" and
// "Shared Memory Matrix Layout" of wgmma). Compiled only for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL); elsewhere the calls
// trap, and the kernels' can_implement keeps them from running (CONV2D_EXT_SM90A on the host says the build has them).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/mma.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CONV2D_EXT_WGMMA_DEVICE 1
#endif

namespace conv2d_ext {

// Is this build's wgmma code there for a GPU of compute capability `sm` (host side)?
inline bool wgmma_built_for(int sm) {
#ifdef CONV2D_EXT_SM90A
  return sm == 90;
#else
  (void)sm;
  return false;
#endif
}

// Descriptor of a K-major operand at `tile` (shared memory) whose rows are kRowBytes (32, 64 or 128) long, 16-byte
// chunk c of row r stored at chunk c ^ (r % 8) / (8 / chunks per row): the hardware's swizzle of that width, its 8-row
// atoms kRowBytes * 8 apart (stride byte offset) and aligned to that size. `tile` may start inside a row (the next
// 32-byte step of the reduction) or at any row of an atom (forward_tma.cuh's halo boxes): the swizzle applies to the
// address bits, as the rows were stored, and the descriptor's base-offset field stays 0 (measured, H200).
template <int kRowBytes>
__device__ __forceinline__ uint64_t wgmma_descriptor(const void* tile) {
  constexpr uint64_t kLayout = kRowBytes == 128 ? 1 : kRowBytes == 64 ? 2 : 3;  // 128-, 64-, 32-byte swizzle
  const uint64_t address = smem_addr(tile);
  return ((address & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t((8 * kRowBytes) >> 4) << 32) | (kLayout << 62);
}

// An MN-major operand wider than one 64-element (128-byte) swizzle atom: wgmma_descriptor's, with the atoms along MN
// `lbo` bytes apart (the leading byte offset; PTX's canonical MN-major layout with 128-byte swizzle is, in 16-byte
// units, ((8, 8, m), (8, k)) : ((1, 8, LBO), (64, SBO))). One atom wide (m64 A, n64 B), the field is not read.
template <int kRowBytes>
__device__ __forceinline__ uint64_t wgmma_descriptor_mn(const void* tile, uint32_t lbo) {
  return (wgmma_descriptor<kRowBytes>(tile) & ~(uint64_t(0x3FFF) << 16)) | (uint64_t((lbo >> 4) & 0x3FFF) << 16);
}

// Shared memory written by this thread (st.shared or completed cp.async) becomes visible to the async proxy that
// wgmma reads through; each writing thread runs it before the barrier that precedes the MMAs.
__device__ __forceinline__ void fence_proxy_async() {
#ifdef CONV2D_EXT_WGMMA_DEVICE
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Four 8 x 16-byte matrices to shared memory (stmatrix, sm_90): lane i gives the row address of matrix i / 8, row
// i % 8, and r[j] holds the thread's fragment of matrix j as ldmatrix_x4 returns it (row lane / 4, 16-bit elements
// 2 (lane % 4) and 2 (lane % 4) + 1). After ldmatrix_x4_trans of the same four matrices elsewhere, it writes them
// transposed.
__device__ __forceinline__ void stmatrix_x4(uint32_t addr, const uint32_t (&r)[4]) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::stmatrix<4>(addr, r, false);  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r[0]), "r"(r[1]),
               "r"(r[2]), "r"(r[3])
               : "memory");
#else
  (void)addr, (void)r;
  __trap();
#endif
}

// stmatrix_x4 transposed (.trans): lane i's address takes column i % 8 of matrix i / 8 (its 8 elements, rows 0..7, as
// one 16-byte row). An accumulator pair (row g, columns 2t, 2t + 1 of an 8 x 8 block) lands as part of two rows: a
// tile's columns become rows (forward_tma.cuh's NCHW epilogue: channels x pixels).
__device__ __forceinline__ void stmatrix_x4_trans(uint32_t addr, const uint32_t (&r)[4]) {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::stmatrix<4>(addr, r, true);  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
#else
  (void)addr, (void)r;
  __trap();
#endif
}

// Orders this warpgroup's register accesses to the accumulators before the MMAs that follow.
__device__ __forceinline__ void wgmma_fence() {
#ifdef CONV2D_EXT_WGMMA_DEVICE
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::wgmma_commit();  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

// Waits until at most kPending committed MMA groups of this warpgroup are in flight.
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
#if defined(CONV2D_EXT_EMULATION)
  ::emu::wgmma_wait(kPending);  // tests/emulation/emu_tma.h
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Keeps the compiler from moving accumulator reads or writes across an asynchronous MMA.
template <int N>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[N]) {
#ifdef CONV2D_EXT_EMULATION
  (void)d;  // tests/emulation/emu_tma.h: accumulators are plain memory there
#else
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
#endif
}

#define CONV2D_EXT_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
                         "+f"(d[i + 6]), "+f"(d[i + 7])
#define CONV2D_EXT_D64 CONV2D_EXT_D8(0), CONV2D_EXT_D8(8), CONV2D_EXT_D8(16), CONV2D_EXT_D8(24), CONV2D_EXT_D8(32), \
                       CONV2D_EXT_D8(40), CONV2D_EXT_D8(48), CONV2D_EXT_D8(56)
#define CONV2D_EXT_WGMMA_64N128(shape_and_types, immediates)                                                   \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                    \
               "wgmma.mma_async.sync.aligned." shape_and_types " {"                                           \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
               "}, %64, %65, p, 1, 1" immediates ";\n}\n"                                                    \
               : CONV2D_EXT_D64                                                                               \
               : "l"(a), "l"(b), "r"(1))

#define CONV2D_EXT_D96 CONV2D_EXT_D64, CONV2D_EXT_D8(64), CONV2D_EXT_D8(72), CONV2D_EXT_D8(80), CONV2D_EXT_D8(88)
#define CONV2D_EXT_WGMMA_64N192(shape_and_types, immediates)                                                   \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"                                                    \
               "wgmma.mma_async.sync.aligned." shape_and_types " {"                                           \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
               "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
               "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95" \
               "}, %96, %97, p, 1, 1" immediates ";\n}\n"                                                    \
               : CONV2D_EXT_D96                                                                               \
               : "l"(a), "l"(b), "r"(1))

#define CONV2D_EXT_D32 CONV2D_EXT_D8(0), CONV2D_EXT_D8(8), CONV2D_EXT_D8(16), CONV2D_EXT_D8(24)
#define CONV2D_EXT_WGMMA_64N64(shape_and_types, immediates)                                                    \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                    \
               "wgmma.mma_async.sync.aligned." shape_and_types " {"                                           \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
               "}, %32, %33, p, 1, 1" immediates ";\n}\n"                                                    \
               : CONV2D_EXT_D32                                                                               \
               : "l"(a), "l"(b), "r"(1))

// d (64 x 128 per warpgroup, fp32) += A (64 x one 32-byte step, descriptor a) * B (128 x the same step, descriptor b)^T;
// Wgmma64x64 the same with 64 columns of B.
template <typename T> struct Wgmma64x128;
template <typename T> struct Wgmma64x64;
// m64n64 with both operands MN-major (A rows, B rows contiguous; the reduction strided): the transpose bits, 16-bit
// types only. The descriptor is wgmma_descriptor's: a 64-element (128-byte) swizzled row per reduction index, its
// 8-row atoms 1024 bytes apart, one atom wide.
template <typename T> struct Wgmma64x64MN;
// m64n128, both operands MN-major: B two atoms wide (wgmma_descriptor_mn: the atoms LBO bytes apart).
template <typename T> struct Wgmma64x128MN;
// m64n192 / m64n128 / m64n64 with A MN-major (its rows contiguous, laid out as Wgmma64x64MN's operands) and B K-major:
// 16-bit.
template <typename T> struct Wgmma64x192AMN;
template <typename T> struct Wgmma64x128AMN;
template <typename T> struct Wgmma64x64AMN;

#if defined(CONV2D_EXT_EMULATION)  // tests/emulation/emu_tma.h: kind and transposes from the PTX strings
#define CONV2D_EXT_WGMMA_RUN(N, shape_and_types, immediates)                                                  \
  ::emu::wgmma_ss(::emu::wgmma_kind(shape_and_types), N, d, a, b, ::emu::wgmma_trans(immediates, 0),        \
                  ::emu::wgmma_trans(immediates, 1))
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
#define CONV2D_EXT_WGMMA_RUN(N, shape_and_types, immediates) CONV2D_EXT_WGMMA_64N##N(shape_and_types, immediates)
#else
#define CONV2D_EXT_WGMMA_RUN(N, shape_and_types, immediates) __trap()
#endif
#define CONV2D_EXT_WGMMA_SPECIALIZATION(Name, N, T, shape_and_types, immediates)          \
  template <> struct Name<T> {                                                             \
    __device__ __forceinline__ static void run(float (&d)[N / 2], uint64_t a, uint64_t b) { \
      CONV2D_EXT_WGMMA_RUN(N, shape_and_types, immediates);                                \
    }                                                                                      \
  };

CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x128, 128, __nv_bfloat16, "m64n128k16.f32.bf16.bf16", ", 0, 0")  // both operands K-major
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x128, 128, __half, "m64n128k16.f32.f16.f16", ", 0, 0")
// fp32 bits go in as they are: the tensor core reads their TF32 part (both operands K-major, as TF32 requires).
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x128, 128, float, "m64n128k8.f32.tf32.tf32", "")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x64, 64, __nv_bfloat16, "m64n64k16.f32.bf16.bf16", ", 0, 0")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x64, 64, __half, "m64n64k16.f32.f16.f16", ", 0, 0")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x64, 64, float, "m64n64k8.f32.tf32.tf32", "")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x64MN, 64, __nv_bfloat16, "m64n64k16.f32.bf16.bf16", ", 1, 1")  // transposed
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x64MN, 64, __half, "m64n64k16.f32.f16.f16", ", 1, 1")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x128MN, 128, __nv_bfloat16, "m64n128k16.f32.bf16.bf16", ", 1, 1")  // transposed
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x128MN, 128, __half, "m64n128k16.f32.f16.f16", ", 1, 1")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x192AMN, 192, __nv_bfloat16, "m64n192k16.f32.bf16.bf16", ", 1, 0")  // A transposed
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x192AMN, 192, __half, "m64n192k16.f32.f16.f16", ", 1, 0")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x128AMN, 128, __nv_bfloat16, "m64n128k16.f32.bf16.bf16", ", 1, 0")  // A transposed
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x128AMN, 128, __half, "m64n128k16.f32.f16.f16", ", 1, 0")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x64AMN, 64, __nv_bfloat16, "m64n64k16.f32.bf16.bf16", ", 1, 0")
CONV2D_EXT_WGMMA_SPECIALIZATION(Wgmma64x64AMN, 64, __half, "m64n64k16.f32.f16.f16", ", 1, 0")

// m64nNk8 TF32 (N = 128 or 64) with A from registers: four 32-bit fragments per thread, laid out per warp as
// mma.sync m16n8k8's A (warp w of the warpgroup holds rows 16 w .. 16 w + 15; a0 = (row g, k t), a1 = (g + 8, t),
// a2 = (g, t + 4), a3 = (g + 8, t + 4), g = lane / 4, t = lane % 4); B K-major in shared memory (descriptor b). The
// A registers must stay untouched until the MMA is waited for.
template <int N> struct WgmmaTf32RS;
#if defined(CONV2D_EXT_EMULATION)  // tests/emulation/emu_tma.h
#define CONV2D_EXT_WGMMA_RS(N, D, a_regs, b_desc, flag) ::emu::wgmma_rs_tf32(N, d, a, b)
#elif defined(CONV2D_EXT_WGMMA_DEVICE)
#define CONV2D_EXT_WGMMA_RS(N, D, a_regs, b_desc, flag)                                                     \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " flag ", 0;\n"                                          \
               "wgmma.mma_async.sync.aligned.m64n" #N "k8.f32.tf32.tf32 {" CONV2D_EXT_WGMMA_RS_D##N "}, {" a_regs \
               "}, " b_desc ", p, 1, 1;\n}\n"                                                             \
               : D                                                                                        \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1))
#else
#define CONV2D_EXT_WGMMA_RS(N, D, a_regs, b_desc, flag) ((void)d, (void)a, (void)b, __trap())
#endif
#define CONV2D_EXT_WGMMA_RS_D64                                                                              \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31"
#define CONV2D_EXT_WGMMA_RS_D128                                                                              \
  CONV2D_EXT_WGMMA_RS_D64 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
template <> struct WgmmaTf32RS<128> {
  __device__ __forceinline__ static void run(float (&d)[64], const uint32_t (&a)[4], uint64_t b) {
    CONV2D_EXT_WGMMA_RS(128, CONV2D_EXT_D64, "%64, %65, %66, %67", "%68", "%69");
  }
};
template <> struct WgmmaTf32RS<64> {
  __device__ __forceinline__ static void run(float (&d)[32], const uint32_t (&a)[4], uint64_t b) {
    CONV2D_EXT_WGMMA_RS(64, CONV2D_EXT_D32, "%32, %33, %34, %35", "%36", "%37");
  }
};

// The thread's A fragment of k8 step j for WgmmaTf32RS from a box of fp32 channel rows kPitch floats apart: channels
// 8 j + t (+ 4) x pixels px (+ 8) (t = lane % 4, px the thread's row g of the warp's 16), `at` = the box's
// shared-window address + (t kPitch + px) 4.
template <int kPitch>
__device__ __forceinline__ void tf32_box_fragment(uint32_t (&f)[4], uint32_t at, int j) {
#pragma unroll
  for (int i = 0; i < 4; ++i) f[i] = ld_shared_b32(at + ((8 * j + (i / 2) * 4) * kPitch + (i % 2) * 8) * 4);
}

// One k8 step of a register-A TF32 pipeline as its own commit group: the MMA of fragments `a` against B at `b`
// (K-major, 128-byte swizzled rows), then wgmma.wait_group 1: the step before is done (its registers and operands
// free), this one in flight. The caller alternates two fragment buffers. Keep branches out of the code between one
// step and the next one's fragment loads: ptxas then waits for every MMA (C7513).
template <int N>
__device__ __forceinline__ void tf32_rs_step(float (&acc)[N / 2], const uint32_t (&a)[4], const void* b) {
  wgmma_fence();
  wgmma_fence_operands(acc);
  WgmmaTf32RS<N>::run(acc, a, wgmma_descriptor<128>(b));
  wgmma_commit();
  wgmma_fence_operands(acc);
  wgmma_wait<1>();
  wgmma_fence_operands(acc);
}
#undef CONV2D_EXT_WGMMA_RS
#undef CONV2D_EXT_WGMMA_RS_D64
#undef CONV2D_EXT_WGMMA_RS_D128

#undef CONV2D_EXT_WGMMA_SPECIALIZATION
#undef CONV2D_EXT_WGMMA_RUN
#undef CONV2D_EXT_WGMMA_64N192
#undef CONV2D_EXT_WGMMA_64N128
#undef CONV2D_EXT_WGMMA_64N64

}  // namespace conv2d_ext
