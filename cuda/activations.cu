// Activations and SwiGLU. Backward ADDS (+=) into its gradients; zeroing them is the caller's job.
#include "activations.h"

#include "activation_math.cuh"
#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

using act::GeluErf;
using act::GeluTanh;
using act::Relu;
using act::Silu;

// ============================================ CUDA kernels ============================================

template <typename F, typename T>
__global__ void __launch_bounds__(kElementwiseThreads) activation_forward_kernel(T* out, const T* x, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { out[i] = F::value(x[i]); }
}

template <typename F, typename T>
__global__ void __launch_bounds__(kElementwiseThreads) activation_backward_kernel(T* dx, const T* dout, const T* x,
                                                                                   int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { dx[i] += dout[i] * F::grad(x[i]); }
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) swiglu_forward_kernel(T* out, const T* a, const T* b,
                                                                              int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { out[i] = Silu::value(a[i]) * b[i]; }
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) swiglu_backward_kernel(T* da, T* db, const T* dout, const T* a,
                                                                               const T* b, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) {
    const T s = Silu::sigmoid(a[i]);
    da[i] += dout[i] * b[i] * s * (T(1) + a[i] * (T(1) - s));
    db[i] += dout[i] * a[i] * s;
  }
}

// ============================================ kernel launchers ============================================

template <typename F, typename T> void launch_forward(T* out, const T* x, int64_t n, cudaStream_t stream) {
  activation_forward_kernel<F, T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(out, x, n);
  WAVEMOE_CUDA_CHECK_LAUNCH("activation_forward_kernel");
}
template <typename F, typename T>
void launch_backward(T* dx, const T* dout, const T* x, int64_t n, cudaStream_t stream) {
  activation_backward_kernel<F, T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(dx, dout, x, n);
  WAVEMOE_CUDA_CHECK_LAUNCH("activation_backward_kernel");
}

}  // namespace

template <typename T> void activation_forward(T* out, const T* x, int64_t n, Activation kind, cudaStream_t stream) {
  if (n <= 0) return;
  switch (kind) {
    case Activation::relu: return launch_forward<Relu>(out, x, n, stream);
    case Activation::gelu_tanh: return launch_forward<GeluTanh>(out, x, n, stream);
    case Activation::gelu_erf: return launch_forward<GeluErf>(out, x, n, stream);
    case Activation::silu: return launch_forward<Silu>(out, x, n, stream);
  }
}

template <typename T>
void activation_backward(T* dx, const T* dout, const T* x, int64_t n, Activation kind, cudaStream_t stream) {
  if (n <= 0) return;
  switch (kind) {
    case Activation::relu: return launch_backward<Relu>(dx, dout, x, n, stream);
    case Activation::gelu_tanh: return launch_backward<GeluTanh>(dx, dout, x, n, stream);
    case Activation::gelu_erf: return launch_backward<GeluErf>(dx, dout, x, n, stream);
    case Activation::silu: return launch_backward<Silu>(dx, dout, x, n, stream);
  }
}

template <typename T> void swiglu_forward(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_forward_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(out, a, b, n);
  WAVEMOE_CUDA_CHECK_LAUNCH("swiglu_forward_kernel");
}

template <typename T>
void swiglu_backward(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_backward_kernel<T><<<grid_for(n), kElementwiseThreads, 0, stream>>>(da, db, dout, a, b, n);
  WAVEMOE_CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
}

#define WAVEMOE_INSTANTIATE(T)                                                                         \
  template void activation_forward<T>(T*, const T*, int64_t, Activation, cudaStream_t);                \
  template void activation_backward<T>(T*, const T*, const T*, int64_t, Activation, cudaStream_t);     \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t, cudaStream_t);                      \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, cudaStream_t);
WAVEMOE_INSTANTIATE(float)
WAVEMOE_INSTANTIATE(double)
#undef WAVEMOE_INSTANTIATE

}  // namespace gpu
}  // namespace wavemoe
