// The GEMM micro-kernel, written once over a small vector-traits type and compiled per ISA
// (gemm_generic.cc, gemm_avx2.cc, gemm_avx512.cc), plus the table through which the driver (matmul.cc) reaches it.
//
// A micro-kernel computes one MR×NR tile of C from packed panels (see matmul.cc):
//   a is MR×kc, stored k-major: a[k*MR + i]        (one MR-row panel of op(A))
//   b is kc×NR, stored k-major: b[k*NR + j]        (one NR-column panel of op(B))
//   c[i*ldc + j]  = sum_k a[k*MR+i] * b[k*NR+j]    (add == false)
//   c[i*ldc + j] += sum_k ...                      (add == true)
// Each C element is one chain of fused multiply-adds in k order, whatever the tile position or thread, which is
// what makes the blocked GEMM deterministic.
//
// ODR safety: every function below is a template over the traits type V, and each ISA file defines V in its own
// namespace (wavemoe::isa_avx2, ...). Instantiations therefore have ISA-specific symbol names, so the linker can
// never substitute an AVX-compiled copy into the generic path. Keep it that way: no non-template inline
// functions and no std:: helpers in this header.
#pragma once
#include <cstdint>

#include "gemm_skinny.h"

namespace wavemoe {

// One ISA's micro-kernel for element type T and the cache blocking tuned for it (in elements).
template <typename T> struct GemmKernel {
  const char* isa;
  int mr, nr;          // register tile
  int64_t kc, mc, nc;  // cache blocks: kc×nr B panel in L1, mc×kc A block in L2, kc×nc B block in L3
  void (*micro)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool add);
  void (*skinny[4])(const SkinnyArgs<T>& args);  // skinny GEMM (gemm_skinny.h) with M = index + 1 rows
};

// Each ISA file exports its kernels; a file built without its ISA's compiler flags returns nullptr.
namespace isa_generic {
const GemmKernel<float>* gemm_kernel_f32();
const GemmKernel<double>* gemm_kernel_f64();
}  // namespace isa_generic
namespace isa_avx2 {
const GemmKernel<float>* gemm_kernel_f32();
const GemmKernel<double>* gemm_kernel_f64();
}  // namespace isa_avx2
namespace isa_avx512 {
const GemmKernel<float>* gemm_kernel_f32();
const GemmKernel<double>* gemm_kernel_f64();
}  // namespace isa_avx512

// The vector-traits contract (see the ISA files for the three implementations):
//   using T = float|double; using reg = <vector register type>; static constexpr int width = lanes;
//   static reg zero();  static reg load(const T* p);  (p need not be aligned)  static void store(T* p, reg v);
//   static reg broadcast(const T* p);  static reg fma(reg a, reg b, reg c);  (a*b + c)  static reg add(reg, reg);
//   static void transpose(reg r[width]);  (r[j][i] becomes r[i][j]; transpose_via_memory<V> where no shuffle is written)
template <class V, int MR, int NV>
void gemm_micro_kernel(int64_t kc, const typename V::T* __restrict a, const typename V::T* __restrict b,
                       typename V::T* __restrict c, int64_t ldc, bool add) {
  using reg = typename V::reg;
  constexpr int W = V::width, NR = NV * W;
  // The C tile is read (or written) only after the kc loop: fetch its lines now so that the latency hides under
  // the FMAs (C is often far out of cache: a 50254-row gradient, or many K blocks over a large C).
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    __builtin_prefetch(c + i * ldc, 1);
    __builtin_prefetch(c + i * ldc + NR - 1, 1);
  }
  reg acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    reg bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      reg av = V::broadcast(a + i);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
    }
    a += MR;
    b += NR;
  }

  if (add) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) V::store(c + i * ldc + j * W, V::add(V::load(c + i * ldc + j * W), acc[i][j]));
  } else {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) V::store(c + i * ldc + j * W, acc[i][j]);
  }
}

// Fills a GemmKernel table for traits V with an MR × (NV·width) tile.
// constexpr, so the tables are constant-initialised: no load-time code compiled with AVX flags runs on other CPUs.
template <class V, int MR, int NV>
constexpr GemmKernel<typename V::T> make_gemm_kernel(const char* isa, int64_t kc, int64_t mc, int64_t nc) {
  return {isa, MR, NV * V::width, kc, mc, nc, &gemm_micro_kernel<V, MR, NV>,
          {&skinny<V, 1>, &skinny<V, 2>, &skinny<V, 3>, &skinny<V, 4>}};
}

}  // namespace wavemoe
