// Elementwise glue on the GPU: the contract of csrc/kernels/elementwise.h, plus the stream.
// Backward rule: gradient outputs are added into (+=). bias_add_backward sums columns deterministically (fixed row
// chunks in double, summed in order).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

// out = a + b (out may be a or b).
template <typename T> void add_forward(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream);
// y += alpha * x
template <typename T> void axpy(T* y, const T* x, double alpha, int64_t n, cudaStream_t stream);
// x *= alpha
template <typename T> void scale_inplace(T* x, double alpha, int64_t n, cudaStream_t stream);
// x is (N, C): x[n, c] += bias[c]
template <typename T> void bias_add_forward(T* x, const T* bias, int64_t N, int64_t C, cudaStream_t stream);
// dbias[c] += Σ_n dout[n, c]; dout is (N, C).
template <typename T> void bias_add_backward(T* dbias, const T* dout, int64_t N, int64_t C, cudaStream_t stream);
// x is (A, B, C, D), out is (A, C, B, D); its own backward (with B, C swapped). out must not alias x.
template <typename T>
void permute0213(T* out, const T* x, int64_t A, int64_t B, int64_t C, int64_t D, cudaStream_t stream);
// out is (T, C), C even: out[t, 2i] = sin(p / 10000^(2i/C)), out[t, 2i+1] = cos(same), p = t + pos_offset;
// computed in double.
template <typename T>
void sinusoidal_positions(T* out, int64_t T_len, int64_t C, int64_t pos_offset, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
