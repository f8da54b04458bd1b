// The precision of float32 matrix products, process-wide (as torch.set_float32_matmul_precision):
//   fp32  inputs used as they are (the default)
//   tf32  inputs rounded to TensorFloat-32 (10 mantissa bits), products summed in float32
//   bf16  inputs rounded to bfloat16 (7 mantissa bits), products summed in float32
// Outputs and accumulation stay float32, and so do the weights (the master copy): only what enters a product is
// rounded. On a GPU the reduced precisions are cuBLAS's tensor-core paths (CUBLAS_COMPUTE_32F_FAST_TF32 / _16BF);
// on the CPU they are emulated (the inputs rounded, then the float32 GEMM), which gives the same numbers up to the
// order of the sums, so a bf16 run's loss curve can be measured anywhere. float64 products are never rounded.
#pragma once
#include <cstdint>
#include <cstring>

namespace wavemoe {

enum class MatmulPrecision : int { fp32 = 0, tf32 = 1, bf16 = 2 };

void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
const char* matmul_precision_name(MatmulPrecision p);

// The mantissa bits a product's float32 input keeps under precision p: 7 (bf16), 10 (tf32), 23 (fp32: all of them).
// cuda/common.cuh's matmul_round_bits() is this for the process-wide precision.
inline int mantissa_bits(MatmulPrecision p) {
  return p == MatmulPrecision::bf16 ? 7 : p == MatmulPrecision::tf32 ? 10 : 23;
}

// Round to nearest, ties to even, keeping `bits` mantissa bits (7: bfloat16, 10: TF32; 23 or more: x unchanged).
// NaN stays NaN; values past the largest finite one round to ±Infinity, as a conversion does.
inline float round_mantissa(float x, int bits) {
  if (bits >= 23) return x;
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // Inf and NaN unchanged
  const int drop = 23 - bits;
  const uint32_t half = (1u << (drop - 1)) - 1u;
  u += half + ((u >> drop) & 1u);
  u &= ~((1u << drop) - 1u);
  float r;
  std::memcpy(&r, &u, sizeof r);
  return r;
}
inline double round_mantissa(double x, int) { return x; }  // float64 products are never rounded
inline float round_to_bf16(float x) { return round_mantissa(x, 7); }
inline float round_to_tf32(float x) { return round_mantissa(x, 10); }

}  // namespace wavemoe
