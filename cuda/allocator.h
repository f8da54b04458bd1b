// A caching device allocator: after warm-up, a training step allocates with no cudaMalloc at all.
//
// Sizes are rounded up to a size class (multiples of 512 B up to 1 MiB, then four classes per power of two, so at
// most 25% is wasted), and a freed block goes to its device's free list for that class instead of cudaFree. The
// next request of the same class takes it back. Cached blocks are given back to the driver by release_cached(), and
// automatically (then one retry) when cudaMalloc runs out of memory.
//
// Stream rule: a freed block may be handed out again at once. That is safe when all work runs on one stream (the
// next user's kernels are queued after the previous user's), which is how the kernels here are used. A caller that
// uses a block on another stream must synchronise before freeing it.
//
// Out of memory throws std::runtime_error: "CUDA out of memory on device 0: tried to allocate 1.00 TiB (...);
// 78.5 GiB free of 79.6 GiB; wavemoe holds 1.0 GiB in use and 0.5 GiB cached".
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

namespace wavemoe {
namespace gpu {

struct AllocatorStats {
  size_t bytes_in_use = 0;       // handed out and not yet freed (rounded sizes)
  size_t peak_bytes_in_use = 0;  // since the start or reset_peak()
  size_t bytes_cached = 0;       // freed, kept for reuse
  uint64_t device_mallocs = 0;   // cudaMalloc calls that succeeded
  uint64_t device_frees = 0;     // cudaFree calls (release_cached, OOM retry)
  uint64_t allocations = 0;      // allocate() calls
  uint64_t cache_hits = 0;       // allocate() calls served from the cache
};

// The size class of a request (>= bytes).
size_t allocator_round_size(size_t bytes);

// On the current device (cudaGetDevice). bytes == 0 returns nullptr. Thread-safe.
void* device_allocate(size_t bytes);
// Returns the block to its device's cache. nullptr is ignored; a pointer not from device_allocate throws.
void device_free(void* ptr);
// cudaFree of every cached block on every device (blocks in use stay).
void release_cached();
AllocatorStats allocator_stats(int device);
void reset_peak(int device);

// An owning device buffer of n elements of T from the caching allocator (move-only), for launchers' scratch space
// and tests.
template <typename T> class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : ptr_(static_cast<T*>(device_allocate(n * sizeof(T)))), n_(n) {}
  ~DeviceBuffer() { device_free(ptr_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(n_, o.n_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return ptr_; }
  size_t size() const { return n_; }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

}  // namespace gpu
}  // namespace wavemoe
