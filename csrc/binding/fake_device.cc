// A stand-in "cuda" device held in host memory, for testing the device plumbing on machines without a GPU, where the
// real backend cannot run. Installed only by the CPU-only addon, and only when WAVEMOE_FAKE_CUDA is set at load. It
// has two devices (cuda:0, cuda:1).
//   WAVEMOE_FAKE_CUDA=1            no kernels: every op on its tensors is refused as an op without a GPU kernel is
//                                  (tests Tensor.device/.to(), the same-device rule, the refusal)
//   WAVEMOE_FAKE_CUDA=cpu-kernels  the CPU kernels run on its (host) memory: a model, trainer or generation moved to
//                                  "cuda" runs end to end, so a tensor left on the CPU shows as a mixed-device error
#include <cstdlib>
#include <cstring>
#include <string>

#include "../core/device.h"
#include "../core/error.h"
#include "../core/storage.h"
#include "fake_device.h"

namespace wavemoe {
namespace {

class FakeCudaBackend final : public DeviceBackend {
 public:
  explicit FakeCudaBackend(bool cpu_kernels) : cpu_kernels_(cpu_kernels) {}
  bool runs_cpu_kernels() const override { return cpu_kernels_; }
  std::string name() const override { return "fake CUDA (host memory; WAVEMOE_FAKE_CUDA=1, for tests)"; }
  void check_usable(int index) override {
    if (index < 0 || index > 1) {
      throw Error("device 'cuda:" + std::to_string(index) + "' does not exist: 2 fake CUDA devices (cuda:0, cuda:1)");
    }
  }
  void* allocate(size_t bytes, int) override {
    if (bytes == 0) return nullptr;
    void* p = aligned_alloc_bytes(bytes);
    std::memset(p, 0, bytes);
    return p;
  }
  void free(void* p, size_t bytes, int) noexcept override { aligned_free_bytes(p, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes, int) override { copy(dst, src, bytes); }
  void copy_from_host(void* dst, const void* src, size_t bytes, int) override { copy(dst, src, bytes); }
  void copy_on_device(void* dst, const void* src, size_t bytes, int) override { copy(dst, src, bytes); }
  void fill(void* p, DType dtype, size_t n, double v, int) override {
    for (size_t i = 0; i < n; ++i) {
      switch (dtype) {
        case DType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
        case DType::f64: static_cast<double*>(p)[i] = v; break;
        case DType::i32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
      }
    }
  }
  void synchronize(int) override {}

 private:
  bool cpu_kernels_;
  static void copy(void* dst, const void* src, size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
};

}  // namespace

bool install_fake_cuda_if_asked() {
  const char* v = std::getenv("WAVEMOE_FAKE_CUDA");
  if (v == nullptr || device_backend(Device::cuda) != nullptr) return false;
  const std::string mode(v);
  if (mode != "1" && mode != "cpu-kernels") return false;
  static FakeCudaBackend no_kernels(false), cpu_kernels(true);
  register_device_backend(Device::cuda, mode == "1" ? &no_kernels : &cpu_kernels);
  return true;
}

}  // namespace wavemoe
