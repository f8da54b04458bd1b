// Shared device helpers of the CUDA kernels: launch sizes, grid-stride loops, warp and block reductions.
// Internal to cuda/*.cu (not part of the public headers).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cmath>

#include "check.h"

namespace wavemoe {
namespace gpu {

constexpr int kElementwiseThreads = 256;

// Blocks for a grid-stride loop over n items: enough to fill the GPU, capped (each thread then loops).
inline unsigned int grid_for(int64_t n, int threads = kElementwiseThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65536)));
}

// for (int64_t i : grid_stride(n)) ... is spelled out in each kernel as
//   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
#define WAVEMOE_GRID_STRIDE(i, n)                                                        \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// Records that element `index` of an index tensor holds `value`, out of range, in a run's check word (`bad`; null:
// the caller checked the indices on the host). The word keeps the smallest such index whatever the thread order
// (encoding: csrc/core/device_run.h); the kernel then reads nothing out of bounds and writes NaN instead.
__device__ __forceinline__ void report_bad_index(unsigned long long* bad, int64_t index, int32_t value) {
  if (bad == nullptr) return;
  const unsigned long long word =
      (static_cast<unsigned long long>(0xFFFFFFFFu - static_cast<uint32_t>(index)) << 32) | static_cast<uint32_t>(value);
  atomicMax(bad, word);
}

// A matmul input rounded to nearest even at `bits` mantissa bits (csrc/kernels/matmul_precision.h on the device):
// 23 leaves float32 alone, 10 is TF32, 7 is bfloat16; float64 is never rounded.
__device__ __forceinline__ float round_input(float x, int bits) {
  if (bits >= 23) return x;
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // Inf, NaN
  const int drop = 23 - bits;
  u += ((1u << (drop - 1)) - 1u) + ((u >> drop) & 1u);
  return __uint_as_float(u & ~((1u << drop) - 1u));
}
__device__ __forceinline__ double round_input(double x, int) { return x; }

// One BK-deep step of a register-tiled GEMM from shared memory (cuda/matmul.cu, cuda/moe.cu): thread (ty, tx) of the
// (BM/TM) x (BN/TN) grid adds Xs[:, ty + i·BM/TM] ⊗ Ys[:, tx + j·BN/TN] into its TM x TN accumulators, k in order.
template <typename T, int BM, int BN, int BK, int TM, int TN>
__device__ __forceinline__ void tile_fma(T (&acc)[TM][TN], const T (&Xs)[BK][BM + 1], const T (&Ys)[BK][BN + 1],
                                         int tx, int ty) {
  constexpr int kRowThreads = BM / TM, kColThreads = BN / TN;
#pragma unroll
  for (int kk = 0; kk < BK; ++kk) {
    T xf[TM], yf[TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) xf[i] = Xs[kk][ty + i * kRowThreads];
#pragma unroll
    for (int j = 0; j < TN; ++j) yf[j] = Ys[kk][tx + j * kColThreads];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = fma(xf[i], yf[j], acc[i][j]);
  }
}

// The mantissa bits of the process-wide matmul precision (host side).
int matmul_round_bits();

// Whether the own kernels (attention, the MoE grouped GEMMs) may use tensor cores (WMMA) for float32 data under a
// reduced matmul precision (bf16: 7 mantissa bits, tf32: 10). On unless WAVEMOE_CUDA_TENSOR_CORES=0 (read once), so
// that a GPU session can compare the tensor-core path with the CUDA-core path it replaces. Host side.
bool tensor_cores_enabled();
// The WMMA input type for `round_bits` when tensor cores are enabled and the data is float32: 7 -> bf16, 10 -> tf32;
// 0: use the CUDA-core path (fp32, float64, or tensor cores disabled).
int tensor_core_bits(int round_bits, bool is_float32);

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T> __device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const T o = __shfl_xor_sync(0xffffffffu, v, offset);
    v = o > v ? o : v;
  }
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. `shared` holds 32
// values. A fixed tree: deterministic for a given blockDim. Ends with a barrier, so `shared` may be reused.
template <typename T> __device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = lane < warps ? shared[lane] : T(0);
  total = warp_sum(total);
  __syncthreads();
  return total;
}

template <typename T> __device__ T block_max(T v, T* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T m = lane < warps ? shared[lane] : T(-INFINITY);
  m = warp_max(m);
  __syncthreads();
  return m;
}

// Deterministic column sums of an (N, C) array given as a functor value(n, c): out[c] += Σ_n value(n, c).
// Pass 1: grid (ceil(C/256), chunks): each thread sums one column over a fixed chunk of rows (in double) into
// partial[chunk][c]; pass 2 adds the chunks in order. Launched by column_sum_add() in reduce.cuh users.
constexpr int kColumnThreads = 256;
constexpr int kColumnChunks = 64;  // row chunks; fixed, so the result does not depend on the GPU

template <typename F>
__global__ void __launch_bounds__(kColumnThreads) column_partial_kernel(double* partial, F value, int64_t N,
                                                                         int64_t C, int64_t rows_per_chunk) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (c >= C) return;
  const int64_t begin = chunk * rows_per_chunk, end = begin + rows_per_chunk < N ? begin + rows_per_chunk : N;
  double acc = 0.0;
  for (int64_t n = begin; n < end; ++n) acc += static_cast<double>(value(n, c));
  partial[chunk * C + c] = acc;
}

template <typename T>
__global__ void __launch_bounds__(kColumnThreads) column_finish_kernel(T* out, const double* partial, int64_t chunks,
                                                                        int64_t C) {
  WAVEMOE_GRID_STRIDE(c, C) {
    double acc = 0.0;
    for (int64_t k = 0; k < chunks; ++k) acc += partial[k * C + c];
    out[c] += static_cast<T>(acc);
  }
}

}  // namespace gpu
}  // namespace wavemoe

#include "allocator.h"

namespace wavemoe {
namespace gpu {

// out[c] += Σ_n value(n, c) for c < C, deterministically (fixed row chunks, summed in chunk order, in double).
// value is a device functor (n, c) -> T. Scratch comes from the caching allocator.
template <typename T, typename F>
void column_sum_add(T* out, F value, int64_t N, int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  const int64_t rows_per_chunk = (N + kColumnChunks - 1) / kColumnChunks;
  const int64_t chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  DeviceBuffer<double> partial(static_cast<size_t>(chunks * C));
  const dim3 grid(static_cast<unsigned int>((C + kColumnThreads - 1) / kColumnThreads),
                  static_cast<unsigned int>(chunks));
  column_partial_kernel<<<grid, kColumnThreads, 0, stream>>>(partial.get(), value, N, C, rows_per_chunk);
  WAVEMOE_CUDA_CHECK_LAUNCH("column_partial_kernel");
  column_finish_kernel<<<grid_for(C, kColumnThreads), kColumnThreads, 0, stream>>>(out, partial.get(), chunks, C);
  WAVEMOE_CUDA_CHECK_LAUNCH("column_finish_kernel");
}

}  // namespace gpu
}  // namespace wavemoe
