// Fused softmax + cross-entropy: the loss and dlogits (WRITTEN, possibly in place) in one pass pair per row.
#include "cross_entropy.h"

#include "allocator.h"
#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kRowThreads = 512;
constexpr int kReduceThreads = 1024;

// ============================================ CUDA kernels ============================================

// A running (max, sum of exp(x - max)) pair; merging rescales the smaller side. Empty pairs are (-inf, 0).
template <typename T> struct MaxSum {
  T max, sum;
};
template <typename T> __device__ __forceinline__ MaxSum<T> merge(MaxSum<T> a, MaxSum<T> b) {
  if (a.max == T(-INFINITY)) return b;
  if (b.max == T(-INFINITY)) return a;
  if (a.max >= b.max) return {a.max, a.sum + b.sum * exp(b.max - a.max)};
  return {b.max, b.sum + a.sum * exp(a.max - b.max)};
}

template <typename T> __device__ MaxSum<T> block_merge(MaxSum<T> v, MaxSum<T>* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const MaxSum<T> o{__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)};
    v = merge(v, o);
  }
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : MaxSum<T>{T(-INFINITY), T(0)};
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const MaxSum<T> o{__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)};
    v = merge(v, o);
  }
  __syncthreads();
  return v;
}

// *n_valid = number of targets != ignore_index (one block; a fixed tree, so deterministic).
__global__ void __launch_bounds__(kReduceThreads) count_valid_kernel(int64_t* n_valid, const int32_t* targets,
                                                                      int64_t N, int32_t ignore_index) {
  __shared__ int64_t shared[32];
  int64_t count = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) count += targets[i] != ignore_index;
  count = block_sum(count, shared);
  if (threadIdx.x == 0) *n_valid = count;
}

// One block per row (grid-stride over rows).
template <typename T>
__global__ void __launch_bounds__(kRowThreads) cross_entropy_row_kernel(T* dlogits, T* losses, double* row_loss,
                                                                         const T* logits, const int32_t* targets,
                                                                         const int64_t* n_valid, int64_t N, int64_t V,
                                                                         int32_t ignore_index, double grad_scale,
                                                                         unsigned long long* bad) {
  __shared__ MaxSum<T> shared[32];
  const int64_t valid = *n_valid;
  const double g = valid > 0 ? grad_scale / static_cast<double>(valid) : 0.0;  // d loss / d logit, per row
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T* x = logits + i * V;
    T* d = dlogits ? dlogits + i * V : nullptr;
    const int32_t t = targets[i];
    if (t == ignore_index) {
      if (d) {
        for (int64_t j = threadIdx.x; j < V; j += blockDim.x) d[j] = T(0);
      }
      if (threadIdx.x == 0) {
        row_loss[i] = 0.0;
        if (losses) losses[i] = T(0);
      }
      continue;
    }
    if (t < 0 || t >= V) {  // never read outside the row: NaN loss and gradient, and the first one reported
      if (d) {
        for (int64_t j = threadIdx.x; j < V; j += blockDim.x) d[j] = T(NAN);
      }
      if (threadIdx.x == 0) {
        report_bad_index(bad, i, t);
        row_loss[i] = NAN;
        if (losses) losses[i] = T(NAN);
      }
      continue;
    }
    const T xt = x[t];  // before any thread writes d (which may be x): block_merge below is a barrier
    // Pass 1: each thread's running max and sum over its strided elements (coalesced across the block).
    MaxSum<T> ms{T(-INFINITY), T(0)};
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      const T v = x[j];
      if (v > ms.max) {
        ms.sum = ms.sum * exp(ms.max - v) + T(1);  // exp(-inf) = 0 on the first element
        ms.max = v;
      } else if (v != T(-INFINITY)) {
        ms.sum += exp(v - ms.max);
      }
    }
    ms = block_merge(ms, shared);
    if (threadIdx.x == 0) {
      const double loss = log(static_cast<double>(ms.sum)) + static_cast<double>(ms.max) - static_cast<double>(xt);
      row_loss[i] = loss;
      if (losses) losses[i] = static_cast<T>(loss);
    }
    // Pass 2: the row is now in L2; each element is read, then written, by the same thread.
    if (d) {
      const T scale = static_cast<T>(g / static_cast<double>(ms.sum));
      const T gt = static_cast<T>(g);
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        const T p = exp(x[j] - ms.max) * scale;
        d[j] = j == t ? p - gt : p;
      }
    }
    __syncthreads();  // the next row reuses `shared`
  }
}

// *mean_loss = Σ row_loss / n_valid (0 if none), one block, a fixed tree.
__global__ void __launch_bounds__(kReduceThreads) mean_loss_kernel(double* mean_loss, const double* row_loss,
                                                                    const int64_t* n_valid, int64_t N) {
  __shared__ double shared[32];
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) sum += row_loss[i];
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) *mean_loss = *n_valid > 0 ? sum / static_cast<double>(*n_valid) : 0.0;
}

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T>
void cross_entropy_forward_backward(T* dlogits, T* losses, double* mean_loss, const T* logits,
                                    const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index,
                                    double grad_scale, unsigned long long* bad, cudaStream_t stream) {
  if (N <= 0) {
    if (mean_loss) WAVEMOE_CUDA_CHECK(cudaMemsetAsync(mean_loss, 0, sizeof(double), stream));
    return;
  }
  DeviceBuffer<int64_t> n_valid(1);
  DeviceBuffer<double> row_loss(static_cast<size_t>(N));
  count_valid_kernel<<<1, kReduceThreads, 0, stream>>>(n_valid.get(), targets, N, ignore_index);
  WAVEMOE_CUDA_CHECK_LAUNCH("count_valid_kernel");
  const unsigned int blocks = static_cast<unsigned int>(std::min<int64_t>(N, 1 << 20));
  cross_entropy_row_kernel<T><<<blocks, kRowThreads, 0, stream>>>(dlogits, losses, row_loss.get(), logits, targets,
                                                                  n_valid.get(), N, V, ignore_index, grad_scale,
                                                                  bad);
  WAVEMOE_CUDA_CHECK_LAUNCH("cross_entropy_row_kernel");
  if (mean_loss) {
    mean_loss_kernel<<<1, kReduceThreads, 0, stream>>>(mean_loss, row_loss.get(), n_valid.get(), N);
    WAVEMOE_CUDA_CHECK_LAUNCH("mean_loss_kernel");
  }
}

template void cross_entropy_forward_backward<float>(float*, float*, double*, const float*, const int32_t*, int64_t,
                                                    int64_t, int32_t, double, unsigned long long*, cudaStream_t);
template void cross_entropy_forward_backward<double>(double*, double*, double*, const double*, const int32_t*,
                                                     int64_t, int64_t, int32_t, double, unsigned long long*,
                                                     cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
