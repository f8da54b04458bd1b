// LayerNorm forward and backward. Backward ADDS (+=) into dx, dweight and dbias; zeroing them is the caller's job.
#include "layernorm.h"

#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kThreads = 256;

// Correctly rounded, never contracted into an FMA: the CPU kernel (baseline x86-64) rounds every operation.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

// ============================================ CUDA kernels ============================================

// One block per row (grid-stride over rows): mean, then the mean squared deviation, both summed in double; the
// saved statistics are their T roundings, and out uses exactly those (as the CPU: backward sees what forward used).
template <typename T>
__global__ void __launch_bounds__(kThreads) layernorm_forward_kernel(T* out, T* mean, T* rstd, const T* x,
                                                                      const T* weight, const T* bias, int64_t N,
                                                                      int64_t C, double eps) {
  __shared__ double shared[32];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    T* outr = out + n * C;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += static_cast<double>(xr[j]);
    const double m = block_sum(s, shared) / static_cast<double>(C);
    double q = 0.0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const double d = static_cast<double>(xr[j]) - m;
      q += d * d;
    }
    const double var = block_sum(q, shared) / static_cast<double>(C);
    const T mt = static_cast<T>(m);
    const T rt = static_cast<T>(1.0 / sqrt(var + eps));
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const T v = mul_rn(mul_rn(sub_rn(xr[j], mt), rt), weight[j]);  // (x - mean) * rstd * weight
      outr[j] = bias != nullptr ? add_rn(v, bias[j]) : v;
    }
    if (threadIdx.x == 0) {
      mean[n] = mt;
      rstd[n] = rt;
    }
  }
}

// With norm = (x - mean) * rstd and g = dout ⊙ weight:  dx += (g - mean(g) - norm * mean(g ⊙ norm)) * rstd.
// The two row means are sums in double (the products in double, as on the CPU), rounded to T as a and b; the
// update is the CPU's T expression (dr*w - a - (x - mt)*rt*b) * rt, op by op.
template <typename T>
__global__ void __launch_bounds__(kThreads) layernorm_backward_dx_kernel(T* dx, const T* dout, const T* x,
                                                                          const T* weight, const T* mean,
                                                                          const T* rstd, int64_t N, int64_t C) {
  __shared__ double shared[32];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    const T* dr = dout + n * C;
    T* dxr = dx + n * C;
    const double m = static_cast<double>(mean[n]), r = static_cast<double>(rstd[n]);
    double gs = 0.0, gns = 0.0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const double g = static_cast<double>(dr[j]) * static_cast<double>(weight[j]);
      gs += g;
      gns += g * ((static_cast<double>(xr[j]) - m) * r);
    }
    const T a = static_cast<T>(block_sum(gs, shared) / static_cast<double>(C));
    const T b = static_cast<T>(block_sum(gns, shared) / static_cast<double>(C));
    const T mt = mean[n], rt = rstd[n];
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const T lhs = sub_rn(mul_rn(dr[j], weight[j]), a);        // dr*w - a
      const T rhs = mul_rn(mul_rn(sub_rn(xr[j], mt), rt), b);   // (x - mt)*rt*b
      dxr[j] = add_rn(dxr[j], mul_rn(sub_rn(lhs, rhs), rt));
    }
  }
}

// dweight[c] = Σ_n dout[n, c] · (x[n, c] - mean[n]) · rstd[n], each term in double as on the CPU.
template <typename T> struct DweightTerm {
  const T* dout;
  const T* x;
  const T* mean;
  const T* rstd;
  int64_t C;
  __device__ double operator()(int64_t n, int64_t c) const {
    const double m = static_cast<double>(mean[n]), r = static_cast<double>(rstd[n]);
    return static_cast<double>(dout[n * C + c]) * ((static_cast<double>(x[n * C + c]) - m) * r);
  }
};

// dbias[c] = Σ_n dout[n, c].
template <typename T> struct DbiasTerm {
  const T* dout;
  int64_t C;
  __device__ double operator()(int64_t n, int64_t c) const { return static_cast<double>(dout[n * C + c]); }
};

unsigned int row_blocks(int64_t N) { return static_cast<unsigned int>(std::min<int64_t>(N, 1 << 20)); }

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* weight, const T* bias, int64_t N, int64_t C,
                       double eps, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  layernorm_forward_kernel<T><<<row_blocks(N), kThreads, 0, stream>>>(out, mean, rstd, x, weight, bias, N, C, eps);
  WAVEMOE_CUDA_CHECK_LAUNCH("layernorm_forward_kernel");
}

template <typename T>
void layernorm_backward(T* dx, T* dweight, T* dbias, const T* dout, const T* x, const T* weight, const T* mean,
                        const T* rstd, int64_t N, int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  layernorm_backward_dx_kernel<T><<<row_blocks(N), kThreads, 0, stream>>>(dx, dout, x, weight, mean, rstd, N, C);
  WAVEMOE_CUDA_CHECK_LAUNCH("layernorm_backward_dx_kernel");
  column_sum_add(dweight, DweightTerm<T>{dout, x, mean, rstd, C}, N, C, stream);
  if (dbias != nullptr) column_sum_add(dbias, DbiasTerm<T>{dout, C}, N, C, stream);
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                       int64_t, double, cudaStream_t);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*,
                                        int64_t, int64_t, double, cudaStream_t);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                        const float*, const float*, int64_t, int64_t, cudaStream_t);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                         const double*, const double*, int64_t, int64_t, cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
