// Host side of common/tma.cuh: encoding tensor maps through the driver's cuTensorMapEncodeTiled, looked up once
// through the runtime (so the extension does not link against libcuda).
#include "common/tma.cuh"

#include <cudaTypedefs.h>

#include <mutex>

namespace conv2d_ext {

namespace {

#ifndef CONV2D_EXT_EMULATION
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* entry = nullptr;
    cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
    const cudaError_t err = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &entry, 12000, cudaEnableDefault,
                                                             &found);
#else
    const cudaError_t err = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &entry, cudaEnableDefault, &found);
#endif
    if (err == cudaSuccess && found == cudaDriverEntryPointSuccess)
      fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(entry);
    else
      cudaGetLastError();  // leave no sticky error behind
  });
  return fn;
}
#endif

}  // namespace

const char* encode_tensor_map_4d(CUtensorMap* map, CUtensorMapDataType dtype, const void* base,
                                 const uint64_t (&dims)[4], const uint64_t (&strides)[3], const uint32_t (&box)[4],
                                 const uint32_t (&step)[4], bool swizzle128) {
#ifdef CONV2D_EXT_EMULATION
  const auto fn = ::emu::encode_tensor_map;  // tests/emulation/emu_tma.h: the parameters in our own format
#else
  const auto fn = encode_tiled();
#endif
  if (fn == nullptr) return "the driver has no cuTensorMapEncodeTiled";
  const CUresult r = fn(map, dtype, 4, const_cast<void*>(base), dims, strides, box, step, CU_TENSOR_MAP_INTERLEAVE_NONE,
                        swizzle128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? "" : "cuTensorMapEncodeTiled refused the tensor";
}

}  // namespace conv2d_ext
