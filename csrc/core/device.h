// Where a tensor's memory lives: the CPU, or a GPU through a registered device backend.
//
// The core knows devices only through the DeviceBackend interface, so that csrc/ compiles without CUDA: the CUDA
// library (cuda/backend.cu) implements it and the CUDA-enabled addon registers it at load. In a CPU-only build no
// backend is registered and asking for "cuda" is an Error that says how to get a CUDA build.
#pragma once
#include <cstddef>
#include <string>

#include "dtype.h"

namespace wavemoe {

enum class Device : int { cpu = 0, cuda = 1 };

// A device and its index ("cpu", "cuda:0", "cuda:1"); the CPU's index is always 0.
struct DeviceRef {
  Device type = Device::cpu;
  int index = 0;
  bool is_cpu() const { return type == Device::cpu; }
  bool operator==(const DeviceRef& o) const { return type == o.type && index == o.index; }
  bool operator!=(const DeviceRef& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// Parses "cpu", "cuda" (= "cuda:0") and "cuda:N" (N a decimal integer < 1024); false for anything else.
bool parse_device(const std::string& s, DeviceRef* out);

// The memory operations of a non-CPU device. Every function throws std::runtime_error (or wavemoe::Error) with a
// message naming what failed; none returns an error code. Copies are complete when they return (they synchronise
// with the device's work queue), so host memory may be reused at once.
class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  // "CUDA", or what a test backend calls itself.
  virtual std::string name() const = 0;
  // Throws a clear error when device `index` cannot be used (no driver, no GPU, index out of range).
  virtual void check_usable(int index) = 0;
  virtual void* allocate(size_t bytes, int index) = 0;  // zero-filled; bytes may be 0 (returns nullptr)
  virtual void free(void* p, size_t bytes, int index) noexcept = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes, int index) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t bytes, int index) = 0;
  virtual void copy_on_device(void* dst, const void* src, size_t bytes, int index) = 0;
  // n elements of dtype set to value (rounded to the dtype as a C++ cast does).
  virtual void fill(void* p, DType dtype, size_t n, double value, int index) = 0;
  // Waits for all queued work on the device (the tests, toArray and the timing code use it).
  virtual void synchronize(int index) = 0;
  // True only for a test backend whose memory is host memory and which lets the CPU kernels run on it (the fake
  // device in its cpu-kernels mode): models and trainers can then be run "on a GPU" end to end without one.
  virtual bool runs_cpu_kernels() const { return false; }
};

// The backend for `type`, or nullptr when none is registered (always nullptr for the CPU).
DeviceBackend* device_backend(Device type);
// Registers the backend of `type` (the CUDA addon at load; a test backend). Replaces any earlier one.
void register_device_backend(Device type, DeviceBackend* backend);

// The backend of `d`, checked usable; throws an Error that says why not (CPU-only build, no driver, no GPU).
DeviceBackend& usable_backend(const DeviceRef& d);

}  // namespace wavemoe
