// Activations and SwiGLU. Backward ADDS (+=) into its gradients; zeroing them is the caller's job.
#include "activations.h"

#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;  // √(2/π)
constexpr double kInvSqrt2 = 0.7071067811865476;     // 1/√2
constexpr double kInvSqrt2Pi = 0.3989422804014327;   // 1/√(2π)
constexpr double kGeluCubic = 0.044715;

// The CPU's structs (csrc/kernels/activations.cc), as device functions.
struct Relu {
  template <typename T> __device__ static T value(T x) { return x < T(0) ? T(0) : x; }  // NaN stays NaN
  template <typename T> __device__ static T grad(T x) { return x > T(0) ? T(1) : T(0); }
};
struct GeluTanh {  // 0.5 (1 + tanh u) = σ(2u)
  template <typename T> __device__ static T u(T x) { return T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x); }
  template <typename T> __device__ static T value(T x) { return x / (T(1) + exp(T(-2) * u(x))); }
  template <typename T> __device__ static T grad(T x) {
    const T s = T(1) / (T(1) + exp(T(-2) * u(x)));
    const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * x * x);
    return s + T(2) * x * s * (T(1) - s) * du;
  }
};
struct GeluErf {
  template <typename T> __device__ static T value(T x) { return T(0.5) * x * (T(1) + erf(x * T(kInvSqrt2))); }
  template <typename T> __device__ static T grad(T x) {
    return T(0.5) * (T(1) + erf(x * T(kInvSqrt2))) + x * T(kInvSqrt2Pi) * exp(T(-0.5) * x * x);
  }
};
struct Silu {
  template <typename T> __device__ static T sigmoid(T x) { return T(1) / (T(1) + exp(-x)); }
  template <typename T> __device__ static T value(T x) { return x * sigmoid(x); }
  template <typename T> __device__ static T grad(T x) {
    const T s = sigmoid(x);
    return s * (T(1) + x * (T(1) - s));
  }
};

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
