// Row softmax on the GPU: the contract of csrc/kernels/softmax.h, plus the stream. -Infinity entries get 0; an
// all -Infinity row gets zeros (no NaN); NaN or +Infinity make the row NaN. Backward ADDS (+=) into dx.
// One block per row: max, then Σ exp (accumulated in T), then the scaled exps.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

// out and x are (N, C); out may equal x.
template <typename T> void softmax_forward(T* out, const T* x, int64_t N, int64_t C, cudaStream_t stream);
// dx += out ⊙ (dout - Σ_row dout ⊙ out)
template <typename T>
void softmax_backward(T* dx, const T* dout, const T* out, int64_t N, int64_t C, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
