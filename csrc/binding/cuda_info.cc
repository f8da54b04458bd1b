// cudaInfo(): what this build knows of CUDA, for `wavemoe info`. In a CPU-only build (node-gyp, the default) it says
// so; in a CUDA build (npm run build:cuda) it lists the devices, the driver and runtime versions and the matmul
// backend, or why no GPU can be used (no driver, no device). Never throws for a missing GPU: that is information.
#include <napi.h>

#include <string>

#include "ops.h"

#include "../core/device.h"
#include "args.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/allocator.h"
#include "../../cuda/backend.h"
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

// The GPU named by argument i ('cuda', 'cuda:N'; default cuda:0), checked usable (throws a clear error otherwise,
// also in a CPU-only build).
DeviceRef gpu_arg(const Args& a, const Napi::CallbackInfo& info, size_t i) {
  DeviceRef d{Device::cuda, 0};
  if (info.Length() > i && !info[i].IsUndefined()) {
    if (!info[i].IsString() || !parse_device(info[i].As<Napi::String>().Utf8Value(), &d) || d.is_cpu()) {
      a.fail_type("argument 'device' must be 'cuda' or 'cuda:N'");
    }
  }
  try {
    usable_backend(d);
  } catch (const std::exception& e) {
    a.fail(e.what());
  }
  return d;
}

// cudaMemoryStats(device = 'cuda:0', { resetPeak }): the caching allocator's counters.
Napi::Value cuda_memory_stats(const Napi::CallbackInfo& info) {
  Args a(info, "cudaMemoryStats");
  const DeviceRef d = gpu_arg(a, info, 0);
  const Napi::Object o = a.options(1, {"resetPeak"});
  const bool reset = a.option_bool(o, "resetPeak", false);
  Napi::Object out = Napi::Object::New(info.Env());
#ifdef WAVEMOE_CUDA
  const gpu::AllocatorStats s = gpu::allocator_stats(d.index);
  out.Set("bytesInUse", static_cast<double>(s.bytes_in_use));
  out.Set("peakBytesInUse", static_cast<double>(s.peak_bytes_in_use));
  out.Set("bytesCached", static_cast<double>(s.bytes_cached));
  out.Set("deviceMallocs", static_cast<double>(s.device_mallocs));
  out.Set("allocations", static_cast<double>(s.allocations));
  out.Set("cacheHits", static_cast<double>(s.cache_hits));
  out.Set("hostWaits", static_cast<double>(gpu::host_waits(d.index)));  // every time the host waited for the GPU
  if (reset) gpu::reset_peak(d.index);
#else
  (void)d;
  (void)reset;
  a.fail("the fake CUDA device (WAVEMOE_FAKE_CUDA) has no allocator statistics");
#endif
  return out;
}

Napi::Value cuda_synchronize(const Napi::CallbackInfo& info) {
  Args a(info, "cudaSynchronize");
  const DeviceRef d = gpu_arg(a, info, 0);
  try {
    usable_backend(d).synchronize(d.index);
  } catch (const std::exception& e) {
    a.fail(e.what());
  }
  return info.Env().Undefined();
}

Napi::Value cuda_release_cached(const Napi::CallbackInfo& info) {
#ifdef WAVEMOE_CUDA
  try {
    gpu::release_cached();
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("cudaReleaseCached: ") + e.what());
  }
#endif
  return info.Env().Undefined();
}

}  // namespace

void register_cuda_info(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, cuda_info, "cudaInfo"));
  exports.Set("cudaMemoryStats", Napi::Function::New(env, cuda_memory_stats, "cudaMemoryStats"));
  exports.Set("cudaSynchronize", Napi::Function::New(env, cuda_synchronize, "cudaSynchronize"));
  exports.Set("cudaReleaseCached", Napi::Function::New(env, cuda_release_cached, "cudaReleaseCached"));
}

}  // namespace wavemoe
