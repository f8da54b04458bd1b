// The activation functions as device functions, with the CPU's formulas (csrc/kernels/activations.cc): value and
// derivative of ReLU, GELU (tanh and erf forms) and SiLU. Shared by cuda/activations.cu and the MoE experts
// (cuda/moe.cu). Internal to cuda/*.cu.
#pragma once
#include <cuda_runtime.h>

namespace wavemoe {
namespace gpu {
namespace act {

constexpr double kSqrt2OverPi = 0.7978845608028654;  // √(2/π)
constexpr double kInvSqrt2 = 0.7071067811865476;     // 1/√2
constexpr double kInvSqrt2Pi = 0.3989422804014327;   // 1/√(2π)
constexpr double kGeluCubic = 0.044715;

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

}  // namespace act
}  // namespace gpu
}  // namespace wavemoe
