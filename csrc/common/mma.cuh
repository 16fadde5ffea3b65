// Warp-level tensor-core helpers (sm_80+): mma.sync for fp16/bf16 (m16n8k16) and TF32 (m16n8k8), ldmatrix.
// Every MMA here consumes 32 bytes of the reduction per row (16 half-precision or 8 fp32 values), so the
// fragment loading code above it is the same for every dtype. Register layouts: PTX ISA, "Matrix fragments for
// mma.m16n8k16 / mma.m16n8k8" (A row-major 16 x k, B column-major k x 8, C/D fp32 16 x 8).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace conv2d_ext {

// d += a * b for one 16 x 8 tile and one 32-byte reduction step. float operands run as TF32.
template <typename T> struct Mma;

template <> struct Mma<__half> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef CONV2D_EXT_EMULATION
    emu::mma(0, d, a, b);  // tests/emulation/emu.h
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
  }
};

template <> struct Mma<__nv_bfloat16> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef CONV2D_EXT_EMULATION
    emu::mma(1, d, a, b);  // tests/emulation/emu.h
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
  }
};

// d += a * b for one 16 x 8 tile and 16 bytes of reduction (m16n8k8, fp16/bf16): a holds A's rows gid and gid + 8,
// columns 2t and 2t + 1; b B's rows 2t and 2t + 1, column gid (gid = lane / 4, t = lane % 4).
template <typename T> struct MmaK8;

template <> struct MmaK8<__half> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[2], uint32_t b) {
#ifdef CONV2D_EXT_EMULATION
    emu::mma_k8(0, d, a, b);
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b));
#endif
  }
};

template <> struct MmaK8<__nv_bfloat16> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[2], uint32_t b) {
#ifdef CONV2D_EXT_EMULATION
    emu::mma_k8(1, d, a, b);
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b));
#endif
  }
};

// fp32 bits go in as they are: the tensor core reads the TF32 part (1 + 8 + 10 bits) of each.
template <> struct Mma<float> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef CONV2D_EXT_EMULATION
    emu::mma(2, d, a, b);  // tests/emulation/emu.h
#else
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
  }
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// The first Align-byte aligned byte of the dynamic shared memory `raw` (the extern __shared__ array), by pointer
// arithmetic on the array itself, so that the compiler still knows every pointer derived from it is in shared
// memory: its loads and stores become LDS / STS. An integer round trip through uintptr_t loses that: the epilogues'
// reads of their staged tiles were generic LD.E, which the compiler keeps in order behind the global stores before
// them (they might alias). (H100, session 42: the NCHW forward's time did not change with it; its stores themselves
// are the slow part, benchmarks/NOTES.md.)
template <int Align>
__device__ __forceinline__ unsigned char* align_shared(unsigned char* raw) {
  return raw + ((Align - smem_addr(raw) % Align) % Align);
}

// One 32-bit word of shared memory at shared-window address `addr` (volatile: kept after the barrier wait that made
// the word visible).
__device__ __forceinline__ uint32_t ld_shared_b32(uint32_t addr) {
#ifdef CONV2D_EXT_EMULATION
  return ::emu::ld_shared_b32(addr);  // tests/emulation/emu_tma.h
#else
  uint32_t v;
  asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(addr));
  return v;
#endif
}

// Four 8 x 16-byte matrices from shared memory; lane i gives the row address of matrix i / 8, row i % 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#ifdef CONV2D_EXT_EMULATION
  ::emu::ldmatrix<4>(r, smem_addr(row), false);  // tests/emulation/emu_tma.h
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
#endif
}

// The same, transposed: lane i still gives a row address, and each thread receives the elements of the transposed
// 8 x 8 matrix (16-bit elements only), which turns an M-major (or N-major) tile into mma's A (B) fragments.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
#ifdef CONV2D_EXT_EMULATION
  ::emu::ldmatrix<4>(r, smem_addr(row), true);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
#endif
}

// Shared-window-address forms (a 32-bit `addr` from smem_addr plus offsets), for kernels that compute their lanes'
// row addresses as integers (the grouped tiles). Volatile like the others: an address computed from kernel
// constants alone (the backward-weight's) does not depend on anything the barrier before it made visible, and a
// plain asm without a memory clobber could be moved above that barrier.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
#ifdef CONV2D_EXT_EMULATION
  ::emu::ldmatrix<4>(r, addr, false);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
#ifdef CONV2D_EXT_EMULATION
  ::emu::ldmatrix<4>(r, addr, true);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#endif
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], uint32_t addr) {
#ifdef CONV2D_EXT_EMULATION
  ::emu::ldmatrix<2>(r, addr, true);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
#endif
}

// 8 bytes from / 16 bytes to shared memory at shared-window address `addr`.
__device__ __forceinline__ void ld_shared_v2(uint32_t (&r)[2], uint32_t addr) {
#ifdef CONV2D_EXT_EMULATION
  ::emu::ld_shared_v2(r, addr);
#else
  asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
#endif
}

__device__ __forceinline__ void st_shared_v4(uint32_t addr, const uint4& v) {
#ifdef CONV2D_EXT_EMULATION
  ::emu::st_shared_v4(addr, v);
#else
  asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
#endif
}

}  // namespace conv2d_ext
