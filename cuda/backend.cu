#include "backend.h"

#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <vector>
#include <cstdint>
#include <mutex>
#include <string>

#include "allocator.h"
#include "check.h"
#include "common.cuh"
#include "csrc/core/device.h"
#include "device.h"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kMaxDevices = 64;

template <typename T> __global__ void fill_kernel(T* p, int64_t n, T value) {
  WAVEMOE_GRID_STRIDE(i, n) p[i] = value;
}

template <typename T> void fill_n(void* p, size_t n, double value, cudaStream_t s) {
  if (n == 0) return;
  fill_kernel<T><<<grid_for(static_cast<int64_t>(n)), kElementwiseThreads, 0, s>>>(
      static_cast<T*>(p), static_cast<int64_t>(n), static_cast<T>(value));
  WAVEMOE_CUDA_CHECK_LAUNCH("Tensor.fill");
}

class CudaBackend final : public DeviceBackend {
 public:
  std::string name() const override { return "CUDA"; }

  void check_usable(int index) override {
    std::string reason;
    if (!cuda_available(&reason)) throw std::runtime_error("device 'cuda:" + std::to_string(index) + "': " + reason);
    const int n = device_count();
    if (index < 0 || index >= n || index >= kMaxDevices) {
      throw std::runtime_error("device 'cuda:" + std::to_string(index) + "' does not exist: " + std::to_string(n) +
                               " CUDA device(s) visible (cuda:0" + (n > 1 ? " to cuda:" + std::to_string(n - 1) : "") +
                               ")");
    }
  }

  void* allocate(size_t bytes, int index) override {
    if (bytes == 0) return nullptr;
    use_device(index);
    void* p = device_allocate(bytes);
    const cudaError_t err = cudaMemsetAsync(p, 0, bytes, stream(index));
    if (err != cudaSuccess) {
      device_free(p);
      throw_cuda_error(err, "cudaMemsetAsync (zeroing a new tensor)", __FILE__, __LINE__);
    }
    return p;
  }

  void free(void* p, size_t, int) noexcept override {
    try {
      device_free(p);  // back to the cache: reusable at once under the one-stream rule
    } catch (...) {
      // A pointer this backend did not allocate cannot reach here; nothing useful can be done in a destructor.
    }
  }

  void copy_to_host(void* dst, const void* src, size_t bytes, int index) override {
    if (bytes == 0) return;
    use_device(index);
    WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream(index)));
    host_wait(stream(index));
  }

  void copy_from_host(void* dst, const void* src, size_t bytes, int index) override {
    if (bytes == 0) return;
    use_device(index);
    copy_to_device_async(dst, src, bytes, stream(index));  // staged: the JS array may be collected right after
  }

  void copy_on_device(void* dst, const void* src, size_t bytes, int index) override {
    if (bytes == 0) return;
    use_device(index);
    WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream(index)));
  }

  void fill(void* p, DType dtype, size_t n, double value, int index) override {
    use_device(index);
    switch (dtype) {
      case DType::f32: fill_n<float>(p, n, value, stream(index)); break;
      case DType::f64: fill_n<double>(p, n, value, stream(index)); break;
      case DType::i32: fill_n<int32_t>(p, n, value, stream(index)); break;
    }
  }

  void synchronize(int index) override {
    use_device(index);
    host_wait(stream(index));
  }
};

std::mutex g_stream_mu;
std::array<cudaStream_t, kMaxDevices> g_streams{};
std::array<std::atomic<unsigned long long>, kMaxDevices> g_host_waits{};

// Pinned host buffers for uploads that do not wait (copy_to_device_async), per device: a buffer is free again once
// the event recorded after its copy has completed.
struct Staging {
  void* host = nullptr;
  size_t bytes = 0;
  cudaEvent_t copied = nullptr;
};
constexpr size_t kMinStagingBytes = size_t(64) << 10;
constexpr size_t kMaxStagedCopy = size_t(64) << 20;  // larger copies (weights, once) go direct and wait
std::mutex g_staging_mu;
std::array<std::vector<Staging>, kMaxDevices> g_staging;

int current_device() {
  int d = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&d));
  if (d < 0 || d >= kMaxDevices) throw std::runtime_error("CUDA device index out of range");
  return d;
}

// True when the copy recorded on s.copied has run. cudaErrorNotReady is an answer, not a failure: clear it so that a
// later launch check does not report it.
bool staging_free(const Staging& s) {
  const cudaError_t err = cudaEventQuery(s.copied);
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  WAVEMOE_CUDA_CHECK(err);
  return true;
}

// A free staging buffer of at least `bytes` on the current device (a new one when none is free).
Staging& acquire_staging(int device, size_t bytes) {
  std::vector<Staging>& pool = g_staging[static_cast<size_t>(device)];
  for (Staging& s : pool) {
    if (s.bytes >= bytes && staging_free(s)) return s;
  }
  Staging s;
  s.bytes = kMinStagingBytes;
  while (s.bytes < bytes) s.bytes *= 2;
  WAVEMOE_CUDA_CHECK(cudaHostAlloc(&s.host, s.bytes, cudaHostAllocPortable));
  const cudaError_t err = cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    cudaFreeHost(s.host);
    throw_cuda_error(err, "cudaEventCreateWithFlags (staging)", __FILE__, __LINE__);
  }
  pool.push_back(s);
  return pool.back();
}

}  // namespace

void host_wait(cudaStream_t s) {
  ++g_host_waits[static_cast<size_t>(current_device())];
  WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(s));
}

unsigned long long host_waits(int index) {
  return index >= 0 && index < kMaxDevices ? g_host_waits[static_cast<size_t>(index)].load() : 0;
}

void copy_to_device_async(void* dst, const void* src, size_t bytes, cudaStream_t s) {
  if (bytes == 0) return;
  if (bytes > kMaxStagedCopy) {
    WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
    host_wait(s);  // src belongs to the caller, who may free it on return
    return;
  }
  const int device = current_device();
  std::lock_guard<std::mutex> lock(g_staging_mu);
  Staging& staging = acquire_staging(device, bytes);
  std::memcpy(staging.host, src, bytes);
  WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(dst, staging.host, bytes, cudaMemcpyHostToDevice, s));
  WAVEMOE_CUDA_CHECK(cudaEventRecord(staging.copied, s));
}

void use_device(int index) { WAVEMOE_CUDA_CHECK(cudaSetDevice(index)); }

cudaStream_t stream(int index) {
  if (index < 0 || index >= kMaxDevices) throw std::runtime_error("CUDA device index out of range");
  std::lock_guard<std::mutex> lock(g_stream_mu);
  if (g_streams[index] == nullptr) {
    int previous = 0;
    WAVEMOE_CUDA_CHECK(cudaGetDevice(&previous));
    WAVEMOE_CUDA_CHECK(cudaSetDevice(index));
    WAVEMOE_CUDA_CHECK(cudaStreamCreateWithFlags(&g_streams[index], cudaStreamNonBlocking));
    WAVEMOE_CUDA_CHECK(cudaSetDevice(previous));
  }
  return g_streams[index];
}

void install_backend() {
  static CudaBackend backend;  // lives for the process: storages freed at exit still reach it
  register_device_backend(Device::cuda, &backend);
}

}  // namespace gpu
}  // namespace wavemoe
