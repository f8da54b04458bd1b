// cudaInfo(): what this build knows of CUDA, for `wavemoe info`. In a CPU-only build (node-gyp, the default) it says
// so; in a CUDA build (npm run build:cuda) it lists the devices, the driver and runtime versions and the matmul
// backend, or why no GPU can be used (no driver, no device). Never throws for a missing GPU: that is information.
#include <napi.h>

#include <string>

#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/cublas_loader.h"
#include "../../cuda/device.h"
#endif

namespace wavemoe {
namespace {

Napi::Value cuda_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#ifndef WAVEMOE_CUDA
  out.Set("built", false);
  out.Set("reason", "this build is CPU only; npm run build:cuda builds the CUDA-enabled addon where nvcc is present");
#else
  out.Set("built", true);
  Napi::Array devices = Napi::Array::New(env);
  std::string reason;
  const bool available = gpu::cuda_available(&reason);
  out.Set("available", available);
  if (!available) out.Set("reason", reason);
  try {
    if (available) {
      const int n = gpu::device_count();
      for (int d = 0; d < n; ++d) {
        const gpu::DeviceInfo di = gpu::device_info(d);
        Napi::Object o = Napi::Object::New(env);
        o.Set("index", di.index);
        o.Set("name", di.name);
        o.Set("computeCapability", std::to_string(di.cc_major) + "." + std::to_string(di.cc_minor));
        o.Set("multiprocessors", di.sm_count);
        o.Set("totalBytes", static_cast<double>(di.total_bytes));
        o.Set("freeBytes", static_cast<double>(di.free_bytes));
        o.Set("description", gpu::describe(di));
        devices.Set(static_cast<uint32_t>(d), o);
        if (d == 0) {
          out.Set("driverVersion", gpu::cuda_version_string(di.driver_version));
          out.Set("runtimeVersion", gpu::cuda_version_string(di.runtime_version));
        }
      }
    }
  } catch (const std::exception& e) {
    out.Set("available", false);
    out.Set("reason", e.what());
  }
  out.Set("devices", devices);
  out.Set("matmul", gpu::matmul_backend_description());
#endif
  return out;
}

}  // namespace

void register_cuda_info(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, cuda_info, "cudaInfo"));
}

}  // namespace wavemoe
