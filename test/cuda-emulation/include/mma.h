// WMMA of the CPU emulation of CUDA. Matrix A/B fragments hold the whole tile in every lane; an accumulator holds
// M·N/32 elements per lane under a fixed scrambled mapping (any mapping is valid on a GPU, so a kernel that assumes
// one fails here). Every load, mma and store is a warp-collective: all 32 lanes must reach it (a warp barrier, which
// orders no memory), and a load finishes in every lane before any lane goes on. Products are summed in float32, k in order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

// cvt.rna.tf32.f32: nearest, ties away from zero; 10 mantissa bits remain (the low 13 are zero).
inline float __float_to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u = (u + 0x1000u) & ~0x1fffu;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

template <typename T> struct storage { using type = T; };
template <> struct storage<precision::tf32> { using type = float; };

inline float value_of(float x) { return x; }
inline float value_of(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
  static_assert(std::is_same<Use, matrix_a>::value || std::is_same<Use, matrix_b>::value, "matrix_a or matrix_b");
  static_assert(!std::is_same<Layout, void>::value, "an A/B fragment needs a layout");
  using element_type = typename storage<T>::type;
  static constexpr int rows = std::is_same<Use, matrix_a>::value ? M : K;
  static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
  static constexpr int num_elements = rows * cols;
  element_type x[num_elements];  // (r, c) at r * cols + c, in every lane
};

template <int M, int N, int K, typename T> struct fragment<accumulator, M, N, K, T, void> {
  static_assert(M * N % 32 == 0, "accumulator tile");
  using element_type = T;
  static constexpr int num_elements = M * N / 32;
  T x[num_elements];  // element i of lane l is tile element position(l, i)
};

// The tile position (16·row + col) of accumulator element i of lane l: a fixed shuffle of the M·N positions.
template <int M, int N> int position(unsigned l, int i) {
  static const std::vector<int> map = [] {
    std::vector<int> m(M * N);
    for (int p = 0; p < M * N; ++p) m[p] = p;
    std::mt19937 gen(20261202);
    std::shuffle(m.begin(), m.end(), gen);
    return m;
  }();
  return map[l * (M * N / 32) + i];
}

inline void check_pointer(const void* p, unsigned ldm, size_t element_bytes, const char* op) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) emu::fail((std::string(op) + ": pointer not 256-bit aligned").c_str());
  if (ldm * element_bytes % 16 != 0) emu::fail((std::string(op) + ": ldm not a multiple of 16 bytes").c_str());
}

template <typename Use, int M, int N, int K, typename T, typename L, typename S>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const S* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, L>;
  static_assert(std::is_same<S, typename F::element_type>::value, "pointer type must match the fragment");
  check_pointer(p, ldm, sizeof(S), "wmma::load_matrix_sync");
  if (ldm < static_cast<unsigned>(std::is_same<L, row_major>::value ? F::cols : F::rows))
    emu::fail("wmma::load_matrix_sync: ldm shorter than a fragment row");
  static_assert((sizeof(S) == 2 || sizeof(S) == 4) && F::num_elements <= emu::kTileElements, "a tile of at most 256 4-byte elements");
  // Each element is read from memory by two lanes 16 apart (so a store by any one lane that no __syncwarp orders
  // before the load races with a reader on another lane, as ThreadSanitizer sees it), then handed to every lane
  // through the scheduler: 2 reads per element instead of 32.
  emu::warp_collective(0xffffffffu);
  const unsigned l = emu::lane();
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) {
      const unsigned e = static_cast<unsigned>(r * F::cols + c);
      if (e % 32 != l && (e + 16) % 32 != l) continue;
      // A volatile read: the second lane's copy is not used, and must not be optimised away.
      using Bits = std::conditional_t<sizeof(S) == 2, uint16_t, uint32_t>;
      const S* at = std::is_same<L, row_major>::value ? p + r * ldm + c : p + c * ldm + r;
      const Bits bits = *reinterpret_cast<const volatile Bits*>(at);
      if (e % 32 == l) emu::tile_put(e, bits);
    }
  emu::warp_collective(0xffffffffu);
  emu::tile_get_all(f.x, F::num_elements, sizeof(S));
  emu::warp_collective(0xffffffffu);  // every lane has its copy before the warp's tile buffer is reused
}

template <int M, int N, int K, typename T> void fill_fragment(fragment<accumulator, M, N, K, T>& f, T v) {
  for (T& x : f.x) x = v;
}

// Fragments are private to their lane: nothing here for ThreadSanitizer to check (and it would triple the time).
template <int M, int N, int K, typename T, typename LA, typename LB>
__attribute__((no_sanitize("thread"))) void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  emu::warp_collective(0xffffffffu);
  const unsigned l = emu::lane();
  float out[M * N / 32];
  for (int i = 0; i < M * N / 32; ++i) {
    const int pos = position<M, N>(l, i), r = pos / N, col = pos % N;
    float acc = c.x[i];
    for (int k = 0; k < K; ++k) {
      const float av = value_of(a.x[r * K + k]), bv = value_of(b.x[k * N + col]);
      if (std::is_same<T, precision::tf32>::value && ((__float_as_uint(av) | __float_as_uint(bv)) & 0x1fffu) != 0)
        emu::fail("wmma::mma_sync: a tf32 input keeps more than 10 mantissa bits (no __float_to_tf32)");
      acc = std::fmaf(av, bv, acc);
    }
    out[i] = acc;
  }
  for (int i = 0; i < M * N / 32; ++i) d.x[i] = out[i];
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  check_pointer(p, ldm, sizeof(float), "wmma::store_matrix_sync");
  emu::warp_collective(0xffffffffu);  // no barrier after: a kernel syncs the warp before other lanes read the tile
  const unsigned l = emu::lane();
  for (int i = 0; i < M * N / 32; ++i) {
    const int pos = position<M, N>(l, i), r = pos / N, c = pos % N;
    p[layout == mem_row_major ? r * ldm + c : c * ldm + r] = f.x[i];
  }
}

}  // namespace wmma
}  // namespace nvcuda
