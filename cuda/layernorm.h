// LayerNorm on the GPU: the contract of csrc/kernels/layernorm.h, plus the stream.
//   out = (x - mean) * rstd * weight + bias,   rstd = 1 / sqrt(var(x) + eps)   per row (biased variance).
// Backward ADDS (+=) into dx, dweight and dbias; zeroing gradients is the caller's job.
//
// As on the CPU: the row statistics and the backward's row means are sums in double (two passes for the variance,
// so no cancellation when |mean| >> std), rounded to T; the per-element formulas are then evaluated in T op by op
// (explicitly rounded, no FMA contraction, like the CPU's baseline x86-64 build). Only the order of the double sums
// differs (a block tree here, 8 lanes there), so float32 results are bit-identical except where that moves a
// rounded statistic by one ulp. One block per row; dweight and dbias are reduced over rows deterministically
// (fixed row chunks summed in order, in double; common.cuh column_sum_add).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

// out is (N, C); mean and rstd are (N) (saved for backward); x is (N, C); weight is (C); bias is (C) or nullptr.
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* weight, const T* bias, int64_t N, int64_t C,
                       double eps, cudaStream_t stream);

// dx is (N, C); dweight is (C); dbias is (C) or nullptr (no bias); dout and x are (N, C); weight is (C); mean and
// rstd are (N) from the forward.
template <typename T>
void layernorm_backward(T* dx, T* dweight, T* dbias, const T* dout, const T* x, const T* weight, const T* mean,
                        const T* rstd, int64_t N, int64_t C, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
