// The optimizer step on the GPU: AdamW and global-norm gradient clipping, the math of csrc/kernels/adamw.h, plus
// the stream. Both update in place; neither is a backward kernel (the += rule does not apply).
//
// The scalars are computed on the host in double and applied in T, as on the CPU, with explicitly rounded
// multiplies and adds (no fused multiply-add contraction), so float32 results match the CPU kernel bit for bit
// wherever sqrt and division are correctly rounded (the default; no --use_fast_math).
// The norm and the clipping coefficient stay on the device: no host synchronisation.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "csrc/kernels/adamw.h"  // AdamWParams

namespace wavemoe {
namespace gpu {

using wavemoe::AdamWParams;

// param, m, v, grad are (n) device arrays. skip_if_nonfinite: a device double read by the kernel; when it holds NaN or
// ±Infinity nothing changes (the binding's skipIfNonFinite, decided on the device with no host round trip).
template <typename T>
void adamw_step(T* param, T* m, T* v, const T* grad, int64_t n, const AdamWParams& p, cudaStream_t stream,
                const double* skip_if_nonfinite = nullptr);

// grads (a HOST array of `count` device pointers) with sizes[k] elements each (host array): *out (device double) =
// the sum of squares of all of them, in double over fixed 8192-element segments, segments summed in order.
template <typename T>
void grad_norm_squared(double* out, const T* const* grads, const int64_t* sizes, int64_t count, cudaStream_t stream);

// Scales every grad by min(1, max_norm / (norm + 1e-6)) and writes norm to *norm_out (device double). A non-finite
// norm scales nothing (the caller decides, e.g. skips the step after reading norm_out).
template <typename T>
void clip_grad_norm(double* norm_out, T* const* grads, const int64_t* sizes, int64_t count, double max_norm,
                    cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
