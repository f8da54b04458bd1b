// The attention micro-kernels as one template over GCC/Clang vector extensions, included by one .cc per ISA
// (attention_generic.cc, attention_avx2.cc, attention_avx512.cc). Each includer defines, before including:
//   WAVEMOE_ATTN_NS      a namespace unique to the ISA, so that no inline function is shared (and merged by the
//                        linker) between units compiled with different flags
//   WAVEMOE_ATTN_VBYTES  the vector width in bytes
//   WAVEMOE_ATTN_MR      rows of the gemm register tile (MR x 2 vector accumulators stay in registers)
//   WAVEMOE_ATTN_ISA     the Isa enumerator the unit provides
// Nothing here calls a standard-library template: it would be an inline symbol compiled with this unit's flags.
#include <cstdint>

#include "attention_isa.h"

namespace wavemoe {
namespace WAVEMOE_ATTN_NS {

constexpr int kVecBytes = WAVEMOE_ATTN_VBYTES;
constexpr int kMR = WAVEMOE_ATTN_MR;
constexpr int kNV = 2;  // vectors per register-tile row

template <typename T> struct VecOf {
  typedef T type __attribute__((vector_size(kVecBytes)));
};
template <typename T> using Vec = typename VecOf<T>::type;
typedef int32_t VecI32 __attribute__((vector_size(kVecBytes)));
typedef uint32_t VecU32 __attribute__((vector_size(kVecBytes)));
template <typename T> constexpr int kLanes = kVecBytes / static_cast<int>(sizeof(T));

static_assert(kAttentionPad % kLanes<float> == 0 && kAttentionPad % (kNV * kLanes<double>) == 0,
              "padding must be a whole number of vectors");

template <typename T> inline Vec<T> load(const T* p) {
  Vec<T> v;
  __builtin_memcpy(&v, p, sizeof v);  // an unaligned vector load
  return v;
}
template <typename T> inline void store(T* p, Vec<T> v) { __builtin_memcpy(p, &v, sizeof v); }

// c[MR x NV vectors] = [c +] a · b over K: the accumulators live in registers, each step loads NV vectors of b
// and broadcasts MR scalars of a.
template <typename T, int MR, int NV>
inline void micro_tile(T* c, int64_t ldc, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t ldb,
                       int64_t K, bool accumulate) {
  constexpr int L = kLanes<T>;
  Vec<T> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? load(c + r * ldc + v * L) : Vec<T>{};
  for (int64_t k = 0; k < K; ++k) {
    Vec<T> bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b + k * ldb + v * L);
    const T* ak = a + k * a_cs;
    for (int r = 0; r < MR; ++r) {
      T s = ak[r * a_rs];
      for (int v = 0; v < NV; ++v) acc[r][v] += bv[v] * s;
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) store(c + r * ldc + v * L, acc[r][v]);
}

// The last M % MR rows of a column panel, one register tile of `rows` rows.
template <typename T, int NV, int MR = kMR - 1>
inline void micro_tail(int rows, T* c, int64_t ldc, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t ldb,
                       int64_t K, bool accumulate) {
  if constexpr (MR >= 1) {
    if (rows == MR) return micro_tile<T, MR, NV>(c, ldc, a, a_rs, a_cs, b, ldb, K, accumulate);
    micro_tail<T, NV, MR - 1>(rows, c, ldc, a, a_rs, a_cs, b, ldb, K, accumulate);
  }
}

// One column panel of NV vectors, all M rows: the panel of b stays in L1 while the rows of a stream past.
template <typename T, int NV>
inline void column_panel(T* c, int64_t ldc, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t ldb,
                         int64_t M, int64_t K, bool accumulate) {
  int64_t i = 0;
  for (; i + kMR <= M; i += kMR) {
    micro_tile<T, kMR, NV>(c + i * ldc, ldc, a + i * a_rs, a_rs, a_cs, b, ldb, K, accumulate);
  }
  if (i < M) {
    micro_tail<T, NV>(static_cast<int>(M - i), c + i * ldc, ldc, a + i * a_rs, a_rs, a_cs, b, ldb, K, accumulate);
  }
}

template <typename T>
void gemm(T* c, int64_t ldc, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t ldb, int64_t M, int64_t N,
          int64_t K, bool accumulate) {
  constexpr int L = kLanes<T>;
  int64_t j = 0;
  for (; j + kNV * L <= N; j += kNV * L) column_panel<T, kNV>(c + j, ldc, a, a_rs, a_cs, b + j, ldb, M, K, accumulate);
  for (; j < N; j += L) column_panel<T, 1>(c + j, ldc, a, a_rs, a_cs, b + j, ldb, M, K, accumulate);
}

// 2^x for x <= 0 (Cephes exp2f: x = n + f with |f| <= 1/2, 2^f by a degree-6 polynomial, relative error about
// 2e-7; 2^n from the exponent bits). x <= -127 (and -inf) gives 0.
inline Vec<float> exp2_vec(Vec<float> x) {
  const Vec<float> lo = Vec<float>{} - 127.0f;
  const Vec<float> magic = Vec<float>{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  x = x < lo ? lo : x;
  Vec<float> t = x + magic;
  Vec<float> f = x - (t - magic);
  Vec<float> p = Vec<float>{} + 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  VecI32 bits = ((VecI32)t - 0x4B400000 + 127) << 23;  // the low bits of t hold n
  return p * (Vec<float>)bits;
}

inline float exp2_sum_f32(float* x, int64_t n, float m) {
  constexpr int L = kLanes<float>;
  Vec<float> acc{};
  for (int64_t j = 0; j < n; j += L) {
    Vec<float> e = exp2_vec(load(x + j) - m);
    store(x + j, e);
    acc += e;
  }
  float s = 0;
  for (int l = 0; l < L; ++l) s += acc[l];
  return s;
}

inline void exp2_cols_f32(float* x, int64_t rows, int64_t ld, int64_t n, const float* m, float* colsum) {
  constexpr int L = kLanes<float>;
  for (int64_t i = 0; i < n; i += L) {
    const Vec<float> mv = load(m + i);
    Vec<float> acc{};
    for (int64_t r = 0; r < rows; ++r) {
      Vec<float> e = exp2_vec(load(x + r * ld + i) - mv);
      store(x + r * ld + i, e);
      acc += e;
    }
    if (colsum != nullptr) store(colsum + i, load(colsum + i) + acc);
  }
}

// round_mantissa (matmul_precision.h, which an ISA unit must not call: an inline function) lane by lane, in the same
// integer steps: round to nearest even at `bits` mantissa bits (bits < 23), Inf and NaN unchanged.
inline Vec<float> round_vec(Vec<float> x, int bits) {
  const int drop = 23 - bits;
  const VecU32 u = (VecU32)x;
  const VecU32 r = (u + (((1u << (drop - 1)) - 1u) + ((u >> drop) & 1u))) & ~((1u << drop) - 1u);
  return (Vec<float>)((u & 0x7f800000u) == 0x7f800000u ? u : r);
}

inline void round_rows_f32(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t n,
                           int bits) {
  constexpr int L = kLanes<float>;
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * lds;
    float* d = dst + r * ldd;
    int64_t i = 0;
    for (; i + L <= n; i += L) store(d + i, round_vec(load(s + i), bits));
    if (i < n) {  // the tail through a zeroed vector: nothing past n is read or written
      Vec<float> t{};
      __builtin_memcpy(&t, s + i, static_cast<size_t>(n - i) * sizeof(float));
      t = round_vec(t, bits);
      __builtin_memcpy(d + i, &t, static_cast<size_t>(n - i) * sizeof(float));
    }
  }
}

inline void round_rows_f64(double* dst, int64_t ldd, const double* src, int64_t lds, int64_t rows, int64_t n, int) {
  if (dst == src && ldd == lds) return;
  for (int64_t r = 0; r < rows; ++r) {
    __builtin_memmove(dst + r * ldd, src + r * lds, static_cast<size_t>(n) * sizeof(double));
  }
}

// float64 keeps libm's exp2 (within an ulp): it is the precision reference, not the fast path.
inline double exp2_sum_f64(double* x, int64_t n, double m) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = __builtin_exp2(x[j] - m);
    s += x[j];
  }
  return s;
}

inline void exp2_cols_f64(double* x, int64_t rows, int64_t ld, int64_t n, const double* m, double* colsum) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      x[r * ld + i] = __builtin_exp2(x[r * ld + i] - m[i]);
      if (colsum != nullptr) colsum[i] += x[r * ld + i];
    }
  }
}

}  // namespace WAVEMOE_ATTN_NS

template <> AttentionTileKernels<float> attention_tile_kernels_for<WAVEMOE_ATTN_ISA, float>() {
  namespace ns = WAVEMOE_ATTN_NS;
  return {ns::kLanes<float>, &ns::gemm<float>, &ns::exp2_sum_f32, &ns::exp2_cols_f32, &ns::round_rows_f32};
}
template <> AttentionTileKernels<double> attention_tile_kernels_for<WAVEMOE_ATTN_ISA, double>() {
  namespace ns = WAVEMOE_ATTN_NS;
  return {ns::kLanes<double>, &ns::gemm<double>, &ns::exp2_sum_f64, &ns::exp2_cols_f64, &ns::round_rows_f64};
}

}  // namespace wavemoe
