// Tensor-core (WMMA) attention kernels for float32 data under the bf16 matmul precision: forward (with key splits),
// and the deterministic backward (dK/dV per key tile, dQ per row tile), the same algorithm as the CUDA-core kernels
// of attention.cu with the products on bf16 m16n16k16 fragments and float32 accumulators.
//
// Data stays float32 in memory; tiles are converted to bf16 as they are loaded into shared memory.
// __float2bfloat16_rn rounds to nearest even, exactly round_input(x, 7), so every product input is the value the
// CUDA-core path and the CPU kernel round it to: Q, K, V, dO on load, P and dS where they enter a product. bf16
// products are exact in float32, so results differ from the CPU's only by the order of the float32 sums. Two more
// differences of order only: the scale (· log2 e) multiplies the float32 sum Q·Kᵀ rather than the rounded Q or K
// (a bf16 operand cannot hold round(q)·scale), and the tensor cores' own summation order.
//
// A block is 4 warps; each warp owns 16 rows of the 64-row side (query rows in the forward and dQ kernels, keys in
// the dK/dV kernel) and the other side comes in tiles of 64, as the CPU's tiles: P is rounded relative to the running
// max of its 64-key tile, the same tiles as the CPU's whenever the keys are not split.
//
// WMMA's register layout of a fragment is unspecified, so each warp reads it off once (frag_map): the row and column
// of every accumulator element it holds. Softmax statistics, masks, P and dS are then computed in float32 straight
// from the accumulator registers (backward), or from the scores stored to shared memory (forward: a row's max and sum
// are the two lanes that own the row), and an output row is rescaled in registers by its factor from shared memory.
//
// Shared arrays are row-major with each row padded by 16 bytes: ldm stays a multiple of 8 (16-bit) or 4 (float), every
// fragment pointer 32-byte aligned, and the 8 rows of a fragment load start in distinct banks.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>

#include "attention_common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

namespace wmma = nvcuda::wmma;
using bf16 = __nv_bfloat16;

constexpr int kTcThreads = 128;       // 4 warps
constexpr int kTcWarps = kTcThreads / 32;
constexpr int kTcRows = 16 * kTcWarps;  // 64: rows of the block's own side (16 per warp)
constexpr int kTcCols = 64;             // the other side's tile: keys (forward, dQ) or query rows (dK/dV)
constexpr int kTcMaxHeadDim = 128;      // larger D keeps to the CUDA-core kernels (the accumulators would spill)

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;   // B = X (k x n) row-major
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;  // B = Xᵀ of a row-major X
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
constexpr int kFragElems = FragC::num_elements;

template <int kD> struct TcShape {
  static_assert(kD % 16 == 0 && kD <= kTcMaxHeadDim, "head dim tile");
  static constexpr int F = kD / 16;               // fragments across the head dim
  static constexpr int kLdD = kD + 8;             // bf16 rows of D
  static constexpr int kLdP = kTcCols + 8;        // bf16 rows of a 64-wide tile (P, dS)
  static constexpr int kLdS = kTcCols + 4;        // float rows of a 64-wide tile (scores)
  static constexpr size_t tile_d = size_t(kTcRows) * kLdD * sizeof(bf16);     // one (64, kD) bf16 tile
  static constexpr size_t warp_p = size_t(16) * kLdP * sizeof(bf16);          // one warp's (16, 64) bf16 tile
  static constexpr size_t warp_s = size_t(16) * kLdS * sizeof(float);         // one warp's (16, 64) float tile
  static constexpr size_t maps = size_t(kTcWarps) * 256;                      // frag_map's inverse, per warp
  // forward: Q, K, V; scores, P and the row factors of each warp
  static constexpr size_t fwd_smem = 3 * tile_d + kTcWarps * (warp_s + warp_p + 16 * sizeof(float)) + maps;
  // dK/dV: K, V, Q, dO; Pᵀ and dSᵀ of each warp; lse, D_i and the key range of each query row
  static constexpr size_t dkdv_smem = 4 * tile_d + 2 * kTcWarps * warp_p + 4 * kTcCols * sizeof(float) + maps;
  // dQ: Q, dO, K, V; dS of each warp; lse, D_i and the key range of each query row
  static constexpr size_t dq_smem = 4 * tile_d + kTcWarps * warp_p + 4 * kTcRows * sizeof(float) + maps;
  static_assert(tile_d % 32 == 0 && warp_p % 32 == 0 && warp_s % 32 == 0, "fragment pointers 32-byte aligned");
  static_assert(fwd_smem <= 99 * 1024 && dkdv_smem <= 99 * 1024 && dq_smem <= 99 * 1024, "shared memory");
};

// This lane's accumulator elements: rc[i] = 16 · row + column of element i in the 16 x 16 tile. scratch: 256 floats
// (32-byte aligned) and inv: 256 bytes, both the warp's own. Every lane of the warp calls.
__device__ __forceinline__ void frag_map(unsigned char (&rc)[kFragElems], float* scratch, unsigned char* inv) {
  const int lane = threadIdx.x % 32;
  FragC f;
#pragma unroll
  for (int i = 0; i < kFragElems; ++i) f.x[i] = static_cast<float>(lane * kFragElems + i);  // exact: < 2^24
  wmma::store_matrix_sync(scratch, f, 16, wmma::mem_row_major);
  __syncwarp();
  for (int e = lane; e < 256; e += 32) inv[static_cast<int>(scratch[e])] = static_cast<unsigned char>(e);
  __syncwarp();
#pragma unroll
  for (int i = 0; i < kFragElems; ++i) rc[i] = inv[lane * kFragElems + i];
  __syncwarp();  // scratch and inv are free again
}

// dst (kRows x kLd bf16, shared) = bf16(rows src_row(r) of D floats), columns [D, kD) and null rows zero. vec:
// 16-byte global loads (D a multiple of 4, rows 16-byte aligned).
template <int kRows, int kD, int kLd, typename RowFn>
__device__ __forceinline__ void load_tile_bf16(bf16* dst, RowFn src_row, int D, bool vec) {
  if (vec) {
    constexpr int kC = kD / 4;
    for (int e = threadIdx.x; e < kRows * kC; e += kTcThreads) {
      const int r = e / kC, c = (e - r * kC) * 4;
      const float* src = src_row(r);
      float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
      if (src != nullptr && c < D) x = *reinterpret_cast<const float4*>(src + c);
      uint2 packed;  // 4 bf16, one 8-byte store (c is a multiple of 4 and rows are 16-byte aligned)
      packed.x = static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(x.x))) |
                 (static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(x.y))) << 16);
      packed.y = static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(x.z))) |
                 (static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(x.w))) << 16);
      *reinterpret_cast<uint2*>(dst + r * kLd + c) = packed;
    }
  } else {
    for (int e = threadIdx.x; e < kRows * kD; e += kTcThreads) {
      const int r = e / kD, c = e - r * kD;
      const float* src = src_row(r);
      dst[r * kLd + c] = __float2bfloat16_rn(src != nullptr && c < D ? src[c] : 0.f);
    }
  }
}

// A backward row tile (rows [r0, r0 + m) of (b, kh), the GQA group's query heads interleaved) into shared memory,
// for both backward kernels: Q and dO as bf16, and per row lse · log2 e, D_i and the key range it sees (0 past m).
template <int kRows, int kD, int kLdD>
__device__ __forceinline__ void load_backward_rows(bf16* qs, bf16* dos, float* ls, float* dis, int* lo, int* hi,
                                                   const BackwardArgs<float>& p, int64_t b, int64_t kh, int r0,
                                                   int m) {
  const Dims& a = p.a;
  const auto row_of = [&](const float* x) {
    return [&, x](int r) -> const float* { return r < m ? x + q_row(a, b, kh, r0 + r) * a.D : nullptr; };
  };
  load_tile_bf16<kRows, kD, kLdD>(qs, row_of(p.q), static_cast<int>(a.D), p.vec);
  load_tile_bf16<kRows, kD, kLdD>(dos, row_of(p.dout), static_cast<int>(a.D), p.vec);
  if (threadIdx.x < kRows) {
    const int r = threadIdx.x;
    const int64_t row = r < m ? q_row(a, b, kh, r0 + r) : 0, t = (r0 + r) / a.g;
    ls[r] = r < m ? static_cast<float>(p.lse[row] * kLog2e) : 0.f;
    dis[r] = r < m ? p.di[row] : 0.f;
    lo[r] = r < m ? keys_lo(a, t) : 0;
    hi[r] = r < m ? keys_hi(a, t) : 0;
  }
}

// ============================================ forward ============================================

// One block: row tile of 64 interleaved query rows of one (batch, kv head) against key split blockIdx.y of the keys
// they see (the CUDA-core forward's decomposition). Per key tile: load K and V; each warp S = Q·Kᵀ for its 16 rows
// into shared memory, online softmax (two lanes a row), P rounded to bf16, O = O·alpha + P·V in its fragments.
template <int kD>
__global__ void __launch_bounds__(kTcThreads) attention_forward_tc_kernel(const __grid_constant__ ForwardArgs<float> p) {
  using S = TcShape<kD>;
  constexpr int F = S::F, kLdD = S::kLdD, kLdP = S::kLdP, kLdS = S::kLdS, kBN = kTcCols;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);             // (64, kLdD) queries
  bf16* ks = qs + kTcRows * kLdD;                           // (64, kLdD) keys of the current tile
  bf16* vs = ks + kBN * kLdD;                               // (64, kLdD) values of the current tile
  float* ss = reinterpret_cast<float*>(vs + kBN * kLdD);    // per warp (16, kLdS) scores
  bf16* ps = reinterpret_cast<bf16*>(ss + kTcWarps * 16 * kLdS);  // per warp (16, kLdP) probabilities, rounded
  float* fs = reinterpret_cast<float*>(ps + kTcWarps * 16 * kLdP);  // per warp (16) row factors
  unsigned char* maps = reinterpret_cast<unsigned char*>(fs + kTcWarps * 16);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* my_s = ss + warp * 16 * kLdS;
  bf16* my_p = ps + warp * 16 * kLdP;
  float* my_f = fs + warp * 16;
  const Dims& a = p.a;
  const int D = static_cast<int>(a.D);

  // blockIdx.x -> (b, kh, row tile), the last row tiles (most keys under a causal mask) first.
  const int64_t groups = a.B * a.Hkv, bh = blockIdx.x % groups;
  const int64_t b = bh / a.Hkv, kh = bh % a.Hkv, tile = p.qtiles - 1 - blockIdx.x / groups;
  const int r0 = static_cast<int>(tile * kTcRows);
  const int m = static_cast<int>(imin(kTcRows, a.rows - r0));  // rows in use
  const int64_t lo = keys_lo(a, r0 / a.g), hi = keys_hi(a, (r0 + m - 1) / a.g);
  const int64_t ntiles = hi > lo ? ceil_div(hi - lo, kBN) : 0;
  const int64_t per_split = (ntiles + gridDim.y - 1) / gridDim.y;
  const int64_t it0 = imin(ntiles, blockIdx.y * per_split), it1 = imin(ntiles, it0 + per_split);
  const bool idle = 16 * warp >= m;  // every row of this warp is padding

  load_tile_bf16<kTcRows, kD, kLdD>(
      qs, [&](int r) -> const float* { return r < m ? p.q + q_row(a, b, kh, r0 + r) * a.D : nullptr; }, D, p.vec);
  unsigned char rc[kFragElems];
  frag_map(rc, my_s, maps + warp * 256);

  // The softmax side: lane owns row lr of the warp's 16 and its columns h + 2 j.
  const int lr = lane / 2, h = lane % 2, row = 16 * warp + lr;
  const int row_lo = row < m ? keys_lo(a, (r0 + row) / a.g) : 0, row_hi = row < m ? keys_hi(a, (r0 + row) / a.g) : 0;
  float mx = -INFINITY, l = 0.f;
  FragC o[F];
#pragma unroll
  for (int f = 0; f < F; ++f) wmma::fill_fragment(o[f], 0.f);
  FragA qf[F];  // the warp's 16 query rows, loaded once
  __syncthreads();  // Q in place
  if (!idle) {
#pragma unroll
    for (int f = 0; f < F; ++f) wmma::load_matrix_sync(qf[f], qs + 16 * warp * kLdD + 16 * f, kLdD);
  }

  for (int64_t it = it0; it < it1; ++it) {
    const int64_t k0 = lo + it * kBN;
    const int n = static_cast<int>(imin(kBN, hi - k0));  // keys of this tile; hi <= L, so rows >= L are never read
    const float* kg = p.k + kv_row(a, b, kh, k0) * a.D;
    const float* vg = p.v + kv_row(a, b, kh, k0) * a.D;
    __syncthreads();  // the previous tile's products are done with ks and vs
    load_tile_bf16<kBN, kD, kLdD>(
        ks, [&](int r) -> const float* { return r < n ? kg + static_cast<int64_t>(r) * a.D : nullptr; }, D, p.vec);
    load_tile_bf16<kBN, kD, kLdD>(
        vs, [&](int r) -> const float* { return r < n ? vg + static_cast<int64_t>(r) * a.D : nullptr; }, D, p.vec);
    __syncthreads();  // K, V in place
    if (!idle) {
#pragma unroll
      for (int nb = 0; nb < kBN / 16; ++nb) {  // S = Q·Kᵀ, 16 keys at a time
        FragC sf;
        wmma::fill_fragment(sf, 0.f);
#pragma unroll
        for (int f = 0; f < F; ++f) {
          FragBt kf;
          wmma::load_matrix_sync(kf, ks + 16 * nb * kLdD + 16 * f, kLdD);
          wmma::mma_sync(sf, qf[f], kf, sf);
        }
        wmma::store_matrix_sync(my_s + 16 * nb, sf, kLdS, wmma::mem_row_major);
      }
    }
    __syncwarp();  // the warp's scores in place (an idle warp's are never read: its rows see no key)

    // Online softmax (log2 units): masked keys become exact zeros; the sum takes P unrounded, P·V rounded.
    float sv[kBN / 2];
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < kBN / 2; ++j) {
      const int c = h + 2 * j, key = static_cast<int>(k0) + c;
      sv[j] = key < row_lo || key >= row_hi ? -INFINITY : my_s[lr * kLdS + c] * p.qscale;
      tile_max = fmaxf(tile_max, sv[j]);
    }
    const float m_new = fmaxf(mx, fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1)));
    const float ref = m_new == -INFINITY ? 0.f : m_new;  // no key yet: every probability is 2^-inf = 0
    const float alpha = exp2f(mx - ref);                 // 0 while the row had no key
    mx = m_new;
    l *= alpha;
#pragma unroll
    for (int j = 0; j < kBN / 2; ++j) {
      const float pr = exp2f(sv[j] - ref);
      l += pr;
      my_p[lr * kLdP + h + 2 * j] = __float2bfloat16_rn(pr);
    }
    if (h == 0) my_f[lr] = alpha;
    __syncwarp();  // P and the factors in place
    if (!idle) {
      if (!__all_sync(0xffffffffu, alpha == 1.f)) {  // x · 1 = x: skipping is exact
#pragma unroll
        for (int f = 0; f < F; ++f)
#pragma unroll
          for (int i = 0; i < kFragElems; ++i) o[f].x[i] *= my_f[rc[i] >> 4];
      }
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {  // O += P·V
        FragA pf;
        wmma::load_matrix_sync(pf, my_p + 16 * kk, kLdP);
#pragma unroll
        for (int f = 0; f < F; ++f) {
          FragB vf;
          wmma::load_matrix_sync(vf, vs + 16 * kk * kLdD + 16 * f, kLdD);
          wmma::mma_sync(o[f], pf, vf, o[f]);
        }
      }
    }
  }

  l += __shfl_xor_sync(0xffffffffu, l, 1);  // the row's two halves
  __syncwarp();                             // every lane is done with the last tile's factors
  if (h == 0) {
    my_f[lr] = p.part_o == nullptr ? 1.f / l : 1.f;  // l >= 1: the key holding the max contributes 2^0
    if (row < m) {
      const int64_t qr = q_row(a, b, kh, r0 + row);
      if (p.part_o == nullptr) {
        if (p.lse != nullptr) p.lse[qr] = static_cast<float>((mx + log2f(l)) * kLn2);
      } else {
        const int64_t prow = static_cast<int64_t>(blockIdx.y) * p.nrows + qr;
        p.part_ml[2 * prow] = mx;
        p.part_ml[2 * prow + 1] = l;
      }
    }
  }
  __syncwarp();
  if (idle) return;
  float* out = p.part_o == nullptr ? p.out : p.part_o + static_cast<int64_t>(blockIdx.y) * p.nrows * a.D;
#pragma unroll
  for (int i = 0; i < kFragElems; ++i) {
    const int r = rc[i] >> 4, c = rc[i] & 15;
    if (16 * warp + r >= m) continue;
    float* dst = out + q_row(a, b, kh, r0 + 16 * warp + r) * a.D;
    const float inv = my_f[r];
#pragma unroll
    for (int f = 0; f < F; ++f)
      if (16 * f + c < D) dst[16 * f + c] = o[f].x[i] * inv;
  }
}

// ============================================ backward ============================================

// One block: key tile of 64 keys of one (batch, kv head), each warp owning 16 keys' dK and dV in its fragments; it
// walks the row tiles (64 interleaved rows) that see them, in order. Per row tile and 16 rows: Sᵀ = K·Qᵀ,
// dPᵀ = V·dOᵀ, then P = exp2(S·scale - lse) and dS = P ⊙ (dP - D_i) from the fragments, rounded into shared memory;
// then dV += Pᵀ·dO and dK += dSᵀ·Q.
template <int kD>
__global__ void __launch_bounds__(kTcThreads) attention_dkdv_tc_kernel(const __grid_constant__ BackwardArgs<float> p) {
  using S = TcShape<kD>;
  constexpr int F = S::F, kLdD = S::kLdD, kLdP = S::kLdP, kBM = kTcCols;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* ks = reinterpret_cast<bf16*>(smem_raw);  // (64, kLdD) keys
  bf16* vs = ks + kTcRows * kLdD;                // (64, kLdD) values
  bf16* qs = vs + kTcRows * kLdD;                // (64, kLdD) queries of the current row tile
  bf16* dos = qs + kBM * kLdD;                   // (64, kLdD) output gradients of the current row tile
  bf16* pts = dos + kBM * kLdD;                  // per warp (16, kLdP) Pᵀ, rounded
  bf16* dsts = pts + kTcWarps * 16 * kLdP;       // per warp (16, kLdP) dSᵀ, rounded
  float* ls = reinterpret_cast<float*>(dsts + kTcWarps * 16 * kLdP);  // (64) lse · log2 e of the current rows
  float* dis = ls + kBM;                                              // (64) D_i of the current rows
  int* qlo = reinterpret_cast<int*>(dis + kBM);                       // (64) keys_lo of the current rows
  int* qhi = qlo + kBM;                                               // (64) keys_hi; both 0 for padding rows
  unsigned char* maps = reinterpret_cast<unsigned char*>(qhi + kBM);
  const int warp = threadIdx.x / 32;
  bf16* my_pt = pts + warp * 16 * kLdP;
  bf16* my_dst = dsts + warp * 16 * kLdP;
  const Dims& a = p.a;
  const int D = static_cast<int>(a.D);

  // blockIdx.x -> (b, kh, key tile), the first key tiles (most query rows under a causal mask) first.
  const int64_t groups = a.B * a.Hkv, bh = blockIdx.x % groups;
  const int64_t b = bh / a.Hkv, kh = bh % a.Hkv, k0 = (blockIdx.x / groups) * kTcRows;
  const int n = static_cast<int>(imin(kTcRows, a.L - k0));
  const bool idle = 16 * warp >= n;  // every key of this warp is past L
  const float* kg = p.k + kv_row(a, b, kh, k0) * a.D;
  const float* vg = p.v + kv_row(a, b, kh, k0) * a.D;
  load_tile_bf16<kTcRows, kD, kLdD>(
      ks, [&](int r) -> const float* { return r < n ? kg + static_cast<int64_t>(r) * a.D : nullptr; }, D, p.vec);
  load_tile_bf16<kTcRows, kD, kLdD>(
      vs, [&](int r) -> const float* { return r < n ? vg + static_cast<int64_t>(r) * a.D : nullptr; }, D, p.vec);
  unsigned char rc[kFragElems];
  frag_map(rc, reinterpret_cast<float*>(my_pt), maps + warp * 256);  // my_pt: 2304 bytes >= 1 KiB

  // Query positions [t_lo, t_hi) that see a key of [k0, k0 + n) (the CPU's Layout::queries_of), as rows.
  int64_t t_lo = 0, t_hi = a.Tq;
  if (a.mask != AttentionMask::none) {
    t_lo = iclamp(k0 - a.q_offset, 0, a.Tq);
    if (a.mask == AttentionMask::sliding_window) t_hi = iclamp(k0 + n - 1 + a.window - a.q_offset, 0, a.Tq);
  }
  const int r_end = static_cast<int>(t_hi * a.g);

  FragC dk[F], dv[F];
#pragma unroll
  for (int f = 0; f < F; ++f) wmma::fill_fragment(dk[f], 0.f), wmma::fill_fragment(dv[f], 0.f);
  for (int r0 = static_cast<int>(t_lo * a.g); r0 < r_end; r0 += kBM) {
    const int m = static_cast<int>(imin(kBM, r_end - r0));
    __syncthreads();  // the previous row tile is done with qs, dos, ls, dis, qlo, qhi
    load_backward_rows<kBM, kD, kLdD>(qs, dos, ls, dis, qlo, qhi, p, b, kh, r0, m);
    __syncthreads();  // Q, dO and the row data (and, on the first row tile, K and V) in place
    if (idle) continue;
#pragma unroll 1
    for (int nb = 0; nb < kBM / 16; ++nb) {  // 16 query rows at a time
      FragC st, dpt;
      wmma::fill_fragment(st, 0.f);
      wmma::fill_fragment(dpt, 0.f);
#pragma unroll
      for (int f = 0; f < F; ++f) {
        FragA x;
        FragBt y;
        wmma::load_matrix_sync(x, ks + 16 * warp * kLdD + 16 * f, kLdD);
        wmma::load_matrix_sync(y, qs + 16 * nb * kLdD + 16 * f, kLdD);
        wmma::mma_sync(st, x, y, st);  // Sᵀ = K·Qᵀ
        wmma::load_matrix_sync(x, vs + 16 * warp * kLdD + 16 * f, kLdD);
        wmma::load_matrix_sync(y, dos + 16 * nb * kLdD + 16 * f, kLdD);
        wmma::mma_sync(dpt, x, y, dpt);  // dPᵀ = V·dOᵀ
      }
#pragma unroll
      for (int i = 0; i < kFragElems; ++i) {
        const int r = rc[i] >> 4, c = 16 * nb + (rc[i] & 15);
        const int key = static_cast<int>(k0) + 16 * warp + r;  // keys >= k0 + n are >= L, so no row sees them
        const bool seen = key >= qlo[c] && key < qhi[c];
        const float pr = seen ? exp2f(st.x[i] * p.kscale - ls[c]) : 0.f;
        my_pt[r * kLdP + c] = __float2bfloat16_rn(pr);
        my_dst[r * kLdP + c] = __float2bfloat16_rn(pr * (dpt.x[i] - dis[c]));  // from P unrounded
      }
    }
    __syncwarp();  // the warp's Pᵀ and dSᵀ in place
#pragma unroll 1
    for (int kk = 0; kk < kBM / 16; ++kk) {
      FragA pa, da;
      wmma::load_matrix_sync(pa, my_pt + 16 * kk, kLdP);
      wmma::load_matrix_sync(da, my_dst + 16 * kk, kLdP);
#pragma unroll
      for (int f = 0; f < F; ++f) {
        FragB y;
        wmma::load_matrix_sync(y, dos + 16 * kk * kLdD + 16 * f, kLdD);
        wmma::mma_sync(dv[f], pa, y, dv[f]);  // dV += Pᵀ·dO
        wmma::load_matrix_sync(y, qs + 16 * kk * kLdD + 16 * f, kLdD);
        wmma::mma_sync(dk[f], da, y, dk[f]);  // dK += dSᵀ·Q
      }
    }
    __syncwarp();  // the next row tile's Pᵀ and dSᵀ overwrite these
  }

  if (idle) return;
#pragma unroll
  for (int i = 0; i < kFragElems; ++i) {
    const int r = rc[i] >> 4, c = rc[i] & 15, key = 16 * warp + r;
    if (key >= n) continue;
    const int64_t base = kv_row(a, b, kh, k0 + key) * a.D;
#pragma unroll
    for (int f = 0; f < F; ++f) {
      if (16 * f + c >= D) continue;
      p.dk[base + 16 * f + c] += dk[f].x[i] * p.scale;
      p.dv[base + 16 * f + c] += dv[f].x[i];
    }
  }
}

// One block: row tile of 64 interleaved rows of one (batch, kv head), each warp owning 16 rows' dQ in its fragments;
// it walks the key tiles they see, in order. Per key tile and 16 keys: S = Q·Kᵀ, dP = dO·Vᵀ, dS from the fragments,
// rounded into shared memory; then dQ += dS·K.
template <int kD>
__global__ void __launch_bounds__(kTcThreads) attention_dq_tc_kernel(const __grid_constant__ BackwardArgs<float> p) {
  using S = TcShape<kD>;
  constexpr int F = S::F, kLdD = S::kLdD, kLdP = S::kLdP, kBN = kTcCols;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);  // (64, kLdD) queries
  bf16* dos = qs + kTcRows * kLdD;               // (64, kLdD) output gradients
  bf16* ks = dos + kTcRows * kLdD;               // (64, kLdD) keys of the current tile
  bf16* vs = ks + kBN * kLdD;                    // (64, kLdD) values of the current tile
  bf16* dss = vs + kBN * kLdD;                   // per warp (16, kLdP) dS, rounded
  float* ls = reinterpret_cast<float*>(dss + kTcWarps * 16 * kLdP);  // (64) lse · log2 e of the rows
  float* dis = ls + kTcRows;                                         // (64) D_i of the rows
  int* rlo = reinterpret_cast<int*>(dis + kTcRows);                  // (64) keys_lo of the rows
  int* rhi = rlo + kTcRows;                                          // (64) keys_hi; both 0 for padding rows
  unsigned char* maps = reinterpret_cast<unsigned char*>(rhi + kTcRows);
  const int warp = threadIdx.x / 32;
  bf16* my_ds = dss + warp * 16 * kLdP;
  const Dims& a = p.a;
  const int D = static_cast<int>(a.D);

  // blockIdx.x -> (b, kh, row tile), the last row tiles (most keys under a causal mask) first.
  const int64_t groups = a.B * a.Hkv, bh = blockIdx.x % groups;
  const int64_t b = bh / a.Hkv, kh = bh % a.Hkv, tile = p.tiles - 1 - blockIdx.x / groups;
  const int r0 = static_cast<int>(tile * kTcRows);
  const int m = static_cast<int>(imin(kTcRows, a.rows - r0));
  const int64_t lo = keys_lo(a, r0 / a.g), hi = keys_hi(a, (r0 + m - 1) / a.g);
  const bool idle = 16 * warp >= m;  // every row of this warp is padding

  load_backward_rows<kTcRows, kD, kLdD>(qs, dos, ls, dis, rlo, rhi, p, b, kh, r0, m);
  unsigned char rc[kFragElems];
  frag_map(rc, reinterpret_cast<float*>(my_ds), maps + warp * 256);  // my_ds: 2304 bytes >= 1 KiB

  FragC dq[F];
#pragma unroll
  for (int f = 0; f < F; ++f) wmma::fill_fragment(dq[f], 0.f);
  for (int64_t k0 = lo; k0 < hi; k0 += kBN) {
    const int n = static_cast<int>(imin(kBN, hi - k0));
    const float* kg = p.k + kv_row(a, b, kh, k0) * a.D;
    const float* vg = p.v + kv_row(a, b, kh, k0) * a.D;
    __syncthreads();  // the previous tile's dS·K is done with ks
    load_tile_bf16<kBN, kD, kLdD>(
        ks, [&](int r) -> const float* { return r < n ? kg + static_cast<int64_t>(r) * a.D : nullptr; }, D, p.vec);
    load_tile_bf16<kBN, kD, kLdD>(
        vs, [&](int r) -> const float* { return r < n ? vg + static_cast<int64_t>(r) * a.D : nullptr; }, D, p.vec);
    __syncthreads();  // K, V (and, on the first tile, Q, dO and the row data) in place
    if (idle) continue;
#pragma unroll 1
    for (int nb = 0; nb < kBN / 16; ++nb) {  // 16 keys at a time
      FragC s, dp;
      wmma::fill_fragment(s, 0.f);
      wmma::fill_fragment(dp, 0.f);
#pragma unroll
      for (int f = 0; f < F; ++f) {
        FragA x;
        FragBt y;
        wmma::load_matrix_sync(x, qs + 16 * warp * kLdD + 16 * f, kLdD);
        wmma::load_matrix_sync(y, ks + 16 * nb * kLdD + 16 * f, kLdD);
        wmma::mma_sync(s, x, y, s);  // S = Q·Kᵀ
        wmma::load_matrix_sync(x, dos + 16 * warp * kLdD + 16 * f, kLdD);
        wmma::load_matrix_sync(y, vs + 16 * nb * kLdD + 16 * f, kLdD);
        wmma::mma_sync(dp, x, y, dp);  // dP = dO·Vᵀ
      }
#pragma unroll
      for (int i = 0; i < kFragElems; ++i) {
        const int r = rc[i] >> 4, c = 16 * nb + (rc[i] & 15), row = 16 * warp + r;
        const int key = static_cast<int>(k0) + c;
        const bool seen = key >= rlo[row] && key < rhi[row];
        const float pr = seen ? exp2f(s.x[i] * p.kscale - ls[row]) : 0.f;
        my_ds[r * kLdP + c] = __float2bfloat16_rn(pr * (dp.x[i] - dis[row]));
      }
    }
    __syncwarp();  // the warp's dS in place
#pragma unroll 1
    for (int kk = 0; kk < kBN / 16; ++kk) {  // dQ += dS·K
      FragA da;
      wmma::load_matrix_sync(da, my_ds + 16 * kk, kLdP);
#pragma unroll
      for (int f = 0; f < F; ++f) {
        FragB y;
        wmma::load_matrix_sync(y, ks + 16 * kk * kLdD + 16 * f, kLdD);
        wmma::mma_sync(dq[f], da, y, dq[f]);
      }
    }
    __syncwarp();  // the next tile's dS overwrites this one
  }

  if (idle) return;
#pragma unroll
  for (int i = 0; i < kFragElems; ++i) {
    const int r = rc[i] >> 4, c = rc[i] & 15, row = 16 * warp + r;
    if (row >= m) continue;
    float* dst = p.dq + q_row(a, b, kh, r0 + row) * a.D;
#pragma unroll
    for (int f = 0; f < F; ++f)
      if (16 * f + c < D) dst[16 * f + c] += dq[f].x[i] * p.scale;
  }
}

}  // namespace
}  // namespace gpu
}  // namespace wavemoe
