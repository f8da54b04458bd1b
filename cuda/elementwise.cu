// Elementwise glue: residual adds, axpy, scale, bias add and its backward, permute, sinusoidal positions.
#include "elementwise.h"

#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

// ============================================ CUDA kernels ============================================

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) add_kernel(T* out, const T* a, const T* b, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { out[i] = a[i] + b[i]; }
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) axpy_kernel(T* y, const T* x, T alpha, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { y[i] += alpha * x[i]; }
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) scale_kernel(T* x, T alpha, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { x[i] *= alpha; }
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) bias_add_kernel(T* x, const T* bias, int64_t N, int64_t C) {
  WAVEMOE_GRID_STRIDE(i, N * C) { x[i] += bias[i % C]; }
}

template <typename T> struct Column {
  const T* dout;
  int64_t C;
  __device__ double operator()(int64_t n, int64_t c) const { return static_cast<double>(dout[n * C + c]); }
};

// Indexed by the output (A, C, B, D), so the writes are coalesced; the reads are contiguous over d.
template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) permute0213_kernel(T* out, const T* x, int64_t A, int64_t B,
                                                                           int64_t C, int64_t D) {
  WAVEMOE_GRID_STRIDE(i, A * B * C * D) {
    const int64_t d = i % D;
    int64_t r = i / D;
    const int64_t b = r % B;
    r /= B;
    const int64_t c = r % C;
    const int64_t a = r / C;
    out[i] = x[((a * B + b) * C + c) * D + d];
  }
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) sinusoidal_kernel(T* out, int64_t T_len, int64_t C,
                                                                          int64_t pos_offset) {
  const int64_t half = C / 2;
  WAVEMOE_GRID_STRIDE(idx, T_len * half) {
    const int64_t t = idx / half, i = idx % half;
    const double angle = static_cast<double>(t + pos_offset) *
                         pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(C));
    out[t * C + 2 * i] = static_cast<T>(sin(angle));
    out[t * C + 2 * i + 1] = static_cast<T>(cos(angle));
  }
}

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T> void add_forward(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  add_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(out, a, b, n);
  WAVEMOE_CUDA_CHECK_LAUNCH("add_kernel");
}

template <typename T> void axpy(T* y, const T* x, double alpha, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  axpy_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(y, x, static_cast<T>(alpha), n);
  WAVEMOE_CUDA_CHECK_LAUNCH("axpy_kernel");
}

template <typename T> void scale_inplace(T* x, double alpha, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(x, static_cast<T>(alpha), n);
  WAVEMOE_CUDA_CHECK_LAUNCH("scale_kernel");
}

template <typename T> void bias_add_forward(T* x, const T* bias, int64_t N, int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  bias_add_kernel<T><<<grid_for(N * C), kElementwiseThreads, 0, stream>>>(x, bias, N, C);
  WAVEMOE_CUDA_CHECK_LAUNCH("bias_add_kernel");
}

template <typename T> void bias_add_backward(T* dbias, const T* dout, int64_t N, int64_t C, cudaStream_t stream) {
  column_sum_add(dbias, Column<T>{dout, C}, N, C, stream);
}

template <typename T>
void permute0213(T* out, const T* x, int64_t A, int64_t B, int64_t C, int64_t D, cudaStream_t stream) {
  const int64_t n = A * B * C * D;
  if (n <= 0) return;
  permute0213_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(out, x, A, B, C, D);
  WAVEMOE_CUDA_CHECK_LAUNCH("permute0213_kernel");
}

template <typename T>
void sinusoidal_positions(T* out, int64_t T_len, int64_t C, int64_t pos_offset, cudaStream_t stream) {
  const int64_t n = T_len * (C / 2);
  if (n <= 0) return;
  sinusoidal_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(out, T_len, C, pos_offset);
  WAVEMOE_CUDA_CHECK_LAUNCH("sinusoidal_kernel");
}

#define WAVEMOE_INSTANTIATE(T)                                                                   \
  template void add_forward<T>(T*, const T*, const T*, int64_t, cudaStream_t);                   \
  template void axpy<T>(T*, const T*, double, int64_t, cudaStream_t);                            \
  template void scale_inplace<T>(T*, double, int64_t, cudaStream_t);                             \
  template void bias_add_forward<T>(T*, const T*, int64_t, int64_t, cudaStream_t);               \
  template void bias_add_backward<T>(T*, const T*, int64_t, int64_t, cudaStream_t);              \
  template void permute0213<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);  \
  template void sinusoidal_positions<T>(T*, int64_t, int64_t, int64_t, cudaStream_t);
WAVEMOE_INSTANTIATE(float)
WAVEMOE_INSTANTIATE(double)
#undef WAVEMOE_INSTANTIATE

}  // namespace gpu
}  // namespace wavemoe
