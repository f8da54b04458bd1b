// Mixture of experts on the GPU (contract: moe.h; reference: csrc/kernels/moe.cc).
//
// Data layout as on the CPU: the N·k (token, slot) pairs are permuted so that expert e owns the contiguous permuted
// rows [offsets[e], offsets[e + 1]), in token order. The offsets stay on the device, so R = offsets[E] is unknown to
// the host: kernels over permuted rows are launched for the worst case and read R (or the offsets) themselves.
//
// Determinism: every output element is written by one thread, from sums in a fixed order (GEMM tiles walk K in
// order; weight gradients walk an expert's rows in order; double sums use fixed chunks and fixed shuffle trees).
// There are no float atomics, and the only integer work (dispatch) is a stable sort plus run boundaries.
#include "moe.h"

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "allocator.h"
#include "activation_math.cuh"
#include "common.cuh"
#include "matmul.h"
#include "moe_gemm.cuh"
#include "moe_gemm_tc.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kThreads = kElementwiseThreads;

// ============================================ activations ============================================
// The activations of cuda/activations.cu (the CPU's formulas).
using act::GeluTanh;
using act::Relu;
using act::Silu;

// Permuted rows in use: R = offsets[E], read on the device.
__device__ __forceinline__ int64_t rows_in_use(const int32_t* offsets, int64_t E) { return offsets[E]; }

// h = act(a) for the R·F used elements.
template <typename Act, typename T>
__global__ void __launch_bounds__(kThreads) moe_act_forward_kernel(T* h, const T* a, const int32_t* offsets,
                                                                    int64_t E, int64_t F) {
  const int64_t total = rows_in_use(offsets, E) * F;
  WAVEMOE_GRID_STRIDE(i, total) { h[i] = Act::value(a[i]); }
}

// h = silu(a) ⊙ b.
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_swiglu_forward_kernel(T* h, const T* a, const T* b,
                                                                       const int32_t* offsets, int64_t E, int64_t F) {
  const int64_t total = rows_in_use(offsets, E) * F;
  WAVEMOE_GRID_STRIDE(i, total) { h[i] = Silu::value(a[i]) * b[i]; }
}

// da = dh ⊙ act'(a) (overwritten: the CPU zeroes da and adds).
template <typename Act, typename T>
__global__ void __launch_bounds__(kThreads) moe_act_backward_kernel(T* da, const T* dh, const T* a,
                                                                     const int32_t* offsets, int64_t E, int64_t F) {
  const int64_t total = rows_in_use(offsets, E) * F;
  WAVEMOE_GRID_STRIDE(i, total) { da[i] = dh[i] * Act::grad(a[i]); }
}

// da = dh ⊙ b ⊙ silu'(a), db = dh ⊙ a ⊙ σ(a): the CPU's swiglu_backward expressions (overwritten).
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_swiglu_backward_kernel(T* da, T* db, const T* dh, const T* a,
                                                                        const T* b, const int32_t* offsets,
                                                                        int64_t E, int64_t F) {
  const int64_t total = rows_in_use(offsets, E) * F;
  WAVEMOE_GRID_STRIDE(i, total) {
    const T s = Silu::sigmoid(a[i]);
    da[i] = dh[i] * b[i] * s * (T(1) + a[i] * (T(1) - s));
    db[i] = dh[i] * a[i] * s;
  }
}

// ============================================ router ============================================

// The logit of expert e: the gate GEMM's value (in T, as on the CPU) plus the bias, in double.
template <typename T> __device__ __forceinline__ double gate_logit(const T* row, const T* gate_b, int64_t e) {
  return static_cast<double>(row[e]) + (gate_b ? static_cast<double>(gate_b[e]) : 0.0);
}

__device__ __forceinline__ bool chosen(const int32_t* idx, int64_t j, int64_t e) {
  for (int64_t q = 0; q < j; ++q) {
    if (idx[q] == e) return true;
  }
  return false;
}

// idx[0, k) = the k largest logits, best first: the CPU's top_k loop (strict >, so the lower index wins a tie; the
// same choice even with NaN logits), with "taken" read back from the picks so far.
template <typename T> __device__ void top_k(int32_t* idx, const T* row, const T* gate_b, int64_t E, int64_t k) {
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    double best_v = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      if (chosen(idx, j, e)) continue;
      const double v = gate_logit(row, gate_b, e);
      if (best < 0 || v > best_v) {
        best = e;
        best_v = v;
      }
    }
    idx[j] = static_cast<int32_t>(best);
  }
}

// One thread per token. On entry probs holds the raw gate logits (N, E); the row is read (for the top-k, the max,
// the sum and the weights) before it is overwritten with the probabilities. All math in double, as on the CPU.
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_router_forward_kernel(T* probs, T* lse, int32_t* expert, T* weight,
                                                                       const T* gate_b, int64_t N, int64_t E,
                                                                       int64_t k, bool topk_softmax,
                                                                       bool renormalize) {
  WAVEMOE_GRID_STRIDE(n, N) {
    T* row = probs + n * E;
    int32_t* idx = expert + n * k;
    T* wt = weight + n * k;
    top_k(idx, row, gate_b, E, k);
    double m = -INFINITY;
    for (int64_t e = 0; e < E; ++e) {
      const double v = gate_logit(row, gate_b, e);
      m = m < v ? v : m;  // std::max(m, v)
    }
    double sum = 0.0;
    for (int64_t e = 0; e < E; ++e) sum += exp(gate_logit(row, gate_b, e) - m);
    lse[n] = static_cast<T>(m + log(sum));
    if (topk_softmax) {  // softmax over the chosen logits
      const double top = gate_logit(row, gate_b, idx[0]);
      double z = 0.0;
      for (int64_t j = 0; j < k; ++j) z += exp(gate_logit(row, gate_b, idx[j]) - top);
      for (int64_t j = 0; j < k; ++j) wt[j] = static_cast<T>(exp(gate_logit(row, gate_b, idx[j]) - top) / z);
    } else {  // the chosen probabilities, optionally divided by their sum
      double z = 0.0;
      for (int64_t j = 0; j < k; ++j) z += exp(gate_logit(row, gate_b, idx[j]) - m) / sum;
      for (int64_t j = 0; j < k; ++j) {
        const double p = exp(gate_logit(row, gate_b, idx[j]) - m) / sum;
        wt[j] = static_cast<T>(renormalize ? p / z : p);
      }
    }
    // Last: each logit is read just before its own slot is overwritten.
    for (int64_t e = 0; e < E; ++e) row[e] = static_cast<T>(exp(gate_logit(row, gate_b, e) - m) / sum);
  }
}

// One thread per token: dlogits[n, e] = dl[e] + p[e] (dp[e] - Σ p·dp + zgrad), the CPU's expression, where dp[e] is
// the balance term plus the contribution of the slot that chose e (top-k experts are distinct) and dl[e] the
// topk_softmax term. cb, cz: the aux coefficients times aux_grad_scale.
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_router_backward_kernel(T* dlogits, const T* dweight, const T* probs,
                                                                        const T* lse, const int32_t* expert,
                                                                        const T* weight, const int32_t* counts,
                                                                        int64_t N, int64_t E, int64_t k,
                                                                        bool topk_softmax, bool renormalize,
                                                                        double cb, double cz) {
  WAVEMOE_GRID_STRIDE(n, N) {
    const T* p = probs + n * E;
    const int32_t* idx = expert + n * k;
    const T* wt = weight + n * k;
    const T* dw = dweight + n * k;
    double wdw = 0.0;  // Σ_j weight_j · dweight_j
    for (int64_t j = 0; j < k; ++j) wdw += static_cast<double>(wt[j]) * dw[j];
    double S = 0.0;  // renormalized softmax_topk: weight_j = p_j / S
    if (!topk_softmax && renormalize) {
      for (int64_t j = 0; j < k; ++j) S += p[idx[j]];
    }
    auto slot_of = [&](int64_t e) -> int64_t {
      for (int64_t j = 0; j < k; ++j) {
        if (idx[j] == e) return j;
      }
      return -1;
    };
    auto dp_of = [&](int64_t e) -> double {
      // d(balance)/d p[n, e] = E · f_e / N, f_e = counts[e] / (N·k): the same for every token.
      double d = cb * static_cast<double>(E) * (counts[e] / static_cast<double>(N * k)) / static_cast<double>(N);
      const int64_t j = topk_softmax ? -1 : slot_of(e);
      if (j >= 0) d += renormalize ? (dw[j] - wdw) / S : static_cast<double>(dw[j]);
      return d;
    };
    double pdp = 0.0;
    for (int64_t e = 0; e < E; ++e) pdp += p[e] * dp_of(e);
    const double zgrad = cz * 2.0 * static_cast<double>(lse[n]) / static_cast<double>(N);
    T* out = dlogits + n * E;
    for (int64_t e = 0; e < E; ++e) {
      double dl = 0.0;
      const int64_t j = topk_softmax ? slot_of(e) : -1;
      if (j >= 0) dl += wt[j] * (dw[j] - wdw);
      out[e] = static_cast<T>(dl + p[e] * (dp_of(e) - pdp + zgrad));
    }
  }
}

// value(n, c) = x[n·cols + c], for column_sum_add.
template <typename T> struct MatrixValue {
  const T* x;
  int64_t cols;
  __device__ T operator()(int64_t n, int64_t c) const { return x[n * cols + c]; }
};

// ============================================ dispatch ============================================

__global__ void __launch_bounds__(kThreads) moe_iota_kernel(int32_t* v, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { v[i] = static_cast<int32_t>(i); }
}

// Runs of equal experts in the sorted order: begin[e] = first position of expert e, end[e] = one past its last.
// An expert without pairs keeps begin = end = 0 (zeroed before).
__global__ void __launch_bounds__(kThreads) moe_run_bounds_kernel(int32_t* begin, int32_t* end,
                                                                   const int32_t* sorted_expert, int64_t pairs) {
  WAVEMOE_GRID_STRIDE(p, pairs) {
    const int32_t e = sorted_expert[p];
    if (p == 0 || sorted_expert[p - 1] != e) begin[e] = static_cast<int32_t>(p);
    if (p == pairs - 1 || sorted_expert[p + 1] != e) end[e] = static_cast<int32_t>(p + 1);
  }
}

// One thread: counts from the runs, offsets = exclusive scan of min(count, capacity). E is tens of experts: a
// serial scan is exact, in order, and cheaper than a device-wide scan's launches.
__global__ void moe_offsets_kernel(int32_t* counts, int32_t* offsets, const int32_t* begin, const int32_t* end,
                                   int64_t E, int64_t capacity) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  int64_t total = 0;
  offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t count = end[e] - begin[e];
    counts[e] = static_cast<int32_t>(count);
    total += count < capacity ? count : capacity;
    offsets[e + 1] = static_cast<int32_t>(total);
  }
}

// Sorted position p holds pair i of expert e; its rank among e's pairs is p - begin[e] (the sort is stable, so
// ranks follow token, then slot order). The first `capacity` ranks get rows; the rest are dropped.
__global__ void __launch_bounds__(kThreads) moe_assign_rows_kernel(int32_t* slot_row, int32_t* row_slot,
                                                                    const int32_t* sorted_expert,
                                                                    const int32_t* sorted_pair, const int32_t* begin,
                                                                    const int32_t* offsets, int64_t pairs,
                                                                    int64_t capacity) {
  WAVEMOE_GRID_STRIDE(p, pairs) {
    const int32_t e = sorted_expert[p];
    const int32_t i = sorted_pair[p];
    const int64_t rank = p - begin[e];
    if (rank < capacity) {
      const int32_t r = offsets[e] + static_cast<int32_t>(rank);
      slot_row[i] = r;
      row_slot[r] = i;
    } else {
      slot_row[i] = -1;
    }
  }
}

// Radix-sort bits that cover the expert ids [0, E).
int expert_key_bits(int64_t E) {
  int bits = 1;
  while ((int64_t{1} << bits) < E) ++bits;
  return bits;
}

// ============================================ gather and combine ============================================

// xp[r] = x[token of row r], r < R.
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_gather_forward_kernel(T* xp, const T* x, const int32_t* row_slot,
                                                                       const int32_t* offsets, int64_t E, int64_t D,
                                                                       int64_t k) {
  const int64_t total = rows_in_use(offsets, E) * D;
  WAVEMOE_GRID_STRIDE(i, total) {
    const int64_t r = i / D, d = i - r * D;
    xp[i] = x[(row_slot[r] / k) * D + d];
  }
}

// dx[n, d] += dxp[row of (n, j), d] over the kept slots, in slot order (the CPU's order: identical sums).
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_gather_backward_kernel(T* dx, const T* dxp, const int32_t* slot_row,
                                                                        int64_t N, int64_t D, int64_t k) {
  WAVEMOE_GRID_STRIDE(i, N * D) {
    const int64_t n = i / D, d = i - n * D;
    T acc = dx[i];
    for (int64_t j = 0; j < k; ++j) {
      const int32_t r = slot_row[n * k + j];
      if (r >= 0) acc += dxp[static_cast<int64_t>(r) * D + d];
    }
    dx[i] = acc;
  }
}

// out[n, d] = Σ_j weight[n, j] · y[row of (n, j), d] over the kept slots, in slot order.
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_combine_forward_kernel(T* out, const T* y, const T* weight,
                                                                        const int32_t* slot_row, int64_t N,
                                                                        int64_t D, int64_t k) {
  WAVEMOE_GRID_STRIDE(i, N * D) {
    const int64_t n = i / D, d = i - n * D;
    T acc = T(0);
    for (int64_t j = 0; j < k; ++j) {
      const int32_t r = slot_row[n * k + j];
      if (r >= 0) acc += weight[n * k + j] * y[static_cast<int64_t>(r) * D + d];
    }
    out[i] = acc;
  }
}

// dy[r] = weight[slot] · dout[token of slot], r < R.
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_combine_backward_dy_kernel(T* dy, const T* dout, const T* weight,
                                                                            const int32_t* row_slot,
                                                                            const int32_t* offsets, int64_t E,
                                                                            int64_t D, int64_t k) {
  const int64_t total = rows_in_use(offsets, E) * D;
  WAVEMOE_GRID_STRIDE(i, total) {
    const int64_t r = i / D, d = i - r * D;
    const int64_t slot = row_slot[r];
    dy[i] = weight[slot] * dout[(slot / k) * D + d];
  }
}

// One warp per (token, slot): dweight = dout[n]·y[row] in double (lanes stride over D, then a fixed shuffle
// tree), 0 for a dropped slot. The loop index is the same for the whole warp, so every lane reaches the shuffles.
template <typename T>
__global__ void __launch_bounds__(kThreads) moe_combine_backward_dweight_kernel(T* dweight, const T* dout,
                                                                                 const T* y, const int32_t* slot_row,
                                                                                 int64_t pairs, int64_t D,
                                                                                 int64_t k) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; i < pairs; i += warps) {
    const int32_t r = slot_row[i];
    double dot = 0.0;
    if (r >= 0) {
      const T* g = dout + (i / k) * D;
      const T* yr = y + static_cast<int64_t>(r) * D;
      for (int64_t d = lane; d < D; d += 32) dot += static_cast<double>(g[d]) * static_cast<double>(yr[d]);
    }
    dot = warp_sum(dot);
    if (lane == 0) dweight[i] = static_cast<T>(dot);
  }
}

// ============================================ auxiliary losses ============================================

constexpr int kAuxThreads = 256;

// Block e < E: Σ_n probs[n, e]; block E: Σ_n lse[n]². In double; thread t takes rows t, t + 256, ..., then the
// fixed block tree: deterministic.
template <typename T>
__global__ void __launch_bounds__(kAuxThreads) moe_aux_sums_kernel(double* sums, const T* probs, const T* lse,
                                                                    int64_t N, int64_t E) {
  __shared__ double shared[32];
  const int64_t e = blockIdx.x;
  double acc = 0.0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    if (e < E) {
      acc += static_cast<double>(probs[n * E + e]);
    } else {
      const double l = static_cast<double>(lse[n]);
      acc += l * l;
    }
  }
  const double total = block_sum(acc, shared);
  if (threadIdx.x == 0) sums[e] = total;
}

// One thread: aux[0] = E Σ_e f_e P_e, aux[1] = mean lse², *loss = the weighted sum (all 0 when N = 0).
__global__ void moe_aux_finish_kernel(double* aux, double* loss, const double* sums, const int32_t* counts,
                                      int64_t N, int64_t E, int64_t k, double aux_coef, double z_coef) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double balance = 0.0, z = 0.0;
  if (N > 0) {
    for (int64_t e = 0; e < E; ++e) {
      balance += (counts[e] / static_cast<double>(N * k)) * (sums[e] / static_cast<double>(N));
    }
    balance *= static_cast<double>(E);
    z = sums[E] / static_cast<double>(N);
  }
  if (aux) {
    aux[0] = balance;
    aux[1] = z;
  }
  if (loss) *loss = aux_coef * balance + z_coef * z;
}

// ============================================ grouped GEMMs ============================================
// Tiling as in matmul.cu's own kernel: a block computes a BM x BN tile with (BM/TM)·(BN/TN) threads, each TM x TN
// outputs strided by the thread grid (conflict-free shared reads, coalesced stores); K advances BK at a time
// through shared memory, tiles zero-filled past the edges; each output is one fma chain in K order.

// RowGemm, WeightGradGemm and find_row_tile: moe_gemm.cuh.

// Grid: x = row tiles over all experts (an upper bound; the surplus blocks exit at once), y = column tiles.
template <typename T, bool kTransY, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN)) moe_row_gemm_kernel(RowGemm<T> p) {
  constexpr int kGemmThreads = (BM / TM) * (BN / TN);
  constexpr int kRowThreads = BM / TM, kColThreads = BN / TN;
  __shared__ T Xs[BK][BM + 1];
  __shared__ T Ys[BK][BN + 1];
  int64_t e = 0, m0 = 0, m_end = 0;
  if (!find_row_tile(p.offsets, p.E, blockIdx.x, BM, &e, &m0, &m_end)) return;  // the whole block, before a barrier
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads, ty = tid / kColThreads;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int64_t N = p.N, K = p.K;
  const T* X = p.X;
  const T* Y = p.Y + e * p.y_stride;

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  for (int64_t k0 = 0; k0 < K; k0 += BK) {
    for (int i = tid; i < BM * BK; i += kGemmThreads) {
      const int mm = i / BK, kk = i % BK;  // X rows: k contiguous
      const int64_t gm = m0 + mm, gk = k0 + kk;
      Xs[kk][mm] = (gm < m_end && gk < K) ? round_input(X[gm * K + gk], p.round_bits) : T(0);
    }
    for (int i = tid; i < BN * BK; i += kGemmThreads) {
      int nn, kk;
      if (kTransY) { nn = i / BK; kk = i % BK; }  // Y_e stored (N, K): k contiguous
      else         { kk = i / BN; nn = i % BN; }  // Y_e stored (K, N): n contiguous
      const int64_t gn = n0 + nn, gk = k0 + kk;
      T v = T(0);
      if (gn < N && gk < K) v = round_input(kTransY ? Y[gn * K + gk] : Y[gk * N + gn], p.round_bits);
      Ys[kk][nn] = v;
    }
    __syncthreads();
    tile_fma<T, BM, BN, BK, TM, TN>(acc, Xs, Ys, tx, ty);
    __syncthreads();
  }

  const T* bias = p.bias ? p.bias + e * N : nullptr;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t gm = m0 + ty + i * kRowThreads;
    if (gm >= m_end) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t gn = n0 + tx + j * kColThreads;
      if (gn >= N) continue;
      T v = acc[i][j];
      if (bias) v += bias[gn];  // the CPU adds the bias to the rounded product, as here
      T* c = p.C + gm * N + gn;
      *c = p.accumulate ? *c + v : v;
    }
  }
}

// dW_e += X_eᵀ·Y_e (WeightGradGemm). One block per (column tile, row tile, expert) walks that expert's rows in
// order: each gradient element is one fma chain.
template <typename T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN)) moe_weight_grad_kernel(WeightGradGemm<T> p) {
  constexpr int kGemmThreads = (BM / TM) * (BN / TN);
  constexpr int kRowThreads = BM / TM, kColThreads = BN / TN;
  __shared__ T Xs[BK][BM + 1];
  __shared__ T Ys[BK][BN + 1];
  const int64_t e = blockIdx.z;
  const int64_t r_begin = p.offsets[e], r_end = p.offsets[e + 1];
  if (r_begin >= r_end) return;  // no rows: the gradient is left alone, as on the CPU (uniform over the block)
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads, ty = tid / kColThreads;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int64_t M = p.M, N = p.N;

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  for (int64_t k0 = r_begin; k0 < r_end; k0 += BK) {
    for (int i = tid; i < BM * BK; i += kGemmThreads) {
      const int kk = i / BM, mm = i % BM;  // X rows: m contiguous
      const int64_t gm = m0 + mm, gk = k0 + kk;
      Xs[kk][mm] = (gm < M && gk < r_end) ? round_input(p.X[gk * M + gm], p.round_bits) : T(0);
    }
    for (int i = tid; i < BN * BK; i += kGemmThreads) {
      const int kk = i / BN, nn = i % BN;  // Y rows: n contiguous
      const int64_t gn = n0 + nn, gk = k0 + kk;
      Ys[kk][nn] = (gn < N && gk < r_end) ? round_input(p.Y[gk * N + gn], p.round_bits) : T(0);
    }
    __syncthreads();
    tile_fma<T, BM, BN, BK, TM, TN>(acc, Xs, Ys, tx, ty);
    __syncthreads();
  }

  T* C = p.C + e * M * N;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t gm = m0 + ty + i * kRowThreads;
    if (gm >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t gn = n0 + tx + j * kColThreads;
      if (gn < N) C[gm * N + gn] += acc[i][j];
    }
  }
}

// Bias gradients: dbias_e[c] += Σ over expert e's rows of G[r, c], in double with a fixed split of the rows into
// kBiasChunks chunks (pass 1, rows in order within a chunk), then the chunks in order (pass 2).
constexpr int kBiasChunks = 32;

template <typename T>
__global__ void __launch_bounds__(kThreads) moe_bias_partial_kernel(double* partial, const T* G,
                                                                     const int32_t* offsets, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t e = blockIdx.y, chunk = blockIdx.z;
  if (c >= C) return;
  const int64_t r_begin = offsets[e], r_end = offsets[e + 1];
  const int64_t per_chunk = (r_end - r_begin + kBiasChunks - 1) / kBiasChunks;
  const int64_t begin = r_begin + chunk * per_chunk;
  const int64_t end = begin + per_chunk < r_end ? begin + per_chunk : r_end;
  double acc = 0.0;
  for (int64_t r = begin; r < end; ++r) acc += static_cast<double>(G[r * C + c]);
  partial[(e * kBiasChunks + chunk) * C + c] = acc;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) moe_bias_finish_kernel(T* dbias, const double* partial,
                                                                    const int32_t* offsets, int64_t E, int64_t C) {
  WAVEMOE_GRID_STRIDE(i, E * C) {
    const int64_t e = i / C, c = i - e * C;
    if (offsets[e + 1] == offsets[e]) continue;  // no rows: left alone, as on the CPU
    double acc = 0.0;
    for (int64_t chunk = 0; chunk < kBiasChunks; ++chunk) acc += partial[(e * kBiasChunks + chunk) * C + c];
    dbias[i] += static_cast<T>(acc);
  }
}

// ============================================ kernel launchers ============================================

// The float32 GEMMs' tensor-core path (tensor_core_bits: 7 bf16, 10 tf32, 0 CUDA cores), unless a test turned it off.
bool g_moe_tensor_cores_allowed = true;
int moe_tensor_core_bits(int round_bits) {
  return g_moe_tensor_cores_allowed ? tensor_core_bits(round_bits, true) : 0;
}

// float32 uses 128x128 tiles (8x8 per thread) when there are enough of them to fill a big GPU (matmul.cu's rule),
// 64x64 (4x4) otherwise; float64 always 64x64.
constexpr int64_t kBigTileMin = 128;

void check_grid(int64_t x, int64_t y, int64_t z, const char* what) {
  if (x > std::numeric_limits<int>::max() || y > 65535 || z > 65535) {
    throw std::runtime_error(std::string(what) + " (CUDA): problem too large for one launch");
  }
}

// Row tiles to launch: Σ_e ceil(rows_e / BM) <= (R + E (BM - 1)) / BM with R <= pairs; and rows_e <=
// min(capacity, pairs).
int64_t row_tiles(int64_t E, int64_t pairs, int64_t capacity, int BM) {
  const int64_t max_rows = std::min(pairs, capacity);
  return std::min((pairs + E * (BM - 1)) / BM, E * ((max_rows + BM - 1) / BM));
}

template <typename T, bool kTransY, int BM, int BN, int BK, int TM, int TN>
void launch_row_gemm(const RowGemm<T>& p, int64_t pairs, int64_t capacity, cudaStream_t stream) {
  const int64_t tiles = row_tiles(p.E, pairs, capacity, BM);
  if (tiles <= 0 || p.N <= 0) return;
  const int64_t col_tiles = (p.N + BN - 1) / BN;
  check_grid(tiles, col_tiles, 1, "moe grouped GEMM");
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(col_tiles));
  moe_row_gemm_kernel<T, kTransY, BM, BN, BK, TM, TN><<<grid, (BM / TM) * (BN / TN), 0, stream>>>(p);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_row_gemm_kernel");
}

// The tensor-core kernels: 128x128 tiles on 8 warps (each 64x32) when there are enough of them, else 64x64 on 4.
template <int Bits, bool kTransY, int BM, int BN, int WM, int WN>
void launch_row_gemm_tc(const RowGemm<float>& p, int64_t pairs, int64_t capacity, cudaStream_t stream) {
  const int64_t tiles = row_tiles(p.E, pairs, capacity, BM);
  if (tiles <= 0 || p.N <= 0) return;
  const int64_t col_tiles = (p.N + BN - 1) / BN;
  check_grid(tiles, col_tiles, 1, "moe grouped GEMM");
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(col_tiles));
  tc::moe_row_gemm_tc_kernel<Bits, kTransY, BM, BN, WM, WN><<<grid, WM * WN * 32, 0, stream>>>(p);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_row_gemm_tc_kernel");
}

template <int Bits, bool kTransY>
void row_gemm_tc_tiles(const RowGemm<float>& p, int64_t pairs, int64_t capacity, bool big, cudaStream_t stream) {
  if (big) {
    launch_row_gemm_tc<Bits, kTransY, 128, 128, 2, 4>(p, pairs, capacity, stream);
  } else {
    launch_row_gemm_tc<Bits, kTransY, 64, 64, 2, 2>(p, pairs, capacity, stream);
  }
}

template <bool kTransY>
void row_gemm_tiles(const RowGemm<float>& p, int64_t pairs, int64_t capacity, cudaStream_t stream) {
  const int64_t rows = std::min(pairs, p.E * std::min(pairs, capacity));  // R at most
  const int64_t big_tiles = ((rows + 127) / 128) * ((p.N + 127) / 128);
  const int tc_bits = moe_tensor_core_bits(p.round_bits);
  if (tc_bits == 7) return row_gemm_tc_tiles<7, kTransY>(p, pairs, capacity, big_tiles >= kBigTileMin, stream);
  if (tc_bits == 10) return row_gemm_tc_tiles<10, kTransY>(p, pairs, capacity, big_tiles >= kBigTileMin, stream);
  if (big_tiles >= kBigTileMin) {
    launch_row_gemm<float, kTransY, 128, 128, 8, 8, 8>(p, pairs, capacity, stream);
  } else {
    launch_row_gemm<float, kTransY, 64, 64, 16, 4, 4>(p, pairs, capacity, stream);
  }
}
template <bool kTransY>
void row_gemm_tiles(const RowGemm<double>& p, int64_t pairs, int64_t capacity, cudaStream_t stream) {
  launch_row_gemm<double, kTransY, 64, 64, 16, 4, 4>(p, pairs, capacity, stream);
}

// C (R, N) [+]= X (R, K) · op(Y_e) [+ bias_e] over every expert's rows; Y_e = Y + e·y_stride.
template <typename T>
void row_gemm(T* C, const T* X, const T* Y, int64_t y_stride, const T* bias, bool trans_y, bool accumulate,
              int64_t N, int64_t K, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream) {
  const RowGemm<T> p{C, X, Y, bias, s.offsets, c.E, N, K, y_stride, accumulate, matmul_round_bits()};
  if (trans_y) {
    row_gemm_tiles<true>(p, c.N * c.k, c.capacity, stream);
  } else {
    row_gemm_tiles<false>(p, c.N * c.k, c.capacity, stream);
  }
}

template <typename T, int BM, int BN, int BK, int TM, int TN>
void launch_weight_grad(const WeightGradGemm<T>& p, int64_t E, cudaStream_t stream) {
  const int64_t gx = (p.N + BN - 1) / BN, gy = (p.M + BM - 1) / BM;
  check_grid(gx, gy, E, "moe weight gradient");
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(E));
  moe_weight_grad_kernel<T, BM, BN, BK, TM, TN><<<grid, (BM / TM) * (BN / TN), 0, stream>>>(p);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_weight_grad_kernel");
}

template <int Bits, int BM, int BN, int WM, int WN>
void launch_weight_grad_tc(const WeightGradGemm<float>& p, int64_t E, cudaStream_t stream) {
  const int64_t gx = (p.N + BN - 1) / BN, gy = (p.M + BM - 1) / BM;
  check_grid(gx, gy, E, "moe weight gradient");
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(E));
  tc::moe_weight_grad_tc_kernel<Bits, BM, BN, WM, WN><<<grid, WM * WN * 32, 0, stream>>>(p);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_weight_grad_tc_kernel");
}

template <int Bits> void weight_grad_tc_tiles(const WeightGradGemm<float>& p, int64_t E, bool big, cudaStream_t stream) {
  if (big) {
    launch_weight_grad_tc<Bits, 128, 128, 2, 4>(p, E, stream);
  } else {
    launch_weight_grad_tc<Bits, 64, 64, 2, 2>(p, E, stream);
  }
}

void weight_grad_tiles(const WeightGradGemm<float>& p, int64_t E, cudaStream_t stream) {
  const int64_t big_tiles = ((p.M + 127) / 128) * ((p.N + 127) / 128) * E;
  const int tc_bits = moe_tensor_core_bits(p.round_bits);
  if (tc_bits == 7) return weight_grad_tc_tiles<7>(p, E, big_tiles >= kBigTileMin, stream);
  if (tc_bits == 10) return weight_grad_tc_tiles<10>(p, E, big_tiles >= kBigTileMin, stream);
  if (big_tiles >= kBigTileMin) {
    launch_weight_grad<float, 128, 128, 8, 8, 8>(p, E, stream);
  } else {
    launch_weight_grad<float, 64, 64, 16, 4, 4>(p, E, stream);
  }
}
void weight_grad_tiles(const WeightGradGemm<double>& p, int64_t E, cudaStream_t stream) {
  launch_weight_grad<double, 64, 64, 16, 4, 4>(p, E, stream);
}

// dW (E, M, N) += per expert Σ_r X[r]ᵀ Y[r], X (R, M), Y (R, N).
template <typename T>
void weight_grad(T* dW, const T* X, const T* Y, int64_t M, int64_t N, const MoeSaved<T>& s, const MoeConfig& c,
                 cudaStream_t stream) {
  if (M <= 0 || N <= 0 || c.E <= 0) return;
  weight_grad_tiles(WeightGradGemm<T>{dW, X, Y, s.offsets, M, N, matmul_round_bits()}, c.E, stream);
}

// dbias (E, C) += per expert column sums of G (R, C).
template <typename T>
void bias_grad(T* dbias, const T* G, int64_t C, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream) {
  if (C <= 0 || c.E <= 0) return;
  check_grid((C + kThreads - 1) / kThreads, c.E, kBiasChunks, "moe bias gradient");
  DeviceBuffer<double> partial(static_cast<size_t>(c.E * kBiasChunks * C));
  const dim3 grid(static_cast<unsigned>((C + kThreads - 1) / kThreads), static_cast<unsigned>(c.E), kBiasChunks);
  moe_bias_partial_kernel<T><<<grid, kThreads, 0, stream>>>(partial.get(), G, s.offsets, C);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_bias_partial_kernel");
  moe_bias_finish_kernel<T><<<grid_for(c.E * C), kThreads, 0, stream>>>(dbias, partial.get(), s.offsets, c.E, C);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_bias_finish_kernel");
}

template <typename T> void hidden_forward(const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream) {
  const int64_t n = c.N * c.k * c.F;
  if (n <= 0) return;
  switch (c.activation) {
    case MoeActivation::swiglu:
      moe_swiglu_forward_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(s.h, s.a, s.b, s.offsets, c.E, c.F);
      break;
    case MoeActivation::relu:
      moe_act_forward_kernel<Relu, T><<<grid_for(n), kThreads, 0, stream>>>(s.h, s.a, s.offsets, c.E, c.F);
      break;
    case MoeActivation::gelu:
      moe_act_forward_kernel<GeluTanh, T><<<grid_for(n), kThreads, 0, stream>>>(s.h, s.a, s.offsets, c.E, c.F);
      break;
  }
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_activation_forward_kernel");
}

template <typename T>
void hidden_backward(const MoeWork<T>& wk, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream) {
  const int64_t n = c.N * c.k * c.F;
  if (n <= 0) return;
  switch (c.activation) {
    case MoeActivation::swiglu:
      moe_swiglu_backward_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(wk.da, wk.db, wk.dh, s.a, s.b, s.offsets,
                                                                          c.E, c.F);
      break;
    case MoeActivation::relu:
      moe_act_backward_kernel<Relu, T><<<grid_for(n), kThreads, 0, stream>>>(wk.da, wk.dh, s.a, s.offsets, c.E,
                                                                             c.F);
      break;
    case MoeActivation::gelu:
      moe_act_backward_kernel<GeluTanh, T><<<grid_for(n), kThreads, 0, stream>>>(wk.da, wk.dh, s.a, s.offsets,
                                                                                 c.E, c.F);
      break;
  }
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_activation_backward_kernel");
}

}  // namespace

int moe_gemm_tensor_core_bits() { return moe_tensor_core_bits(matmul_round_bits()); }
void set_moe_tensor_cores_allowed(bool allowed) { g_moe_tensor_cores_allowed = allowed; }

// ---- router -----------------------------------------------------------------------------------------------------

template <typename T>
void router_forward(const MoeSaved<T>& s, const T* x, const MoeWeights<T>& w, const MoeConfig& c,
                    cudaStream_t stream) {
  if (c.N <= 0 || c.E <= 0) return;
  gpu::matmul_forward<T>(s.probs, x, w.gate_w, 1, c.N, c.E, c.D, false, true, 0, 0, 0, false, stream);  // logits
  moe_router_forward_kernel<T><<<grid_for(c.N), kThreads, 0, stream>>>(
      s.probs, s.lse, s.expert, s.weight, w.gate_b, c.N, c.E, c.k, c.router == MoeRouter::topk_softmax,
      c.renormalize);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_router_forward_kernel");
}

template <typename T>
void router_backward(T* dx, const MoeGrads<T>& g, T* dlogits, const T* dweight, const MoeSaved<T>& s, const T* x,
                     const MoeWeights<T>& w, const MoeConfig& c, cudaStream_t stream) {
  const int64_t N = c.N, E = c.E, D = c.D;
  if (N <= 0 || E <= 0) return;
  const double cb = c.aux_loss_coef * c.aux_grad_scale, cz = c.z_loss_coef * c.aux_grad_scale;
  moe_router_backward_kernel<T><<<grid_for(N), kThreads, 0, stream>>>(
      dlogits, dweight, s.probs, s.lse, s.expert, s.weight, s.counts, N, E, c.k, c.router == MoeRouter::topk_softmax,
      c.renormalize, cb, cz);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_router_backward_kernel");
  if (g.gate_w) gpu::matmul_forward<T>(g.gate_w, dlogits, x, 1, E, D, N, true, false, 0, 0, 0, true, stream);
  if (g.gate_b) column_sum_add(g.gate_b, MatrixValue<T>{dlogits, E}, N, E, stream);
  gpu::matmul_forward<T>(dx, dlogits, w.gate_w, 1, N, D, E, false, false, 0, 0, 0, true, stream);  // dlogits·W
}

// ---- dispatch ---------------------------------------------------------------------------------------------------

template <typename T> void dispatch_forward(const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream) {
  const int64_t E = c.E, pairs = c.N * c.k;
  if (E <= 0) return;
  if (pairs > std::numeric_limits<int32_t>::max()) throw std::runtime_error("moe dispatch (CUDA): N·k too large");
  DeviceBuffer<int32_t> bounds(static_cast<size_t>(2 * E));  // begin[E], end[E]
  int32_t* begin = bounds.get();
  int32_t* end = bounds.get() + E;
  WAVEMOE_CUDA_CHECK(cudaMemsetAsync(bounds.get(), 0, sizeof(int32_t) * 2 * E, stream));
  DeviceBuffer<int32_t> pair_ids(pairs), sorted_expert(pairs), sorted_pair(pairs);
  if (pairs > 0) {
    moe_iota_kernel<<<grid_for(pairs), kThreads, 0, stream>>>(pair_ids.get(), pairs);
    WAVEMOE_CUDA_CHECK_LAUNCH("moe_iota_kernel");
    // Stable LSD radix sort on the expert id: within an expert, pairs stay in increasing index n·k + j.
    const int n = static_cast<int>(pairs), bits = expert_key_bits(E);
    size_t temp_bytes = 0;
    WAVEMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, s.expert, sorted_expert.get(),
                                                       pair_ids.get(), sorted_pair.get(), n, 0, bits, stream));
    DeviceBuffer<unsigned char> temp(temp_bytes);
    WAVEMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, s.expert, sorted_expert.get(),
                                                       pair_ids.get(), sorted_pair.get(), n, 0, bits, stream));
    moe_run_bounds_kernel<<<grid_for(pairs), kThreads, 0, stream>>>(begin, end, sorted_expert.get(), pairs);
    WAVEMOE_CUDA_CHECK_LAUNCH("moe_run_bounds_kernel");
  }
  moe_offsets_kernel<<<1, 1, 0, stream>>>(s.counts, s.offsets, begin, end, E, c.capacity);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_offsets_kernel");
  if (pairs > 0) {
    moe_assign_rows_kernel<<<grid_for(pairs), kThreads, 0, stream>>>(s.slot_row, s.row_slot, sorted_expert.get(),
                                                                      sorted_pair.get(), begin, s.offsets, pairs,
                                                                      c.capacity);
    WAVEMOE_CUDA_CHECK_LAUNCH("moe_assign_rows_kernel");
  }
}

// ---- gather -----------------------------------------------------------------------------------------------------

template <typename T>
void gather_forward(T* xp, const T* x, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream) {
  const int64_t n = c.N * c.k * c.D;  // the most elements R·D can be
  if (n <= 0 || c.E <= 0) return;
  moe_gather_forward_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(xp, x, s.row_slot, s.offsets, c.E, c.D, c.k);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_gather_forward_kernel");
}

template <typename T>
void gather_backward(T* dx, const T* dxp, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream) {
  const int64_t n = c.N * c.D;
  if (n <= 0) return;
  moe_gather_backward_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(dx, dxp, s.slot_row, c.N, c.D, c.k);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_gather_backward_kernel");
}

// ---- experts ----------------------------------------------------------------------------------------------------

template <typename T>
void expert_ffn_forward(const MoeSaved<T>& s, const MoeWeights<T>& w, const MoeConfig& c, cudaStream_t stream) {
  const int64_t D = c.D, F = c.F;
  // a = xp·w1ᵀ + b1 and (swiglu) b = xp·w3ᵀ + b3, w1[e] and w3[e] (F, D); then h.
  row_gemm<T>(s.a, s.xp, w.w1, F * D, w.b1, true, false, F, D, s, c, stream);
  if (c.activation == MoeActivation::swiglu) {
    row_gemm<T>(s.b, s.xp, w.w3, F * D, w.b3, true, false, F, D, s, c, stream);
  }
  hidden_forward(s, c, stream);
  // y = h·w2ᵀ + b2, w2[e] (D, F)
  row_gemm<T>(s.y, s.h, w.w2, D * F, w.b2, true, false, D, F, s, c, stream);
}

template <typename T>
void expert_ffn_backward(const MoeGrads<T>& g, const MoeWork<T>& wk, const MoeSaved<T>& s, const MoeWeights<T>& w,
                         const MoeConfig& c, cudaStream_t stream) {
  const int64_t D = c.D, F = c.F;
  const bool glu = c.activation == MoeActivation::swiglu;
  // y = h·w2ᵀ + b2: dh = dy·w2 (w2[e] is (D, F) = (K, N)), dw2 += dyᵀ·h, db2 += Σ dy.
  row_gemm<T>(wk.dh, wk.dy, w.w2, D * F, nullptr, false, false, F, D, s, c, stream);
  if (g.w2) weight_grad<T>(g.w2, wk.dy, s.h, D, F, s, c, stream);
  if (g.b2) bias_grad<T>(g.b2, wk.dy, D, s, c, stream);
  hidden_backward(wk, s, c, stream);  // da (and db)
  // a = xp·w1ᵀ + b1 (b = xp·w3ᵀ + b3): dw1 += daᵀ·xp, db1 += Σ da (and w3, b3 from db).
  if (g.w1) weight_grad<T>(g.w1, wk.da, s.xp, F, D, s, c, stream);
  if (g.b1) bias_grad<T>(g.b1, wk.da, F, s, c, stream);
  if (glu && g.w3) weight_grad<T>(g.w3, wk.db, s.xp, F, D, s, c, stream);
  if (glu && g.b3) bias_grad<T>(g.b3, wk.db, F, s, c, stream);
  // dxp = da·w1 (+ db·w3), w1[e] is (F, D) = (K, N); written over dy, which nothing reads any more.
  row_gemm<T>(wk.dy, wk.da, w.w1, F * D, nullptr, false, false, D, F, s, c, stream);
  if (glu) row_gemm<T>(wk.dy, wk.db, w.w3, F * D, nullptr, false, true, D, F, s, c, stream);
}

// ---- combine ----------------------------------------------------------------------------------------------------

template <typename T> void combine_forward(T* out, const MoeSaved<T>& s, const MoeConfig& c, cudaStream_t stream) {
  const int64_t n = c.N * c.D;
  if (n <= 0) return;
  moe_combine_forward_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(out, s.y, s.weight, s.slot_row, c.N, c.D,
                                                                      c.k);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_combine_forward_kernel");
}

template <typename T>
void combine_backward(T* dy, T* dweight, const T* dout, const MoeSaved<T>& s, const MoeConfig& c,
                      cudaStream_t stream) {
  const int64_t pairs = c.N * c.k, n = pairs * c.D;
  if (pairs <= 0) return;
  if (n > 0 && c.E > 0) {
    moe_combine_backward_dy_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(dy, dout, s.weight, s.row_slot,
                                                                            s.offsets, c.E, c.D, c.k);
    WAVEMOE_CUDA_CHECK_LAUNCH("moe_combine_backward_dy_kernel");
  }
  moe_combine_backward_dweight_kernel<T><<<grid_for(pairs * 32), kThreads, 0, stream>>>(dweight, dout, s.y,
                                                                                         s.slot_row, pairs, c.D, c.k);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_combine_backward_dweight_kernel");
}

// ---- auxiliary losses -------------------------------------------------------------------------------------------

template <typename T>
void aux_loss_forward(const MoeSaved<T>& s, const MoeConfig& c, double* loss, cudaStream_t stream) {
  const int64_t N = c.N, E = c.E;
  DeviceBuffer<double> sums(static_cast<size_t>(E + 1));  // Σ_n p[n, e] for each e, then Σ_n lse²
  if (N > 0) {
    const unsigned blocks = static_cast<unsigned>(E + 1);
    moe_aux_sums_kernel<T><<<blocks, kAuxThreads, 0, stream>>>(sums.get(), s.probs, s.lse, N, E);
    WAVEMOE_CUDA_CHECK_LAUNCH("moe_aux_sums_kernel");
  }
  moe_aux_finish_kernel<<<1, 1, 0, stream>>>(s.aux, loss, sums.get(), s.counts, N, E, c.k, c.aux_loss_coef,
                                             c.z_loss_coef);
  WAVEMOE_CUDA_CHECK_LAUNCH("moe_aux_finish_kernel");
}

// ---- the layer --------------------------------------------------------------------------------------------------

template <typename T>
void moe_forward(T* out, const MoeSaved<T>& s, const T* x, const MoeWeights<T>& w, const MoeConfig& c, double* loss,
                 cudaStream_t stream) {
  gpu::router_forward<T>(s, x, w, c, stream);
  gpu::dispatch_forward<T>(s, c, stream);
  gpu::gather_forward<T>(s.xp, x, s, c, stream);
  gpu::expert_ffn_forward<T>(s, w, c, stream);
  gpu::combine_forward<T>(out, s, c, stream);
  gpu::aux_loss_forward<T>(s, c, loss, stream);
}

template <typename T>
void moe_backward(T* dx, const MoeGrads<T>& g, const MoeWork<T>& wk, const T* dout, const MoeSaved<T>& s, const T* x,
                  const MoeWeights<T>& w, const MoeConfig& c, cudaStream_t stream) {
  gpu::combine_backward<T>(wk.dy, wk.dweight, dout, s, c, stream);
  gpu::expert_ffn_backward<T>(g, wk, s, w, c, stream);  // wk.dy now holds d xp
  gpu::gather_backward<T>(dx, wk.dy, s, c, stream);
  gpu::router_backward<T>(dx, g, wk.dlogits, wk.dweight, s, x, w, c, stream);
}

#define WAVEMOE_INSTANTIATE_MOE(T)                                                                                  \
  template void router_forward<T>(const MoeSaved<T>&, const T*, const MoeWeights<T>&, const MoeConfig&,             \
                                  cudaStream_t);                                                                    \
  template void router_backward<T>(T*, const MoeGrads<T>&, T*, const T*, const MoeSaved<T>&, const T*,              \
                                   const MoeWeights<T>&, const MoeConfig&, cudaStream_t);                           \
  template void dispatch_forward<T>(const MoeSaved<T>&, const MoeConfig&, cudaStream_t);                            \
  template void gather_forward<T>(T*, const T*, const MoeSaved<T>&, const MoeConfig&, cudaStream_t);                \
  template void gather_backward<T>(T*, const T*, const MoeSaved<T>&, const MoeConfig&, cudaStream_t);               \
  template void expert_ffn_forward<T>(const MoeSaved<T>&, const MoeWeights<T>&, const MoeConfig&, cudaStream_t);    \
  template void expert_ffn_backward<T>(const MoeGrads<T>&, const MoeWork<T>&, const MoeSaved<T>&,                   \
                                       const MoeWeights<T>&, const MoeConfig&, cudaStream_t);                       \
  template void combine_forward<T>(T*, const MoeSaved<T>&, const MoeConfig&, cudaStream_t);                         \
  template void combine_backward<T>(T*, T*, const T*, const MoeSaved<T>&, const MoeConfig&, cudaStream_t);          \
  template void aux_loss_forward<T>(const MoeSaved<T>&, const MoeConfig&, double*, cudaStream_t);                   \
  template void moe_forward<T>(T*, const MoeSaved<T>&, const T*, const MoeWeights<T>&, const MoeConfig&, double*,   \
                               cudaStream_t);                                                                       \
  template void moe_backward<T>(T*, const MoeGrads<T>&, const MoeWork<T>&, const T*, const MoeSaved<T>&, const T*,  \
                                const MoeWeights<T>&, const MoeConfig&, cudaStream_t);

WAVEMOE_INSTANTIATE_MOE(float)
WAVEMOE_INSTANTIATE_MOE(double)
#undef WAVEMOE_INSTANTIATE_MOE

}  // namespace gpu
}  // namespace wavemoe
