#include "device.h"

#include <atomic>
#include <cctype>

#include "error.h"

namespace wavemoe {
namespace {
std::atomic<DeviceBackend*> g_cuda_backend{nullptr};
}  // namespace

bool parse_device(const std::string& s, DeviceRef* out) {
  if (s == "cpu") {
    *out = DeviceRef{};
    return true;
  }
  if (s == "cuda") {
    *out = DeviceRef{Device::cuda, 0};
    return true;
  }
  if (s.rfind("cuda:", 0) != 0 || s.size() == 5 || s.size() > 9) return false;
  int index = 0;
  for (size_t i = 5; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    index = index * 10 + (s[i] - '0');
  }
  if (index >= 1024) return false;
  *out = DeviceRef{Device::cuda, index};
  return true;
}

DeviceBackend* device_backend(Device type) { return type == Device::cuda ? g_cuda_backend.load() : nullptr; }

void register_device_backend(Device type, DeviceBackend* backend) {
  if (type == Device::cuda) g_cuda_backend.store(backend);
}

DeviceBackend& usable_backend(const DeviceRef& d) {
  DeviceBackend* b = device_backend(d.type);
  if (b == nullptr) {
    throw Error("device '" + d.str() +
                "' needs the CUDA-enabled build of wavemoe, and this one is CPU only (build it with `npm run "
                "build:cuda` where nvcc is installed, then load it with WAVEMOE_ADDON=build-cuda/Release/wavemoe.node)");
  }
  b->check_usable(d.index);
  return *b;
}

}  // namespace wavemoe
