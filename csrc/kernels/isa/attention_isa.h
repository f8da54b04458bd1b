// The attention kernels' hot micro-kernels, one table per instruction set. attention_tile.h holds the single
// template; attention_{generic,avx2,avx512}.cc compile it with their own flags, and attention.cc picks a table from
// current_isa() once per call.
#pragma once
#include <cstdint>

#include "../../core/cpu_features.h"

namespace wavemoe {

// Buffers padded for these kernels have row lengths that are multiples of kAttentionPad elements, a multiple of
// every ISA's vector width (16 floats = one AVX-512 vector). Column counts passed to the kernels (N, n below) need
// only be multiples of `lanes`, the vector width of the ISA in use.
constexpr int64_t kAttentionPad = 16;

template <typename T> struct AttentionTileKernels {
  int64_t lanes;  // elements per vector
  // c (M x N, row stride ldc) = [c +] a · b. a(i, k) = a[i*a_rs + k*a_cs] (any strides: a is only broadcast);
  // row k of b is b[k*ldb .. k*ldb + N).
  void (*gemm)(T* c, int64_t ldc, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t ldb, int64_t M,
               int64_t N, int64_t K, bool accumulate);
  // x[j] = 2^(x[j] - m) for j < n (-inf gives 0), returns the sum.
  T (*exp2_sum)(T* x, int64_t n, T m);
  // x is (rows, ld): x[r][i] = 2^(x[r][i] - m[i]) for i < n (-inf gives 0); colsum[i] += the column's sum unless
  // colsum is null.
  void (*exp2_cols)(T* x, int64_t rows, int64_t ld, int64_t n, const T* m, T* colsum);
  // dst[r*ldd + i] = src[r*lds + i] rounded to `bits` mantissa bits (round_mantissa in matmul_precision.h; bits < 23)
  // for r < rows, i < n (any n: nothing past it is read or written); dst may be src. float64 is copied unchanged.
  void (*round_rows)(T* dst, int64_t ldd, const T* src, int64_t lds, int64_t rows, int64_t n, int bits);
};

// Defined by attention_<isa>.cc for its own ISA.
template <Isa I, typename T> AttentionTileKernels<T> attention_tile_kernels_for();

}  // namespace wavemoe
