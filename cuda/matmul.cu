// Batched GEMM: the own tiled kernel, the cuBLAS path, and the backward pass expressed as GEMMs.
#include "matmul.h"

#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "common.cuh"
#include "cublas_loader.h"
#include "csrc/kernels/matmul_precision.h"

namespace wavemoe {
namespace gpu {
namespace {

// One GEMM problem: C (M, N) [+]= op(X) (M, K) · op(Y) (K, N) for each batch b, all row-major.
// X is (M, K), or (K, M) when tx; Y is (K, N), or (N, K) when ty. reduce_batch: C has one matrix and receives the
// sum over all batches (a broadcast operand's gradient).
template <typename T> struct GemmParams {
  T* C;
  const T* X;
  const T* Y;
  int64_t M, N, K, batch;
  int64_t sx, sy, sc;
  bool tx, ty, accumulate, reduce_batch;
  int round_bits = 23;  // float32 inputs rounded to this many mantissa bits on load (23: exact; 10: TF32; 7: bf16)
};


// ============================================ CUDA kernels ============================================

// Tiled shared-memory GEMM: a block computes a BM x BN tile of C with (BM/TM)·(BN/TN) threads, each TM x TN outputs
// in registers, strided by the thread grid (thread (ty, tx) owns rows ty + i·BM/TM, columns tx + j·BN/TN) so that
// shared-memory reads are conflict-free and C stores are coalesced. K advances BK at a time through shared memory;
// tiles are loaded with the operand's contiguous dimension across consecutive threads (coalesced for either
// transpose) and zero-filled past the edges.
template <typename T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN)) gemm_tiled_kernel(GemmParams<T> p) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  constexpr int kRowThreads = BM / TM, kColThreads = BN / TN;
  __shared__ T Xs[BK][BM + 1];
  __shared__ T Ys[BK][BN + 1];
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads, ty = tid / kColThreads;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int64_t M = p.M, N = p.N, K = p.K;

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  const int64_t b_begin = p.reduce_batch ? 0 : blockIdx.z;
  const int64_t b_end = p.reduce_batch ? p.batch : b_begin + 1;
  for (int64_t b = b_begin; b < b_end; ++b) {
    const T* X = p.X + b * p.sx;
    const T* Y = p.Y + b * p.sy;
    for (int64_t k0 = 0; k0 < K; k0 += BK) {
      for (int i = tid; i < BM * BK; i += kThreads) {
        int mm, kk;
        if (p.tx) { kk = i / BM; mm = i % BM; }  // X stored (K, M): m contiguous
        else      { mm = i / BK; kk = i % BK; }  // X stored (M, K): k contiguous
        const int64_t gm = m0 + mm, gk = k0 + kk;
        T v = T(0);
        if (gm < M && gk < K) v = round_input(p.tx ? X[gk * M + gm] : X[gm * K + gk], p.round_bits);
        Xs[kk][mm] = v;
      }
      for (int i = tid; i < BN * BK; i += kThreads) {
        int nn, kk;
        if (p.ty) { nn = i / BK; kk = i % BK; }  // Y stored (N, K): k contiguous
        else      { kk = i / BN; nn = i % BN; }  // Y stored (K, N): n contiguous
        const int64_t gn = n0 + nn, gk = k0 + kk;
        T v = T(0);
        if (gn < N && gk < K) v = round_input(p.ty ? Y[gn * K + gk] : Y[gk * N + gn], p.round_bits);
        Ys[kk][nn] = v;
      }
      __syncthreads();
      tile_fma<T, BM, BN, BK, TM, TN>(acc, Xs, Ys, tx, ty);
      __syncthreads();
    }
  }

  T* C = p.C + (p.reduce_batch ? 0 : static_cast<int64_t>(blockIdx.z) * p.sc);
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t gm = m0 + ty + i * kRowThreads;
    if (gm >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t gn = n0 + tx + j * kColThreads;
      if (gn >= N) continue;
      T* c = C + gm * N + gn;
      *c = p.accumulate ? *c + acc[i][j] : acc[i][j];
    }
  }
}

// ============================================ kernel launchers ============================================

template <typename T, int BM, int BN, int BK, int TM, int TN> void launch_tiled(const GemmParams<T>& p,
                                                                                 cudaStream_t stream) {
  const int64_t gx = (p.N + BN - 1) / BN, gy = (p.M + BM - 1) / BM, gz = p.reduce_batch ? 1 : p.batch;
  if (gx > std::numeric_limits<int>::max() || gy > 65535 || gz > 65535) {
    throw std::runtime_error("matmul (CUDA): problem too large for one launch (M=" + std::to_string(p.M) +
                             ", N=" + std::to_string(p.N) + ", batch=" + std::to_string(p.batch) + ")");
  }
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(gz));
  gemm_tiled_kernel<T, BM, BN, BK, TM, TN><<<grid, (BM / TM) * (BN / TN), 0, stream>>>(p);
  WAVEMOE_CUDA_CHECK_LAUNCH("gemm_tiled_kernel");
}

// float32: 128x128 tiles (8x8 per thread) when there are enough of them to fill a big GPU, 64x64 (4x4) otherwise.
void gemm_own(const GemmParams<float>& p, cudaStream_t stream) {
  const int64_t big_tiles = ((p.M + 127) / 128) * ((p.N + 127) / 128) * (p.reduce_batch ? 1 : p.batch);
  if (big_tiles >= 128) {
    launch_tiled<float, 128, 128, 8, 8, 8>(p, stream);
  } else {
    launch_tiled<float, 64, 64, 16, 4, 4>(p, stream);
  }
}
void gemm_own(const GemmParams<double>& p, cudaStream_t stream) { launch_tiled<double, 64, 64, 16, 4, 4>(p, stream); }

bool fits_int(int64_t v) { return v >= 0 && v <= std::numeric_limits<int>::max(); }

// Row-major C (M, N) = op(X) op(Y) is column-major Cᵀ (N, M) = op(Y)ᵀ op(X)ᵀ: cuBLAS gets (m, n, k) = (N, M, K),
// Y as its first operand and X as its second. A row-major (r, c) matrix is a column-major (c, r) one with ld = c.
void gemm_cublas(const GemmParams<float>& p, cudaStream_t stream) {
  if (!fits_int(p.M) || !fits_int(p.N) || !fits_int(p.K) || !fits_int(p.batch)) {
    throw std::runtime_error("matmul (cuBLAS): a dimension exceeds INT_MAX");
  }
  const CublasApi& api = cublas_api();
  cublasHandle_t h = cublas_handle(stream);
  const cublasOperation_t op_y = p.ty ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_x = p.tx ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ldy = static_cast<int>(std::max<int64_t>(1, p.ty ? p.K : p.N));
  const int ldx = static_cast<int>(std::max<int64_t>(1, p.tx ? p.M : p.K));
  const int ldc = static_cast<int>(std::max<int64_t>(1, p.N));
  const float one = 1.0f, zero = 0.0f;
  // The matmul precision picks the compute type: exact SGEMM, or the tensor-core TF32 / bf16 down-conversion.
  const MatmulPrecision precision = matmul_precision();
  const bool fast = precision != MatmulPrecision::fp32 && api.gemm_strided_batched_ex != nullptr;
  const cublasComputeType_t compute =
      precision == MatmulPrecision::bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F_FAST_TF32;
  auto call = [&](const float* X, const float* Y, float* C, int batch, const float* beta) {
    const int m = static_cast<int>(p.N), n = static_cast<int>(p.M), k = static_cast<int>(p.K);
    const cublasStatus_t s =
        fast ? api.gemm_strided_batched_ex(h, op_y, op_x, m, n, k, &one, Y, kCudaR32F, ldy, p.sy, X, kCudaR32F, ldx,
                                           p.sx, beta, C, kCudaR32F, ldc, p.sc, batch, compute, kCublasGemmDefault)
             : api.sgemm_strided_batched(h, op_y, op_x, m, n, k, &one, Y, ldy, p.sy, X, ldx, p.sx, beta, C, ldc,
                                         p.sc, batch);
    if (s != CUBLAS_STATUS_SUCCESS) {
      throw std::runtime_error(std::string(fast ? "cublasGemmStridedBatchedEx" : "cublasSgemmStridedBatched") +
                               " failed: " + cublas_status_string(s));
    }
  };
  if (!p.reduce_batch) {
    call(p.X, p.Y, p.C, static_cast<int>(p.batch), p.accumulate ? &one : &zero);
  } else {
    // A broadcast gradient that could not be folded into one GEMM: one call per batch, adding up (queued, no sync).
    for (int64_t b = 0; b < p.batch; ++b) {
      call(p.X + b * p.sx, p.Y + b * p.sy, p.C, 1, (p.accumulate || b > 0) ? &one : &zero);
    }
  }
}

template <typename T> void gemm(GemmParams<T> p, cudaStream_t stream, MatmulBackend backend) {
  if (p.M <= 0 || p.N <= 0 || p.batch <= 0) return;
  if (p.batch == 1) p.reduce_batch = false;
  // Σ_b op(X_b) op(Y_b) with X_b stored (K, M) and Y_b stored (K, N), both contiguous over the batch, is one GEMM
  // over the stacked batch: K' = batch·K (the common case: a shared weight's gradient).
  if (p.reduce_batch && p.tx && !p.ty && p.sx == p.K * p.M && p.sy == p.K * p.N) {
    p.K *= p.batch;
    p.batch = 1;
    p.reduce_batch = false;
  }
  bool use_cublas = false;
  if constexpr (std::is_same<T, float>::value) {
    const MatmulPrecision precision = matmul_precision();
    p.round_bits = matmul_round_bits();
    use_cublas = backend == MatmulBackend::cublas || (backend == MatmulBackend::automatic && cublas_loaded());
    // bf16 needs cublasGemmStridedBatchedEx (tf32 also works through the math mode): else the own kernel emulates it.
    if (use_cublas && precision == MatmulPrecision::bf16 && cublas_api().gemm_strided_batched_ex == nullptr &&
        backend == MatmulBackend::automatic) {
      use_cublas = false;
    }
    if (use_cublas) gemm_cublas(p, stream);
  } else {
    if (backend == MatmulBackend::cublas) throw std::runtime_error("matmul (cuBLAS): float64 is not supported");
  }
  if (!use_cublas) gemm_own(p, stream);
}

}  // namespace

int matmul_round_bits() { return mantissa_bits(matmul_precision()); }

bool tensor_cores_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("WAVEMOE_CUDA_TENSOR_CORES");
    return v == nullptr || std::string(v) != "0";
  }();
  return enabled;
}

int tensor_core_bits(int round_bits, bool is_float32) {
  if (!is_float32 || !tensor_cores_enabled()) return 0;
  return round_bits == 7 || round_bits == 10 ? round_bits : 0;
}

template <typename T>
void matmul_forward(T* C, const T* A, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool accumulate,
                    cudaStream_t stream, MatmulBackend backend) {
  gemm(GemmParams<T>{C, A, B, M, N, K, batch, stride_a, stride_b, stride_c, trans_a, trans_b, accumulate, false},
       stream, backend);
}

// With op(A) (M, K), op(B) (K, N), dC (M, N):
//   dA, A not transposed (M, K): dC · op(B)ᵀ;        A transposed (K, M): op(B) · dCᵀ
//   dB, B not transposed (K, N): op(A)ᵀ · dC;        B transposed (N, K): dCᵀ · op(A)
// each added (+=) into the gradient, summed over the batch where the operand is broadcast (stride 0).
template <typename T>
void matmul_backward(T* dA, T* dB, const T* dC, const T* A, const T* B, int64_t batch, int64_t M, int64_t N,
                     int64_t K, bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                     cudaStream_t stream, MatmulBackend backend) {
  if (dA) {
    const bool reduce = stride_a == 0;
    if (!trans_a) {
      gemm(GemmParams<T>{dA, dC, B, M, K, N, batch, stride_c, stride_b, stride_a, false, !trans_b, true, reduce},
           stream, backend);
    } else {
      gemm(GemmParams<T>{dA, B, dC, K, M, N, batch, stride_b, stride_c, stride_a, trans_b, true, true, reduce},
           stream, backend);
    }
  }
  if (dB) {
    const bool reduce = stride_b == 0;
    if (!trans_b) {
      gemm(GemmParams<T>{dB, A, dC, K, N, M, batch, stride_a, stride_c, stride_b, !trans_a, false, true, reduce},
           stream, backend);
    } else {
      gemm(GemmParams<T>{dB, dC, A, N, K, M, batch, stride_c, stride_a, stride_b, true, trans_a, true, reduce},
           stream, backend);
    }
  }
}

#define WAVEMOE_INSTANTIATE(T)                                                                                    \
  template void matmul_forward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool, bool, int64_t, \
                                  int64_t, int64_t, bool, cudaStream_t, MatmulBackend);                           \
  template void matmul_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool, \
                                   bool, int64_t, int64_t, int64_t, cudaStream_t, MatmulBackend);
WAVEMOE_INSTANTIATE(float)
WAVEMOE_INSTANTIATE(double)
#undef WAVEMOE_INSTANTIATE

}  // namespace gpu
}  // namespace wavemoe
