// Aligned, device-tagged native memory, shared by a tensor and its views, with process-wide accounting so that
// tests and benches can prove that disposed and garbage-collected tensors free what they held.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "device.h"

namespace wavemoe {

constexpr size_t kAlignment = 64;  // one cache line; also the widest vector (AVX-512)

// Raw aligned allocation through the accounted allocator; throws wavemoe::Error when out of memory.
void* aligned_alloc_bytes(size_t bytes);
void aligned_free_bytes(void* p, size_t bytes);

struct AllocStats {
  int64_t live_bytes;
  int64_t live_allocations;
  int64_t peak_bytes;
  int64_t total_allocations;
};
AllocStats alloc_stats();

// Memory is freed when the owning tensor is disposed (release()), even if views of it are still referenced: the
// views then count as disposed. While an asynchronous op is running on the storage it is pinned, and a release
// requested meanwhile happens when the op unpins it. The last shared_ptr frees it too (garbage collection).
class Storage {
 public:
  // Zero-initialised storage of `bytes` bytes on the CPU, or on a device through its backend (device memory is not
  // counted by alloc_stats; the device backend keeps its own statistics).
  static std::shared_ptr<Storage> create(size_t bytes, const DeviceRef& device = DeviceRef{});
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  const DeviceRef& device() const { return device_; }

  // True once release() was asked for: the storage must not be used any more (its memory may be gone).
  bool released() const { return release_requested_.load(); }
  // Frees the memory now, or when the last pin goes if an op is running on it.
  void release();
  void pin();
  void unpin();

 private:
  Storage(void* data, size_t bytes, DeviceRef device) : data_(data), bytes_(bytes), device_(device) {}
  void free_now();  // mu_ held
  void* data_;
  size_t bytes_;
  DeviceRef device_;
  std::mutex mu_;
  int pins_ = 0;
  std::atomic<bool> release_requested_{false};
};

}  // namespace wavemoe
