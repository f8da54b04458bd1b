// Skinny GEMM: C (M×N) = op(A)·op(B) for M ≤ 4 rows, the shape of decoding (one token, or a few, against a weight
// matrix). The blocked GEMM would pack the whole weight for a single row of output; here the weight is streamed once,
// straight from memory, which is what bounds decoding.
//
// Same arithmetic as the blocked GEMM, bit for bit: every C element is a chain of V::fma in k order over each block
// of kc values of k (starting from zero), and the block sums are added to C in k order. So a row of logits is the
// same whether it was computed alone (decoding) or inside a large batch (the full forward).
//
// op(B) is given either as B (N×K, row-major: trans_b, the layout of a Linear weight) or as B (K×N). With trans_b each
// output column is a contiguous row of B: W rows are read side by side, W values of k at a time, and a W×W
// transpose in registers turns them into W vectors over n, so the FMA chains still run in k order.
//
// Compiled per ISA like the micro-kernel (see gemm_microkernel.h for the ODR rule: templates over V only).
#pragma once
#include <cstdint>

namespace wavemoe {

template <typename T> struct SkinnyArgs {
  const T* A;
  int64_t a_row, a_k;  // element (i, k) of op(A) is A[i*a_row + k*a_k]
  const T* B;
  bool trans_b;        // B is N×K (true) or K×N (false)
  T* C;
  int64_t ldc;
  int64_t N, K, kc;    // kc: the k block of the blocked GEMM of this ISA
  int64_t n0, n1;      // the columns of C this call computes
  bool accumulate;
};

// Generic W×W transpose through a small buffer (ISAs with a register shuffle override it in their traits).
template <class V> void transpose_via_memory(typename V::reg* r) {
  using T = typename V::T;
  constexpr int W = V::width;
  alignas(64) T m[W * W];
  for (int j = 0; j < W; ++j) V::store(m + j * W, r[j]);
  alignas(64) T t[W * W];
  for (int a = 0; a < W; ++a)
    for (int b = 0; b < W; ++b) t[a * W + b] = m[b * W + a];
  for (int j = 0; j < W; ++j) r[j] = V::load(t + j * W);
}

// acc (M vectors over W columns) into C[i, n .. n + valid): C = acc for the first k block unless accumulating,
// else C + acc, exactly as the micro-kernel stores its tile.
template <class V, int M>
void skinny_store(const SkinnyArgs<typename V::T>& s, const typename V::reg* acc, int64_t n, int64_t valid, bool add) {
  using T = typename V::T;
  constexpr int W = V::width;
  for (int i = 0; i < M; ++i) {
    T* c = s.C + i * s.ldc + n;
    if (valid == W) {
      V::store(c, add ? V::add(V::load(c), acc[i]) : acc[i]);
    } else {
      alignas(64) T lane[W];
      V::store(lane, acc[i]);
      for (int64_t j = 0; j < valid; ++j) c[j] = add ? c[j] + lane[j] : lane[j];
    }
  }
}

// trans_b: columns n of C are rows of B.
template <class V, int M> void skinny_nt(const SkinnyArgs<typename V::T>& s) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr int W = V::width;
  for (int64_t n = s.n0; n < s.n1; n += W) {
    const int64_t valid = n + W <= s.n1 ? W : s.n1 - n;
    const T* row[W];
    for (int j = 0; j < W; ++j) row[j] = s.B + (n + (j < valid ? j : valid - 1)) * s.K;  // tail: repeat a row
    const bool short_rows = s.K <= 1024 && n + 2 * W <= s.n1;
    const T* next_group = s.B + (n + W) * s.K + W * W;  // (k - W)·W below starts one step ahead
    for (int64_t pc = 0; pc < s.K; pc += s.kc) {
      const int64_t kend = pc + s.kc < s.K ? pc + s.kc : s.K;
      reg acc[M];
      for (int i = 0; i < M; ++i) acc[i] = V::zero();
      int64_t k = pc;
      for (; k + W <= kend; k += W) {
        if (short_rows) {
          // Rows of a few hundred values are too short for the hardware prefetcher to follow W of them at once:
          // fetch the next W rows (contiguous) as this group goes, W·W values per step.
          const T* ahead = next_group + (k - W) * W;
          for (int64_t off = 0; off < W * W; off += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(ahead + off);
        } else if (((k - pc) & 15) == 0) {  // long rows: one cache line of each row, 512 bytes ahead
          for (int j = 0; j < W; ++j) __builtin_prefetch(row[j] + k + 128);
        }
        reg t[W];
        for (int j = 0; j < W; ++j) t[j] = V::load(row[j] + k);
        V::transpose(t);  // t[kk] = (B[n + j][k + kk])_j
        for (int kk = 0; kk < W; ++kk) {
          for (int i = 0; i < M; ++i) acc[i] = V::fma(V::broadcast(s.A + i * s.a_row + (k + kk) * s.a_k), t[kk], acc[i]);
        }
      }
      for (; k < kend; ++k) {
        alignas(64) T col[W];
        for (int j = 0; j < W; ++j) col[j] = row[j][k];
        const reg t = V::load(col);
        for (int i = 0; i < M; ++i) acc[i] = V::fma(V::broadcast(s.A + i * s.a_row + k * s.a_k), t, acc[i]);
      }
      skinny_store<V, M>(s, acc, n, valid, s.accumulate || pc > 0);
    }
  }
}

// B is K×N: columns n of C are columns of B, read a strip of S = NV·W columns per row of B.
template <class V, int M> void skinny_nn(const SkinnyArgs<typename V::T>& s) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr int W = V::width, NV = 4, S = NV * W;
  for (int64_t n = s.n0; n < s.n1; n += S) {
    const int64_t width = n + S <= s.n1 ? S : s.n1 - n;
    const int nv = static_cast<int>((width + W - 1) / W);
    for (int64_t pc = 0; pc < s.K; pc += s.kc) {
      const int64_t kend = pc + s.kc < s.K ? pc + s.kc : s.K;
      reg acc[M][NV];
      for (int i = 0; i < M; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
      for (int64_t k = pc; k < kend; ++k) {
        const T* b = s.B + k * s.N + n;
        reg bv[NV];
        if (width == S) {
          for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * W);
        } else {  // the last, partial strip: zero-padded copy
          alignas(64) T tmp[S];
          for (int64_t j = 0; j < S; ++j) tmp[j] = j < width ? b[j] : T(0);
          for (int v = 0; v < NV; ++v) bv[v] = V::load(tmp + v * W);
        }
        for (int i = 0; i < M; ++i) {
          const reg a = V::broadcast(s.A + i * s.a_row + k * s.a_k);
          for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(a, bv[v], acc[i][v]);
        }
      }
      for (int v = 0; v < nv; ++v) {
        reg col[M];
        for (int i = 0; i < M; ++i) col[i] = acc[i][v];
        const int64_t valid = width - v * W < W ? width - v * W : W;
        skinny_store<V, M>(s, col, n + v * W, valid, s.accumulate || pc > 0);
      }
    }
  }
}

template <class V, int M> void skinny(const SkinnyArgs<typename V::T>& s) {
  if (s.trans_b) {
    skinny_nt<V, M>(s);
  } else {
    skinny_nn<V, M>(s);
  }
}

}  // namespace wavemoe
