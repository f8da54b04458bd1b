#include "allocator.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "check.h"

namespace wavemoe {
namespace gpu {
namespace {

constexpr size_t kSmallQuantum = 512;        // small requests round to multiples of this
constexpr size_t kSmallLimit = size_t(1) << 20;  // 1 MiB

struct Block {
  int device;
  size_t size;  // rounded
};

struct DeviceCache {
  std::map<size_t, std::vector<void*>> free_lists;  // size class -> cached blocks
  AllocatorStats stats;
};

struct Allocator {
  std::mutex mutex;
  std::unordered_map<void*, Block> live;  // every block handed out, by pointer
  std::map<int, DeviceCache> devices;

  // cudaFree every cached block of one device (mutex held).
  void release_device(int device, DeviceCache& cache) {
    int previous = 0;
    WAVEMOE_CUDA_CHECK(cudaGetDevice(&previous));
    if (previous != device) WAVEMOE_CUDA_CHECK(cudaSetDevice(device));
    for (auto& [size, blocks] : cache.free_lists) {
      for (void* p : blocks) {
        WAVEMOE_CUDA_CHECK(cudaFree(p));
        cache.stats.bytes_cached -= size;
        ++cache.stats.device_frees;
      }
    }
    cache.free_lists.clear();
    if (previous != device) WAVEMOE_CUDA_CHECK(cudaSetDevice(previous));
  }
};

Allocator& allocator() {
  static Allocator* a = new Allocator;  // never destroyed: blocks may be freed during static destruction
  return *a;
}

std::string format_bytes(size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace

size_t allocator_round_size(size_t bytes) {
  if (bytes <= kSmallLimit) return (bytes + kSmallQuantum - 1) / kSmallQuantum * kSmallQuantum;
  // Four classes per power of two: 1.25, 1.5, 1.75, 2 times the power below.
  size_t pow2 = kSmallLimit;
  while (pow2 * 2 < bytes) pow2 *= 2;
  const size_t step = pow2 / 4;
  return (bytes + step - 1) / step * step;
}

void* device_allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t size = allocator_round_size(bytes);
  int device = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&device));
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  DeviceCache& cache = a.devices[device];
  AllocatorStats& s = cache.stats;
  ++s.allocations;
  void* p = nullptr;
  auto it = cache.free_lists.find(size);
  if (it != cache.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    s.bytes_cached -= size;
    ++s.cache_hits;
  } else {
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation && s.bytes_cached > 0) {
      cudaGetLastError();  // clear the failed cudaMalloc, give the cache back, try once more
      a.release_device(device, cache);
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      cudaGetLastError();
      throw std::runtime_error("CUDA out of memory on device " + std::to_string(device) + ": tried to allocate " +
                               format_bytes(bytes) + " (" + std::to_string(bytes) + " bytes); " +
                               format_bytes(free_bytes) + " free of " + format_bytes(total_bytes) + "; wavemoe holds " +
                               format_bytes(s.bytes_in_use) + " in use and " + format_bytes(s.bytes_cached) +
                               " cached");
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
    ++s.device_mallocs;
  }
  s.bytes_in_use += size;
  if (s.bytes_in_use > s.peak_bytes_in_use) s.peak_bytes_in_use = s.bytes_in_use;
  a.live[p] = Block{device, size};
  return p;
}

void device_free(void* ptr) {
  if (!ptr) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  auto it = a.live.find(ptr);
  if (it == a.live.end()) throw std::runtime_error("device_free: pointer was not allocated by device_allocate");
  const Block b = it->second;
  a.live.erase(it);
  DeviceCache& cache = a.devices[b.device];
  cache.free_lists[b.size].push_back(ptr);
  cache.stats.bytes_in_use -= b.size;
  cache.stats.bytes_cached += b.size;
}

void release_cached() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  for (auto& [device, cache] : a.devices) a.release_device(device, cache);
}

AllocatorStats allocator_stats(int device) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  auto it = a.devices.find(device);
  return it == a.devices.end() ? AllocatorStats{} : it->second.stats;
}

void reset_peak(int device) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  AllocatorStats& s = a.devices[device].stats;
  s.peak_bytes_in_use = s.bytes_in_use;
}

}  // namespace gpu
}  // namespace wavemoe
