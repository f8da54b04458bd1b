// Wavelet token embedding on the GPU: the contract of csrc/kernels/wavelet.h (table build and raw mode), plus the
// stream. The transform raw -> embedding is linear, embedding = raw · W with W = wavelet_matrix(R, spec) (R, C), so
// every GPU function here is a GEMM with W (gpu::matmul_forward: cuBLAS for float32 when loaded, else the own tiled
// kernel; float64 always the own kernel), plus the embedding gather / deterministic scatter of cuda/embedding.h.
//
// Host work: W itself is built on the HOST by the CPU function wavemoe::wavelet_matrix (in double, rounded once to
// T; R·C values, 256 × 32 by default: microseconds) and uploaded. That is the one place these functions touch the
// host; see wavelet_matrix below. The raw-mode functions take W already on the device and never synchronise.
//
// Accuracy against the CPU: the CPU sums in double; the GPU's float32 GEMM sums in float32 (and W is rounded to
// float32), so float32 results agree to the GEMM bound (R + 2)·2^-24·Σ|raw||W| (per output), not bit for bit.
// float64 agrees to the same bound with 2^-53.
//
// Backward ADDS (+=) into draw, DETERMINISTICALLY and without atomics: g = dout · Wᵀ by one GEMM (each element one
// fixed chain), then gpu::embedding_backward adds the rows of g into draw by id, rows of one id in increasing
// position (a stable CUB radix sort by id), the CPU's order.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "csrc/kernels/wavelet.h"  // WaveletSpec, wavelet_channels, the host wavelet_matrix

namespace wavemoe {
namespace gpu {

using wavemoe::WaveletSpec;
using wavemoe::wavelet_channels;

// W is (R, C) on the device, C = wavelet_channels(R, spec): computed on the host by wavemoe::wavelet_matrix<T> and
// copied in through pinned staging (backend.h copy_to_device_async): no wait for the device.
template <typename T> void wavelet_matrix(T* W, int64_t R, const WaveletSpec& spec, cudaStream_t stream);

// table is (V, C), raw is (V, R), both on the device: table = raw · W. Builds W with wavelet_matrix above (host work,
// no wait), then one GEMM.
template <typename T>
void wavelet_table_forward(T* table, const T* raw, int64_t V, int64_t R, const WaveletSpec& spec,
                           cudaStream_t stream);

// raw mode. out is (N, C), ids is (N,), raw is (V, R), W is (R, C), all on the device:
// out[i] = raw[ids[i]] · W (a gather of the N rows into scratch, then one GEMM). Ids outside [0, V) are handled as
// in embedding.h (NaN rows, reported in `bad`).
template <typename T>
void wavelet_embedding_raw_forward(T* out, const int32_t* ids, const T* raw, const T* W, int64_t N, int64_t V,
                                   int64_t R, int64_t C, unsigned long long* bad, cudaStream_t stream);

// draw is (V, R), dout is (N, C): draw[ids[i]] += dout[i] · Wᵀ (g = dout · Wᵀ into scratch, then the
// deterministic sorted scatter-add of embedding_backward).
template <typename T>
void wavelet_embedding_raw_backward(T* draw, const T* dout, const int32_t* ids, const T* W, int64_t N, int64_t V,
                                    int64_t R, int64_t C, unsigned long long* bad, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
