// Element types: the CUDA type that stands for each DType, its accumulator type, conversions, and
// dispatch_dtype() / dispatch_float_dtype(), which turn the runtime DType into a compile-time type for a launcher.
#pragma once

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
