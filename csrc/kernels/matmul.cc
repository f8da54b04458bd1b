// Batched GEMM, BLIS/GotoBLAS style (see matmul.h for the contract).
//
// Backward ADDS (+=) into dA and dB; zeroing is the caller's job.
//
// Loop nest for one C = op(A)·op(B), with the register tile MR×NR and cache blocks KC, MC, NC of the ISA's kernel:
//   for jc in N step NC:                 B block: kc×nc, packed into NR-column panels (zero-padded), shared (L3)
//     for pc in K step KC:               packed cooperatively by all threads, then one compute pass:
//       for ic in M step MC:             A block: mc×kc, packed per thread into MR-row panels (L2)
//         for jr in nc step NR:          one B panel (L1)
//           for ir in mc step MR:        micro-kernel: MR×NR tile of C, kc fused multiply-adds per element
// The compute pass splits the MR-row panels of M (and/or the NR-column panels of the block) over threads. Every C
// element is one FMA chain over each KC block in k order, added to C block after block: the partition (threads,
// batch folding, edge tiles) never changes the arithmetic, so results are identical for any thread count.
#include "matmul.h"

#include <atomic>
#include <type_traits>
#include <vector>

#include "matmul_precision.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "../core/cpu_features.h"
#include "../core/error.h"
#include "../core/thread_pool.h"
#include "isa/gemm_microkernel.h"

namespace wavemoe {
namespace {

// GEMMs with at most this many multiply-adds skip packing and use the plain loops.
constexpr int64_t kSmallGemm = 32768;
// In a batch, GEMMs with at most this many multiply-adds run whole on one thread each (no per-GEMM sync).
constexpr int64_t kSmallBatchGemm = int64_t{1} << 23;
// Least multiply-adds worth giving a thread.
constexpr int64_t kMinWorkPerThread = int64_t{1} << 18;
// GEMMs with at most this many rows of C stream the weight once instead of packing it (isa/gemm_skinny.h).
constexpr int64_t kSkinnyRows = 4;
// Columns of C per scheduling unit of the skinny GEMM: a multiple of every vector width and strip.
constexpr int64_t kSkinnyUnit = 32;
// Upper bound of MR·NR over every kernel: the scratch tile for partial edge tiles.
constexpr int kMaxTile = 512;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- kernel selection -------------------------------------------------------------------------------------------

template <typename T> const GemmKernel<T>* kernel_for(Isa isa);
template <> const GemmKernel<float>* kernel_for<float>(Isa isa) {
  switch (isa) {
    case Isa::avx512: return isa_avx512::gemm_kernel_f32();
    case Isa::avx2: return isa_avx2::gemm_kernel_f32();
    case Isa::generic: break;
  }
  return isa_generic::gemm_kernel_f32();
}
template <> const GemmKernel<double>* kernel_for<double>(Isa isa) {
  switch (isa) {
    case Isa::avx512: return isa_avx512::gemm_kernel_f64();
    case Isa::avx2: return isa_avx2::gemm_kernel_f64();
    case Isa::generic: break;
  }
  return isa_generic::gemm_kernel_f64();
}

// The kernel of the current ISA; the generic one if that ISA's file was built without its flags.
template <typename T> const GemmKernel<T>& select_kernel() {
  const GemmKernel<T>* k = kernel_for<T>(current_isa());
  return k != nullptr ? *k : *kernel_for<T>(Isa::generic);
}

// ---- packing buffers --------------------------------------------------------------------------------------------

// Packing buffers, one per calling thread, grown on demand and kept: allocating megabytes per call would cost page
// faults comparable to a whole mid-sized GEMM. Scratch, not tensor memory, so outside the allocation accounting.
class Workspace {
 public:
  ~Workspace() { std::free(data_); }
  template <typename T> T* get(int64_t elements) {
    size_t bytes = static_cast<size_t>(round_up(elements * static_cast<int64_t>(sizeof(T)), 64));
    if (bytes > capacity_) {
      std::free(data_);
      capacity_ = 0;
      data_ = std::aligned_alloc(64, bytes);
      if (data_ == nullptr) {
        throw Error("matmul: out of memory for packing buffers (" + std::to_string(bytes) + " bytes)");
      }
      capacity_ = bytes;
    }
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

thread_local Workspace t_workspace;

// ---- packing ----------------------------------------------------------------------------------------------------
//
// A block of rows [r0, r0 + r) and k in [k0, k0 + kc) of a matrix X is packed into ceil(r / W) panels of W rows,
// each stored k-major (panel p at dst + p*W*kc, element (x, k) at [k*W + x]), rows past r zero.
// X(row, k) is src[k*ld + row] when k_major (op(A) of a transposed A, op(B)ᵀ of a plain B), else src[row*ld + k].
// Both layouts are read in address order, and upcoming source lines are prefetched: packing streams whole
// operands from memory (the 2048×50254 gradient of the vocabulary head), and without prefetch the hardware
// prefetchers lose track of the many short row segments.

constexpr int64_t kLine = 64;  // bytes

template <typename T> void prefetch_span(const T* p, int64_t n) {
  for (int64_t off = 0; off < n * static_cast<int64_t>(sizeof(T)); off += kLine) {
    __builtin_prefetch(reinterpret_cast<const char*>(p) + off);
  }
}

// k-major source: each k is one contiguous run of r values, split across the panels.
template <typename T, int W>
void pack_k_major(T* dst, const T* src, int64_t ld, int64_t r0, int64_t r, int64_t k0, int64_t kc) {
  const int64_t full = r / W * W;
  const int64_t panel = W * kc;
  for (int64_t k = 0; k < kc; ++k) {
    const T* s = src + (k0 + k) * ld + r0;
    if (k + 4 < kc) prefetch_span(s + 4 * ld, r);  // rows far apart in memory are not prefetched by hardware
    T* d = dst + k * W;
    for (int64_t x = 0; x < full; x += W, d += panel) {
      for (int i = 0; i < W; ++i) d[i] = s[x + i];
    }
    if (full < r) {
      for (int i = 0; i < W; ++i) d[i] = full + i < r ? s[full + i] : T(0);
    }
  }
}

// Row-major source: each panel interleaves W rows; the next panel's rows are prefetched while this one is copied.
template <typename T, int W>
void pack_rows(T* dst, const T* src, int64_t ld, int64_t r0, int64_t r, int64_t k0, int64_t kc) {
  for (int64_t x0 = 0; x0 < r; x0 += W, dst += W * kc) {
    const int64_t rows = std::min<int64_t>(W, r - x0);
    const T* s = src + (r0 + x0) * ld + k0;
    for (int64_t x = 0; x < std::min<int64_t>(W, r - x0 - W); ++x) prefetch_span(s + (W + x) * ld, kc);
    if (rows == W) {
      for (int64_t k = 0; k < kc; ++k) {
        for (int i = 0; i < W; ++i) dst[k * W + i] = s[i * ld + k];
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        for (int i = 0; i < W; ++i) dst[k * W + i] = i < rows ? s[i * ld + k] : T(0);
      }
    }
  }
}

template <typename T, int W>
void pack_w(T* dst, const T* src, int64_t ld, bool k_major, int64_t r0, int64_t r, int64_t k0, int64_t kc) {
  if (k_major) {
    pack_k_major<T, W>(dst, src, ld, r0, r, k0, kc);
  } else {
    pack_rows<T, W>(dst, src, ld, r0, r, k0, kc);
  }
}

// Dispatches the panel width (a kernel's MR or NR) to a compile-time constant, so the copies unroll.
template <typename T>
void pack_block(T* dst, int w, const T* src, int64_t ld, bool k_major, int64_t r0, int64_t r, int64_t k0,
                int64_t kc) {
  switch (w) {
    case 4: return pack_w<T, 4>(dst, src, ld, k_major, r0, r, k0, kc);
    case 6: return pack_w<T, 6>(dst, src, ld, k_major, r0, r, k0, kc);
    case 8: return pack_w<T, 8>(dst, src, ld, k_major, r0, r, k0, kc);
    case 12: return pack_w<T, 12>(dst, src, ld, k_major, r0, r, k0, kc);
    case 16: return pack_w<T, 16>(dst, src, ld, k_major, r0, r, k0, kc);
    case 32: return pack_w<T, 32>(dst, src, ld, k_major, r0, r, k0, kc);
  }
  throw Error("matmul: no packing routine for panel width " + std::to_string(w));
}

// One GEMM: C (M×N, row-major) = op(A)·op(B) (+ C when accumulate).
template <typename T> struct Gemm {
  const GemmKernel<T>& kern;
  const T* A;
  const T* B;
  T* C;
  int64_t M, N, K;
  bool trans_a, trans_b, accumulate;

  int64_t lda() const { return trans_a ? M : K; }
  int64_t ldb() const { return trans_b ? K : N; }
  // Buffer sizes in elements (rounded to 64 bytes so that slots stay aligned).
  int64_t a_block_elems() const {
    return round_up(round_up(std::min(M, kern.mc), kern.mr) * std::min(K, kern.kc), 16);
  }
  int64_t b_block_elems() const {
    return round_up(round_up(std::min(N, kern.nc), kern.nr) * std::min(K, kern.kc), 16);
  }

  // Rows [i0, i0 + mc) of op(A), k in [pc, pc + kc), as MR-row panels.
  void pack_a(T* dst, int64_t i0, int64_t mc, int64_t pc, int64_t kc) const {
    pack_block(dst, kern.mr, A, lda(), trans_a, i0, mc, pc, kc);
  }
  // NR-column panels [p0, p1) of op(B) columns from jc (nc in all), k in [pc, pc + kc).
  void pack_b(T* dst, int64_t jc, int64_t nc, int64_t pc, int64_t kc, int64_t p0, int64_t p1) const {
    int64_t j0 = p0 * kern.nr, j1 = std::min(nc, p1 * kern.nr);
    pack_block(dst + j0 * kc, kern.nr, B, ldb(), !trans_b, jc + j0, j1 - j0, pc, kc);
  }

  // C[i0 : i0+mc, jc + panels p0..p1) from a packed A block and B block.
  void macro_kernel(const T* pa, const T* pb, int64_t i0, int64_t mc, int64_t jc, int64_t nc, int64_t kc,
                    int64_t p0, int64_t p1, bool add) const {
    const int mr = kern.mr, nr = kern.nr;
    for (int64_t p = p0; p < p1; ++p) {
      int64_t j = p * nr;
      int64_t n = std::min<int64_t>(nr, nc - j);
      const T* b = pb + j * kc;
      for (int64_t i = 0; i < mc; i += mr) {
        int64_t m = std::min<int64_t>(mr, mc - i);
        const T* a = pa + i * kc;
        T* c = C + (i0 + i) * N + jc + j;
        if (m == mr && n == nr) {
          kern.micro(kc, a, b, c, N, add);
        } else {
          edge_tile(a, b, c, m, n, kc, add);
        }
      }
    }
  }

  // A partial tile: the full micro-kernel into a scratch tile, then the m×n corner into C.
  void edge_tile(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t kc, bool add) const {
    alignas(64) T tile[kMaxTile];
    kern.micro(kc, a, b, tile, kern.nr, false);
    for (int64_t i = 0; i < m; ++i) {
      const T* t = tile + i * kern.nr;
      T* row = c + i * N;
      if (add) {
        for (int64_t j = 0; j < n; ++j) row[j] += t[j];
      } else {
        for (int64_t j = 0; j < n; ++j) row[j] = t[j];
      }
    }
  }

  // Whole GEMM on the calling thread with its own buffers.
  void run_serial(T* pa, T* pb) const {
    for (int64_t jc = 0; jc < N; jc += kern.nc) {
      int64_t nc = std::min(kern.nc, N - jc);
      int64_t panels = (nc + kern.nr - 1) / kern.nr;
      for (int64_t pc = 0; pc < K; pc += kern.kc) {
        int64_t kc = std::min(kern.kc, K - pc);
        bool add = accumulate || pc > 0;
        pack_b(pb, jc, nc, pc, kc, 0, panels);
        for (int64_t ic = 0; ic < M; ic += kern.mc) {
          int64_t mc = std::min(kern.mc, M - ic);
          pack_a(pa, ic, mc, pc, kc);
          macro_kernel(pa, pb, ic, mc, jc, nc, kc, 0, panels, add);
        }
      }
    }
  }

  // Whole GEMM on up to `slots` threads: pb is the shared B block, pa + t*a_stride the A block of part t.
  void run_parallel(T* pb, T* pa, int64_t a_stride, int slots) const {
    const int64_t m_panels = (M + kern.mr - 1) / kern.mr;
    for (int64_t jc = 0; jc < N; jc += kern.nc) {
      int64_t nc = std::min(kern.nc, N - jc);
      int64_t n_panels = (nc + kern.nr - 1) / kern.nr;
      for (int64_t pc = 0; pc < K; pc += kern.kc) {
        int64_t kc = std::min(kern.kc, K - pc);
        bool add = accumulate || pc > 0;
        int64_t pack_grain = std::max<int64_t>(1, 32768 / (kc * kern.nr));
        parallel_for(n_panels, pack_grain, [&](int64_t p0, int64_t p1) { pack_b(pb, jc, nc, pc, kc, p0, p1); });

        int64_t parts = std::min<int64_t>(slots, std::max<int64_t>(1, M * nc * kc / kMinWorkPerThread));
        parts = std::min(parts, m_panels * n_panels);
        int64_t tm = rows_split(parts, m_panels, n_panels), tn = parts / tm;
        parallel_chunks(parts, 1, [&](int64_t, int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            int64_t pm0, pm1, pn0, pn1;
            chunk_bounds(m_panels, tm, t / tn, &pm0, &pm1);
            chunk_bounds(n_panels, tn, t % tn, &pn0, &pn1);
            int64_t m_end = std::min(M, pm1 * kern.mr);
            T* my_pa = pa + t * a_stride;
            for (int64_t ic = pm0 * kern.mr; ic < m_end; ic += kern.mc) {
              int64_t mc = std::min(kern.mc, m_end - ic);
              pack_a(my_pa, ic, mc, pc, kc);
              macro_kernel(my_pa, pb, ic, mc, jc, nc, kc, pn0, pn1, add);
            }
          }
        });
      }
    }
  }

  // How many of `parts` split the M panels (the rest split the N panels): the divisor with the least work in the
  // busiest part; ties favour M, which packs each A block once.
  static int64_t rows_split(int64_t parts, int64_t m_panels, int64_t n_panels) {
    int64_t best = 1, best_cost = INT64_MAX;
    for (int64_t tm = parts; tm >= 1; --tm) {
      if (parts % tm != 0) continue;
      int64_t tn = parts / tm;
      int64_t cost = ((m_panels + tm - 1) / tm) * ((n_panels + tn - 1) / tn);
      if (cost < best_cost) best = tm, best_cost = cost;
    }
    return best;
  }
};

// C = op(A)·op(B) with M <= kSkinnyRows: each thread computes a range of columns whole, straight from B.
template <typename T>
void skinny_forward(T* C, const T* A, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool accumulate) {
  const GemmKernel<T>& kern = select_kernel<T>();
  const auto fn = kern.skinny[M - 1];
  const int64_t units = (N + kSkinnyUnit - 1) / kSkinnyUnit;
  // Memory-bound: worth a thread from about 64 KiB of B on (less than kMinWorkPerThread multiply-adds for M = 1).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / (K * static_cast<int64_t>(sizeof(T)) * kSkinnyUnit));
  for (int64_t b = 0; b < batch; ++b) {
    SkinnyArgs<T> args{A + b * stride_a, trans_a ? 1 : K, trans_a ? M : 1, B + b * stride_b, trans_b, C + b * stride_c,
                       N, N, K, kern.kc, 0, 0, accumulate};
    parallel_for(units, grain, [&](int64_t u0, int64_t u1) {
      SkinnyArgs<T> part = args;
      part.n0 = u0 * kSkinnyUnit;
      part.n1 = std::min(N, u1 * kSkinnyUnit);
      fn(part);
    });
  }
}

template <typename T> void zero_outputs(T* C, int64_t batch, int64_t M, int64_t N, int64_t stride_c) {
  for (int64_t b = 0; b < batch; ++b) std::memset(C + b * stride_c, 0, sizeof(T) * M * N);
}

template <typename T>
void blocked_forward(T* C, const T* A, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                     bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool accumulate) {
  // One weight for a batch of contiguous inputs is one tall GEMM.
  if (batch > 1 && stride_b == 0 && !trans_a && stride_a == M * K && stride_c == M * N) {
    M *= batch;
    batch = 1;
  }
  const GemmKernel<T>& kern = select_kernel<T>();
  auto gemm_at = [&](int64_t b) {
    return Gemm<T>{kern, A + b * stride_a, B + b * stride_b, C + b * stride_c, M, N, K, trans_a, trans_b, accumulate};
  };
  const Gemm<T> shape = gemm_at(0);
  const int slots = num_threads();
  const int64_t a_elems = shape.a_block_elems(), b_elems = shape.b_block_elems();

  if (batch > 1 && batch >= slots && M * N * K <= kSmallBatchGemm) {
    // Many small GEMMs: each slot runs its share of the batch whole, with its own buffers.
    T* ws = t_workspace.get<T>(slots * (a_elems + b_elems));
    parallel_chunks(slots, 1, [&](int64_t, int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        T* pa = ws + s * (a_elems + b_elems);
        int64_t b0, b1;
        chunk_bounds(batch, slots, s, &b0, &b1);
        for (int64_t b = b0; b < b1; ++b) gemm_at(b).run_serial(pa, pa + a_elems);
      }
    });
    return;
  }
  T* ws = t_workspace.get<T>(b_elems + slots * a_elems);
  for (int64_t b = 0; b < batch; ++b) gemm_at(b).run_parallel(ws, ws + b_elems, a_elems, slots);
}

// dA += dC · op(B)ᵀ for one batch layout (dA strided like A).
template <typename T>
void grad_a(T* dA, const T* dC, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
            bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c) {
  if (!trans_a) {  // dA (M, K) = dC (M, N) · op(B)ᵀ (N, K)
    matmul_forward(dA, dC, B, batch, M, K, N, false, !trans_b, stride_c, stride_b, stride_a, true);
  } else {  // dA (K, M) = op(B) (K, N) · dCᵀ (N, M)
    matmul_forward(dA, B, dC, batch, K, M, N, trans_b, true, stride_b, stride_c, stride_a, true);
  }
}

// dB += op(A)ᵀ · dC for one batch layout (dB strided like B).
template <typename T>
void grad_b(T* dB, const T* dC, const T* A, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
            bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c) {
  if (!trans_b) {  // dB (K, N) = op(A)ᵀ (K, M) · dC (M, N)
    matmul_forward(dB, A, dC, batch, K, N, M, !trans_a, false, stride_a, stride_c, stride_b, true);
  } else {  // dB (N, K) = dCᵀ (N, M) · op(A) (M, K)
    matmul_forward(dB, dC, A, batch, N, K, M, true, trans_a, stride_c, stride_a, stride_b, true);
  }
}

}  // namespace

template <typename T>
void matmul_forward_naive(T* C, const T* A, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                          bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool accumulate) {
  for (int64_t b = 0; b < batch; ++b) {
    const T* a = A + b * stride_a;
    const T* bm = B + b * stride_b;
    T* c = C + b * stride_c;
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          double x = trans_a ? a[k * M + i] : a[i * K + k];
          double y = trans_b ? bm[j * K + k] : bm[k * N + j];
          s += x * y;
        }
        c[i * N + j] = static_cast<T>(accumulate ? c[i * N + j] + s : s);
      }
    }
  }
}

template <typename T>
void matmul_forward_blocked(T* C, const T* A, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K,
                            bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                            bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) zero_outputs(C, batch, M, N, stride_c);
    return;
  }
  blocked_forward(C, A, B, batch, M, N, K, trans_a, trans_b, stride_a, stride_b, stride_c, accumulate);
}

namespace {

std::atomic<int> g_matmul_precision{static_cast<int>(MatmulPrecision::fp32)};

// The product at the operands' own precision (every path: plain loops, skinny, blocked).
template <typename T>
void forward_exact(T* C, const T* A, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                   bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool accumulate) {
  if (K > 0 && M * N * K <= kSmallGemm) {
    // Packing costs more than it saves: plain loops, the batch split over threads.
    int64_t grain = std::max<int64_t>(1, kMinWorkPerThread / (M * N * K));
    parallel_for(batch, grain, [&](int64_t b0, int64_t b1) {
      matmul_forward_naive(C + b0 * stride_c, A + b0 * stride_a, B + b0 * stride_b, b1 - b0, M, N, K, trans_a,
                           trans_b, stride_a, stride_b, stride_c, accumulate);
    });
    return;
  }
  if (K > 0 && M <= kSkinnyRows) {
    skinny_forward(C, A, B, batch, M, N, K, trans_a, trans_b, stride_a, stride_b, stride_c, accumulate);
    return;
  }
  matmul_forward_blocked(C, A, B, batch, M, N, K, trans_a, trans_b, stride_a, stride_b, stride_c, accumulate);
}

// A copy of the `count` floats at src rounded to the matmul precision, in a per-thread buffer reused across calls.
const float* rounded_copy(std::vector<float>* buffer, const float* src, int64_t count, MatmulPrecision p) {
  buffer->resize(static_cast<size_t>(count));
  const int bits = mantissa_bits(p);
  float* dst = buffer->data();
  parallel_for(count, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] = round_mantissa(src[i], bits);
  });
  return dst;
}

// Elements an operand spans over the batch (a broadcast one, stride 0, spans one matrix).
int64_t operand_span(int64_t batch, int64_t stride, int64_t matrix) {
  return stride == 0 ? matrix : (batch - 1) * stride + matrix;
}

}  // namespace

void set_matmul_precision(MatmulPrecision p) { g_matmul_precision.store(static_cast<int>(p)); }
MatmulPrecision matmul_precision() { return static_cast<MatmulPrecision>(g_matmul_precision.load()); }
const char* matmul_precision_name(MatmulPrecision p) {
  switch (p) {
    case MatmulPrecision::fp32: return "fp32";
    case MatmulPrecision::tf32: return "tf32";
    case MatmulPrecision::bf16: return "bf16";
  }
  return "unknown";
}

template <typename T>
void matmul_forward(T* C, const T* A, const T* B, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if constexpr (std::is_same_v<T, float>) {
    const MatmulPrecision p = matmul_precision();
    if (p != MatmulPrecision::fp32 && K > 0) {
      // Emulated tensor-core precision: the inputs rounded once, then the float32 product (see matmul_precision.h).
      thread_local std::vector<float> a_buffer, b_buffer;
      const float* a = rounded_copy(&a_buffer, A, operand_span(batch, stride_a, M * K), p);
      const float* b = rounded_copy(&b_buffer, B, operand_span(batch, stride_b, K * N), p);
      forward_exact(C, a, b, batch, M, N, K, trans_a, trans_b, stride_a, stride_b, stride_c, accumulate);
      return;
    }
  }
  forward_exact(C, A, B, batch, M, N, K, trans_a, trans_b, stride_a, stride_b, stride_c, accumulate);
}

template <typename T>
void matmul_backward(T* dA, T* dB, const T* dC, const T* A, const T* B, int64_t batch, int64_t M, int64_t N,
                     int64_t K, bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c) {
  if (batch <= 0 || M <= 0 || N <= 0 || K <= 0) return;  // nothing to add
  if (dA != nullptr) {
    if (stride_a == 0 && batch > 1) {
      // A broadcast: its gradient sums over the batch, added batch by batch in order.
      for (int64_t b = 0; b < batch; ++b) {
        grad_a(dA, dC + b * stride_c, B + b * stride_b, 1, M, N, K, trans_a, trans_b, 0, 0, 0);
      }
    } else {
      grad_a(dA, dC, B, batch, M, N, K, trans_a, trans_b, stride_a, stride_b, stride_c);
    }
  }
  if (dB != nullptr) {
    if (stride_b == 0 && batch > 1) {
      if (!trans_a && stride_a == M * K && stride_c == M * N) {
        // Contiguous A and dC: the batch folds into the reduction, one GEMM with M·batch rows of A and dC.
        grad_b(dB, dC, A, 1, M * batch, N, K, false, trans_b, 0, 0, 0);
      } else {
        for (int64_t b = 0; b < batch; ++b) {
          grad_b(dB, dC + b * stride_c, A + b * stride_a, 1, M, N, K, trans_a, trans_b, 0, 0, 0);
        }
      }
    } else {
      grad_b(dB, dC, A, batch, M, N, K, trans_a, trans_b, stride_a, stride_b, stride_c);
    }
  }
}

#define WAVEMOE_INSTANTIATE_MATMUL(T)                                                                              \
  template void matmul_forward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool, bool, int64_t,  \
                                  int64_t, int64_t, bool);                                                          \
  template void matmul_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool,  \
                                   bool, int64_t, int64_t, int64_t);                                                \
  template void matmul_forward_naive<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool, bool,     \
                                        int64_t, int64_t, int64_t, bool);                                           \
  template void matmul_forward_blocked<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool, bool,   \
                                          int64_t, int64_t, int64_t, bool);

WAVEMOE_INSTANTIATE_MATMUL(float)
WAVEMOE_INSTANTIATE_MATMUL(double)

}  // namespace wavemoe
