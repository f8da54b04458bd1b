// Fused scaled-dot-product attention on the CPU (FlashAttention-2 style): O = softmax(Q·Kᵀ·scale + mask)·V
// computed tile by tile with an online softmax, so the T x T score matrix never exists; forward saves only the per-row
// log-sum-exp, and backward recomputes the probabilities from it.
//
// Backward ADDS (+=) into dq, dk and dv; zeroing them is the caller's job.
//
// float32 honours the matmul precision (matmul_precision.h): under bf16 or tf32 the inputs of every product (Q, K, V,
// dO, and the probabilities P and dS = ∂L/∂S where they enter P·V, Pᵀ·dO, dS·K, dSᵀ·Q) are rounded and the sums stay
// float32, as a bf16 FlashAttention-2; softmax statistics, lse and outputs stay float32 (attention.cc says exactly
// what is rounded). float64 is never rounded.
//
// Layouts (row-major, contiguous):
//   q, out, dq, dout are (B, Hq, Tq, D); lse is (B, Hq, Tq)
//   k, v, dk, dv are (B, Hkv, C, D) with C >= kv_length: a KV cache's capacity, or Tk; rows [kv_length, C) are
//   neither read nor written
// Grouped-query attention: query head h uses kv head h / (Hq / Hkv).
// Positions: query t is at position q_offset + t, key j at position j. The query at position p sees keys
//   none            every j < kv_length (encoder self-attention, cross-attention)
//   causal          j <= p
//   sliding_window  p - window < j <= p
// For the causal masks q_offset + Tq <= kv_length, so every query sees at least its own key.
#pragma once
#include <cstdint>

namespace wavemoe {

enum class AttentionMask : int { none = 0, causal = 1, sliding_window = 2 };

// The sizes and options of one attention call, validated by the binding (a plain struct, as flash-attention's
// Flash_fwd_params).
struct AttentionParams {
  int64_t B = 0, Hq = 0, Hkv = 0;
  int64_t Tq = 0;
  int64_t kv_capacity = 0;  // C: rows per (batch, kv head) in k and v; the row stride of a head is C * D
  int64_t kv_length = 0;    // rows of k and v in use
  int64_t D = 0;
  AttentionMask mask = AttentionMask::causal;
  int64_t window = 0;    // sliding_window only, >= 1
  int64_t q_offset = 0;  // position of query 0 (ignored for mask none)
  double scale = 1.0;
};

// out is (B, Hq, Tq, D); lse is (B, Hq, Tq) or nullptr (inference).
template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionParams& p);

// dq += ∂L/∂q, dk += ∂L/∂k, dv += ∂L/∂v given dout = ∂L/∂out and the forward's out and lse.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const AttentionParams& p);

// Copies `rows` rows of every (batch, head) pair: src is (BH, src_capacity, D) read from row 0, dst is
// (BH, dst_capacity, D) written from row dst_position. Appending new keys to a cache and growing a cache are both
// this copy.
template <typename T>
void attention_kv_copy(T* dst, const T* src, int64_t BH, int64_t dst_capacity, int64_t dst_position,
                       int64_t src_capacity, int64_t rows, int64_t D);

// scores is (N, Tq, Tk): writes -inf where key j is in the future of query i (j > q_offset + i). The unfused
// baseline (matmul, this, softmax, matmul) that the bench compares the fused kernel with.
template <typename T> void attention_causal_mask_fill(T* scores, int64_t N, int64_t Tq, int64_t Tk, int64_t q_offset);

}  // namespace wavemoe
