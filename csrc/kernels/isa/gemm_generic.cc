// Portable GEMM micro-kernels: GCC/Clang vector extensions of 16 bytes (SSE2 on baseline x86-64, NEON on arm64).
// Without an FMA instruction, fma() is a multiply then an add.
#include "gemm_microkernel.h"

namespace wavemoe {
namespace isa_generic {
namespace {

template <typename E> struct Vec16 {
  using T = E;
  typedef E reg __attribute__((vector_size(16), aligned(16)));
  static constexpr int width = 16 / sizeof(E);
  static reg zero() { return reg{}; }
  static reg load(const T* p) {
    reg v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
  }
  static void store(T* p, reg v) { __builtin_memcpy(p, &v, sizeof(v)); }
  static reg broadcast(const T* p) { return reg{} + *p; }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg add(reg a, reg b) { return a + b; }
  static void transpose(reg* r) { transpose_via_memory<Vec16>(r); }
};

// 16 vector registers: a 6×2 tile of vectors keeps 12 accumulators, 2 B vectors and a broadcast live.
constexpr GemmKernel<float> kF32 = make_gemm_kernel<Vec16<float>, 6, 2>("generic", 256, 96, 2048);
constexpr GemmKernel<double> kF64 = make_gemm_kernel<Vec16<double>, 6, 2>("generic", 256, 48, 2048);

}  // namespace

const GemmKernel<float>* gemm_kernel_f32() { return &kF32; }
const GemmKernel<double>* gemm_kernel_f64() { return &kF64; }

}  // namespace isa_generic
}  // namespace wavemoe
