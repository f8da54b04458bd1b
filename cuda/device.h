// The CUDA devices: how many, what they are, and the driver and runtime versions. Safe to call on a machine
// without a driver or GPU (cuda_available says why not; the others throw a message that says so).
#pragma once
#include <cstddef>
#include <string>

namespace wavemoe {
namespace gpu {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;   // compute capability, e.g. 9.0 for H100/H200
  int sm_count = 0;
  size_t total_bytes = 0, free_bytes = 0;
  size_t shared_per_block_optin = 0;  // the most shared memory one block may ask for
  int l2_bytes = 0;
  int driver_version = 0;   // e.g. 13000 for 13.0 (cudaDriverGetVersion); 0 if no driver
  int runtime_version = 0;  // the CUDA runtime linked in (cudaRuntimeGetVersion)
};

// True when at least one device can be used; otherwise false with *reason set (e.g. "no NVIDIA driver ...").
bool cuda_available(std::string* reason);
// Number of devices; throws std::runtime_error with a clear message when there is no driver or no GPU.
int device_count();
DeviceInfo device_info(int device);
// One line: "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB, 138.9 GiB free), driver 13.0, runtime 13.0".
std::string describe(const DeviceInfo& info);
// "13.0" from 13000.
std::string cuda_version_string(int version);

}  // namespace gpu
}  // namespace wavemoe
