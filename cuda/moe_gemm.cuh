// The MoE grouped GEMMs' parameters and tile lookup, shared by the CUDA-core kernels (moe.cu) and the tensor-core
// kernels (moe_gemm_tc.cuh). Internal to cuda/moe.cu. Plain device code, so that a host harness can include it.
#pragma once
#include <cstdint>

namespace wavemoe {
namespace gpu {

// C (expert e's rows) = X (R, K) · op(Y_e) [+ bias_e] (C += when accumulate). Y_e = Y + e·y_stride is (N, K) when
// kTransY (C = X·Y_eᵀ: the forward's xp·w1ᵀ), (K, N) otherwise (the backward's dy·w2). C is (R, N).
template <typename T> struct RowGemm {
  T* C;
  const T* X;
  const T* Y;
  const T* bias;  // (E, N) or null
  const int32_t* offsets;
  int64_t E, N, K, y_stride;
  bool accumulate;
  int round_bits = 23;  // the matmul precision (common.cuh round_input)
};

// dW_e (M, N) += Σ over expert e's rows r of X[r, :]ᵀ · Y[r, :], X (R, M), Y (R, N), dW (E, M, N).
template <typename T> struct WeightGradGemm {
  T* C;
  const T* X;
  const T* Y;
  const int32_t* offsets;
  int64_t M, N;
  int round_bits = 23;
};

// Row tile `tile` counted over the experts in order (expert e has ceil(rows_e / BM) tiles): its expert, its first
// row and the expert's end row. False past the last tile. Depends on blockIdx only: uniform over the block.
__device__ __forceinline__ bool find_row_tile(const int32_t* offsets, int64_t E, int64_t tile, int BM,
                                              int64_t* expert, int64_t* row0, int64_t* row_end) {
  for (int64_t e = 0; e < E; ++e) {
    const int64_t begin = offsets[e], end = offsets[e + 1];
    const int64_t tiles = (end - begin + BM - 1) / BM;
    if (tile < tiles) {
      *expert = e;
      *row0 = begin + tile * BM;
      *row_end = end;
      return true;
    }
    tile -= tiles;
  }
  return false;
}

}  // namespace gpu
}  // namespace wavemoe
