// RMSNorm on the GPU: the contract of csrc/kernels/rmsnorm.h, plus the stream.
//   out = x * rstd * weight,   rstd = 1 / sqrt(mean(x²) + eps)   per row.
// Backward ADDS (+=) into dx and dweight; zeroing gradients is the caller's job.
// One block per row; dweight is reduced over rows deterministically (fixed row chunks summed in order, in double).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

// out is (N, C), rstd is (N); x is (N, C), weight is (C). eps > 0.
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* weight, int64_t N, int64_t C, double eps,
                     cudaStream_t stream);

// dx is (N, C), dweight is (C); dout and x are (N, C), weight is (C), rstd is (N) from the forward.
template <typename T>
void rmsnorm_backward(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t N,
                      int64_t C, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
