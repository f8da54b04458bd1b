// Counter-based uniform and normal fills: element i depends only on (seed, i), as on the CPU.
#include "random.h"

#include <cmath>

#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

// ============================================ CUDA kernels ============================================

// lo + span·u rounded op by op: the CPU (baseline x86-64) has no FMA, so neither may this.
__device__ __forceinline__ double affine_rn(double lo, double span, double u) {
  return __dadd_rn(lo, __dmul_rn(span, u));
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) random_uniform_kernel(T* out, int64_t n, uint64_t seed,
                                                                              double lo, double span) {
  WAVEMOE_GRID_STRIDE(i, n) {
    out[i] = static_cast<T>(affine_rn(lo, span, uniform01(seed, static_cast<uint64_t>(i))));
  }
}

// Element i uses the pair of uniforms (2⌊i/2⌋, 2⌊i/2⌋+1); even i takes the cosine branch, odd the sine: each thread
// recomputes its pair (two hashes), so the result does not depend on how elements map to threads.
template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) random_normal_kernel(T* out, int64_t n, uint64_t seed,
                                                                             double mean, double std) {
  WAVEMOE_GRID_STRIDE(i, n) {
    const uint64_t pair = static_cast<uint64_t>(i / 2) * 2;
    const double u1 = 1.0 - uniform01(seed, pair);  // (0, 1]: log is finite; 1 - k·2^-53 is exact
    const double u2 = uniform01(seed, pair + 1);
    const double r = sqrt(-2.0 * log(u1));
    const double angle = (2.0 * M_PI) * u2;  // the CPU's 2.0 * M_PI * u2 (2π folded first, then one product)
    const double z = (i % 2 == 0) ? r * cos(angle) : r * sin(angle);
    out[i] = static_cast<T>(affine_rn(mean, std, z));
  }
}

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T>
void random_uniform(T* out, int64_t n, uint64_t seed, double lo, double hi, cudaStream_t stream) {
  if (n <= 0) return;
  // The CPU computes (hi - lo) per element; it is the same double here, computed once.
  random_uniform_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(out, n, seed, lo, hi - lo);
  WAVEMOE_CUDA_CHECK_LAUNCH("random_uniform_kernel");
}

template <typename T>
void random_normal(T* out, int64_t n, uint64_t seed, double mean, double std, cudaStream_t stream) {
  if (n <= 0) return;
  random_normal_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(out, n, seed, mean, std);
  WAVEMOE_CUDA_CHECK_LAUNCH("random_normal_kernel");
}

template void random_uniform<float>(float*, int64_t, uint64_t, double, double, cudaStream_t);
template void random_uniform<double>(double*, int64_t, uint64_t, double, double, cudaStream_t);
template void random_normal<float>(float*, int64_t, uint64_t, double, double, cudaStream_t);
template void random_normal<double>(double*, int64_t, uint64_t, double, double, cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
