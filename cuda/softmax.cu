// Row softmax forward and backward. Backward ADDS (+=) into dx; zeroing it is the caller's job.
#include "softmax.h"

#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kThreads = 256;

// ============================================ CUDA kernels ============================================

template <typename T>
__global__ void __launch_bounds__(kThreads) softmax_forward_kernel(T* out, const T* x, int64_t N, int64_t C) {
  __shared__ T shared[32];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    T* outr = out + n * C;
    T m = T(-INFINITY);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) m = xr[j] > m ? xr[j] : m;  // NaN skipped, as on the CPU
    m = block_max(m, shared);
    if (m == T(-INFINITY)) {  // fully masked row
      for (int64_t j = threadIdx.x; j < C; j += blockDim.x) outr[j] = T(0);
      continue;
    }
    T sum = T(0);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const T e = exp(xr[j] - m);
      outr[j] = e;  // same thread reads x[j] first, so in place is safe
      sum += e;
    }
    sum = block_sum(sum, shared);
    const T inv = T(1) / sum;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) outr[j] *= inv;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) softmax_backward_kernel(T* dx, const T* dout, const T* out, int64_t N,
                                                                     int64_t C) {
  __shared__ T shared[32];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* dr = dout + n * C;
    const T* yr = out + n * C;
    T* dxr = dx + n * C;
    T s = T(0);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += dr[j] * yr[j];
    s = block_sum(s, shared);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) dxr[j] += yr[j] * (dr[j] - s);
  }
}

unsigned int row_blocks(int64_t N) { return static_cast<unsigned int>(std::min<int64_t>(N, 1 << 20)); }

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T> void softmax_forward(T* out, const T* x, int64_t N, int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  softmax_forward_kernel<T><<<row_blocks(N), kThreads, 0, stream>>>(out, x, N, C);
  WAVEMOE_CUDA_CHECK_LAUNCH("softmax_forward_kernel");
}

template <typename T>
void softmax_backward(T* dx, const T* dout, const T* out, int64_t N, int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  softmax_backward_kernel<T><<<row_blocks(N), kThreads, 0, stream>>>(dx, dout, out, N, C);
  WAVEMOE_CUDA_CHECK_LAUNCH("softmax_backward_kernel");
}

template void softmax_forward<float>(float*, const float*, int64_t, int64_t, cudaStream_t);
template void softmax_forward<double>(double*, const double*, int64_t, int64_t, cudaStream_t);
template void softmax_backward<float>(float*, const float*, const float*, int64_t, int64_t, cudaStream_t);
template void softmax_backward<double>(double*, const double*, const double*, int64_t, int64_t, cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
