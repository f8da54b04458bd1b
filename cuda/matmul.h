// Batched matrix multiply on the GPU, forward and backward: the contract of csrc/kernels/matmul.h (row-major,
// transposes, batch strides in elements, stride 0 broadcasts, backward ADDS (+=) into dA and dB), plus the stream.
//
// Two implementations behind one call:
//  - cuBLAS (float32 only), when cuBLAS was loaded at run time (cublas_loader.h): cublasSgemmStridedBatched on the
//    column-major view of the row-major matrices (C = A·B row-major is Cᵀ = Bᵀ·Aᵀ column-major, so the operands are
//    passed swapped). FP32 math unless set_allow_tf32(true).
//  - the project's own tiled shared-memory kernel (float32 and float64): correct everywhere, slower. Each C element
//    is one chain of multiply-adds in k order, so its result is deterministic.
// MatmulBackend::automatic picks cuBLAS for float32 when it is loaded, the own kernel otherwise.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

enum class MatmulBackend { automatic, own, cublas };

// C[b] = op(A[b]) · op(B[b])  (C[b] += ... when accumulate). See csrc/kernels/matmul.h for shapes and strides.
template <typename T>
void matmul_forward(T* C, const T* A, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool accumulate,
                    cudaStream_t stream, MatmulBackend backend = MatmulBackend::automatic);

// dA += dC · op(B)ᵀ (laid out like A), dB += op(A)ᵀ · dC (laid out like B); either may be null. A broadcast operand
// (stride 0) receives the sum of its gradient over the batch (one GEMM over the stacked batch when the other two
// operands are contiguous, else a reduction over the batch inside the kernel / successive cuBLAS calls).
template <typename T>
void matmul_backward(T* dA, T* dB, const T* dC, const T* A, const T* B, int64_t batch, int64_t M, int64_t N,
                     int64_t K, bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                     cudaStream_t stream, MatmulBackend backend = MatmulBackend::automatic);

}  // namespace gpu
}  // namespace wavemoe
