// AdamW step and gradient clipping.
#include "adamw.h"

#include <cmath>
#include <vector>

#include "allocator.h"
#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int64_t kSegment = 8192;  // elements per partial sum of the norm, as on the CPU
constexpr int kSegmentThreads = 256;

// Correctly rounded, never contracted into an FMA: the CPU (baseline x86-64) rounds every product.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

template <typename T> struct AdamWScalars {
  T decay, b1, b2, one_minus_b1, one_minus_b2, step_size, bc2_sqrt, eps;
};

// ============================================ CUDA kernels ============================================

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) adamw_kernel(T* __restrict__ param, T* __restrict__ m,
                                                                     T* __restrict__ v, const T* __restrict__ grad,
                                                                     int64_t n, AdamWScalars<T> s,
                                                                     const double* skip_if_nonfinite) {
  if (skip_if_nonfinite != nullptr && !isfinite(*skip_if_nonfinite)) return;  // GradScaler's found_inf, on device
  WAVEMOE_GRID_STRIDE(i, n) {
    const T g = grad[i];
    const T mi = add_rn(mul_rn(m[i], s.b1), mul_rn(g, s.one_minus_b1));
    const T vi = add_rn(mul_rn(v[i], s.b2), mul_rn(mul_rn(g, g), s.one_minus_b2));
    m[i] = mi;
    v[i] = vi;
    const T denom = add_rn(sqrt(vi) / s.bc2_sqrt, s.eps);
    param[i] = sub_rn(mul_rn(param[i], s.decay), mul_rn(s.step_size, mi / denom));
  }
}

// One block per 8192-element segment of one tensor: partial[first_segment + blockIdx.x] = Σ x² (double).
template <typename T>
__global__ void __launch_bounds__(kSegmentThreads) segment_squares_kernel(double* partial, const T* x, int64_t n) {
  __shared__ double shared[32];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kSegment;
  const int64_t end = begin + kSegment < n ? begin + kSegment : n;
  double acc = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) acc += static_cast<double>(x[i]) * x[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// *out = Σ partial (one block, a fixed tree).
__global__ void __launch_bounds__(1024) sum_partials_kernel(double* out, const double* partial, int64_t n) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) *out = acc;
}

// norm_sq -> *norm_out = sqrt, *coef = min(1, max_norm / (norm + 1e-6)) as T, or 1 if the norm is not finite.
template <typename T> __global__ void clip_coef_kernel(double* norm_out, T* coef, const double* norm_sq,
                                                        double max_norm) {
  const double norm = sqrt(*norm_sq);
  *norm_out = norm;
  const double c = max_norm / (norm + 1e-6);
  *coef = (!isfinite(norm) || c >= 1.0) ? T(1) : static_cast<T>(c);
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) scale_by_device_scalar_kernel(T* x, const T* coef, int64_t n) {
  const T c = *coef;
  if (c == T(1)) return;  // nothing to clip (as the CPU, which then leaves the grads untouched)
  WAVEMOE_GRID_STRIDE(i, n) { x[i] *= c; }
}

// Segment partial sums of every tensor into one array, then the ordered total: *out = Σ x².
template <typename T>
void norm_squared_into(double* out, const T* const* grads, const int64_t* sizes, int64_t count, cudaStream_t stream) {
  int64_t segments = 0;
  for (int64_t k = 0; k < count; ++k) segments += (sizes[k] + kSegment - 1) / kSegment;
  DeviceBuffer<double> partial(static_cast<size_t>(std::max<int64_t>(segments, 1)));
  int64_t first = 0;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t s = (sizes[k] + kSegment - 1) / kSegment;
    if (s == 0) continue;
    segment_squares_kernel<T><<<static_cast<unsigned int>(s), kSegmentThreads, 0, stream>>>(partial.get() + first,
                                                                                            grads[k], sizes[k]);
    WAVEMOE_CUDA_CHECK_LAUNCH("segment_squares_kernel");
    first += s;
  }
  sum_partials_kernel<<<1, 1024, 0, stream>>>(out, partial.get(), segments);
  WAVEMOE_CUDA_CHECK_LAUNCH("sum_partials_kernel");
}

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T>
void adamw_step(T* param, T* m, T* v, const T* grad, int64_t n, const AdamWParams& p, cudaStream_t stream,
                const double* skip_if_nonfinite) {
  if (n <= 0) return;
  const double t = static_cast<double>(p.step);
  AdamWScalars<T> s;
  s.decay = static_cast<T>(1.0 - p.lr * p.weight_decay);
  s.b1 = static_cast<T>(p.beta1);
  s.b2 = static_cast<T>(p.beta2);
  s.one_minus_b1 = static_cast<T>(1.0 - p.beta1);
  s.one_minus_b2 = static_cast<T>(1.0 - p.beta2);
  s.step_size = static_cast<T>(p.lr / (1.0 - std::pow(p.beta1, t)));
  s.bc2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(p.beta2, t)));
  s.eps = static_cast<T>(p.eps);
  adamw_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(param, m, v, grad, n, s, skip_if_nonfinite);
  WAVEMOE_CUDA_CHECK_LAUNCH("adamw_kernel");
}

template <typename T>
void grad_norm_squared(double* out, const T* const* grads, const int64_t* sizes, int64_t count, cudaStream_t stream) {
  norm_squared_into(out, grads, sizes, count, stream);
}

template <typename T>
void clip_grad_norm(double* norm_out, T* const* grads, const int64_t* sizes, int64_t count, double max_norm,
                    cudaStream_t stream) {
  DeviceBuffer<double> norm_sq(1);
  DeviceBuffer<T> coef(1);
  std::vector<const T*> cgrads(grads, grads + count);
  norm_squared_into(norm_sq.get(), cgrads.data(), sizes, count, stream);
  clip_coef_kernel<T><<<1, 1, 0, stream>>>(norm_out, coef.get(), norm_sq.get(), max_norm);
  WAVEMOE_CUDA_CHECK_LAUNCH("clip_coef_kernel");
  for (int64_t k = 0; k < count; ++k) {
    if (sizes[k] == 0) continue;
    scale_by_device_scalar_kernel<T><<<grid_for(sizes[k]), kElementwiseThreads, 0, stream>>>(grads[k], coef.get(),
                                                                                             sizes[k]);
    WAVEMOE_CUDA_CHECK_LAUNCH("scale_by_device_scalar_kernel");
  }
}

template void adamw_step<float>(float*, float*, float*, const float*, int64_t, const AdamWParams&, cudaStream_t,
                                const double*);
template void adamw_step<double>(double*, double*, double*, const double*, int64_t, const AdamWParams&, cudaStream_t,
                                 const double*);
template void grad_norm_squared<float>(double*, const float* const*, const int64_t*, int64_t, cudaStream_t);
template void grad_norm_squared<double>(double*, const double* const*, const int64_t*, int64_t, cudaStream_t);
template void clip_grad_norm<float>(double*, float* const*, const int64_t*, int64_t, double, cudaStream_t);
template void clip_grad_norm<double>(double*, double* const*, const int64_t*, int64_t, double, cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
