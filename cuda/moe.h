// Mixture of experts on the GPU: the contract of csrc/kernels/moe.h (same names, same MoeConfig, MoeWeights,
// MoeGrads, MoeSaved and MoeWork; every pointer a device pointer), float and double, plus a trailing cudaStream_t.
// Backward ADDS (+=) into dx and the parameter gradients; MoeWork is overwritten. Nothing here synchronises with the
// host: the per-expert row ranges (offsets) stay on the device and every kernel reads them there. Scratch (CUB's
// temporary storage, run bounds, partial sums) comes from the caching allocator (allocator.h; one stream).
//
// Differences from the CPU contract:
//  - aux_loss_forward and moe_forward return void: the weighted auxiliary loss aux_loss_coef·balance +
//    z_loss_coef·z is written to the device double `*loss` (an extra argument before the stream; may be null).
//    s.aux[0] and s.aux[1] (balance, z; unweighted) are written as on the CPU.
//  - Only the first R = offsets[E] rows of the permuted buffers (row_slot, xp, a, b, h, y, dy, dh, da, db) are
//    written, as on the CPU; rows past R are left as they were.
//
// Same results as the CPU: the same top-k (lower index wins a tie, on logits computed in double from the gate GEMM
// plus the bias), the same dispatch (stable sort by expert of the N·k pairs, token then slot order within an
// expert, an expert keeps its first `capacity` pairs, slot_row = -1 when dropped), integer outputs identical when
// the logits agree. Floating-point results differ from the CPU only by rounding (other GEMM summation orders; the
// router and aux reductions run in double); every reduction has a fixed order, so a GPU result is bit-identical
// from run to run (no float atomics anywhere).
//
// How it runs (see moe.cu): dispatch = CUB stable radix sort of (expert, pair) + run boundaries + one scan thread;
// expert FFN = grouped GEMM kernels over the experts' row blocks (tiles found from the device offsets; tiles past an
// expert's rows do not exist), weight gradients = one block per (expert, output tile) summing that expert's rows in
// order (float32 under the bf16 / tf32 matmul precision: the same on tensor cores, moe_gemm_tc.cuh); bias gradients
// and aux sums in double with fixed chunking.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "csrc/kernels/moe.h"

namespace wavemoe {
namespace gpu {

using wavemoe::MoeActivation;
using wavemoe::MoeConfig;
using wavemoe::MoeGrads;
using wavemoe::MoeRouter;
using wavemoe::MoeSaved;
using wavemoe::MoeWeights;
using wavemoe::MoeWork;

// ---- the pieces -------------------------------------------------------------------------------------------------

// x is (N, D). Fills probs, lse, expert and weight (probs holds the raw gate logits in between).
template <typename T>
void router_forward(const MoeSaved<T>& s, const T* x, const MoeWeights<T>& w, const MoeConfig& c,
                    cudaStream_t stream);
// dlogits (N, E) = d(weights, aux)/d logits (reads s.counts), then dx, dgate_w, dgate_b += through the gate matmul.
template <typename T>
void router_backward(T* dx, const MoeGrads<T>& g, T* dlogits, const T* dweight, const MoeSaved<T>& s, const T* x,
                     const MoeWeights<T>& w, const MoeConfig& c, cudaStream_t stream);

// Fills counts, offsets, slot_row and row_slot[0, R) from expert.
template <typename T> void dispatch_forward(const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream);

// xp[r] = x[token of row r] for r < R; backward: dx[n] += Σ_j dxp[slot_row[n, j]] over kept slots, in slot order.
template <typename T>
void gather_forward(T* xp, const T* x, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream);
template <typename T>
void gather_backward(T* dx, const T* dxp, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream);

// y = expert(xp) for every permuted row r < R (fills a, b, h, y).
template <typename T>
void expert_ffn_forward(const MoeSaved<T>& s, const MoeWeights<T>& w, const MoeConfig& c, cudaStream_t stream);
// wk.dy (rows < R) in: the expert weights' gradients are added, and wk.dy is overwritten with the gradient of xp.
template <typename T>
void expert_ffn_backward(const MoeGrads<T>& g, const MoeWork<T>& wk, const MoeSaved<T>& s, const MoeWeights<T>& w,
                         const MoeConfig& c, cudaStream_t stream);

// out (N, D) = Σ_j weight[n, j] · y[slot_row[n, j]]. Backward: dy[r] = weight · dout[token] (r < R), dweight[n, j] =
// dout[n]·y[row] (0 for a dropped slot); both overwritten.
template <typename T> void combine_forward(T* out, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream);
template <typename T>
void combine_backward(T* dy, T* dweight, const T* dout, const MoeSaved<T>& s, const MoeConfig& c,
                      cudaStream_t stream);

// Writes s.aux[0] = balance, s.aux[1] = z and *loss = the weighted sum (loss may be null). Device only, no sync.
template <typename T>
void aux_loss_forward(const MoeSaved<T>& s, const MoeConfig& c, double* loss, cudaStream_t stream);

// ---- the layer --------------------------------------------------------------------------------------------------

// out (N, D) from x (N, D); fills s; writes the weighted auxiliary loss to *loss (device; may be null).
template <typename T>
void moe_forward(T* out, const MoeSaved<T>& s, const T* x, const MoeWeights<T>& w, const MoeConfig& c, double* loss,
                 cudaStream_t stream);
// dx (N, D) and the parameter gradients += from dout (N, D) and the weighted aux loss (scaled by aux_grad_scale).
template <typename T>
void moe_backward(T* dx, const MoeGrads<T>& g, const MoeWork<T>& wk, const T* dout, const MoeSaved<T>& s, const T* x,
                  const MoeWeights<T>& w, const MoeConfig& c, cudaStream_t stream);

// ---- the expert GEMMs' kernels (for tests) -------------------------------------------------------------------------

// Which kernels the float32 expert GEMMs use under the current matmul precision: 7 (tensor cores, bf16 inputs), 10
// (tensor cores, tf32) or 0 (CUDA cores: fp32 precision, WAVEMOE_CUDA_TENSOR_CORES=0, or turned off below). float64
// always uses the CUDA cores.
int moe_gemm_tensor_core_bits();
// false sends the float32 expert GEMMs to the CUDA-core kernels whatever the precision (what
// WAVEMOE_CUDA_TENSOR_CORES=0 does, within one process); true, the default, leaves the choice to tensor_core_bits.
void set_moe_tensor_cores_allowed(bool allowed);

}  // namespace gpu
}  // namespace wavemoe
