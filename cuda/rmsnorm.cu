// RMSNorm forward and backward. Backward ADDS (+=) into dx and dweight; zeroing them is the caller's job.
#include "rmsnorm.h"

#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kThreads = 256;

// ============================================ CUDA kernels ============================================

// One block per row: the sum of squares in the accumulator type A (float for float32, as the tolerance allows;
// double for float64), then out = x * rstd * weight.
template <typename T>
__global__ void __launch_bounds__(kThreads) rmsnorm_forward_kernel(T* out, T* rstd, const T* x, const T* weight,
                                                                    int64_t N, int64_t C, double eps) {
  __shared__ T shared[32];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    T* outr = out + n * C;
    T sum = T(0);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) sum += xr[j] * xr[j];
    sum = block_sum(sum, shared);
    const T r = static_cast<T>(1.0 / sqrt(static_cast<double>(sum) / static_cast<double>(C) + eps));
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) outr[j] = xr[j] * r * weight[j];
    if (threadIdx.x == 0) rstd[n] = r;
  }
}

// With g = dout ⊙ weight:  dx += rstd * g - x * rstd³ * mean(g ⊙ x).
template <typename T>
__global__ void __launch_bounds__(kThreads) rmsnorm_backward_dx_kernel(T* dx, const T* dout, const T* x,
                                                                        const T* weight, const T* rstd, int64_t N,
                                                                        int64_t C) {
  __shared__ T shared[32];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    const T* dr = dout + n * C;
    T* dxr = dx + n * C;
    T gx = T(0);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) gx += dr[j] * weight[j] * xr[j];
    gx = block_sum(gx, shared);
    const T r = rstd[n];
    const T k = r * r * r * gx / static_cast<T>(C);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) dxr[j] += r * dr[j] * weight[j] - k * xr[j];
  }
}

// dweight[c] = Σ_n dout[n, c] x[n, c] rstd[n]: one term, for column_sum_add.
template <typename T> struct DweightTerm {
  const T* dout;
  const T* x;
  const T* rstd;
  int64_t C;
  __device__ double operator()(int64_t n, int64_t c) const {
    return static_cast<double>(dout[n * C + c]) * static_cast<double>(x[n * C + c]) * static_cast<double>(rstd[n]);
  }
};

unsigned int row_blocks(int64_t N) { return static_cast<unsigned int>(std::min<int64_t>(N, 1 << 20)); }

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* weight, int64_t N, int64_t C, double eps,
                     cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  rmsnorm_forward_kernel<T><<<row_blocks(N), kThreads, 0, stream>>>(out, rstd, x, weight, N, C, eps);
  WAVEMOE_CUDA_CHECK_LAUNCH("rmsnorm_forward_kernel");
}

template <typename T>
void rmsnorm_backward(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t N,
                      int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  rmsnorm_backward_dx_kernel<T><<<row_blocks(N), kThreads, 0, stream>>>(dx, dout, x, weight, rstd, N, C);
  WAVEMOE_CUDA_CHECK_LAUNCH("rmsnorm_backward_dx_kernel");
  column_sum_add(dweight, DweightTerm<T>{dout, x, rstd, C}, N, C, stream);
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, double,
                                     cudaStream_t);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t, double,
                                      cudaStream_t);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                      int64_t, int64_t, cudaStream_t);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*,
                                       int64_t, int64_t, cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
