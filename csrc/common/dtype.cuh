// Element types: the CUDA type that stands for each DType, its accumulator type, conversions, vector loads and
// stores of a few elements as floats, and
// dispatch_dtype() / dispatch_float_dtype(), which turn the runtime DType into a compile-time type for a launcher.
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <c10/util/Exception.h>

#include "common/conv_params.h"

namespace conv2d_ext {

// fp16/bf16/fp32 accumulate in fp32; fp64 in fp64.
template <typename T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };
template <typename T> using acc_t = typename AccType<T>::type;

template <typename T> __device__ __forceinline__ acc_t<T> to_acc(T v) { return static_cast<acc_t<T>>(v); }
template <> __device__ __forceinline__ float to_acc<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_acc<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_acc(acc_t<T> v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Elements of T in 16 bytes (4 fp32, 8 fp16/bf16): what one vector load or store moves.
template <typename T> struct Vec16 { static constexpr int value = 16 / sizeof(T); };

// The raw bits of kBytes (8 or 16) bytes: what one vector load moves, before conversion.
template <int kBytes> struct RawVec;
template <> struct RawVec<16> { using type = uint4; };
template <> struct RawVec<8> { using type = uint2; };
template <typename T, int kN> using raw_vec_t = typename RawVec<kN * int(sizeof(T))>::type;

// kN consecutive elements at `src` (aligned to their 8 or 16 bytes), read through the read-only cache, as raw bits.
template <typename T, int kN = Vec16<T>::value>
__device__ __forceinline__ raw_vec_t<T, kN> load_raw(const T* src) {
  return __ldg(reinterpret_cast<const raw_vec_t<T, kN>*>(src));
}

// Asks for the 128-byte line holding `p` to be brought into L2 (a hint: no register, no fault).
__device__ __forceinline__ void prefetch_l2(const void* p) {
#ifdef CONV2D_EXT_EMULATION
  (void)p;
#else
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

// The 16- or 32-bit element at `p` through the read-only cache where `ok`, else 0, as one predicated load (no branch
// around it, and no predicate kept alive past it: the destination is zeroed first). `p` is not read where !ok.
__device__ __forceinline__ uint16_t load_bits_or_zero(const uint16_t* p, bool ok) {
#ifdef CONV2D_EXT_EMULATION
  return ok ? *p : uint16_t(0);
#else
  uint16_t v;
  asm("{\n .reg .pred q;\n setp.ne.b32 q, %2, 0;\n mov.b16 %0, 0;\n @q ld.global.nc.b16 %0, [%1];\n}\n"
      : "=h"(v) : "l"(p), "r"(int(ok)));
  return v;
#endif
}
__device__ __forceinline__ uint32_t load_bits_or_zero(const uint32_t* p, bool ok) {
#ifdef CONV2D_EXT_EMULATION
  return ok ? *p : uint32_t(0);
#else
  uint32_t v;
  asm("{\n .reg .pred q;\n setp.ne.b32 q, %2, 0;\n mov.b32 %0, 0;\n @q ld.global.nc.b32 %0, [%1];\n}\n"
      : "=r"(v) : "l"(p), "r"(int(ok)));
  return v;
#endif
}

// The kN elements of T in `raw` as floats, out[0 .. kN-1].
template <typename T, int kN = Vec16<T>::value>
__device__ __forceinline__ void unpack_floats(const raw_vec_t<T, kN>& raw, float* out) {
  static_assert(kN * sizeof(T) == 16 || kN * sizeof(T) == 8, "8- or 16-byte vectors");
  uint32_t words[4];
  words[0] = raw.x, words[1] = raw.y;
  if constexpr (kN * sizeof(T) == 16) words[2] = raw.z, words[3] = raw.w;
  if constexpr (sizeof(T) == 4) {
#pragma unroll
    for (int i = 0; i < kN; ++i) out[i] = __uint_as_float(words[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kN / 2; ++i) {
      union { uint32_t u; T h[2]; } pair;
      pair.u = words[i];
      out[2 * i] = to_acc(pair.h[0]);
      out[2 * i + 1] = to_acc(pair.h[1]);
    }
  }
}

// kN consecutive elements at `src` (aligned to their 8 or 16 bytes), read through the read-only cache, into
// out[0 .. kN-1] as floats.
template <typename T, int kN = Vec16<T>::value>
__device__ __forceinline__ void load_floats(const T* src, float* out) {
  unpack_floats<T, kN>(load_raw<T, kN>(src), out);
}

// kN floats to kN consecutive elements at `dst` (aligned to their 8 or 16 bytes), in T.
template <typename T, int kN = Vec16<T>::value>
__device__ __forceinline__ void store_floats(T* dst, const float* v) {
  static_assert(kN * sizeof(T) == 16 || kN * sizeof(T) == 8, "8- or 16-byte stores");
  uint32_t words[kN * sizeof(T) / 4];
  if constexpr (sizeof(T) == 4) {
#pragma unroll
    for (int i = 0; i < kN; ++i) words[i] = __float_as_uint(v[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kN / 2; ++i) {
      union { uint32_t u; T h[2]; } pair;
      pair.h[0] = from_acc<T>(v[2 * i]);
      pair.h[1] = from_acc<T>(v[2 * i + 1]);
      words[i] = pair.u;
    }
  }
  if constexpr (kN * sizeof(T) == 16)
    *reinterpret_cast<uint4*>(dst) = make_uint4(words[0], words[1], words[2], words[3]);
  else *reinterpret_cast<uint2*>(dst) = make_uint2(words[0], words[1]);
}

// Two floats as two consecutive elements of T, raw bits (one 4-byte word fp16/bf16, 8 bytes fp32): for a paired
// store.
template <typename T> struct PairBits { using type = uint32_t; };
template <> struct PairBits<float> { using type = uint2; };
template <typename T>
__device__ __forceinline__ typename PairBits<T>::type pack_pair(float a, float b) {
  if constexpr (sizeof(T) == 4) {
    return make_uint2(__float_as_uint(a), __float_as_uint(b));
  } else if constexpr (std::is_same<T, __half>::value) {
    const __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
}

// A 16-bit float's raw bits and back (never memcpy a __half / __nv_bfloat16 into 16-bit storage: nvcc 13.0 lowered
// one such memcpy into shared memory to two byte stores, the low byte an F2I conversion of the value).
template <typename T>
__device__ __forceinline__ unsigned short bits16(T v) {
  if constexpr (std::is_same<T, __half>::value) return __half_as_ushort(v);
  else return __bfloat16_as_ushort(v);
}
template <typename T>
__device__ __forceinline__ T from_bits16(unsigned short b) {
  if constexpr (std::is_same<T, __half>::value) return __ushort_as_half(b);
  else return __ushort_as_bfloat16(b);
}

template <typename T> struct TypeTag { using type = T; };

// Calls f(TypeTag<T>{}) with T the CUDA element type of `dtype`: the one place a runtime dtype becomes a
// template argument.
template <typename F>
void dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32: f(TypeTag<float>{}); break;
    case DType::kFloat64: f(TypeTag<double>{}); break;
    case DType::kFloat16: f(TypeTag<__half>{}); break;
    case DType::kBFloat16: f(TypeTag<__nv_bfloat16>{}); break;
    default: TORCH_CHECK(false, "conv2d_ext: unsupported dtype");
  }
}

// The same for kernels without a float64 path (the tensor-core and tiled families; their can_implement has turned
// float64 away): float, half, bfloat16. `kernel` names the caller in the error.
template <typename F>
void dispatch_float_dtype(DType dtype, const char* kernel, F&& f) {
  switch (dtype) {
    case DType::kFloat32: f(TypeTag<float>{}); break;
    case DType::kFloat16: f(TypeTag<__half>{}); break;
    case DType::kBFloat16: f(TypeTag<__nv_bfloat16>{}); break;
    default: TORCH_CHECK(false, "conv2d_ext: ", kernel, ": unsupported dtype");
  }
}

}  // namespace conv2d_ext
