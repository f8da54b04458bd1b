// The CUDA runtime API of the CPU emulation: device memory is host memory, poisoned with 0xFF (NaN in every float
// type, -1 in every integer) when allocated, as a GPU hands out garbage; copies check that the "device" side of a
// copy lies inside a live device allocation and that the host side does not, which catches a host pointer passed
// where a device pointer belongs. Kernels have run by the time a launch returns, so streams and events are trivial.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "cuda_runtime_api.h"

namespace {

std::mutex g_mutex;
std::map<uintptr_t, size_t> g_device;  // live device allocations: start -> bytes
size_t g_device_bytes = 0;
thread_local cudaError_t t_last_error = cudaSuccess;
thread_local int t_current_device = 0;

size_t env_size(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}
const int g_device_count = static_cast<int>(env_size("WAVEMOE_EMU_DEVICES", 1));
const size_t g_total_bytes = env_size("WAVEMOE_EMU_MEMORY", size_t(8) << 30);
const int g_sm_count = static_cast<int>(env_size("WAVEMOE_EMU_SMS", 132));

cudaError_t fail(cudaError_t err) {
  t_last_error = err;
  return err;
}

// Whether [p, p + bytes) lies inside one live device allocation (the mutex held).
bool in_device(const void* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_device.upper_bound(a);
  if (it == g_device.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}
bool touches_device(const void* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_device.lower_bound(a + bytes);
  if (it == g_device.begin()) return false;
  --it;
  return it->first + it->second > a;
}

cudaError_t copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return fail(cudaErrorInvalidValue);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    const bool dst_ok = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice ? in_device(dst, bytes)
                        : kind == cudaMemcpyDefault ? true : !touches_device(dst, bytes);
    const bool src_ok = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice ? in_device(src, bytes)
                        : kind == cudaMemcpyDefault ? true : !touches_device(src, bytes);
    if (!dst_ok || !src_ok) {
      std::fprintf(stderr, "CUDA emulation: cudaMemcpy kind %d with a %s pointer outside what it names\n", kind,
                   !dst_ok ? "destination" : "source");
      return fail(cudaErrorInvalidValue);
    }
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

// Streams and events are distinct handles that carry nothing (kernels and copies have finished when they return).
template <typename Handle> cudaError_t new_handle(Handle* h) {
  *h = reinterpret_cast<Handle>(new char);
  return cudaSuccess;
}
template <typename Handle> cudaError_t delete_handle(Handle h) {
  delete reinterpret_cast<char*>(h);
  return cudaSuccess;
}

}  // namespace

void emu_set_launch_error(cudaError_t err) { t_last_error = err; }

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "emulated CUDA error";
  }
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return t_last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = g_device_count;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = t_current_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= g_device_count) return fail(cudaErrorInvalidDevice);
  t_current_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device < 0 || device >= g_device_count) return fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "wavemoe CPU emulation of an sm_90 GPU");
  prop->totalGlobalMem = g_total_bytes;
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = 232448;
  prop->major = 9, prop->minor = 0;
  prop->multiProcessorCount = g_sm_count;
  prop->l2CacheSize = 50 << 20;
  prop->maxThreadsPerBlock = 1024;
  prop->warpSize = 32;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= g_device_count) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = g_sm_count; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 232448; return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue);
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  *free_bytes = g_total_bytes - g_device_bytes;
  *total_bytes = g_total_bytes;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (bytes > g_total_bytes - g_device_bytes) return fail(cudaErrorMemoryAllocation);
    g_device_bytes += bytes;
  }
  void* m = nullptr;
  if (posix_memalign(&m, 256, bytes) != 0) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_device_bytes -= bytes;
    return fail(cudaErrorMemoryAllocation);
  }
  std::memset(m, 0xFF, bytes);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_device[reinterpret_cast<uintptr_t>(m)] = bytes;
  *p = m;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_device.find(reinterpret_cast<uintptr_t>(p));
    if (it == g_device.end()) return fail(cudaErrorInvalidValue);
    g_device_bytes -= it->second;
    g_device.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  *p = std::malloc(bytes ? bytes : 1);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return copy(dst, src, bytes, kind);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return copy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) { return cudaMemsetAsync(p, value, bytes, nullptr); }
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!in_device(p, bytes)) {
      std::fprintf(stderr, "CUDA emulation: cudaMemset outside a device allocation\n");
      return fail(cudaErrorInvalidValue);
    }
  }
  std::memset(p, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return new_handle(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) { return delete_handle(s); }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return new_handle(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { return delete_handle(e); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { return e ? cudaSuccess : fail(cudaErrorInvalidValue); }
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : fail(cudaErrorInvalidValue); }
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : fail(cudaErrorInvalidValue); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  *ms = 1.0f;  // kernels take no device time here; benchmarks under emulation mean nothing
  return cudaSuccess;
}
