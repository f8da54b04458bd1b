// Fused attention: forward and backward side by side, then the KV-cache copies. See attention.h for layouts, masks
// and the += rule of backward.
//
// Work is cut into tiles. The query rows of one (batch, kv head) pair are the Tq positions of its Hq/Hkv query heads,
// interleaved (row r is position r / g of head r % g), so a row tile shares its K/V tiles between the heads of a
// group and spans few positions (tight causal ranges). Scores live in log2 units (q·k·scale·log2 e) so the
// probabilities are plain exp2; the saved log-sum-exp is converted back to natural units.
//
// Passes, each parallel over independent items, so no float is ever added to by two threads (no atomics):
//   forward     item = (b, kv head, row tile): online softmax over key tiles, O and lse written once per row
//   backward, when the (b, kv head) groups are enough to keep every thread busy: one pass,
//               item = (b, kv head): key tiles in order, each giving its dK and dV (summed over every query head of
//               the group) and adding dS·K into an O(T·D) dQ buffer of the group's rows
//   backward otherwise, two passes:
//     A         item = (b, kv head, key tile): dK and dV of those keys
//     B         item = (b, kv head, row tile): dQ of those rows, recomputing P and dS (7 tile gemms instead of 5)
// Results are bit-identical from run to run for a fixed thread count (which picks the backward scheme).
//
// Every gemm streams a packed operand that is reused across the inner loop, and reads the other straight from the
// tensors: the row-tile passes (forward, B) pack Qᵀ once per row tile and compute transposed score tiles
// Sᵀ = K·Qᵀ (keys as rows, queries as columns), so their key tiles need no packing; the key-tile pass packs Kᵀ
// and Vᵀ once per key tile and computes S = Q·Kᵀ.
//
// Matmul precision (matmul_precision.h): under bf16 or tf32 every input of the five products is rounded as it is
// packed into a tile, and the sums stay float32, as a bf16 FlashAttention-2 on tensor cores:
//   forward   S = round(Q)·round(K)ᵀ, softmax statistics (running max, sum, lse) from the unrounded probabilities P,
//             O += round(P)·round(V), P relative to the running max of its key tile (as FlashAttention-2)
//   backward  S and dP = round(dO)·round(V)ᵀ, P from the saved lse, dS = P ⊙ (dP - D_i) from the unrounded P in
//             float32, then dV += round(P)ᵀ·round(dO), dK += round(dS)ᵀ·round(Q), dQ += round(dS)·round(K);
//             D_i = rowsum(dO ⊙ O) from the unrounded tensors (a reduction, not a product)
// The scale (and log2 e) multiplies the rounded Q or K in float32. The precision is read once per call; fp32 (and
// float64, never rounded) packs nothing it did not pack before, so those results are unchanged bit for bit.
//
// Scratch: each chunk of work allocates its tile buffers once through aligned_alloc_bytes (so allocStats counts
// them): O(tile) elements. Backward also keeps D_i = rowsum(dO ⊙ O) (B·Hq·Tq elements) and, in the one-pass scheme,
// a dQ buffer of Tq·(Hq/Hkv)·D elements per thread: O(T), never O(T²).
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../core/cpu_features.h"
#include "../core/storage.h"
#include "../core/thread_pool.h"
#include "isa/attention_isa.h"
#include "matmul_precision.h"

namespace wavemoe {
namespace {

constexpr int64_t kRowTile = 64;  // query rows per tile
constexpr int64_t kKeyTile = 64;  // keys per tile: with D = 64 every float tile buffer is 16 KiB (L1/L2 resident)
constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;
constexpr int64_t kMinChunkWork = int64_t{1} << 17;  // multiply-adds: less than this runs on one thread

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return std::min(std::max(x, lo), hi); }

template <typename T> AttentionTileKernels<T> tile_kernels() {
  switch (current_isa()) {
    case Isa::avx512: return attention_tile_kernels_for<Isa::avx512, T>();
    case Isa::avx2: return attention_tile_kernels_for<Isa::avx2, T>();
    case Isa::generic: break;
  }
  return attention_tile_kernels_for<Isa::generic, T>();
}

// A chunk's tile buffers, carved from one accounted allocation; each piece starts on a cache line.
template <typename T> class Arena {
 public:
  explicit Arena(int64_t elems) : bytes_(static_cast<size_t>(elems) * sizeof(T)) {
    data_ = static_cast<T*>(aligned_alloc_bytes(bytes_));
    std::memset(data_, 0, bytes_);
  }
  ~Arena() { aligned_free_bytes(data_, bytes_); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  T* take(int64_t n) {
    T* p = data_ + used_;
    used_ += piece(n);
    return p;
  }
  static int64_t piece(int64_t n) { return round_up(n, kAttentionPad); }

 private:
  size_t bytes_;
  T* data_;
  int64_t used_ = 0;
};

// Index arithmetic and visibility of one call.
struct Layout {
  const AttentionParams& p;
  int64_t g;     // query heads per kv head
  int64_t rows;  // query rows of one (batch, kv head): Tq * g
  int64_t Dp;    // D rounded up to kAttentionPad: row length of buffers used as a gemm's b operand
  int64_t window;  // the sliding window, at most kv_length (no wider window sees more), so index sums never overflow
  int bits;        // mantissa bits kept by every product input (round_mantissa): 23 or more rounds nothing

  Layout(const AttentionParams& params, int round_bits)
      : p(params), g(params.Hq / params.Hkv), rows(params.Tq * g), Dp(round_up(params.D, kAttentionPad)),
        window(std::min(params.window, std::max<int64_t>(params.kv_length, 1))), bits(round_bits) {}

  bool rounds() const { return bits < 23; }

  int64_t position(int64_t r) const { return r / g; }  // query index t of row r
  // Element offset of row r of (b, kh) in a (B, Hq, Tq, ...) tensor with `width` elements per row.
  int64_t q_index(int64_t b, int64_t kh, int64_t r, int64_t width) const {
    return ((b * p.Hq + kh * g + r % g) * p.Tq + r / g) * width;
  }
  int64_t kv_index(int64_t b, int64_t kh, int64_t j) const { return ((b * p.Hkv + kh) * p.kv_capacity + j) * p.D; }

  // Keys [*lo, *hi) that query t sees.
  void keys_of(int64_t t, int64_t* lo, int64_t* hi) const {
    if (p.mask == AttentionMask::none) {
      *lo = 0;
      *hi = p.kv_length;
      return;
    }
    int64_t pos = p.q_offset + t;
    *hi = pos + 1;
    *lo = p.mask == AttentionMask::sliding_window ? std::max<int64_t>(0, pos - window + 1) : 0;
  }
  // Queries [*lo, *hi) that see at least one key of [k0, k1).
  void queries_of(int64_t k0, int64_t k1, int64_t* lo, int64_t* hi) const {
    if (p.mask == AttentionMask::none) {
      *lo = 0;
      *hi = p.Tq;
      return;
    }
    *lo = clamp64(k0 - p.q_offset, 0, p.Tq);
    *hi = p.mask == AttentionMask::sliding_window ? clamp64(k1 - 1 + window - p.q_offset, 0, p.Tq) : p.Tq;
  }
  // Keys seen by any row of [r0, r1): the union of the rows' ranges (monotone in t for every mask).
  void keys_of_rows(int64_t r0, int64_t r1, int64_t* lo, int64_t* hi) const {
    int64_t unused;
    keys_of(position(r0), lo, &unused);
    keys_of(position(r1 - 1), &unused, hi);
  }
};

// Items are (batch · kv head, tile) pairs. Tiles are visited 0, n-1, 1, n-2, ... so that the contiguous static
// chunks of parallel_chunks each get an even share of a causal triangle.
void item_to_tile(int64_t item, int64_t tiles, int64_t* bh, int64_t* tile) {
  *bh = item / tiles;
  int64_t z = item % tiles;
  *tile = z % 2 == 0 ? z / 2 : tiles - 1 - z / 2;
}

// Items per chunk so that a chunk does at least kMinChunkWork multiply-adds.
int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kMinChunkWork / std::max<int64_t>(1, work_per_item));
}

// The element types' read of the process-wide matmul precision, once per call: float64 is never rounded.
template <typename T> int round_bits() {
  if constexpr (std::is_same_v<T, float>) return mantissa_bits(matmul_precision());
  return 23;
}

// dst (D x n, row stride ld) = round(src rows j < n, each D long)ᵀ · s
template <typename T> void pack_transposed(T* dst, int64_t ld, const T* src, int64_t n, int64_t D, T s, int bits) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t d = 0; d < D; ++d) dst[d * ld + j] = round_mantissa(src[j * D + d], bits) * s;
}

// dst (n x Dp) = round(src) (n x D), columns [D, Dp) zero.
template <typename T>
void pack_rows(T* dst, int64_t Dp, const T* src, int64_t n, int64_t D, const Layout& L,
               const AttentionTileKernels<T>& kern) {
  if (L.rounds()) kern.round_rows(dst, Dp, src, D, n, D, L.bits);
  for (int64_t j = 0; j < n; ++j) {
    if (!L.rounds()) std::memcpy(dst + j * Dp, src + j * D, static_cast<size_t>(D) * sizeof(T));
    std::fill(dst + j * Dp + D, dst + (j + 1) * Dp, T(0));
  }
}

// Rounds the first n entries of `rows` rows (row stride ld) in place: P or dS before they enter a product.
template <typename T>
void round_tile(T* x, int64_t rows, int64_t ld, int64_t n, const Layout& L, const AttentionTileKernels<T>& kern) {
  if (L.rounds()) kern.round_rows(x, ld, x, ld, rows, n, L.bits);
}

// The b operand made of key/value rows [k0, k0 + n) (row stride Dp): the tensor itself when its rows are already
// padded and nothing is rounded, else a padded, rounded copy in buf.
template <typename T>
const T* rows_operand(T* buf, const T* src, int64_t n, const Layout& L, const AttentionTileKernels<T>& kern) {
  if (L.Dp == L.p.D && !L.rounds()) return src;
  pack_rows(buf, L.Dp, src, n, L.p.D, L, kern);
  return buf;
}

// The same rows as an a operand, which is only broadcast, so any row stride (*ld) will do: the tensor itself unless
// it is rounded.
template <typename T>
const T* a_rows_operand(T* buf, const T* src, int64_t n, const Layout& L, const AttentionTileKernels<T>& kern,
                        int64_t* ld) {
  *ld = L.rounds() ? L.Dp : L.p.D;
  return L.rounds() ? rows_operand(buf, src, n, L, kern) : src;
}

// Score row s (np columns, key k0 + j in column j): columns outside the visible keys [lo, hi) become -inf, so that
// exp2 turns them into exact zeros.
template <typename T> void mask_scores(T* s, int64_t np, int64_t k0, int64_t n, int64_t lo, int64_t hi) {
  const int64_t c0 = clamp64(lo - k0, 0, n), c1 = clamp64(hi - k0, 0, n);
  const T ninf = -std::numeric_limits<T>::infinity();
  std::fill(s, s + c0, ninf);
  std::fill(s + std::max(c0, c1), s + np, ninf);
}

// Transposed score tile st (n key rows, columns = query rows r0 + i, row stride ld): entries a query does not see
// become -inf, so that exp2 turns them into exact zeros. Columns [M, Mp) are padding.
template <typename T>
void mask_key_rows(T* st, int64_t ld, int64_t n, int64_t Mp, int64_t k0, int64_t r0, int64_t M, const Layout& L) {
  if (L.p.mask == AttentionMask::none) return;
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    // rows whose position p satisfies key <= p (< key + window): a contiguous range, as positions grow with rows
    const int64_t key = k0 + j - L.p.q_offset;
    const int64_t c0 = clamp64(key * L.g - r0, 0, M);
    const int64_t c1 = L.p.mask == AttentionMask::sliding_window ? clamp64((key + L.window) * L.g - r0, 0, M) : M;
    T* row = st + j * ld;
    std::fill(row, row + c0, ninf);
    std::fill(row + std::max(c0, c1), row + Mp, ninf);
  }
}

// qt (D x Mp, row stride ld) = round(rows [r0, r0 + M) of (b, kh) in x)ᵀ · s, columns [M, Mp) zero.
template <typename T>
void pack_rows_transposed(T* qt, int64_t ld, const T* x, int64_t b, int64_t kh, int64_t r0, int64_t M, int64_t Mp,
                          T s, const Layout& L) {
  const int64_t D = L.p.D;
  for (int64_t i = 0; i < M; ++i) {
    const T* src = x + L.q_index(b, kh, r0 + i, D);
    for (int64_t d = 0; d < D; ++d) qt[d * ld + i] = round_mantissa(src[d], L.bits) * s;
  }
  for (int64_t d = 0; d < D; ++d) std::fill(qt + d * ld + M, qt + d * ld + Mp, T(0));
}

// ---------------------------------------------------------------------------------------------------------------
// forward

template <typename T> struct ForwardTile {
  T* qt;    // (D, kRowTile) queries transposed · scale · log2 e
  T* st;    // (kKeyTile, kRowTile) transposed scores, then probabilities
  T* kp;    // (kKeyTile, Dp) keys, rounded (under a reduced matmul precision)
  T* vp;    // (kKeyTile, Dp) values, padded (when D is not a multiple of kAttentionPad) and rounded
  T* acc;   // (kRowTile, Dp) unnormalised output
  T* m;     // (kRowTile) running max per query (log2 units)
  T* mref;  // (kRowTile) the max the probabilities are relative to (0 while a query has seen no key)
  T* l;     // (kRowTile) running sum of 2^(s - m)

  ForwardTile(Arena<T>& a, const Layout& L)
      : qt(a.take(L.p.D * kRowTile)), st(a.take(kKeyTile * kRowTile)), kp(a.take(kKeyTile * L.Dp)),
        vp(a.take(kKeyTile * L.Dp)), acc(a.take(kRowTile * L.Dp)), m(a.take(kRowTile)), mref(a.take(kRowTile)),
        l(a.take(kRowTile)) {}
  static int64_t elems(const Layout& L) {
    auto pc = Arena<T>::piece;
    return pc(L.p.D * kRowTile) + pc(kKeyTile * kRowTile) + 2 * pc(kKeyTile * L.Dp) + pc(kRowTile * L.Dp) +
           3 * pc(kRowTile);
  }
};

// Folds one tile of transposed scores (n keys) into the online softmax of queries [0, M): raises the running
// maxima, rescales their sums and output rows, and leaves in w.st the probabilities relative to the new maxima (the
// sums take them unrounded; w.st is rounded after, for P·V).
template <typename T>
void online_softmax_tile(ForwardTile<T>& w, int64_t n, int64_t M, int64_t Mp, int64_t Dp,
                         const AttentionTileKernels<T>& kern) {
  for (int64_t i = 0; i < Mp; ++i) w.mref[i] = w.m[i];
  for (int64_t j = 0; j < n; ++j) {
    const T* row = w.st + j * kRowTile;
    for (int64_t i = 0; i < Mp; ++i) w.mref[i] = std::max(w.mref[i], row[i]);
  }
  for (int64_t i = 0; i < Mp; ++i) {
    if (w.mref[i] != w.m[i] && i < M) {
      const T alpha = std::exp2(w.m[i] - w.mref[i]);  // 0 for the first key a query sees (m = -inf)
      w.l[i] *= alpha;
      for (int64_t d = 0; d < Dp; ++d) w.acc[i * Dp + d] *= alpha;
    }
    w.m[i] = w.mref[i];
    if (w.mref[i] == -std::numeric_limits<T>::infinity()) w.mref[i] = 0;  // no key yet: 2^(-inf - 0) = 0
  }
  kern.exp2_cols(w.st, n, kRowTile, Mp, w.mref, w.l);
}

// Rows [r0, r1) of (b, kh): out and lse for each.
template <typename T>
void forward_row_tile(T* out, T* lse, const T* q, const T* k, const T* v, int64_t b, int64_t kh, int64_t r0,
                      int64_t r1, const Layout& L, ForwardTile<T>& w, const AttentionTileKernels<T>& kern) {
  const int64_t D = L.p.D, Dp = L.Dp, M = r1 - r0, Mp = round_up(M, kern.lanes);
  pack_rows_transposed(w.qt, kRowTile, q, b, kh, r0, M, Mp, static_cast<T>(L.p.scale * kLog2e), L);
  std::fill(w.m, w.m + Mp, -std::numeric_limits<T>::infinity());
  std::fill(w.l, w.l + Mp, T(0));
  std::fill(w.acc, w.acc + M * Dp, T(0));
  int64_t lo, hi;
  L.keys_of_rows(r0, r1, &lo, &hi);
  for (int64_t k0 = lo; k0 < hi; k0 += kKeyTile) {
    const int64_t n = std::min(kKeyTile, hi - k0);
    int64_t kld;
    const T* ka = a_rows_operand(w.kp, k + L.kv_index(b, kh, k0), n, L, kern, &kld);
    kern.gemm(w.st, kRowTile, ka, kld, 1, w.qt, kRowTile, n, Mp, D, false);  // Sᵀ = K·Qᵀ
    mask_key_rows(w.st, kRowTile, n, Mp, k0, r0, M, L);
    online_softmax_tile(w, n, M, Mp, Dp, kern);
    round_tile(w.st, n, kRowTile, Mp, L, kern);
    const T* vb = rows_operand(w.vp, v + L.kv_index(b, kh, k0), n, L, kern);
    kern.gemm(w.acc, Dp, w.st, 1, kRowTile, vb, Dp, M, Dp, n, true);  // O += P·V
  }
  for (int64_t i = 0; i < M; ++i) {
    T* dst = out + L.q_index(b, kh, r0 + i, D);
    const T inv = T(1) / w.l[i];  // l >= 1: the key holding the max contributes 2^0
    for (int64_t d = 0; d < D; ++d) dst[d] = w.acc[i * Dp + d] * inv;
    if (lse != nullptr) lse[L.q_index(b, kh, r0 + i, 1)] = static_cast<T>((w.m[i] + std::log2(w.l[i])) * kLn2);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// backward

// Inputs of backward, bundled for the tile functions.
template <typename T> struct BackwardInputs {
  const T *dout, *q, *k, *v, *lse, *di;
};

// Pass A buffers: one key tile against a row tile at a time.
template <typename T> struct KeyTile {
  T* kt;    // (D, kKeyTile) keys transposed · scale · log2 e
  T* vt;    // (D, kKeyTile) values transposed
  T* qp;    // (kRowTile, Dp) queries, padded
  T* dop;   // (kRowTile, Dp) output gradients, padded
            // (every one of these four rounded under a reduced matmul precision, as are p, ds and kp before use)
  T* lse2;  // (kRowTile) log-sum-exp in log2 units
  T* di;    // (kRowTile) rowsum(dO ⊙ O)
  T* p;     // (kRowTile, kKeyTile) probabilities
  T* ds;    // (kRowTile, kKeyTile) dP, then dS = P ⊙ (dP - D_i)
  T* dk;    // (kKeyTile, Dp) dK accumulator
  T* dv;    // (kKeyTile, Dp) dV accumulator
  T* kp;    // (kKeyTile, Dp) keys, padded (single pass, when D is not a multiple of kAttentionPad)

  KeyTile(Arena<T>& a, const Layout& L)
      : kt(a.take(L.p.D * kKeyTile)), vt(a.take(L.p.D * kKeyTile)), qp(a.take(kRowTile * L.Dp)),
        dop(a.take(kRowTile * L.Dp)), lse2(a.take(kRowTile)), di(a.take(kRowTile)), p(a.take(kRowTile * kKeyTile)),
        ds(a.take(kRowTile * kKeyTile)), dk(a.take(kKeyTile * L.Dp)), dv(a.take(kKeyTile * L.Dp)),
        kp(a.take(kKeyTile * L.Dp)) {}
  static int64_t elems(const Layout& L) {
    auto pc = Arena<T>::piece;
    return 2 * pc(L.p.D * kKeyTile) + 2 * pc(kRowTile * L.Dp) + 2 * pc(kRowTile) + 2 * pc(kRowTile * kKeyTile) +
           3 * pc(kKeyTile * L.Dp);
  }
};

// Pass A: dK and dV of keys [k0, k0 + n) of (b, kh), over every query row that sees them. In the single pass, also
// dq_rows (rows x Dp, every query row of (b, kh)) += dS·K for those keys, unscaled.
template <typename T>
void backward_key_tile(T* dk, T* dv, T* dq_rows, const BackwardInputs<T>& in, int64_t b, int64_t kh, int64_t k0,
                       int64_t n, const Layout& L, KeyTile<T>& w, const AttentionTileKernels<T>& kern) {
  const int64_t D = L.p.D, Dp = L.Dp, np = round_up(n, kern.lanes);
  pack_transposed(w.kt, kKeyTile, in.k + L.kv_index(b, kh, k0), n, D, static_cast<T>(L.p.scale * kLog2e), L.bits);
  pack_transposed(w.vt, kKeyTile, in.v + L.kv_index(b, kh, k0), n, D, T(1), L.bits);
  const T* kb = dq_rows != nullptr ? rows_operand(w.kp, in.k + L.kv_index(b, kh, k0), n, L, kern) : nullptr;
  std::fill(w.dk, w.dk + n * Dp, T(0));
  std::fill(w.dv, w.dv + n * Dp, T(0));
  int64_t t_lo, t_hi;
  L.queries_of(k0, k0 + n, &t_lo, &t_hi);
  for (int64_t r0 = t_lo * L.g; r0 < t_hi * L.g; r0 += kRowTile) {
    const int64_t M = std::min(kRowTile, t_hi * L.g - r0);
    for (int64_t i = 0; i < M; ++i) {
      pack_rows(w.qp + i * Dp, Dp, in.q + L.q_index(b, kh, r0 + i, D), 1, D, L, kern);
      pack_rows(w.dop + i * Dp, Dp, in.dout + L.q_index(b, kh, r0 + i, D), 1, D, L, kern);
      w.lse2[i] = static_cast<T>(in.lse[L.q_index(b, kh, r0 + i, 1)] * kLog2e);
      w.di[i] = in.di[L.q_index(b, kh, r0 + i, 1)];
    }
    kern.gemm(w.p, kKeyTile, w.qp, Dp, 1, w.kt, kKeyTile, M, np, D, false);    // S = Q·Kᵀ
    kern.gemm(w.ds, kKeyTile, w.dop, Dp, 1, w.vt, kKeyTile, M, np, D, false);  // dP = dO·Vᵀ
    for (int64_t i = 0; i < M; ++i) {
      T* p = w.p + i * kKeyTile;
      T* ds = w.ds + i * kKeyTile;
      int64_t klo, khi;
      L.keys_of(L.position(r0 + i), &klo, &khi);
      mask_scores(p, np, k0, n, klo, khi);
      kern.exp2_sum(p, np, w.lse2[i]);
      for (int64_t j = 0; j < np; ++j) ds[j] = p[j] * (ds[j] - w.di[i]);
    }
    round_tile(w.p, M, kKeyTile, np, L, kern);  // after dS, which takes P unrounded
    round_tile(w.ds, M, kKeyTile, np, L, kern);
    kern.gemm(w.dv, Dp, w.p, 1, kKeyTile, w.dop, Dp, n, Dp, M, true);  // dV += Pᵀ·dO
    kern.gemm(w.dk, Dp, w.ds, 1, kKeyTile, w.qp, Dp, n, Dp, M, true);  // dK += dSᵀ·Q (scaled below)
    if (dq_rows != nullptr) kern.gemm(dq_rows + r0 * Dp, Dp, w.ds, kKeyTile, 1, kb, Dp, M, Dp, n, true);  // dQ += dS·K
  }
  const T scale = static_cast<T>(L.p.scale);
  for (int64_t j = 0; j < n; ++j) {
    T* dkr = dk + L.kv_index(b, kh, k0 + j);
    T* dvr = dv + L.kv_index(b, kh, k0 + j);
    for (int64_t d = 0; d < D; ++d) {
      dkr[d] += w.dk[j * Dp + d] * scale;
      dvr[d] += w.dv[j * Dp + d];
    }
  }
}

// Pass B buffers: one row tile against a key tile at a time, scores transposed.
template <typename T> struct RowTile {
  T* qt;    // (D, kRowTile) queries transposed · scale · log2 e
  T* dot;   // (D, kRowTile) output gradients transposed
            // (both rounded under a reduced matmul precision, as are dst, kp and vp before use)
  T* lse2;  // (kRowTile) log-sum-exp in log2 units
  T* di;    // (kRowTile) rowsum(dO ⊙ O)
  T* pt;    // (kKeyTile, kRowTile) probabilities, transposed
  T* dst;   // (kKeyTile, kRowTile) dPᵀ, then dSᵀ
  T* kp;    // (kKeyTile, Dp) keys, padded (when D is not a multiple of kAttentionPad)
  T* vp;    // (kKeyTile, Dp) values (only when rounded)
  T* dq;    // (kRowTile, Dp) dQ accumulator

  RowTile(Arena<T>& a, const Layout& L)
      : qt(a.take(L.p.D * kRowTile)), dot(a.take(L.p.D * kRowTile)), lse2(a.take(kRowTile)), di(a.take(kRowTile)),
        pt(a.take(kKeyTile * kRowTile)), dst(a.take(kKeyTile * kRowTile)), kp(a.take(kKeyTile * L.Dp)),
        vp(a.take(kKeyTile * L.Dp)), dq(a.take(kRowTile * L.Dp)) {}
  static int64_t elems(const Layout& L) {
    auto pc = Arena<T>::piece;
    return 2 * pc(L.p.D * kRowTile) + 2 * pc(kRowTile) + 2 * pc(kKeyTile * kRowTile) + 2 * pc(kKeyTile * L.Dp) +
           pc(kRowTile * L.Dp);
  }
};

// Pass B: dQ of rows [r0, r1) of (b, kh).
template <typename T>
void backward_row_tile(T* dq, const BackwardInputs<T>& in, int64_t b, int64_t kh, int64_t r0, int64_t r1,
                       const Layout& L, RowTile<T>& w, const AttentionTileKernels<T>& kern) {
  const int64_t D = L.p.D, Dp = L.Dp, M = r1 - r0, Mp = round_up(M, kern.lanes);
  pack_rows_transposed(w.qt, kRowTile, in.q, b, kh, r0, M, Mp, static_cast<T>(L.p.scale * kLog2e), L);
  pack_rows_transposed(w.dot, kRowTile, in.dout, b, kh, r0, M, Mp, T(1), L);
  std::fill(w.lse2, w.lse2 + Mp, T(0));
  std::fill(w.di, w.di + Mp, T(0));
  for (int64_t i = 0; i < M; ++i) {
    w.lse2[i] = static_cast<T>(in.lse[L.q_index(b, kh, r0 + i, 1)] * kLog2e);
    w.di[i] = in.di[L.q_index(b, kh, r0 + i, 1)];
  }
  std::fill(w.dq, w.dq + M * Dp, T(0));
  int64_t lo, hi;
  L.keys_of_rows(r0, r1, &lo, &hi);
  for (int64_t k0 = lo; k0 < hi; k0 += kKeyTile) {
    const int64_t n = std::min(kKeyTile, hi - k0);
    const T* kb = rows_operand(w.kp, in.k + L.kv_index(b, kh, k0), n, L, kern);
    int64_t vld;
    const T* va = a_rows_operand(w.vp, in.v + L.kv_index(b, kh, k0), n, L, kern, &vld);
    const T* ka = L.rounds() ? kb : in.k + L.kv_index(b, kh, k0);  // kb, when rounded, serves both products
    kern.gemm(w.pt, kRowTile, ka, L.rounds() ? Dp : D, 1, w.qt, kRowTile, n, Mp, D, false);  // Sᵀ
    kern.gemm(w.dst, kRowTile, va, vld, 1, w.dot, kRowTile, n, Mp, D, false);                 // dPᵀ
    mask_key_rows(w.pt, kRowTile, n, Mp, k0, r0, M, L);
    kern.exp2_cols(w.pt, n, kRowTile, Mp, w.lse2, nullptr);
    for (int64_t j = 0; j < n; ++j) {
      T* ds = w.dst + j * kRowTile;
      const T* p = w.pt + j * kRowTile;
      for (int64_t i = 0; i < Mp; ++i) ds[i] = p[i] * (ds[i] - w.di[i]);
    }
    round_tile(w.dst, n, kRowTile, Mp, L, kern);
    kern.gemm(w.dq, Dp, w.dst, 1, kRowTile, kb, Dp, M, Dp, n, true);  // dQ += dS·K (scaled below)
  }
  const T scale = static_cast<T>(L.p.scale);
  for (int64_t i = 0; i < M; ++i) {
    T* dst = dq + L.q_index(b, kh, r0 + i, D);
    for (int64_t d = 0; d < D; ++d) dst[d] += w.dq[i * Dp + d] * scale;
  }
}

// di[row] = sum_d dout[row, d] · out[row, d], accumulated in double, for every (B, Hq, Tq) row.
template <typename T> void rowsum_dout_out(T* di, const T* dout, const T* out, int64_t rows, int64_t D) {
  parallel_for(rows, grain_for(D), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += static_cast<double>(dout[r * D + d]) * out[r * D + d];
      di[r] = static_cast<T>(s);
    }
  });
}

// One pass when every thread can own whole (batch, kv head) groups: a group's dQ rows are then written by one
// thread only, so dQ accumulates in the same loop as dK and dV (5 tile gemms per tile pair instead of 7). The cost
// model compares ceil(groups / threads) · 5 with groups / threads · 7, as every group has the same work.
bool single_pass(const AttentionParams& p) {
  const int64_t groups = p.B * p.Hkv, threads = num_threads();
  return ((groups + threads - 1) / threads) * 5 * threads <= groups * 7;
}

template <typename T>
void backward_single_pass(T* dq, T* dk, T* dv, const BackwardInputs<T>& in, const Layout& L,
                          const AttentionTileKernels<T>& kern) {
  const AttentionParams& p = L.p;
  const int64_t ktiles = (p.kv_length + kKeyTile - 1) / kKeyTile;
  parallel_chunks(p.B * p.Hkv, 1, [&](int64_t, int64_t begin, int64_t end) {
    Arena<T> arena(KeyTile<T>::elems(L) + Arena<T>::piece(L.rows * L.Dp));
    KeyTile<T> w(arena, L);
    T* dq_rows = arena.take(L.rows * L.Dp);  // O(T·D) per thread: every query row of the group
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / p.Hkv, kh = bh % p.Hkv;
      std::fill(dq_rows, dq_rows + L.rows * L.Dp, T(0));
      for (int64_t tile = 0; tile < ktiles; ++tile) {
        const int64_t k0 = tile * kKeyTile;
        backward_key_tile(dk, dv, dq_rows, in, b, kh, k0, std::min(kKeyTile, p.kv_length - k0), L, w, kern);
      }
      const T scale = static_cast<T>(p.scale);
      for (int64_t r = 0; r < L.rows; ++r) {
        T* dst = dq + L.q_index(b, kh, r, p.D);
        for (int64_t d = 0; d < p.D; ++d) dst[d] += dq_rows[r * L.Dp + d] * scale;
      }
    }
  });
}

template <typename T>
void backward_two_passes(T* dq, T* dk, T* dv, const BackwardInputs<T>& in, const Layout& L,
                         const AttentionTileKernels<T>& kern) {
  const AttentionParams& p = L.p;
  const int64_t ktiles = (p.kv_length + kKeyTile - 1) / kKeyTile, kitems = p.B * p.Hkv * ktiles;
  parallel_chunks(kitems, grain_for(kKeyTile * L.rows * p.D), [&](int64_t, int64_t begin, int64_t end) {
    Arena<T> arena(KeyTile<T>::elems(L));
    KeyTile<T> w(arena, L);
    for (int64_t item = begin; item < end; ++item) {
      int64_t bh, tile;
      item_to_tile(item, ktiles, &bh, &tile);
      const int64_t k0 = tile * kKeyTile;
      backward_key_tile<T>(dk, dv, nullptr, in, bh / p.Hkv, bh % p.Hkv, k0, std::min(kKeyTile, p.kv_length - k0), L,
                           w, kern);
    }
  });
  const int64_t rtiles = (L.rows + kRowTile - 1) / kRowTile, ritems = p.B * p.Hkv * rtiles;
  parallel_chunks(ritems, grain_for(kRowTile * p.kv_length * p.D), [&](int64_t, int64_t begin, int64_t end) {
    Arena<T> arena(RowTile<T>::elems(L));
    RowTile<T> w(arena, L);
    for (int64_t item = begin; item < end; ++item) {
      int64_t bh, tile;
      item_to_tile(item, rtiles, &bh, &tile);
      const int64_t r0 = tile * kRowTile;
      backward_row_tile(dq, in, bh / p.Hkv, bh % p.Hkv, r0, std::min(L.rows, r0 + kRowTile), L, w, kern);
    }
  });
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionParams& p) {
  const Layout L(p, round_bits<T>());
  if (L.rows == 0 || p.B == 0 || p.Hkv == 0) return;
  const AttentionTileKernels<T> kern = tile_kernels<T>();
  const int64_t tiles = (L.rows + kRowTile - 1) / kRowTile, items = p.B * p.Hkv * tiles;
  const int64_t work = std::min(kRowTile, L.rows) * p.kv_length * p.D;
  parallel_chunks(items, grain_for(work), [&](int64_t, int64_t begin, int64_t end) {
    Arena<T> arena(ForwardTile<T>::elems(L));
    ForwardTile<T> w(arena, L);
    for (int64_t item = begin; item < end; ++item) {
      int64_t bh, tile;
      item_to_tile(item, tiles, &bh, &tile);
      const int64_t r0 = tile * kRowTile, r1 = std::min(L.rows, r0 + kRowTile);
      forward_row_tile(out, lse, q, k, v, bh / p.Hkv, bh % p.Hkv, r0, r1, L, w, kern);
    }
  });
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const AttentionParams& p) {
  const Layout L(p, round_bits<T>());
  if (L.rows == 0 || p.B == 0 || p.Hkv == 0 || p.kv_length == 0) return;
  const AttentionTileKernels<T> kern = tile_kernels<T>();
  const int64_t nrows = p.B * p.Hq * p.Tq;
  Arena<T> di_buffer(Arena<T>::piece(nrows));
  T* di = di_buffer.take(nrows);
  rowsum_dout_out(di, dout, out, nrows, p.D);
  const BackwardInputs<T> in{dout, q, k, v, lse, di};

  if (single_pass(p)) {
    backward_single_pass(dq, dk, dv, in, L, kern);
  } else {
    backward_two_passes(dq, dk, dv, in, L, kern);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// KV cache

template <typename T>
void attention_kv_copy(T* dst, const T* src, int64_t BH, int64_t dst_capacity, int64_t dst_position,
                       int64_t src_capacity, int64_t rows, int64_t D) {
  const size_t bytes = static_cast<size_t>(rows * D) * sizeof(T);
  parallel_for(BH, grain_for(rows * D), [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h) {
      std::memcpy(dst + (h * dst_capacity + dst_position) * D, src + h * src_capacity * D, bytes);
    }
  });
}

template <typename T> void attention_causal_mask_fill(T* scores, int64_t N, int64_t Tq, int64_t Tk, int64_t q_offset) {
  const T ninf = -std::numeric_limits<T>::infinity();
  parallel_for(N * Tq, grain_for(Tk), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t first_hidden = clamp64(q_offset + row % Tq + 1, 0, Tk);
      std::fill(scores + row * Tk + first_hidden, scores + (row + 1) * Tk, ninf);
    }
  });
}

#define WAVEMOE_INSTANTIATE_ATTENTION(T)                                                                          \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionParams&);              \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*,   \
                                      const AttentionParams&);                                                    \
  template void attention_kv_copy<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);       \
  template void attention_causal_mask_fill<T>(T*, int64_t, int64_t, int64_t, int64_t);
WAVEMOE_INSTANTIATE_ATTENTION(float)
WAVEMOE_INSTANTIATE_ATTENTION(double)
#undef WAVEMOE_INSTANTIATE_ATTENTION

}  // namespace wavemoe
