// What the attention kernels (attention.cu) and their tensor-core variants (attention_tc.cuh) share: the sizes of a
// call, the key ranges of the masks, the row indexing of GQA and KV caches, and the kernels' argument blocks. Device
// code only, with no dependency beyond the CUDA runtime header, so that a CPU harness can compile it with a shim.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "attention.h"

namespace wavemoe {
namespace gpu {
namespace {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

__host__ __device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
__host__ __device__ __forceinline__ int64_t iclamp(int64_t x, int64_t lo, int64_t hi) { return imin(imax(x, lo), hi); }
__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The sizes of one call as the kernels use them.
struct Dims {
  int64_t B, Hq, Hkv, Tq, C, L, D;
  int64_t g;         // query heads per kv head
  int64_t rows;      // query rows per (batch, kv head): Tq · g (< 2^31, checked)
  int64_t window;    // sliding window, clamped to [1, max(L, 1)] so that index sums never overflow (as the CPU)
  int64_t q_offset;  // position of query 0; 0 for mask none
  AttentionMask mask;
};

// Keys [keys_lo, keys_hi) that query position t sees (the CPU's Layout::keys_of), within [0, L) (L < 2^31, checked:
// key indices are ints, which keeps the per-row bounds in few registers); both grow with t.
__device__ __forceinline__ int keys_lo(const Dims& a, int64_t t) {
  return a.mask == AttentionMask::sliding_window ? static_cast<int>(iclamp(a.q_offset + t - a.window + 1, 0, a.L))
                                                 : 0;
}
__device__ __forceinline__ int keys_hi(const Dims& a, int64_t t) {
  return static_cast<int>(a.mask == AttentionMask::none ? a.L : iclamp(a.q_offset + t + 1, 0, a.L));
}

// Row index in a (B, Hq, Tq, ·) tensor of row r of (b, kv head kh): position r / g of query head kh · g + r % g.
__device__ __forceinline__ int64_t q_row(const Dims& a, int64_t b, int64_t kh, int r) {
  const unsigned g = static_cast<unsigned>(a.g), t = static_cast<unsigned>(r) / g, h = static_cast<unsigned>(r) - t * g;
  return (b * a.Hq + kh * a.g + h) * a.Tq + t;
}
// Row index in a (B, Hkv, C, D) tensor of key j of (b, kh).
__device__ __forceinline__ int64_t kv_row(const Dims& a, int64_t b, int64_t kh, int64_t j) {
  return (b * a.Hkv + kh) * a.C + j;
}

template <typename T> struct ForwardArgs {
  T* out;
  T* lse;  // or nullptr
  const T* q;
  const T* k;
  const T* v;
  T* part_o;   // (splits, nrows, D) unnormalised outputs, or nullptr when the keys are not split
  T* part_ml;  // (splits, nrows, 2) running max (log2 units) and sum
  Dims a;
  T qscale;        // scale · log2 e, folded into Q as it is loaded
  int bits;        // mantissa bits of every product input (23: none rounded)
  int64_t qtiles;  // row tiles per (batch, kv head)
  int64_t nrows;   // B · Hq · Tq
  bool vec;        // 16-byte global loads of q, k, v
};

template <typename T> struct BackwardArgs {
  T* dq;
  T* dk;
  T* dv;
  const T* dout;
  const T* q;
  const T* k;
  const T* v;
  const T* lse;
  const T* di;  // rowsum(dout ⊙ out), (B, Hq, Tq)
  Dims a;
  T kscale;       // scale · log2 e: folded into K (dK/dV kernel) or Q (dQ kernel) as it is loaded
  T scale;        // applied to the dK and dQ sums when they are added
  int bits;       // mantissa bits of every product input (23: none rounded)
  int64_t tiles;  // key tiles (dK/dV kernel) or row tiles (dQ kernel) per (batch, kv head)
  bool vec;       // 16-byte global loads of q, k, v, dout
};

}  // namespace
}  // namespace gpu
}  // namespace wavemoe
