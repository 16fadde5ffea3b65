// Launch helpers shared by every kernel family and the binding: device properties (read once per device) and
// grid sizing. Host code only; device-side reductions live in reduce.cuh.
#pragma once

#include <cstdint>
#include <mutex>

#include <cuda_runtime.h>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>

namespace conv2d_ext {

struct DeviceInfo {
  int sms;  // multiprocessor count
  int sm;   // compute capability, major * 10 + minor
};

// The properties of CUDA device `device`, queried on first use and cached.
inline const DeviceInfo& device_info(int device) {
  constexpr int kMaxDevices = 64;
  static DeviceInfo cache[kMaxDevices];
  static std::once_flag once[kMaxDevices];
  TORCH_CHECK(device >= 0 && device < kMaxDevices, "conv2d_ext: CUDA device index ", device, " out of range");
  std::call_once(once[device], [device] {
    int sms = 0, major = 0, minor = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    cache[device] = DeviceInfo{sms, major * 10 + minor};
  });
  return cache[device];
}

// Multiprocessor count of the current device (launchers run under the binding's device guard).
inline int num_sms() {
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  return device_info(device).sms;
}

// Blocks for a grid-stride loop over `total` items: enough to fill the device several times over, never
// more than the work needs. Grid-stride loops keep every kernel correct for any 64-bit `total`.
inline unsigned grid_for(int64_t total, int threads, int blocks_per_sm = 16) {
  const int64_t needed = (total + threads - 1) / threads;
  const int64_t cap = static_cast<int64_t>(num_sms()) * blocks_per_sm;
  const int64_t blocks = needed < cap ? needed : cap;
  return static_cast<unsigned>(blocks > 0 ? blocks : 1);
}

}  // namespace conv2d_ext
