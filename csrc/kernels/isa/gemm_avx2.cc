// AVX2 + FMA GEMM micro-kernels (this file is compiled with -mavx2 -mfma). 16 ymm registers: a 6×2 tile of
// vectors keeps 12 accumulators, 2 B vectors and one broadcast live, so each k step is 12 FMAs for 8 loads.
// Blocking for 32 KiB L1d / 512 KiB L2 per core: a 256×16 float B panel is 16 KiB, a 144×256 float A block 144 KiB.
#include "gemm_microkernel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace wavemoe {
namespace isa_avx2 {
namespace {

struct VecF32 {
  using T = float;
  using reg = __m256;
  static constexpr int width = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg broadcast(const T* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static void transpose(reg* r) {  // 8×8: unpack pairs, shuffle quads, swap 128-bit halves
    const reg t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const reg t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const reg t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const reg t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const reg s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const reg s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const reg s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const reg s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
  }
};

struct VecF64 {
  using T = double;
  using reg = __m256d;
  static constexpr int width = 4;
  static reg zero() { return _mm256_setzero_pd(); }
  static reg load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, reg v) { _mm256_storeu_pd(p, v); }
  static reg broadcast(const T* p) { return _mm256_broadcast_sd(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static void transpose(reg* r) {  // 4×4
    const reg t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const reg t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
  }
};

constexpr GemmKernel<float> kF32 = make_gemm_kernel<VecF32, 6, 2>("avx2", 256, 144, 4080);
constexpr GemmKernel<double> kF64 = make_gemm_kernel<VecF64, 6, 2>("avx2", 256, 72, 2040);

}  // namespace

const GemmKernel<float>* gemm_kernel_f32() { return &kF32; }
const GemmKernel<double>* gemm_kernel_f64() { return &kF64; }

}  // namespace isa_avx2
}  // namespace wavemoe

#else  // built without AVX2 flags (another architecture): the driver falls back to the generic kernels

namespace wavemoe {
namespace isa_avx2 {
const GemmKernel<float>* gemm_kernel_f32() { return nullptr; }
const GemmKernel<double>* gemm_kernel_f64() { return nullptr; }
}  // namespace isa_avx2
}  // namespace wavemoe

#endif
