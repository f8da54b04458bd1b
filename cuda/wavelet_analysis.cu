#include "wavelet_analysis.h"

#include <cuda_runtime.h>

#include "allocator.h"
#include "backend.h"
#include "check.h"
#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr double kSqrtHalf = 0.70710678118654752440;  // M_SQRT1_2, as the CPU uses

// One thread per row: the CPU's haar_inplace on a double scratch row (same operations, same order).
template <typename T>
__global__ void haar_rows_kernel(T* out, const T* x, double* scratch, int64_t B, int64_t N, int levels, int64_t L) {
  WAVEMOE_GRID_STRIDE(row, B) {
    double* buf = scratch + row * N;
    for (int64_t i = 0; i < N; ++i) buf[i] = static_cast<double>(x[row * N + i]);
    int64_t n = N;
    for (int l = 0; l < levels; ++l) {
      const int64_t half = (n + 1) / 2;
      for (int64_t k = 0; k < half; ++k) {
        const double a0 = buf[2 * k];
        const double a1 = 2 * k + 1 < n ? buf[2 * k + 1] : a0;  // symmetric padding of an odd length
        buf[k] = __dmul_rn(__dadd_rn(a0, a1), kSqrtHalf);
      }
      n = half;
    }
    for (int64_t k = 0; k < L; ++k) out[row * L + k] = static_cast<T>(buf[k]);
  }
}

// One thread per (row, scale, t): out[.., s, t] = Σ_k x[k] · taps[s][t - k + n - 1], k in increasing order.
template <typename T>
__global__ void cwt_kernel(T* out, const T* x, const double* taps, int64_t B, int64_t S, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, B * S * n) {
    const int64_t t = i % n, s = (i / n) % S, row = i / (n * S);
    const double* h = taps + s * 2 * (2 * n - 1) + 2 * (t + n - 1);  // h - 2k is the tap for x[k]
    const T* xr = x + row * n;
    double re = 0, im = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double xk = static_cast<double>(xr[k]);
      re = __dadd_rn(re, __dmul_rn(xk, h[-2 * k]));
      im = __dadd_rn(im, __dmul_rn(xk, h[-2 * k + 1]));
    }
    out[i * 2] = static_cast<T>(re);
    out[i * 2 + 1] = static_cast<T>(im);
  }
}

}  // namespace

template <typename T> void haar_forward(T* out, const T* x, int64_t B, int64_t N, int levels, cudaStream_t stream) {
  if (B <= 0 || N <= 0) return;
  const int64_t L = haar_output_length(N, levels);
  DeviceBuffer<double> scratch(static_cast<size_t>(B * N));  // freed at once: reuse is ordered on this stream
  haar_rows_kernel<T><<<grid_for(B), kElementwiseThreads, 0, stream>>>(out, x, scratch.get(), B, N, levels, L);
  WAVEMOE_CUDA_CHECK_LAUNCH("haar_forward");
}

template <typename T> void cwt_forward(T* out, const T* x, const CwtPlan& plan, int64_t B, cudaStream_t stream) {
  if (B <= 0 || plan.n <= 0 || plan.scales <= 0) return;
  DeviceBuffer<double> taps(plan.taps.size());
  copy_to_device_async(taps.get(), plan.taps.data(), plan.taps.size() * sizeof(double), stream);
  const int64_t outputs = B * plan.scales * plan.n;
  cwt_kernel<T><<<grid_for(outputs), kElementwiseThreads, 0, stream>>>(out, x, taps.get(), B, plan.scales, plan.n);
  WAVEMOE_CUDA_CHECK_LAUNCH("cwt_forward");
}

template void haar_forward<float>(float*, const float*, int64_t, int64_t, int, cudaStream_t);
template void haar_forward<double>(double*, const double*, int64_t, int64_t, int, cudaStream_t);
template void cwt_forward<float>(float*, const float*, const CwtPlan&, int64_t, cudaStream_t);
template void cwt_forward<double>(double*, const double*, const CwtPlan&, int64_t, cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
