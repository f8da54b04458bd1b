// Token embedding on the GPU: the contract of csrc/kernels/embedding.h, plus the stream.
// Backward ADDS (+=) into dtable, DETERMINISTICALLY and without atomics: the (id, position) pairs are sorted by id
// with CUB's stable radix sort, then one block per distinct id adds its rows in increasing position, the CPU's
// order, so the result is bit-identical to the CPU kernel.
// An id outside [0, V) is never used to read or write the table: forward writes a row of NaN, backward adds nothing
// for it, and both report the first one in `bad` (a check word of a recorded run, csrc/core/device_run.h; null when
// the caller has checked the ids on the host).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

// out is (N, C), ids is (N) (device), table is (V, C): out[i] = table[ids[i]].
template <typename T>
void embedding_forward(T* out, const int32_t* ids, const T* table, int64_t N, int64_t C, int64_t V,
                       unsigned long long* bad, cudaStream_t stream);

// dtable is (V, C), dout is (N, C), ids is (N): dtable[ids[i]] += dout[i].
template <typename T>
void embedding_backward(T* dtable, const T* dout, const int32_t* ids, int64_t N, int64_t C, int64_t V,
                        unsigned long long* bad, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
