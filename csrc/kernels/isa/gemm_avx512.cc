// AVX-512 GEMM micro-kernels (this file is compiled with -mavx512f ...). 32 zmm registers: a 12×2 tile of
// vectors keeps 24 accumulators, 2 B vectors and one broadcast live (float 12×32, double 12×16).
// Blocking: a 256×32 float B panel is 32 KiB (L1d is 32-48 KiB on AVX-512 parts), a 192×256 A block 192 KiB of L2.
#include "gemm_microkernel.h"

#if defined(__AVX512F__)
#include <immintrin.h>

namespace wavemoe {
namespace isa_avx512 {
namespace {

struct VecF32 {
  using T = float;
  using reg = __m512;
  static constexpr int width = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg broadcast(const T* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static void transpose(reg* r) { transpose_via_memory<VecF32>(r); }
};

struct VecF64 {
  using T = double;
  using reg = __m512d;
  static constexpr int width = 8;
  static reg zero() { return _mm512_setzero_pd(); }
  static reg load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, reg v) { _mm512_storeu_pd(p, v); }
  static reg broadcast(const T* p) { return _mm512_set1_pd(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static void transpose(reg* r) { transpose_via_memory<VecF64>(r); }
};

constexpr GemmKernel<float> kF32 = make_gemm_kernel<VecF32, 12, 2>("avx512", 256, 192, 4096);
constexpr GemmKernel<double> kF64 = make_gemm_kernel<VecF64, 12, 2>("avx512", 256, 96, 2048);

}  // namespace

const GemmKernel<float>* gemm_kernel_f32() { return &kF32; }
const GemmKernel<double>* gemm_kernel_f64() { return &kF64; }

}  // namespace isa_avx512
}  // namespace wavemoe

#else  // built without AVX-512 flags (another architecture): the driver falls back to the generic kernels

namespace wavemoe {
namespace isa_avx512 {
const GemmKernel<float>* gemm_kernel_f32() { return nullptr; }
const GemmKernel<double>* gemm_kernel_f64() { return nullptr; }
}  // namespace isa_avx512
}  // namespace wavemoe

#endif
