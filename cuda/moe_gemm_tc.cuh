// Tensor-core (WMMA) versions of the MoE grouped GEMMs for float32 data under the bf16 / tf32 matmul precision:
// the same RowGemm / WeightGradGemm contract and tile lookup as moe.cu's CUDA-core kernels. Internal to moe.cu.
//
// Inputs stay float32 in memory and are rounded as they enter shared memory: bf16 by __float2bfloat16_rn (nearest
// even, as round_input(x, 7)); tf32 by round_input(x, 10) (nearest even) before __float_to_tf32, which rounds ties
// away from zero and so leaves the pre-rounded value alone: the products' inputs are exactly the CPU's
// (csrc/kernels/moe.cc). Products are summed in float32 fragments; K is walked in order and each output belongs to
// one warp of one block, so results are bit-identical run to run (no atomics).
//
// Block tile BM x BN, BK = 32, WM x WN warps, each warp (BM/WM) x (BN/WN) of 16 x 16 fragments. Shared tiles keep
// the global layout's contiguous dimension contiguous (coalesced, 16-byte loads where aligned), padded by 16 bytes
// per row (WMMA's ldm rule; staggers the banks), zero-filled past every edge. C leaves through a per-warp 16 x 16
// float staging tile that reuses the operand memory, with guarded writes.
//
// Kept free of host-only code so that a host harness (plain C++ with a WMMA shim) can include it: the includes
// below are skipped when WAVEMOE_WMMA_EMULATION is defined.
#pragma once
#ifndef WAVEMOE_WMMA_EMULATION
#include <cuda_bf16.h>
#include <mma.h>

#include "common.cuh"
#endif
#include <cstdint>
#include <type_traits>

#include "moe_gemm.cuh"

namespace wavemoe {
namespace gpu {
namespace tc {

namespace wmma = nvcuda::wmma;

constexpr int kBK = 32;

// What a precision (mantissa bits) puts in shared memory and feeds the MMA.
template <int Bits> struct Precision;
template <> struct Precision<7> {
  using Smem = __nv_bfloat16;
  using Input = __nv_bfloat16;
  static constexpr int kK = 16;    // m16n16k16
  static constexpr int kPad = 8;   // elements: ldm a multiple of 8 (16 bytes)
  static __device__ __forceinline__ Smem convert(float x) { return __float2bfloat16_rn(x); }
  template <typename Frag> static __device__ __forceinline__ void finish(Frag&) {}
};
template <> struct Precision<10> {
  using Smem = float;
  using Input = wmma::precision::tf32;
  static constexpr int kK = 8;     // m16n16k8
  static constexpr int kPad = 4;   // ldm a multiple of 4
  static __device__ __forceinline__ Smem convert(float x) { return round_input(x, 10); }
  template <typename Frag> static __device__ __forceinline__ void finish(Frag& f) {
#pragma unroll
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = wmma::__float_to_tf32(f.x[i]);
  }
};

// Shared tile s[kOuter][kInner + kPad] (converted) from global src[o·ld + i], o < outer_n, i < inner_n; zero
// elsewhere. kInner is a multiple of 4; vec (uniform): src and ld allow 16-byte loads of 4 inner elements.
template <typename P, int kOuter, int kInner, int kThreads>
__device__ __forceinline__ void load_tile(typename P::Smem* s, const float* src, int64_t ld, int64_t outer_n,
                                          int64_t inner_n, bool vec) {
  constexpr int kLd = kInner + P::kPad, kQuads = kInner / 4;
  static_assert(kInner % 4 == 0, "tile width");
  for (int q = threadIdx.x; q < kOuter * kQuads; q += kThreads) {
    const int o = q / kQuads, i = (q % kQuads) * 4;
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    if (o < outer_n) {
      const float* g = src + o * ld + i;
      if (vec && i + 4 <= inner_n) {
        const float4 f = *reinterpret_cast<const float4*>(g);
        v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] = i + j < inner_n ? g[j] : 0.f;
      }
    }
    typename P::Smem* d = s + o * kLd + i;
#pragma unroll
    for (int j = 0; j < 4; ++j) d[j] = P::convert(v[j]);
  }
}

__device__ __forceinline__ bool aligned16(const float* p, int64_t ld) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0 && ld % 4 == 0;
}

// Shared memory of one block: the A and B tiles, later the warps' C staging tiles.
template <typename P, int kASize, int kBSize, int kWarps> struct Smem {
  static constexpr int kCLd = 16 + 4;
  static constexpr int kOperandBytes = (kASize + kBSize) * static_cast<int>(sizeof(typename P::Smem));
  static constexpr int kStageBytes = kWarps * 16 * kCLd * 4;
  static constexpr int kBytes = kOperandBytes > kStageBytes ? kOperandBytes : kStageBytes;
  // load/store_matrix_sync want 32-byte aligned fragment pointers: every offset used is a multiple of 32 bytes.
  static_assert((kASize * sizeof(typename P::Smem)) % 32 == 0, "B tile alignment");
};

// acc[i][j] (warp (wm, wn)'s fragments) out through the warp's staging tile: rows < m_lim and columns < n_lim of
// the block tile are passed to out(row, col, value) (row, col within the block tile).
template <int kFM, int kFN, int kCLd, typename Acc, typename Out>
__device__ __forceinline__ void store_tile(Acc (&acc)[kFM][kFN], float* stage, int row0, int col0, int64_t m_lim,
                                           int64_t n_lim, Out out) {
  const int lane = threadIdx.x % 32;
  const int r = lane / 2, c0 = (lane % 2) * 8;
#pragma unroll
  for (int i = 0; i < kFM; ++i) {
#pragma unroll
    for (int j = 0; j < kFN; ++j) {
      wmma::store_matrix_sync(stage, acc[i][j], kCLd, wmma::mem_row_major);
      __syncwarp();
      const int row = row0 + i * 16 + r;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int col = col0 + j * 16 + c0 + c;
        if (row < m_lim && col < n_lim) out(row, col, stage[r * kCLd + c0 + c]);
      }
      __syncwarp();
    }
  }
}

// RowGemm on tensor cores. Grid and tile lookup as moe_row_gemm_kernel: x = row tiles over all experts (surplus
// blocks exit at once), y = column tiles.
template <int Bits, bool kTransY, int BM, int BN, int WM, int WN>
__global__ void __launch_bounds__(WM * WN * 32) moe_row_gemm_tc_kernel(RowGemm<float> p) {
  using P = Precision<Bits>;
  using S = typename P::Smem;
  constexpr int kThreads = WM * WN * 32, kFM = BM / WM / 16, kFN = BN / WN / 16;
  static_assert(kFM * WM * 16 == BM && kFN * WN * 16 == BN, "warp tiling");
  constexpr int kALd = kBK + P::kPad;                        // As[m][k]: row-major A
  constexpr int kBLd = kTransY ? kBK + P::kPad : BN + P::kPad;  // Bs[n][k]: col-major B; Bs[k][n]: row-major B
  constexpr int kASize = BM * kALd, kBSize = kTransY ? BN * kBLd : kBK * kBLd;
  using Layout = Smem<P, kASize, kBSize, WM * WN>;
  using BLayout = typename std::conditional<kTransY, wmma::col_major, wmma::row_major>::type;
  __shared__ __align__(128) unsigned char smem[Layout::kBytes];
  S* As = reinterpret_cast<S*>(smem);
  S* Bs = As + kASize;

  int64_t e = 0, m0 = 0, m_end = 0;
  if (!find_row_tile(p.offsets, p.E, blockIdx.x, BM, &e, &m0, &m_end)) return;  // the whole block, before a barrier
  const int warp = threadIdx.x / 32, wm = warp / WN, wn = warp % WN;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int64_t N = p.N, K = p.K;
  const float* X = p.X + m0 * K;
  const float* Y = p.Y + e * p.y_stride;
  const bool vec_x = aligned16(p.X, K), vec_y = aligned16(Y, kTransY ? K : N);

  wmma::fragment<wmma::accumulator, 16, 16, P::kK, float> acc[kFM][kFN];
#pragma unroll
  for (int i = 0; i < kFM; ++i)
#pragma unroll
    for (int j = 0; j < kFN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    load_tile<P, BM, kBK, kThreads>(As, X + k0, K, m_end - m0, K - k0, vec_x);
    if (kTransY) {
      load_tile<P, BN, kBK, kThreads>(Bs, Y + n0 * K + k0, K, N - n0, K - k0, vec_y);
    } else {
      load_tile<P, kBK, BN, kThreads>(Bs, Y + k0 * N + n0, N, K - k0, N - n0, vec_y);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; kk += P::kK) {
      wmma::fragment<wmma::matrix_a, 16, 16, P::kK, typename P::Input, wmma::row_major> a[kFM];
      wmma::fragment<wmma::matrix_b, 16, 16, P::kK, typename P::Input, BLayout> b[kFN];
#pragma unroll
      for (int i = 0; i < kFM; ++i) {
        wmma::load_matrix_sync(a[i], As + (wm * kFM + i) * 16 * kALd + kk, kALd);
        P::finish(a[i]);
      }
#pragma unroll
      for (int j = 0; j < kFN; ++j) {
        const int n = (wn * kFN + j) * 16;
        wmma::load_matrix_sync(b[j], kTransY ? Bs + n * kBLd + kk : Bs + kk * kBLd + n, kBLd);
        P::finish(b[j]);
      }
#pragma unroll
      for (int i = 0; i < kFM; ++i)
#pragma unroll
        for (int j = 0; j < kFN; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // before the next tiles (or the staging tiles) overwrite these
  }

  const float* bias = p.bias ? p.bias + e * N : nullptr;
  float* C = p.C + m0 * N + n0;
  const bool accumulate = p.accumulate;
  float* stage = reinterpret_cast<float*>(smem) + warp * 16 * Layout::kCLd;
  store_tile<kFM, kFN, Layout::kCLd>(acc, stage, wm * kFM * 16, wn * kFN * 16, m_end - m0, N - n0,
                                     [&](int r, int c, float v) {
                                       if (bias) v += bias[n0 + c];  // added to the rounded product, as on the CPU
                                       float* out = C + r * N + c;
                                       *out = accumulate ? *out + v : v;
                                     });
}

// WeightGradGemm on tensor cores: one block per (column tile, row tile, expert), as moe_weight_grad_kernel, K = that
// expert's rows in order. A = X_eᵀ is stored m-contiguous (col-major tile), B = Y_e n-contiguous (row-major).
template <int Bits, int BM, int BN, int WM, int WN>
__global__ void __launch_bounds__(WM * WN * 32) moe_weight_grad_tc_kernel(WeightGradGemm<float> p) {
  using P = Precision<Bits>;
  using S = typename P::Smem;
  constexpr int kThreads = WM * WN * 32, kFM = BM / WM / 16, kFN = BN / WN / 16;
  static_assert(kFM * WM * 16 == BM && kFN * WN * 16 == BN, "warp tiling");
  constexpr int kALd = BM + P::kPad;  // As[k][m]: col-major A
  constexpr int kBLd = BN + P::kPad;  // Bs[k][n]: row-major B
  constexpr int kASize = kBK * kALd, kBSize = kBK * kBLd;
  using Layout = Smem<P, kASize, kBSize, WM * WN>;
  __shared__ __align__(128) unsigned char smem[Layout::kBytes];
  S* As = reinterpret_cast<S*>(smem);
  S* Bs = As + kASize;

  const int64_t e = blockIdx.z;
  const int64_t r_begin = p.offsets[e], r_end = p.offsets[e + 1];
  if (r_begin >= r_end) return;  // no rows: the gradient is left alone, as on the CPU (uniform over the block)
  const int warp = threadIdx.x / 32, wm = warp / WN, wn = warp % WN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int64_t M = p.M, N = p.N;
  const bool vec_x = aligned16(p.X, M), vec_y = aligned16(p.Y, N);

  wmma::fragment<wmma::accumulator, 16, 16, P::kK, float> acc[kFM][kFN];
#pragma unroll
  for (int i = 0; i < kFM; ++i)
#pragma unroll
    for (int j = 0; j < kFN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int64_t k0 = r_begin; k0 < r_end; k0 += kBK) {
    load_tile<P, kBK, BM, kThreads>(As, p.X + k0 * M + m0, M, r_end - k0, M - m0, vec_x);
    load_tile<P, kBK, BN, kThreads>(Bs, p.Y + k0 * N + n0, N, r_end - k0, N - n0, vec_y);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; kk += P::kK) {
      wmma::fragment<wmma::matrix_a, 16, 16, P::kK, typename P::Input, wmma::col_major> a[kFM];
      wmma::fragment<wmma::matrix_b, 16, 16, P::kK, typename P::Input, wmma::row_major> b[kFN];
#pragma unroll
      for (int i = 0; i < kFM; ++i) {
        wmma::load_matrix_sync(a[i], As + kk * kALd + (wm * kFM + i) * 16, kALd);
        P::finish(a[i]);
      }
#pragma unroll
      for (int j = 0; j < kFN; ++j) {
        wmma::load_matrix_sync(b[j], Bs + kk * kBLd + (wn * kFN + j) * 16, kBLd);
        P::finish(b[j]);
      }
#pragma unroll
      for (int i = 0; i < kFM; ++i)
#pragma unroll
        for (int j = 0; j < kFN; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

  float* C = p.C + e * M * N + m0 * N + n0;
  float* stage = reinterpret_cast<float*>(smem) + warp * 16 * Layout::kCLd;
  store_tile<kFM, kFN, Layout::kCLd>(acc, stage, wm * kFM * 16, wn * kFN * 16, M - m0, N - n0,
                                     [&](int r, int c, float v) { C[r * N + c] += v; });
}

}  // namespace tc
}  // namespace gpu
}  // namespace wavemoe
