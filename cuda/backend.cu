#include "backend.h"

#include <cuda_runtime.h>

#include <array>
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
    WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(stream(index)));
  }

  void copy_from_host(void* dst, const void* src, size_t bytes, int index) override {
    if (bytes == 0) return;
    use_device(index);
    WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream(index)));
    WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(stream(index)));  // the JS array may be collected right after
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
    WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(stream(index)));
  }
};

std::mutex g_stream_mu;
std::array<cudaStream_t, kMaxDevices> g_streams{};

}  // namespace

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
