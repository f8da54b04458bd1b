// Elementwise activations and SwiGLU on the GPU: the contract of csrc/kernels/activations.h, plus the stream.
// Forward may run in place; backward ADDS (+=) into its gradients. Same formulas as the CPU (GELU-tanh through
// σ(2u), GELU-erf as Φ(x) + x φ(x) for the gradient), with CUDA's expf/erff (≤ 2 ulp).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "csrc/kernels/activations.h"  // Activation

namespace wavemoe {
namespace gpu {

using wavemoe::Activation;

template <typename T> void activation_forward(T* out, const T* x, int64_t n, Activation kind, cudaStream_t stream);
// dx += dout ⊙ f'(x)
template <typename T>
void activation_backward(T* dx, const T* dout, const T* x, int64_t n, Activation kind, cudaStream_t stream);
// out = silu(a) ⊙ b
template <typename T> void swiglu_forward(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream);
// da += dout ⊙ b ⊙ silu'(a), db += dout ⊙ silu(a)
template <typename T>
void swiglu_backward(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
