// The wavelet analysis ops on the GPU (researchers' tools, not the training path): the Haar approximation and the
// complex Morlet CWT of csrc/kernels/wavelet.h, plus the stream. Both sum in double in the CPU's order with
// separately rounded multiplies and adds (no fused multiply-add), so results are bit-identical to the CPU kernels.
// Throughput is not the aim (one thread per output, O(n) work each for the CWT).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "csrc/kernels/wavelet.h"  // CwtPlan, haar_output_length

namespace wavemoe {
namespace gpu {

// out is (B, haar_output_length(N, levels)), x is (B, N); each row reduced in place in a double scratch row.
template <typename T> void haar_forward(T* out, const T* x, int64_t B, int64_t N, int levels, cudaStream_t stream);

// out is (B, S, n, 2), x is (B, n). The plan's taps (built on the host, in double) are copied to the device first:
// a copy from pageable host memory, which the runtime stages before this returns (the plan may then be freed).
template <typename T> void cwt_forward(T* out, const T* x, const CwtPlan& plan, int64_t B, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
