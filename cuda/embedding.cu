// Embedding gather and its deterministic scatter-add (sort by id, then one block per distinct id).
#include "embedding.h"

#include <cub/device/device_radix_sort.cuh>

#include <limits>
#include <stdexcept>

#include "allocator.h"
#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kRowThreads = 128;

// ============================================ CUDA kernels ============================================

// An id outside [0, V) gives a row of NaN (and is reported by the thread of its column 0), never a read outside
// the table.
template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) embedding_forward_kernel(T* out, const int32_t* ids,
                                                                                 const T* table, int64_t N,
                                                                                 int64_t C, int64_t V,
                                                                                 unsigned long long* bad) {
  WAVEMOE_GRID_STRIDE(i, N * C) {
    const int64_t n = i / C, c = i % C;
    const int32_t id = ids[n];
    if (id < 0 || id >= V) {
      if (c == 0) report_bad_index(bad, n, id);
      out[i] = T(NAN);
      continue;
    }
    out[i] = table[static_cast<int64_t>(id) * C + c];
  }
}

// Reports ids outside [0, V) before the backward sorts them (a negative id would sort out of its place).
__global__ void __launch_bounds__(kElementwiseThreads) check_ids_kernel(const int32_t* ids, int64_t N, int64_t V,
                                                                         unsigned long long* bad) {
  WAVEMOE_GRID_STRIDE(i, N) {
    const int32_t id = ids[i];
    if (id < 0 || id >= V) report_bad_index(bad, i, id);
  }
}

__global__ void __launch_bounds__(kElementwiseThreads) iota_kernel(int32_t* x, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { x[i] = static_cast<int32_t>(i); }
}

// Block p (grid-stride) handles sorted position p if it starts a run of equal ids: for each column, the id's row
// of dtable plus the run's dout rows in increasing position (the stable sort kept them in order).
template <typename T>
__global__ void __launch_bounds__(kRowThreads) embedding_backward_kernel(T* dtable, const T* dout,
                                                                          const int32_t* sorted_ids,
                                                                          const int32_t* sorted_pos, int64_t N,
                                                                          int64_t C, int64_t V) {
  for (int64_t p = blockIdx.x; p < N; p += gridDim.x) {
    const int32_t id = sorted_ids[p];
    if (id < 0 || id >= V) continue;                 // reported by check_ids_kernel; its rows add nothing
    if (p > 0 && sorted_ids[p - 1] == id) continue;  // not the start of a run
    int64_t end = p + 1;
    while (end < N && sorted_ids[end] == id) ++end;
    T* dst = dtable + static_cast<int64_t>(id) * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      T acc = dst[c];
      for (int64_t q = p; q < end; ++q) acc += dout[static_cast<int64_t>(sorted_pos[q]) * C + c];
      dst[c] = acc;
    }
  }
}

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T>
void embedding_forward(T* out, const int32_t* ids, const T* table, int64_t N, int64_t C, int64_t V,
                       unsigned long long* bad, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  embedding_forward_kernel<T><<<grid_for(N * C), kElementwiseThreads, 0, stream>>>(out, ids, table, N, C, V, bad);
  WAVEMOE_CUDA_CHECK_LAUNCH("embedding_forward_kernel");
}

template <typename T>
void embedding_backward(T* dtable, const T* dout, const int32_t* ids, int64_t N, int64_t C, int64_t V,
                        unsigned long long* bad, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  if (N > std::numeric_limits<int32_t>::max()) throw std::runtime_error("embedding_backward (CUDA): N too large");
  const int n = static_cast<int>(N);
  if (bad != nullptr) {
    check_ids_kernel<<<grid_for(N), kElementwiseThreads, 0, stream>>>(ids, N, V, bad);
    WAVEMOE_CUDA_CHECK_LAUNCH("check_ids_kernel");
  }
  DeviceBuffer<int32_t> pos(N), sorted_ids(N), sorted_pos(N);
  iota_kernel<<<grid_for(N), kElementwiseThreads, 0, stream>>>(pos.get(), N);
  WAVEMOE_CUDA_CHECK_LAUNCH("iota_kernel");
  // The stable LSD radix sort keeps equal ids in increasing position; over all 32 bits (as unsigned) an invalid
  // negative id still sorts into a run of its own, which the kernel below skips.
  size_t temp_bytes = 0;
  WAVEMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, ids, sorted_ids.get(), pos.get(),
                                                     sorted_pos.get(), n, 0, 32, stream));
  DeviceBuffer<unsigned char> temp(temp_bytes);
  WAVEMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, ids, sorted_ids.get(), pos.get(),
                                                     sorted_pos.get(), n, 0, 32, stream));
  const unsigned int blocks = static_cast<unsigned int>(std::min<int64_t>(N, 1 << 20));
  embedding_backward_kernel<T><<<blocks, kRowThreads, 0, stream>>>(dtable, dout, sorted_ids.get(), sorted_pos.get(),
                                                                   N, C, V);
  WAVEMOE_CUDA_CHECK_LAUNCH("embedding_backward_kernel");
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t, int64_t,
                                       unsigned long long*, cudaStream_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, int64_t, int64_t, int64_t,
                                        unsigned long long*, cudaStream_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t, int64_t,
                                        unsigned long long*, cudaStream_t);
template void embedding_backward<double>(double*, const double*, const int32_t*, int64_t, int64_t, int64_t,
                                         unsigned long long*, cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
