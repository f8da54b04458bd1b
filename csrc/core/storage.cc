#include "storage.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "error.h"

namespace wavemoe {
namespace {
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_live_allocations{0};
std::atomic<int64_t> g_peak_bytes{0};
std::atomic<int64_t> g_total_allocations{0};

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }
}  // namespace

void* aligned_alloc_bytes(size_t bytes) {
  // aligned_alloc needs a size that is a multiple of the alignment; never ask for 0 bytes.
  size_t padded = round_up(bytes == 0 ? 1 : bytes, kAlignment);
  void* p = std::aligned_alloc(kAlignment, padded);
  if (p == nullptr) {
    throw Error("out of memory: could not allocate " + std::to_string(bytes) + " bytes");
  }
  int64_t now = g_live_bytes.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
  g_live_allocations.fetch_add(1);
  g_total_allocations.fetch_add(1);
  int64_t peak = g_peak_bytes.load();
  while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void aligned_free_bytes(void* p, size_t bytes) {
  if (p == nullptr) return;
  std::free(p);
  g_live_bytes.fetch_sub(static_cast<int64_t>(bytes));
  g_live_allocations.fetch_sub(1);
}

AllocStats alloc_stats() {
  return AllocStats{g_live_bytes.load(), g_live_allocations.load(), g_peak_bytes.load(),
                    g_total_allocations.load()};
}

std::shared_ptr<Storage> Storage::create(size_t bytes, const DeviceRef& device) {
  if (!device.is_cpu()) {
    DeviceBackend& backend = usable_backend(device);
    void* p = backend.allocate(bytes, device.index);
    try {
      return std::shared_ptr<Storage>(new Storage(p, bytes, device));
    } catch (...) {
      backend.free(p, bytes, device.index);
      throw;
    }
  }
  void* p = aligned_alloc_bytes(bytes);
  std::memset(p, 0, bytes);
  return std::shared_ptr<Storage>(new Storage(p, bytes, device));
}

Storage::~Storage() { free_now(); }

void Storage::free_now() {
  if (data_ == nullptr) return;  // freed already (release()), or an empty device allocation
  if (device_.is_cpu()) {
    aligned_free_bytes(data_, bytes_);
  } else if (DeviceBackend* backend = device_backend(device_.type)) {
    backend->free(data_, bytes_, device_.index);
  }
  data_ = nullptr;
}

void Storage::release() {
  std::lock_guard<std::mutex> lock(mu_);
  if (release_requested_.exchange(true)) return;
  if (pins_ == 0) free_now();
}

void Storage::pin() {
  std::lock_guard<std::mutex> lock(mu_);
  ++pins_;
}

void Storage::unpin() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--pins_ == 0 && release_requested_.load() && data_ != nullptr) free_now();
}

}  // namespace wavemoe
