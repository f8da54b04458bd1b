// Fused attention on the GPU: forward (with flash-decoding splits), deterministic backward, KV-cache copy and the
// causal mask of the unfused baseline. See attention.h for the design; the CPU twin is csrc/kernels/attention.cc.
//
// Every tile kernel runs 256 threads as a 16 x 16 grid (ty = threadIdx.x / 16, tx = threadIdx.x % 16). A thread
// owns the tile entries (ty + 16 i, tx + 16 j): the 16 lanes that share a row are one half warp, so a row's max and
// sum are 4 shuffles, and they read 16 different shared-memory rows (conflict-free with the padded strides below).
// In the P·V-like products a thread owns output columns col(c) = (c / kVO · 16 + tx) · kVO + c % kVO: runs of kVO
// consecutive columns, read as one 16-byte vector when the head dim splits into whole vectors per thread.
//
// Shared arrays are row-major with each row padded by one 16-byte vector (ld = width + kVec): rows stay 16-byte
// aligned for vector loads, and consecutive rows start 4 banks apart, so the 8 lanes of a 16-byte load that read 8
// consecutive rows hit 32 distinct banks.
//
// Scores are in log2 units (q·k·scale·log2 e, the scale folded into Q or K as they are loaded) and probabilities
// are exp2; the saved lse is in natural units: the CPU's conventions, so lse moves freely between the two.
//
// Matmul precision: float32 products round their inputs to `bits` mantissa bits (round_input; matmul_round_bits()
// from the host, 23 rounds nothing) and sum in float32, the quantities the CPU kernel rounds (attention.cc): Q, K, V
// and dO as their tiles are loaded (before the scale), P where it enters P·V and Pᵀ·dO, dS where it enters dS·K and
// dSᵀ·Q; the softmax statistics, dS itself and D_i are computed from unrounded values. Under bf16, float32 calls with
// D <= 128 run the tensor-core (WMMA) kernels of attention_tc.cuh instead (use_tensor_cores), which round the same
// values; decoding-sized forwards, tf32, fp32 and float64 stay here.
#include "attention.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "allocator.h"
#include "attention_common.cuh"
#include "attention_tc.cuh"
#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kThreads = 256;  // every tile kernel: a 16 x 16 thread grid
constexpr int kMaxSplits = 64;              // key splits of one row tile (the combine kernel reads two per lane)
constexpr int kMaxHeadDim = 256;            // the largest tile; D above it throws
constexpr size_t kMaxShared = 160 * 1024;   // per block: sm_80 allows 163 KiB with the opt-in, sm_90 227 KiB
constexpr size_t kDefaultShared = 48 * 1024;  // more needs cudaFuncAttributeMaxDynamicSharedMemorySize

// ============================================ device helpers ============================================

template <typename T> struct Vec;  // a 16-byte vector of T
template <> struct Vec<float> { static constexpr int n = 4; };
template <> struct Vec<double> { static constexpr int n = 2; };
template <typename T> constexpr int kVec = Vec<T>::n;

__device__ __forceinline__ void load_vec(float* r, const float* p) {
  const float4 x = *reinterpret_cast<const float4*>(p);
  r[0] = x.x, r[1] = x.y, r[2] = x.z, r[3] = x.w;
}
__device__ __forceinline__ void load_vec(double* r, const double* p) {
  const double2 x = *reinterpret_cast<const double2*>(p);
  r[0] = x.x, r[1] = x.y;
}
__device__ __forceinline__ void store_vec(float* p, const float* r) {
  *reinterpret_cast<float4*>(p) = make_float4(r[0], r[1], r[2], r[3]);
}
__device__ __forceinline__ void store_vec(double* p, const double* r) {
  *reinterpret_cast<double2*>(p) = make_double2(r[0], r[1]);
}

__device__ __forceinline__ float ex2(float x) { return exp2f(x); }
__device__ __forceinline__ double ex2(double x) { return exp2(x); }
__device__ __forceinline__ float lg2(float x) { return log2f(x); }
__device__ __forceinline__ double lg2(double x) { return log2(x); }
template <typename T> __device__ __forceinline__ T tmax(T a, T b) { return a > b ? a : b; }
// Max and sum over the 16 lanes of a half warp (one tile row); every lane of the warp must call.
template <typename T> __device__ __forceinline__ T row_max(T v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = tmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <typename T> __device__ __forceinline__ T row_sum(T v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Output columns per vector run: kVec when a thread's kC = kD / 16 columns split into whole vectors, else 1.
template <typename T, int kC> constexpr int kOutVec = kC % kVec<T> == 0 ? kVec<T> : 1;
template <int kVO> __device__ __forceinline__ int out_col(int tx, int c) {
  return ((c / kVO) * 16 + tx) * kVO + c % kVO;
}

// dst (kRows x kLd, shared) = rows src_row(r) of D elements, rounded to `bits` mantissa bits, times s (nullptr: a
// zero row); columns [D, kD) zero. vec: 16-byte global loads (D is a multiple of the vector and every source row is
// 16-byte aligned).
template <typename T, int kRows, int kD, int kLd, typename RowFn>
__device__ __forceinline__ void load_tile(T* dst, RowFn src_row, int D, T s, int bits, bool vec) {
  constexpr int V = kVec<T>;
  if (vec) {
    constexpr int kC = kD / V;
    for (int e = threadIdx.x; e < kRows * kC; e += kThreads) {
      const int r = e / kC, c = (e - r * kC) * V;
      const T* src = src_row(r);
      T x[V];
      if (src != nullptr && c < D) {
        load_vec(x, src + c);
#pragma unroll
        for (int u = 0; u < V; ++u) x[u] = round_input(x[u], bits) * s;
      } else {
#pragma unroll
        for (int u = 0; u < V; ++u) x[u] = T(0);
      }
      store_vec(dst + r * kLd + c, x);
    }
  } else {
    for (int e = threadIdx.x; e < kRows * kD; e += kThreads) {
      const int r = e / kD, c = e - r * kD;
      const T* src = src_row(r);
      dst[r * kLd + c] = (src != nullptr && c < D) ? round_input(src[c], bits) * s : T(0);
    }
  }
}

// acc[i][j] += Σ_k a[16 i][k] · b[16 j][k] for k in [0, kK), in order (so each sum has a fixed order). a and b point
// at the thread's first rows (ty and tx) of two shared arrays with row strides kLda and kLdb.
template <typename T, int kI, int kJ, int kK, int kLda, int kLdb>
__device__ __forceinline__ void mma_nt(T (&acc)[kI][kJ], const T* a, const T* b) {
  constexpr int V = kVec<T>;
#pragma unroll 1  // one step holds V·kI·kJ independent multiply-adds; unrolling further only spills registers
  for (int k = 0; k < kK; k += V) {
    T av[kI][V], bv[kJ][V];
#pragma unroll
    for (int i = 0; i < kI; ++i) load_vec(av[i], a + 16 * i * kLda + k);
#pragma unroll
    for (int j = 0; j < kJ; ++j) load_vec(bv[j], b + 16 * j * kLdb + k);
#pragma unroll
    for (int u = 0; u < V; ++u)
#pragma unroll
      for (int i = 0; i < kI; ++i)
#pragma unroll
        for (int j = 0; j < kJ; ++j) acc[i][j] += av[i][u] * bv[j][u];
  }
}

// acc[i][c] += Σ_j p[16 i][j] · x[j][col(c)] for j in [0, kJ), in order. p points at the thread's first row (ty) of
// a shared array with row stride kLdp; x at its first column (tx · kVO) of one with row stride kLdx.
template <typename T, int kI, int kC, int kJ, int kLdp, int kLdx>
__device__ __forceinline__ void mma_nn(T (&acc)[kI][kC], const T* p, const T* x) {
  constexpr int V = kVec<T>, kVO = kOutVec<T, kC>;
#pragma unroll 1  // as in mma_nt
  for (int j = 0; j < kJ; j += V) {
    T pv[kI][V];
#pragma unroll
    for (int i = 0; i < kI; ++i) load_vec(pv[i], p + 16 * i * kLdp + j);
#pragma unroll
    for (int u = 0; u < V; ++u) {
      const T* row = x + (j + u) * kLdx;
      T xv[kC];
      if constexpr (kVO > 1) {
#pragma unroll
        for (int c = 0; c < kC; c += kVO) load_vec(xv + c, row + c * 16);
      } else {
#pragma unroll
        for (int c = 0; c < kC; ++c) xv[c] = row[16 * c];
      }
#pragma unroll
      for (int i = 0; i < kI; ++i)
#pragma unroll
        for (int c = 0; c < kC; ++c) acc[i][c] += pv[i][u] * xv[c];
    }
  }
}

// ============================================ forward ============================================

template <typename T, int kD, int kBM, int kBN> struct ForwardShape {
  static constexpr int kLdD = kD + kVec<T>, kLdP = kBN + kVec<T>;
  static constexpr int RM = kBM / 16, RN = kBN / 16, RC = kD / 16;
  static constexpr size_t smem = sizeof(T) * (size_t(kBM + 2 * kBN) * kLdD + size_t(kBM) * kLdP);
  static_assert(kBM % 16 == 0 && kBN % 16 == 0 && kD % 16 == 0, "tiles are multiples of the 16 x 16 thread grid");
  static_assert(smem <= kMaxShared, "forward tile does not fit sm_80's shared memory");
};

// Folds one tile of scores s (log2 units; the key of column j is key0 + 16 j) into the running max mx, the thread's
// part of the running sum l and the output rows acc; masked keys become exact zeros, and s is left holding the
// probabilities relative to the new max (summed into l unrounded).
template <typename T, int RM, int RN, int RC>
__device__ __forceinline__ void online_softmax(T (&s)[RM][RN], T (&mx)[RM], T (&l)[RM], T (&acc)[RM][RC],
                                               const int (&row_lo)[RM], const int (&row_hi)[RM], int key0) {
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    T tile_max = T(-INFINITY);
#pragma unroll
    for (int j = 0; j < RN; ++j) {
      const int key = key0 + 16 * j;
      if (key < row_lo[i] || key >= row_hi[i]) s[i][j] = T(-INFINITY);
      tile_max = tmax(tile_max, s[i][j]);
    }
    const T m_new = tmax(mx[i], row_max(tile_max));
    const T ref = m_new == T(-INFINITY) ? T(0) : m_new;  // no key yet: every probability is 2^-inf = 0
    const T alpha = ex2(mx[i] - ref);                     // 0 while the row had no key
    mx[i] = m_new;
    l[i] *= alpha;
#pragma unroll
    for (int c = 0; c < RC; ++c) acc[i][c] *= alpha;
#pragma unroll
    for (int j = 0; j < RN; ++j) {
      s[i][j] = ex2(s[i][j] - ref);
      l[i] += s[i][j];
    }
  }
}

// One block: row tile (of kBM interleaved query rows) of one (batch, kv head), against key split blockIdx.y of the
// keys its rows see. Per key tile: load K and V (both in flight at once), S = Q·Kᵀ, online softmax, O += P·V.
template <typename T, int kD, int kBM, int kBN>
__global__ void __launch_bounds__(kThreads, kBM == 16 ? 3 : 2)
    attention_forward_kernel(const __grid_constant__ ForwardArgs<T> p) {
  using S = ForwardShape<T, kD, kBM, kBN>;
  constexpr int RM = S::RM, RN = S::RN, RC = S::RC, kLdD = S::kLdD, kLdP = S::kLdP, kVO = kOutVec<T, RC>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);  // (kBM, kLdD) queries · scale · log2 e
  T* ks = qs + kBM * kLdD;                 // (kBN, kLdD) keys of the current tile
  T* vs = ks + kBN * kLdD;                 // (kBN, kLdD) values of the current tile
  T* ps = vs + kBN * kLdD;                 // (kBM, kLdP) probabilities of the current tile
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const Dims& a = p.a;
  const int D = static_cast<int>(a.D);

  // blockIdx.x -> (b, kh, row tile), the last row tiles (most keys under a causal mask) first.
  const int64_t groups = a.B * a.Hkv, bh = blockIdx.x % groups;
  const int64_t b = bh / a.Hkv, kh = bh % a.Hkv, tile = p.qtiles - 1 - blockIdx.x / groups;
  const int r0 = static_cast<int>(tile * kBM);
  const int m = static_cast<int>(imin(kBM, a.rows - r0));  // rows in use
  // Keys seen by any row: from the first row's lowest to the last row's highest; this split's key tiles of them.
  const int64_t lo = keys_lo(a, r0 / a.g), hi = keys_hi(a, (r0 + m - 1) / a.g);
  const int64_t ntiles = hi > lo ? ceil_div(hi - lo, kBN) : 0;
  const int64_t per_split = (ntiles + gridDim.y - 1) / gridDim.y;
  const int64_t it0 = imin(ntiles, blockIdx.y * per_split), it1 = imin(ntiles, it0 + per_split);
  const bool idle = 2 * static_cast<int>(threadIdx.x / 32) >= m;  // every row of this warp is padding (decoding)

  load_tile<T, kBM, kD, kLdD>(
      qs, [&](int r) -> const T* { return r < m ? p.q + q_row(a, b, kh, r0 + r) * a.D : nullptr; }, D, p.qscale,
      p.bits, p.vec);

  int row_lo[RM], row_hi[RM];  // keys seen by this thread's rows ty + 16 i; none for padding rows
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int r = ty + 16 * i;
    const int64_t t = (r0 + r) / a.g;
    row_lo[i] = r < m ? keys_lo(a, t) : 0;
    row_hi[i] = r < m ? keys_hi(a, t) : 0;
  }
  T mx[RM], l[RM], acc[RM][RC];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    mx[i] = T(-INFINITY);
    l[i] = T(0);
#pragma unroll
    for (int c = 0; c < RC; ++c) acc[i][c] = T(0);
  }

  for (int64_t it = it0; it < it1; ++it) {
    const int64_t k0 = lo + it * kBN;
    const int n = static_cast<int>(imin(kBN, hi - k0));  // keys of this tile; hi <= L, so rows >= L are never read
    const T* kg = p.k + kv_row(a, b, kh, k0) * a.D;
    const T* vg = p.v + kv_row(a, b, kh, k0) * a.D;
    __syncthreads();  // the previous tile's P·V is done with ks, vs and ps
    load_tile<T, kBN, kD, kLdD>(
        ks, [&](int r) -> const T* { return r < n ? kg + static_cast<int64_t>(r) * a.D : nullptr; }, D, T(1), p.bits,
        p.vec);
    load_tile<T, kBN, kD, kLdD>(
        vs, [&](int r) -> const T* { return r < n ? vg + static_cast<int64_t>(r) * a.D : nullptr; }, D, T(1), p.bits,
        p.vec);
    __syncthreads();  // K, V (and, on the first tile, Q) in place
    T s[RM][RN] = {};
    if (!idle) mma_nt<T, RM, RN, kD, kLdD, kLdD>(s, qs + ty * kLdD, ks + tx * kLdD);  // S = Q·Kᵀ
    online_softmax<T, RM, RN, RC>(s, mx, l, acc, row_lo, row_hi, static_cast<int>(k0) + tx);
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < RN; ++j) ps[(ty + 16 * i) * kLdP + tx + 16 * j] = round_input(s[i][j], p.bits);
    __syncthreads();  // P in place
    if (!idle) mma_nn<T, RM, RC, kBN, kLdP, kLdD>(acc, ps + ty * kLdP, vs + tx * kVO);  // O += P·V
  }

#pragma unroll
  for (int i = 0; i < RM; ++i) l[i] = row_sum(l[i]);  // the lanes' partial sums, in a fixed order
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int r = ty + 16 * i;
    if (r >= m) continue;
    const int64_t row = q_row(a, b, kh, r0 + r);
    if (p.part_o == nullptr) {
      const T inv = T(1) / l[i];  // l >= 1: the key holding the max contributes 2^0
      T* o = p.out + row * a.D;
#pragma unroll
      for (int c = 0; c < RC; ++c) {
        const int col = out_col<kVO>(tx, c);
        if (col < D) o[col] = acc[i][c] * inv;
      }
      if (tx == 0 && p.lse != nullptr) p.lse[row] = static_cast<T>((mx[i] + lg2(l[i])) * kLn2);
    } else {
      const int64_t prow = static_cast<int64_t>(blockIdx.y) * p.nrows + row;
      T* o = p.part_o + prow * a.D;
#pragma unroll
      for (int c = 0; c < RC; ++c) {
        const int col = out_col<kVO>(tx, c);
        if (col < D) o[col] = acc[i][c];
      }
      if (tx == 0) {
        p.part_ml[2 * prow] = mx[i];
        p.part_ml[2 * prow + 1] = l[i];
      }
    }
  }
}

// Merges the key splits of each row: one warp per row, the splits in order (deterministic).
//   M = max_s m_s,  l = Σ_s l_s 2^(m_s - M),  out = Σ_s o_s 2^(m_s - M) / l,  lse = (M + log2 l) ln 2
template <typename T>
__global__ void __launch_bounds__(kThreads) attention_combine_kernel(T* out, T* lse, const T* part_o,
                                                                      const T* part_ml, int64_t nrows, int64_t D,
                                                                      int splits) {
  constexpr int kWarps = kThreads / 32;
  __shared__ T weights[kWarps][kMaxSplits];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  T* w = weights[warp];
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp; row < nrows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int s0 = lane, s1 = lane + 32;  // this lane's splits
    const T m0 = s0 < splits ? part_ml[2 * (s0 * nrows + row)] : T(-INFINITY);
    const T m1 = s1 < splits ? part_ml[2 * (s1 * nrows + row)] : T(-INFINITY);
    const T mx = warp_max(tmax(m0, m1));
    const T ref = mx == T(-INFINITY) ? T(0) : mx;
    const T w0 = s0 < splits ? ex2(m0 - ref) : T(0), w1 = s1 < splits ? ex2(m1 - ref) : T(0);
    T l = T(0);
    if (s0 < splits) l += part_ml[2 * (s0 * nrows + row) + 1] * w0;
    if (s1 < splits) l += part_ml[2 * (s1 * nrows + row) + 1] * w1;
    l = warp_sum(l);
    __syncwarp();  // the previous row is done with w
    w[s0] = w0;
    w[s1] = w1;
    __syncwarp();
    const T inv = T(1) / l;
    for (int64_t d = lane; d < D; d += 32) {
      T o = T(0);
      for (int s = 0; s < splits; ++s) o += part_o[(s * nrows + row) * D + d] * w[s];
      out[row * D + d] = o * inv;
    }
    if (lane == 0 && lse != nullptr) lse[row] = static_cast<T>((mx + lg2(l)) * kLn2);
  }
}

// ============================================ backward ============================================

// di[row] = Σ_d dout[row, d] · out[row, d], in double (as the CPU): one warp per row.
template <typename T>
__global__ void __launch_bounds__(kThreads) attention_di_kernel(T* di, const T* dout, const T* out, int64_t nrows,
                                                                 int64_t D) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / 32);
  for (int64_t row = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) / 32; row < nrows; row += warps) {
    double s = 0.0;
    for (int64_t d = lane; d < D; d += 32) s += static_cast<double>(dout[row * D + d]) * out[row * D + d];
    s = warp_sum(s);
    if (lane == 0) di[row] = static_cast<T>(s);
  }
}

template <typename T, int kD, int kBN, int kBM> struct KeyTileShape {
  static constexpr int kLdD = kD + kVec<T>, kLdR = kBM + kVec<T>;
  static constexpr int RK = kBN / 16, RQ = kBM / 16, RC = kD / 16;
  static constexpr size_t smem =
      sizeof(T) * (2 * size_t(kBN + kBM) * kLdD + 2 * size_t(kBN) * kLdR + 2 * size_t(kBM));
  static_assert(kBM % 16 == 0 && kBN % 16 == 0 && kD % 16 == 0, "tiles are multiples of the 16 x 16 thread grid");
  static_assert(smem <= kMaxShared, "dK/dV tile does not fit sm_80's shared memory");
};

// One block: key tile blockIdx.x / groups (kBN keys) of one (batch, kv head). It owns dK and dV of those keys: it
// walks, in order, the row tiles (kBM interleaved rows: every query head of the group) that see them, and adds its
// sums once at the end. Per row tile: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, P, dS = P ⊙ (dP - D_i), dV += Pᵀ·dO, dK += dSᵀ·Q.
template <typename T, int kD, int kBN, int kBM>
__global__ void __launch_bounds__(kThreads, 2) attention_dkdv_kernel(const __grid_constant__ BackwardArgs<T> p) {
  using S = KeyTileShape<T, kD, kBN, kBM>;
  constexpr int RK = S::RK, RQ = S::RQ, RC = S::RC, kLdD = S::kLdD, kLdR = S::kLdR, kVO = kOutVec<T, RC>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* ks = reinterpret_cast<T*>(smem_raw);  // (kBN, kLdD) keys · scale · log2 e
  T* vs = ks + kBN * kLdD;                 // (kBN, kLdD) values
  T* qs = vs + kBN * kLdD;                 // (kBM, kLdD) queries of the current row tile
  T* dos = qs + kBM * kLdD;                // (kBM, kLdD) output gradients of the current row tile
  T* pts = dos + kBM * kLdD;               // (kBN, kLdR) Pᵀ
  T* dsts = pts + kBN * kLdR;              // (kBN, kLdR) dSᵀ
  T* ls = dsts + kBN * kLdR;               // (kBM) lse · log2 e of the current rows
  T* dis = ls + kBM;                       // (kBM) D_i of the current rows
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const Dims& a = p.a;
  const int D = static_cast<int>(a.D);

  // blockIdx.x -> (b, kh, key tile), the first key tiles (most query rows under a causal mask) first.
  const int64_t groups = a.B * a.Hkv, bh = blockIdx.x % groups;
  const int64_t b = bh / a.Hkv, kh = bh % a.Hkv, k0 = (blockIdx.x / groups) * kBN;
  const int n = static_cast<int>(imin(kBN, a.L - k0));
  const T* kg = p.k + kv_row(a, b, kh, k0) * a.D;
  const T* vg = p.v + kv_row(a, b, kh, k0) * a.D;
  load_tile<T, kBN, kD, kLdD>(
      ks, [&](int r) -> const T* { return r < n ? kg + static_cast<int64_t>(r) * a.D : nullptr; }, D, p.kscale,
      p.bits, p.vec);
  load_tile<T, kBN, kD, kLdD>(
      vs, [&](int r) -> const T* { return r < n ? vg + static_cast<int64_t>(r) * a.D : nullptr; }, D, T(1), p.bits,
      p.vec);

  // Query positions [t_lo, t_hi) that see a key of [k0, k0 + n) (the CPU's Layout::queries_of), as rows.
  int64_t t_lo = 0, t_hi = a.Tq;
  if (a.mask != AttentionMask::none) {
    t_lo = iclamp(k0 - a.q_offset, 0, a.Tq);
    if (a.mask == AttentionMask::sliding_window) t_hi = iclamp(k0 + n - 1 + a.window - a.q_offset, 0, a.Tq);
  }
  const int r_end = static_cast<int>(t_hi * a.g);

  T dk_acc[RK][RC] = {}, dv_acc[RK][RC] = {};
  for (int r0 = static_cast<int>(t_lo * a.g); r0 < r_end; r0 += kBM) {
    const int m = static_cast<int>(imin(kBM, r_end - r0));
    __syncthreads();  // the previous row tile is done with qs, dos, pts, dsts, ls, dis
    const auto row_of = [&](const T* x) {
      return [&, x](int r) -> const T* { return r < m ? x + q_row(a, b, kh, r0 + r) * a.D : nullptr; };
    };
    load_tile<T, kBM, kD, kLdD>(qs, row_of(p.q), D, T(1), p.bits, p.vec);
    load_tile<T, kBM, kD, kLdD>(dos, row_of(p.dout), D, T(1), p.bits, p.vec);
    if (threadIdx.x < kBM) {
      const int r = threadIdx.x;
      const int64_t row = r < m ? q_row(a, b, kh, r0 + r) : 0;
      ls[r] = r < m ? static_cast<T>(p.lse[row] * kLog2e) : T(0);
      dis[r] = r < m ? p.di[row] : T(0);
    }
    int col_lo[RQ], col_hi[RQ];  // keys seen by this thread's query columns tx + 16 j; none for padding rows
#pragma unroll
    for (int j = 0; j < RQ; ++j) {
      const int r = tx + 16 * j;
      const int64_t t = (r0 + r) / a.g;
      col_lo[j] = r < m ? keys_lo(a, t) : 0;
      col_hi[j] = r < m ? keys_hi(a, t) : 0;
    }
    __syncthreads();  // Q, dO, lse, D_i (and, on the first row tile, K and V) in place

    T st[RK][RQ] = {}, dpt[RK][RQ] = {};
    mma_nt<T, RK, RQ, kD, kLdD, kLdD>(st, ks + ty * kLdD, qs + tx * kLdD);    // Sᵀ = K·Qᵀ (log2 units)
    mma_nt<T, RK, RQ, kD, kLdD, kLdD>(dpt, vs + ty * kLdD, dos + tx * kLdD);  // dPᵀ = V·dOᵀ
#pragma unroll
    for (int i = 0; i < RK; ++i) {
      const int key = static_cast<int>(k0) + ty + 16 * i;  // keys >= k0 + n are >= L, so no row sees them
#pragma unroll
      for (int j = 0; j < RQ; ++j) {
        const int c = tx + 16 * j;
        const bool seen = key >= col_lo[j] && key < col_hi[j];
        const T pr = seen ? ex2(st[i][j] - ls[c]) : T(0);
        pts[(ty + 16 * i) * kLdR + c] = round_input(pr, p.bits);
        dsts[(ty + 16 * i) * kLdR + c] = round_input(pr * (dpt[i][j] - dis[c]), p.bits);  // from P unrounded
      }
    }
    __syncthreads();  // Pᵀ and dSᵀ in place
    mma_nn<T, RK, RC, kBM, kLdR, kLdD>(dv_acc, pts + ty * kLdR, dos + tx * kVO);  // dV += Pᵀ·dO
    mma_nn<T, RK, RC, kBM, kLdR, kLdD>(dk_acc, dsts + ty * kLdR, qs + tx * kVO);  // dK += dSᵀ·Q
  }

#pragma unroll
  for (int i = 0; i < RK; ++i) {
    const int key = ty + 16 * i;
    if (key >= n) continue;
    const int64_t row = kv_row(a, b, kh, k0 + key);
#pragma unroll
    for (int c = 0; c < RC; ++c) {
      const int col = out_col<kVO>(tx, c);
      if (col < D) {
        p.dk[row * a.D + col] += dk_acc[i][c] * p.scale;
        p.dv[row * a.D + col] += dv_acc[i][c];
      }
    }
  }
}

template <typename T, int kD, int kBM, int kBN> struct RowTileShape {
  static constexpr int kLdD = kD + kVec<T>, kLdP = kBN + kVec<T>;
  static constexpr int RM = kBM / 16, RN = kBN / 16, RC = kD / 16;
  static constexpr size_t smem = sizeof(T) * (2 * size_t(kBM + kBN) * kLdD + size_t(kBM) * kLdP);
  static_assert(kBM % 16 == 0 && kBN % 16 == 0 && kD % 16 == 0, "tiles are multiples of the 16 x 16 thread grid");
  static_assert(smem <= kMaxShared, "dQ tile does not fit sm_80's shared memory");
};

// One block: row tile (kBM interleaved rows) of one (batch, kv head). It owns dQ of those rows: it walks, in order,
// the key tiles they see and adds its sums once at the end. Per key tile: S = Q·Kᵀ, dP = dO·Vᵀ, P,
// dS = P ⊙ (dP - D_i), dQ += dS·K.
template <typename T, int kD, int kBM, int kBN>
__global__ void __launch_bounds__(kThreads, 2) attention_dq_kernel(const __grid_constant__ BackwardArgs<T> p) {
  using S = RowTileShape<T, kD, kBM, kBN>;
  constexpr int RM = S::RM, RN = S::RN, RC = S::RC, kLdD = S::kLdD, kLdP = S::kLdP, kVO = kOutVec<T, RC>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);  // (kBM, kLdD) queries · scale · log2 e
  T* dos = qs + kBM * kLdD;                // (kBM, kLdD) output gradients
  T* ks = dos + kBM * kLdD;                // (kBN, kLdD) keys of the current tile
  T* vs = ks + kBN * kLdD;                 // (kBN, kLdD) values of the current tile
  T* dss = vs + kBN * kLdD;                // (kBM, kLdP) dS of the current tile
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const Dims& a = p.a;
  const int D = static_cast<int>(a.D);

  // blockIdx.x -> (b, kh, row tile), the last row tiles (most keys under a causal mask) first.
  const int64_t groups = a.B * a.Hkv, bh = blockIdx.x % groups;
  const int64_t b = bh / a.Hkv, kh = bh % a.Hkv, tile = p.tiles - 1 - blockIdx.x / groups;
  const int r0 = static_cast<int>(tile * kBM);
  const int m = static_cast<int>(imin(kBM, a.rows - r0));
  const int64_t lo = keys_lo(a, r0 / a.g), hi = keys_hi(a, (r0 + m - 1) / a.g);
  const bool idle = 2 * static_cast<int>(threadIdx.x / 32) >= m;  // every row of this warp is padding

  const auto row_of = [&](const T* x) {
    return [&, x](int r) -> const T* { return r < m ? x + q_row(a, b, kh, r0 + r) * a.D : nullptr; };
  };
  load_tile<T, kBM, kD, kLdD>(qs, row_of(p.q), D, p.kscale, p.bits, p.vec);
  load_tile<T, kBM, kD, kLdD>(dos, row_of(p.dout), D, T(1), p.bits, p.vec);
  T lse2[RM], di[RM];
  int row_lo[RM], row_hi[RM];  // keys seen by this thread's rows ty + 16 i; none for padding rows
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int r = ty + 16 * i;
    const int64_t t = (r0 + r) / a.g, row = r < m ? q_row(a, b, kh, r0 + r) : 0;
    lse2[i] = r < m ? static_cast<T>(p.lse[row] * kLog2e) : T(0);
    di[i] = r < m ? p.di[row] : T(0);
    row_lo[i] = r < m ? keys_lo(a, t) : 0;
    row_hi[i] = r < m ? keys_hi(a, t) : 0;
  }

  T dq_acc[RM][RC] = {};
  for (int64_t k0 = lo; k0 < hi; k0 += kBN) {
    const int n = static_cast<int>(imin(kBN, hi - k0));
    const T* kg = p.k + kv_row(a, b, kh, k0) * a.D;
    const T* vg = p.v + kv_row(a, b, kh, k0) * a.D;
    __syncthreads();  // the previous tile's dS·K is done with ks and dss
    load_tile<T, kBN, kD, kLdD>(
        ks, [&](int r) -> const T* { return r < n ? kg + static_cast<int64_t>(r) * a.D : nullptr; }, D, T(1), p.bits,
        p.vec);
    load_tile<T, kBN, kD, kLdD>(
        vs, [&](int r) -> const T* { return r < n ? vg + static_cast<int64_t>(r) * a.D : nullptr; }, D, T(1), p.bits,
        p.vec);
    __syncthreads();  // K, V (and, on the first tile, Q and dO) in place
    T s[RM][RN] = {}, dp[RM][RN] = {};
    if (!idle) {
      mma_nt<T, RM, RN, kD, kLdD, kLdD>(s, qs + ty * kLdD, ks + tx * kLdD);    // S = Q·Kᵀ (log2 units)
      mma_nt<T, RM, RN, kD, kLdD, kLdD>(dp, dos + ty * kLdD, vs + tx * kLdD);  // dP = dO·Vᵀ
    }
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < RN; ++j) {
        const int key = static_cast<int>(k0) + tx + 16 * j;
        const bool seen = key >= row_lo[i] && key < row_hi[i];
        const T pr = seen ? ex2(s[i][j] - lse2[i]) : T(0);
        dss[(ty + 16 * i) * kLdP + tx + 16 * j] = round_input(pr * (dp[i][j] - di[i]), p.bits);
      }
    __syncthreads();  // dS in place
    if (!idle) mma_nn<T, RM, RC, kBN, kLdP, kLdD>(dq_acc, dss + ty * kLdP, ks + tx * kVO);  // dQ += dS·K
  }

#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int r = ty + 16 * i;
    if (r >= m) continue;
    T* dst = p.dq + q_row(a, b, kh, r0 + r) * a.D;
#pragma unroll
    for (int c = 0; c < RC; ++c) {
      const int col = out_col<kVO>(tx, c);
      if (col < D) dst[col] += dq_acc[i][c] * p.scale;
    }
  }
}

// ============================================ KV cache, mask ============================================

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads)
    attention_kv_copy_kernel(T* dst, const T* src, int64_t BH, int64_t dst_capacity, int64_t dst_position,
                             int64_t src_capacity, int64_t per_head, int64_t D) {
  WAVEMOE_GRID_STRIDE(i, BH * per_head) {
    const int64_t h = i / per_head, e = i - h * per_head;  // e: element of the head's rows * D block
    dst[(h * dst_capacity + dst_position) * D + e] = src[h * src_capacity * D + e];
  }
}

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads)
    attention_causal_mask_fill_kernel(T* scores, int64_t N, int64_t Tq, int64_t Tk, int64_t q_offset) {
  WAVEMOE_GRID_STRIDE(idx, N * Tq * Tk) {
    const int64_t row = idx / Tk, j = idx - row * Tk;
    if (j > q_offset + row % Tq) scores[idx] = T(-INFINITY);
  }
}

// ============================================ host side ============================================

// Tile sizes (rows, keys) of each kernel per type and padded head dim: two blocks per SM where the tile allows,
// every one within sm_80's 163 KiB (the static_asserts in the shapes check it).
template <typename T, int kD> struct Tiles {
  static constexpr bool f32 = sizeof(T) == 4;
  static constexpr int fwd_rows = f32 ? (kD <= 128 ? 64 : 32) : 32;
  static constexpr int fwd_keys = f32 ? (kD <= 64 ? 64 : 32) : (kD <= 128 ? 32 : 16);
  static constexpr int dec_rows = 16;  // forward when a (batch, kv head) has few query rows (decoding)
  static constexpr int kv_keys = f32 ? (kD <= 64 ? 64 : 32) : (kD <= 128 ? 32 : 16);  // dK/dV kernel
  static constexpr int kv_rows = f32 ? (kD <= 128 ? 32 : 16) : 16;
  static constexpr int q_rows = f32 ? (kD <= 64 ? 64 : kD <= 128 ? 32 : 16) : (kD <= 128 ? 32 : 16);  // dQ kernel
  static constexpr int q_keys = f32 ? 32 : 16;
};

// Calls f with std::integral_constant<int, kD>: D rounded up to a tile width.
template <typename F> void with_head_dim(int64_t D, F&& f) {
  if (D <= 32) {
    f(std::integral_constant<int, 32>{});
  } else if (D <= 64) {
    f(std::integral_constant<int, 64>{});
  } else if (D <= 96) {
    f(std::integral_constant<int, 96>{});
  } else if (D <= 128) {
    f(std::integral_constant<int, 128>{});
  } else {
    f(std::integral_constant<int, 256>{});
  }
}

// Multiprocessors of the current device (asked once per device).
int sm_count() {
  static std::atomic<int> cached[64];
  int dev = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&dev));
  int n = dev >= 0 && dev < 64 ? cached[dev].load(std::memory_order_relaxed) : 0;
  if (n == 0) {
    WAVEMOE_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    if (dev >= 0 && dev < 64) cached[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}

// Lets `kernel` use `bytes` of dynamic shared memory on the current device (the opt-in above 48 KiB, once per
// kernel and device).
template <typename Kernel> void allow_shared(Kernel kernel, size_t bytes) {
  if (bytes <= kDefaultShared) return;
  int dev = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&dev));
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> done;
  const std::pair<const void*, int> key(reinterpret_cast<const void*>(kernel), dev);
  std::lock_guard<std::mutex> lock(mutex);
  if (done.count(key) != 0) return;
  WAVEMOE_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  done.insert(key);
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

unsigned int grid_x(int64_t blocks, const char* what) {
  if (blocks > 0x7fffffff) throw std::invalid_argument(std::string(what) + ": too many (batch, head, tile) blocks");
  return static_cast<unsigned int>(blocks);
}

// Checks what the kernels rely on (the binding validates the rest); returns the kernels' view of the call.
Dims make_dims(const AttentionParams& p, const char* what) {
  const std::string w(what);
  if (p.Hkv <= 0 || p.Hq % p.Hkv != 0) throw std::invalid_argument(w + ": Hq must be a multiple of Hkv >= 1");
  if (p.D < 1 || p.D > kMaxHeadDim) {
    throw std::invalid_argument(w + ": head dim " + std::to_string(p.D) + " not supported on the GPU (1.." +
                                std::to_string(kMaxHeadDim) + ")");
  }
  if (p.kv_length < 0 || p.kv_length > p.kv_capacity) throw std::invalid_argument(w + ": kv_length > kv_capacity");
  if (p.kv_capacity > 0x7fffffff - 256) throw std::invalid_argument(w + ": kv_capacity must be < 2^31");
  if (p.mask == AttentionMask::sliding_window && p.window < 1) throw std::invalid_argument(w + ": window < 1");
  Dims a;
  a.B = p.B, a.Hq = p.Hq, a.Hkv = p.Hkv, a.Tq = p.Tq, a.C = p.kv_capacity, a.L = p.kv_length, a.D = p.D;
  a.g = p.Hq / p.Hkv;
  a.rows = p.Tq * a.g;
  if (a.rows > 0x7fffffff - 256) throw std::invalid_argument(w + ": Tq · Hq / Hkv too large");
  a.window = std::min(p.window, std::max<int64_t>(p.kv_length, 1));
  a.q_offset = p.mask == AttentionMask::none ? 0 : p.q_offset;
  a.mask = p.mask;
  return a;
}

// Launches a forward kernel (row tiles of kBM rows, key tiles of kBN keys) and, when the keys are split, the combine.
template <typename T, typename Kernel>
void run_forward(Kernel kernel, int threads, size_t smem, int kBM, int kBN, ForwardArgs<T> args, cudaStream_t stream) {
  const Dims& a = args.a;
  args.qtiles = ceil_div(a.rows, kBM);
  const int64_t blocks = args.qtiles * a.B * a.Hkv;
  // Flash-decoding: when the row tiles cannot fill the GPU, each one's keys are split too (>= 2 key tiles a split).
  const int64_t sms = sm_count();
  int64_t span = a.L;  // keys one row tile sees, at most
  if (a.mask == AttentionMask::sliding_window) span = std::min(a.L, a.window + ceil_div(kBM, a.g));
  int64_t splits = 1;
  if (blocks < sms) splits = iclamp(std::min(ceil_div(4 * sms, blocks), ceil_div(span, kBN) / 2), 1, kMaxSplits);
  DeviceBuffer<T> part_o, part_ml;
  if (splits > 1) {
    part_o = DeviceBuffer<T>(static_cast<size_t>(splits * args.nrows * a.D));
    part_ml = DeviceBuffer<T>(static_cast<size_t>(splits * args.nrows * 2));
    args.part_o = part_o.get();
    args.part_ml = part_ml.get();
  }
  allow_shared(kernel, smem);
  const dim3 grid(grid_x(blocks, "attention_forward"), static_cast<unsigned int>(splits));
  kernel<<<grid, threads, smem, stream>>>(args);
  WAVEMOE_CUDA_CHECK_LAUNCH("attention_forward");
  if (splits > 1) {
    attention_combine_kernel<T><<<grid_for(args.nrows * 32, kThreads), kThreads, 0, stream>>>(
        args.out, args.lse, args.part_o, args.part_ml, args.nrows, a.D, static_cast<int>(splits));
    WAVEMOE_CUDA_CHECK_LAUNCH("attention_forward (combine splits)");
  }
  // part_o / part_ml go back to the cache here: safe under the allocator's one-stream rule.
}

template <typename T, int kD, int kBM, int kBN>
void launch_forward(const ForwardArgs<T>& args, cudaStream_t stream) {
  run_forward(attention_forward_kernel<T, kD, kBM, kBN>, kThreads, ForwardShape<T, kD, kBM, kBN>::smem, kBM, kBN, args,
              stream);
}

template <int kD> void launch_forward_tc(const ForwardArgs<float>& args, cudaStream_t stream) {
  run_forward(attention_forward_tc_kernel<kD>, kTcThreads, TcShape<kD>::fwd_smem, kTcRows, kTcCols, args, stream);
}

template <typename T, int kD, int kBN, int kBM> void launch_dkdv(BackwardArgs<T> args, cudaStream_t stream) {
  using S = KeyTileShape<T, kD, kBN, kBM>;
  args.tiles = ceil_div(args.a.L, kBN);
  const auto kernel = attention_dkdv_kernel<T, kD, kBN, kBM>;
  allow_shared(kernel, S::smem);
  kernel<<<grid_x(args.tiles * args.a.B * args.a.Hkv, "attention_backward"), kThreads, S::smem, stream>>>(args);
  WAVEMOE_CUDA_CHECK_LAUNCH("attention_backward (dK, dV)");
}

template <typename T, int kD, int kBM, int kBN> void launch_dq(BackwardArgs<T> args, cudaStream_t stream) {
  using S = RowTileShape<T, kD, kBM, kBN>;
  args.tiles = ceil_div(args.a.rows, kBM);
  const auto kernel = attention_dq_kernel<T, kD, kBM, kBN>;
  allow_shared(kernel, S::smem);
  kernel<<<grid_x(args.tiles * args.a.B * args.a.Hkv, "attention_backward"), kThreads, S::smem, stream>>>(args);
  WAVEMOE_CUDA_CHECK_LAUNCH("attention_backward (dQ)");
}

template <int kD> void launch_backward_tc(BackwardArgs<float> args, cudaStream_t stream) {
  using S = TcShape<kD>;
  const Dims& a = args.a;
  args.tiles = ceil_div(a.L, kTcRows);
  allow_shared(attention_dkdv_tc_kernel<kD>, S::dkdv_smem);
  attention_dkdv_tc_kernel<kD><<<grid_x(args.tiles * a.B * a.Hkv, "attention_backward"), kTcThreads, S::dkdv_smem,
                                 stream>>>(args);
  WAVEMOE_CUDA_CHECK_LAUNCH("attention_backward (dK, dV; tensor cores)");
  args.tiles = ceil_div(a.rows, kTcRows);
  allow_shared(attention_dq_tc_kernel<kD>, S::dq_smem);
  attention_dq_tc_kernel<kD><<<grid_x(args.tiles * a.B * a.Hkv, "attention_backward"), kTcThreads, S::dq_smem,
                               stream>>>(args);
  WAVEMOE_CUDA_CHECK_LAUNCH("attention_backward (dQ; tensor cores)");
}

std::atomic<bool> g_tensor_cores_allowed{true};  // attention_allow_tensor_cores (tests)

// Whether a call runs on the bf16 WMMA kernels: float32 under the bf16 precision with tensor cores enabled, D <= 128.
// Everything else stays on the CUDA-core kernels: fp32 and float64 (unchanged), tf32 (no tf32 WMMA path yet) and
// D > 128 (the fragments of a warp's 16 x D accumulators would spill).
template <typename T> bool use_tensor_cores(int bits, int64_t D) {
  return g_tensor_cores_allowed.load(std::memory_order_relaxed) && D <= kTcMaxHeadDim &&
         tensor_core_bits(bits, std::is_same<T, float>::value) == 7;
}

}  // namespace

// ============================================ public launchers ============================================

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttentionParams& p,
                       cudaStream_t stream) {
  if (p.B <= 0 || p.Hq <= 0 || p.Tq <= 0) return;
  const Dims a = make_dims(p, "attention_forward");
  ForwardArgs<T> args{};
  args.out = out, args.lse = lse, args.q = q, args.k = k, args.v = v;
  args.a = a;
  args.qscale = static_cast<T>(p.scale * kLog2e);
  args.bits = std::is_same<T, float>::value ? matmul_round_bits() : 23;
  args.nrows = p.B * p.Hq * p.Tq;
  args.vec = p.D % kVec<T> == 0 && aligned16(q) && aligned16(k) && aligned16(v);
  const bool tc = use_tensor_cores<T>(args.bits, p.D);
  with_head_dim(p.D, [&](auto kd) {
    constexpr int kD = decltype(kd)::value;
    using Tl = Tiles<T, kD>;
    if constexpr (std::is_same<T, float>::value && kD <= kTcMaxHeadDim) {
      // Decoding (few rows per kv head) stays on the CUDA-core kernel's 16-row tiles: it is bandwidth-bound.
      if (tc && a.rows > 2 * Tl::dec_rows) return launch_forward_tc<kD>(args, stream);
    }
    if (a.rows <= 2 * Tl::dec_rows) {
      launch_forward<T, kD, Tl::dec_rows, Tl::fwd_keys>(args, stream);
    } else {
      launch_forward<T, kD, Tl::fwd_rows, Tl::fwd_keys>(args, stream);
    }
  });
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const AttentionParams& p, cudaStream_t stream) {
  if (p.B <= 0 || p.Hq <= 0 || p.Tq <= 0 || p.kv_length <= 0) return;
  const Dims a = make_dims(p, "attention_backward");
  if (lse == nullptr) throw std::invalid_argument("attention_backward: lse (from the forward) is required");
  const int64_t nrows = p.B * p.Hq * p.Tq;
  DeviceBuffer<T> di(static_cast<size_t>(nrows));
  attention_di_kernel<T><<<grid_for(nrows * 32, kThreads), kThreads, 0, stream>>>(di.get(), dout, out, nrows, p.D);
  WAVEMOE_CUDA_CHECK_LAUNCH("attention_backward (D_i)");
  BackwardArgs<T> args{};
  args.dq = dq, args.dk = dk, args.dv = dv;
  args.dout = dout, args.q = q, args.k = k, args.v = v, args.lse = lse, args.di = di.get();
  args.a = a;
  args.kscale = static_cast<T>(p.scale * kLog2e);
  args.scale = static_cast<T>(p.scale);
  args.bits = std::is_same<T, float>::value ? matmul_round_bits() : 23;
  args.vec = p.D % kVec<T> == 0 && aligned16(q) && aligned16(k) && aligned16(v) && aligned16(dout);
  const bool tc = use_tensor_cores<T>(args.bits, p.D);
  with_head_dim(p.D, [&](auto kd) {
    constexpr int kD = decltype(kd)::value;
    using Tl = Tiles<T, kD>;
    if constexpr (std::is_same<T, float>::value && kD <= kTcMaxHeadDim) {
      if (tc) return launch_backward_tc<kD>(args, stream);
    }
    launch_dkdv<T, kD, Tl::kv_keys, Tl::kv_rows>(args, stream);
    launch_dq<T, kD, Tl::q_rows, Tl::q_keys>(args, stream);
  });
}

template <typename T>
void attention_kv_copy(T* dst, const T* src, int64_t BH, int64_t dst_capacity, int64_t dst_position,
                       int64_t src_capacity, int64_t rows, int64_t D, cudaStream_t stream) {
  const int64_t per_head = rows * D;
  if (BH <= 0 || per_head <= 0) return;
  attention_kv_copy_kernel<T><<<grid_for(BH * per_head), kElementwiseThreads, 0, stream>>>(
      dst, src, BH, dst_capacity, dst_position, src_capacity, per_head, D);
  WAVEMOE_CUDA_CHECK_LAUNCH("attention_kv_copy");
}

template <typename T>
void attention_causal_mask_fill(T* scores, int64_t N, int64_t Tq, int64_t Tk, int64_t q_offset, cudaStream_t stream) {
  if (N <= 0 || Tq <= 0 || Tk <= 0) return;
  attention_causal_mask_fill_kernel<T><<<grid_for(N * Tq * Tk), kElementwiseThreads, 0, stream>>>(scores, N, Tq, Tk,
                                                                                                   q_offset);
  WAVEMOE_CUDA_CHECK_LAUNCH("attention_causal_mask_fill");
}

void attention_allow_tensor_cores(bool allowed) { g_tensor_cores_allowed.store(allowed); }

#define WAVEMOE_INSTANTIATE_GPU_ATTENTION(T)                                                                      \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionParams&, cudaStream_t); \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*,     \
                                      const AttentionParams&, cudaStream_t);                                      \
  template void attention_kv_copy<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,          \
                                     cudaStream_t);                                                               \
  template void attention_causal_mask_fill<T>(T*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
WAVEMOE_INSTANTIATE_GPU_ATTENTION(float)
WAVEMOE_INSTANTIATE_GPU_ATTENTION(double)
#undef WAVEMOE_INSTANTIATE_GPU_ATTENTION

}  // namespace gpu
}  // namespace wavemoe
