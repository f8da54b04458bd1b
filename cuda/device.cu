#include "device.h"

#include <cuda_runtime.h>

#include <cstdio>

#include "check.h"

namespace wavemoe {
namespace gpu {

std::string cuda_version_string(int version) {
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

bool cuda_available(std::string* reason) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it, so that later checks do not report it again
    if (reason) *reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err) + cuda_error_hint(err);
    return false;
  }
  if (n == 0) {
    if (reason) *reason = "no CUDA-capable GPU is visible";
    return false;
  }
  return true;
}

int device_count() {
  int n = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDeviceCount(&n));
  if (n == 0) throw_cuda_error(cudaErrorNoDevice, "cudaGetDeviceCount", __FILE__, __LINE__);
  return n;
}

DeviceInfo device_info(int device) {
  DeviceInfo info;
  info.index = device;
  cudaDeviceProp prop;
  WAVEMOE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.total_bytes = prop.totalGlobalMem;
  info.shared_per_block_optin = prop.sharedMemPerBlockOptin;
  info.l2_bytes = prop.l2CacheSize;
  WAVEMOE_CUDA_CHECK(cudaDriverGetVersion(&info.driver_version));
  WAVEMOE_CUDA_CHECK(cudaRuntimeGetVersion(&info.runtime_version));
  int previous = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&previous));
  WAVEMOE_CUDA_CHECK(cudaSetDevice(device));
  size_t free_bytes = 0, total = 0;
  const cudaError_t err = cudaMemGetInfo(&free_bytes, &total);
  cudaSetDevice(previous);
  if (err != cudaSuccess) throw_cuda_error(err, "cudaMemGetInfo", __FILE__, __LINE__);
  info.free_bytes = free_bytes;
  return info;
}

std::string describe(const DeviceInfo& d) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%s (sm_%d%d, %d SMs, %.1f GiB, %.1f GiB free), driver %s, runtime %s",
                d.name.c_str(), d.cc_major, d.cc_minor, d.sm_count, d.total_bytes / 1073741824.0,
                d.free_bytes / 1073741824.0, cuda_version_string(d.driver_version).c_str(),
                cuda_version_string(d.runtime_version).c_str());
  return buf;
}

}  // namespace gpu
}  // namespace wavemoe
