// Fused scaled-dot-product attention on the GPU: the contract of csrc/kernels/attention.h (layouts, masks, grouped
// query heads, KV cache with kv_length <= kv_capacity, backward ADDS into dq, dk, dv), plus the stream.
//
// FlashAttention-2 style: a block holds a tile of query rows and streams K/V tiles through shared memory with an
// online softmax, so no T x T matrix exists; forward writes out and (optionally) the log-sum-exp, backward recomputes
// the probabilities from it. A block's rows are the query rows of one (batch, kv head) pair with the g = Hq / Hkv
// query heads interleaved (row r is position r / g of head r % g), as on the CPU, so a K/V tile serves every head of
// its group. Key tiles that no row of a block sees (causal, sliding window) are skipped.
//
//   forward   one block per row tile; when those blocks cannot fill the GPU (decoding: Tq = 1 against a long cache)
//             the keys are split across blocks (flash-decoding) and a combine kernel merges the partial max, sum and
//             output; a (batch, kv head) with <= 32 query rows uses 16-row tiles, else 64 (32 for D > 128 and for
//             float64).
//   backward  deterministic, no atomics: D_i = rowsum(dout ⊙ out) (in double), then one kernel per key tile that
//             owns dK and dV of its keys (every query row of its group that sees them, in order) and one kernel per
//             row tile that owns dQ of its rows.
// Results are bit-identical from run to run on a given GPU (the split count follows the SM count).
//
// Head dims 1..256 (tiles for D padded to 32, 64, 96, 128 or 256); larger D throws std::invalid_argument.
// Scratch (split partials, D_i) comes from the caching allocator; nothing synchronises with the host.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "csrc/kernels/attention.h"  // AttentionParams, AttentionMask

namespace wavemoe {
namespace gpu {

// out is (B, Hq, Tq, D); lse is (B, Hq, Tq) or nullptr.
template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionParams& p,
                       cudaStream_t stream);

// dq += ∂L/∂q, dk += ∂L/∂k, dv += ∂L/∂v given dout and the forward's out and lse (lse required).
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const AttentionParams& p, cudaStream_t stream);

// src (BH, src_capacity, D) rows [0, rows) -> dst (BH, dst_capacity, D) rows [dst_position, dst_position + rows).
// Tests: false makes attention_forward/backward use the CUDA-core kernels under every precision (as
// WAVEMOE_CUDA_TENSOR_CORES=0 does for the whole process), true (the default) lets them pick the tensor-core kernels,
// so one process can compare the two paths.
void attention_allow_tensor_cores(bool allowed);

template <typename T>
void attention_kv_copy(T* dst, const T* src, int64_t BH, int64_t dst_capacity, int64_t dst_position,
                       int64_t src_capacity, int64_t rows, int64_t D, cudaStream_t stream);

// scores (N, Tq, Tk): -inf where j > q_offset + i.
template <typename T>
void attention_causal_mask_fill(T* scores, int64_t N, int64_t Tq, int64_t Tk, int64_t q_offset, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
