// Native test of the CUDA attention kernels (cuda/attention.h) against the CPU kernels (csrc/kernels/attention.h) on
// random inputs of awkward sizes: every mask (windows 1, 3, wider than the keys), grouped-query heads (ratios 1, 2,
// 3), head dims off every tile width, KV caches larger than the keys in use (the unused rows hold NaN, so any read of
// them shows), decoding against 1, 100 and 4099 cached keys, float32 and float64; forward (out, lse; with and without
// lse), backward (adding into non-zero dq, dk, dv; dk and dv rows past kv_length must stay untouched), run-to-run
// determinism, and the KV-cache copy and causal mask fill (bit-identical). --bench: fused attention TFLOP/s (fp32, and
// bf16 on the tensor-core and on the CUDA-core kernels) and decoding µs per call; one JSON object on the last line.
//
//   build/cuda/cuda_test_attention           # exit 1 on any failure; SKIPPED line and exit 0 without a GPU
//   build/cuda/cuda_test_attention --bench
//
// Tolerances: |gpu - cpu| <= atol + rtol·|cpu| per element, with atol relative to each tensor's scale:
//   out   atol = tol · max|out|, rtol = tol
//   lse   atol = tol · (1 + max|lse|)
//   dq, dk, dv   atol = tol · max(max|Δ|, max|Δdv|), rtol = 4u, where Δ = what backward added (cpu result - initial
//         value): the size of the gradient, and 4u (u = unit roundoff) covers the rounding of initial + Δ. dV = Pᵀ·dO
//         never cancels, while dQ and dK sum dS = P ⊙ (dP - D_i), which is rounding noise when every row sees a single
//         key (then max|Δ| is no scale), so dV's size is the floor.
//   float32: tol = 1e-4. Both sides sum in float32 in different orders (tiles, key splits). Scores carry a relative
//     error of about u·sqrt(D), which exp turns into the same relative error of each probability; sums over n <= 4099
//     keys or rows add about u·sqrt(n) of their result. That is 1e-6..1e-5 of a tensor's scale here; 1e-4 leaves a
//     10x margin while a wrong mask, index or missing tile moves results by 1e-3..1 of the scale.
//   float64: tol = 1e-10, the same analysis with u = 1.1e-16 (about four orders of magnitude of margin): any logic
//     error shows here, whatever its size.
//   float32 under the bf16 matmul precision (every shape twice: the GPU's tensor-core (WMMA) kernels where they apply,
//     i.e. D <= 128 and, in the forward, more than 32 rows per kv head; then the CUDA-core kernels): both sides round the same inputs (Q, K, V, dO) the
//     same way, take the softmax statistics from unrounded probabilities and round P and dS before their products.
//     out   P is rounded relative to the running max of a key tile (CPU: 64 keys; GPU: 32 or 64, and key splits), so
//           each round(p) may differ by up to p·2^-7 (half a bf16 ulp on each side): atol += 2^-7·max|v|, since
//           Σ p|v| / Σ p <= max|v|. lse takes no rounded value into its sum: tol as float32.
//     dq, dk, dv  backward runs from the CPU's out and lse, so P and dS differ only by float32 noise and round apart
//           only next to a rounding boundary (about 1e-4 of them): at least 99% of elements (all but one in small
//           tensors) within the float32 tolerance, every element within 2^-7 of the tensor's scale (a rounding that
//           went the other way moves one term by at most 2^-7 of itself). A side that rounds differently (P, dS or an
//           input not rounded) moves most elements by about 2^-9 of the scale, far outside 1e-4.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cuda/allocator.h"
#include "cuda/attention.h"
#include "cuda/check.h"
#include "cuda_check.h"
#include "kernels/attention.h"
#include "kernels/matmul_precision.h"

using namespace cuda_test;
using cpu::AttentionMask;
using cpu::AttentionParams;
using cpu::MatmulPrecision;

namespace {

constexpr double kTolF32 = 1e-4;
constexpr double kTolF64 = 1e-10;

template <typename T> constexpr double unit_roundoff() { return sizeof(T) == 4 ? kEps32 : kEps64; }
template <typename T> constexpr double tolerance() { return sizeof(T) == 4 ? kTolF32 : kTolF64; }
template <typename T> constexpr const char* type_name() { return sizeof(T) == 4 ? "f32" : "f64"; }

struct Case {
  int64_t B, Hq, Hkv, Tq, L, C, D;  // L = kv_length, C = kv_capacity
  AttentionMask mask;
  int64_t window, q_offset;
  bool offset_pointers;  // q, k, v, dout one element past a 16-byte boundary (the unvectorised loads)
};

AttentionParams params_of(const Case& c) {
  AttentionParams p;
  p.B = c.B, p.Hq = c.Hq, p.Hkv = c.Hkv, p.Tq = c.Tq, p.kv_capacity = c.C, p.kv_length = c.L, p.D = c.D;
  p.mask = c.mask, p.window = c.window, p.q_offset = c.q_offset;
  p.scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  return p;
}

const char* mask_name(AttentionMask m) {
  switch (m) {
    case AttentionMask::none: return "none";
    case AttentionMask::causal: return "causal";
    case AttentionMask::sliding_window: return "sliding";
  }
  return "?";
}

std::string describe(const Case& c) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "B=%lld Hq=%lld Hkv=%lld Tq=%lld L=%lld C=%lld D=%lld %s", (long long)c.B,
                (long long)c.Hq, (long long)c.Hkv, (long long)c.Tq, (long long)c.L, (long long)c.C, (long long)c.D,
                mask_name(c.mask));
  std::string s = buf;
  if (c.mask == AttentionMask::sliding_window) s += " w=" + std::to_string(c.window);
  if (c.q_offset != 0) s += " off=" + std::to_string(c.q_offset);
  if (c.offset_pointers) s += " unaligned";
  return s;
}

template <typename T> std::vector<T> normal(size_t n) {
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(g_gen));
  return v;
}

template <typename T> double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}
template <typename T> double max_abs_diff(const std::vector<T>& a, const std::vector<T>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// The worst error/tolerance ratio of one tensor; failures are counted and the first one printed. Up to `outliers`
// elements may exceed atol + rtol·|ref| if they stay within outlier_atol + rtol·|ref|.
template <typename T>
double compare(const std::string& what, const std::vector<T>& got, const std::vector<T>& ref, double atol,
               double rtol, size_t outliers = 0, double outlier_atol = 0) {
  double worst = 0;
  size_t bad = 0, first = 0, over = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = ref[i];
    bool ok;
    if (std::isnan(r) || std::isnan(g)) {
      ok = std::isnan(r) && std::isnan(g);
    } else if (std::isinf(r) || std::isinf(g)) {
      ok = g == r;
    } else {
      const double err = std::fabs(g - r), tol = atol + rtol * std::fabs(r);
      ok = err <= tol;
      if (tol > 0) worst = std::max(worst, err / tol);
      if (!ok && over++ < outliers) ok = err <= outlier_atol + rtol * std::fabs(r);
    }
    if (!ok && bad++ == 0) first = i;
  }
  if (bad != 0) {
    std::fprintf(stderr, "FAIL %s: %zu of %zu elements out of tolerance; first at %zu: gpu %.9g cpu %.9g\n",
                 what.c_str(), bad, got.size(), first, static_cast<double>(got[first]),
                 static_cast<double>(ref[first]));
    ++native_test_failures();
  }
  return worst;
}

template <typename T> bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

void expect_true(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL %s\n", what.c_str());
    ++native_test_failures();
  }
}

// A device copy of h, starting `shift` elements into its allocation.
template <typename T> struct DeviceArray {
  gpu::DeviceBuffer<T> buf;
  size_t shift = 0;
  T* get() const { return buf.get() + shift; }
};
template <typename T> DeviceArray<T> to_device(const std::vector<T>& h, size_t shift) {
  DeviceArray<T> d{gpu::DeviceBuffer<T>(h.size() + shift), shift};
  WAVEMOE_CUDA_CHECK(
      cudaMemcpyAsync(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, g_stream));
  return d;
}
template <typename T> std::vector<T> to_host(const DeviceArray<T>& d, size_t n) {
  std::vector<T> h(n);
  WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(h.data(), d.get(), n * sizeof(T), cudaMemcpyDeviceToHost, g_stream));
  WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
  return h;
}

// ================================================================ forward and backward vs the CPU
// Under `precision` (float32 only; both sides read it, and it is fp32 again on return). tensor_cores: the GPU may take
// its tensor-core (WMMA) kernels (float32 under bf16, D <= 128); false forces the CUDA-core kernels.
template <typename T>
void check_case(const Case& c, MatmulPrecision precision = MatmulPrecision::fp32, bool tensor_cores = true) {
  const AttentionParams p = params_of(c);
  const int bits = cpu::mantissa_bits(precision);
  const std::string name = std::string(bits < 23 ? cpu::matmul_precision_name(precision) : type_name<T>()) +
                           (tensor_cores ? "" : " cuda-cores") + " " + describe(c);
  cpu::set_matmul_precision(precision);
  gpu::attention_allow_tensor_cores(tensor_cores);
  const size_t qn = c.B * c.Hq * c.Tq * c.D, kn = c.B * c.Hkv * c.C * c.D, rows = c.B * c.Hq * c.Tq;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const double tol = tolerance<T>(), u = unit_roundoff<T>();

  std::vector<T> q = normal<T>(qn), dout = normal<T>(qn), k = normal<T>(kn), v = normal<T>(kn);
  std::vector<T> dq0 = uniform<T>(qn), dk0 = uniform<T>(kn), dv0 = uniform<T>(kn);
  for (int64_t bh = 0; bh < c.B * c.Hkv; ++bh) {  // cache rows past kv_length: never to be read
    std::fill(k.begin() + (bh * c.C + c.L) * c.D, k.begin() + (bh + 1) * c.C * c.D, nan);
    std::fill(v.begin() + (bh * c.C + c.L) * c.D, v.begin() + (bh + 1) * c.C * c.D, nan);
  }

  // CPU
  std::vector<T> out_c(qn), lse_c(rows), dq_c = dq0, dk_c = dk0, dv_c = dv0;
  cpu::attention_forward<T>(out_c.data(), lse_c.data(), q.data(), k.data(), v.data(), p);
  cpu::attention_backward<T>(dq_c.data(), dk_c.data(), dv_c.data(), dout.data(), q.data(), k.data(), v.data(),
                             out_c.data(), lse_c.data(), p);

  // GPU forward: out and lse start as NaN, so anything not written shows
  const size_t shift = c.offset_pointers ? 1 : 0;
  DeviceArray<T> q_d = to_device(q, shift), k_d = to_device(k, shift), v_d = to_device(v, shift),
                 dout_d = to_device(dout, shift);
  DeviceArray<T> out_d = to_device(std::vector<T>(qn, nan), 0), lse_d = to_device(std::vector<T>(rows, nan), 0);
  gpu::attention_forward<T>(out_d.get(), lse_d.get(), q_d.get(), k_d.get(), v_d.get(), p, g_stream);
  const std::vector<T> out_g = to_host(out_d, qn), lse_g = to_host(lse_d, rows);
  DeviceArray<T> out2_d = to_device(std::vector<T>(qn, nan), 0);
  gpu::attention_forward<T>(out2_d.get(), nullptr, q_d.get(), k_d.get(), v_d.get(), p, g_stream);
  expect_true(same_bits(to_host(out2_d, qn), out_g), name + ": forward without lse differs from forward with lse");

  // GPU backward from the CPU's out and lse (so that it is checked alone), twice: deterministic
  DeviceArray<T> outc_d = to_device(out_c, 0), lsec_d = to_device(lse_c, 0);
  std::vector<T> grads[2][3];
  for (auto& g : grads) {
    DeviceArray<T> dq_d = to_device(dq0, 0), dk_d = to_device(dk0, 0), dv_d = to_device(dv0, 0);
    gpu::attention_backward<T>(dq_d.get(), dk_d.get(), dv_d.get(), dout_d.get(), q_d.get(), k_d.get(), v_d.get(),
                               outc_d.get(), lsec_d.get(), p, g_stream);
    g[0] = to_host(dq_d, qn), g[1] = to_host(dk_d, kn), g[2] = to_host(dv_d, kn);
  }
  expect_true(same_bits(grads[0][0], grads[1][0]) && same_bits(grads[0][1], grads[1][1]) &&
                  same_bits(grads[0][2], grads[1][2]),
              name + ": backward is not bit-identical from run to run");
  const std::vector<T>&dq_g = grads[0][0], &dk_g = grads[0][1], &dv_g = grads[0][2];
  bool untouched = true;  // dk, dv rows past kv_length: exactly their initial values
  for (int64_t bh = 0; bh < c.B * c.Hkv; ++bh) {
    const size_t b0 = (bh * c.C + c.L) * c.D, b1 = (bh + 1) * c.C * c.D;
    untouched = untouched && std::memcmp(dk_g.data() + b0, dk0.data() + b0, (b1 - b0) * sizeof(T)) == 0 &&
                std::memcmp(dv_g.data() + b0, dv0.data() + b0, (b1 - b0) * sizeof(T)) == 0;
  }
  expect_true(untouched, name + ": backward wrote dk/dv rows past kv_length");

  cpu::set_matmul_precision(MatmulPrecision::fp32);
  gpu::attention_allow_tensor_cores(true);

  // Rounded P (see the header): out may differ by 2^-bits·max|v| (max_abs skips the NaN cache rows); gradients by
  // 2^-bits of their scale in at most 1% of the elements.
  const double p_ulp = bits < 23 ? std::ldexp(1.0, -bits) : 0.0;
  const double r_out = compare(name + " out", out_g, out_c, tol * max_abs(out_c) + p_ulp * max_abs(v), tol);
  const double r_lse = compare(name + " lse", lse_g, lse_c, tol * (1 + max_abs(lse_c)), 0.0);
  const double floor = max_abs_diff(dv_c, dv0);
  const double s_dq = std::max(max_abs_diff(dq_c, dq0), floor), s_dk = std::max(max_abs_diff(dk_c, dk0), floor);
  const auto outliers = [&](size_t n) { return bits < 23 ? std::max<size_t>(1, n / 100) : 0; };
  const double r_dq = compare(name + " dq", dq_g, dq_c, tol * s_dq, 4 * u, outliers(qn), p_ulp * s_dq);
  const double r_dk = compare(name + " dk", dk_g, dk_c, tol * s_dk, 4 * u, outliers(kn), p_ulp * s_dk);
  const double r_dv = compare(name + " dv", dv_g, dv_c, tol * floor, 4 * u, outliers(kn), p_ulp * floor);
  std::printf("  %-66s err/tol: out %.2g lse %.2g dq %.2g dk %.2g dv %.2g\n", name.c_str(), r_out, r_lse, r_dq, r_dk,
              r_dv);
}

std::vector<Case> test_cases() {
  std::vector<Case> cases;
  const int64_t Ts[] = {1, 2, 7, 31, 64, 65, 129, 257};
  const int64_t Ds[] = {1, 3, 16, 31, 64, 80, 128};
  const int64_t ratios[] = {1, 2, 3};  // query heads per kv head
  int i = 0;
  // (B, Hkv, GQA ratio, D) cycle through their sets, case after case.
  auto shape = [&](int64_t* B, int64_t* Hkv, int64_t* Hq, int64_t* D) {
    *B = 1 + i % 3;
    *Hkv = 1 + (i / 3) % 2;
    *Hq = *Hkv * ratios[(i / 2) % 3];
    *D = Ds[i % 7];
    ++i;
  };
  int64_t B, Hkv, Hq, D;
  // Self-attention (Tq = Tk, no cache) under every mask.
  for (int64_t T : Ts) {
    shape(&B, &Hkv, &Hq, &D);
    cases.push_back({B, Hq, Hkv, T, T, T, D, AttentionMask::none, 0, 0, false});
    shape(&B, &Hkv, &Hq, &D);
    cases.push_back({B, Hq, Hkv, T, T, T, D, AttentionMask::causal, 0, 0, false});
    for (int64_t w : {int64_t{1}, int64_t{3}, T + 7}) {
      shape(&B, &Hkv, &Hq, &D);
      cases.push_back({B, Hq, Hkv, T, T, T, D, AttentionMask::sliding_window, w, 0, false});
    }
  }
  // Cross-attention: Tq != Tk, mask none (q_offset is ignored there: give one anyway).
  for (int a = 0; a < 8; ++a) {
    shape(&B, &Hkv, &Hq, &D);
    cases.push_back({B, Hq, Hkv, Ts[a], Ts[7 - a], Ts[7 - a] + 3, D, AttentionMask::none, 0, a, false});
  }
  // A KV cache: Tq new queries after q_offset cached keys, capacity beyond kv_length (NaN rows).
  const int64_t news[] = {1, 2, 7, 31, 64};
  const int64_t cached[] = {63, 129, 0, 257, 65};
  for (int a = 0; a < 5; ++a) {
    const int64_t L = cached[a] + news[a];
    for (AttentionMask m : {AttentionMask::causal, AttentionMask::sliding_window, AttentionMask::none}) {
      shape(&B, &Hkv, &Hq, &D);
      const int64_t w = a % 2 == 0 ? 3 : 40;
      cases.push_back({B, Hq, Hkv, news[a], L, L + 1 + 17 * a, D, m, w, cached[a], false});
    }
  }
  // Decoding: one query against 1, 100 and 4099 cached keys (the split-key path), every ratio.
  for (int64_t L : {int64_t{1}, int64_t{100}, int64_t{4099}}) {
    for (int64_t ratio : ratios) {
      const int64_t D1 = ratio == 1 ? 64 : ratio == 2 ? 128 : 80;
      cases.push_back({2, 3 * ratio, 3, 1, L, L + 9, D1, AttentionMask::causal, 0, L - 1, false});
    }
    cases.push_back({1, 4, 2, 1, L, L + 1, 64, AttentionMask::sliding_window, 1000, L - 1, false});
    cases.push_back({1, 2, 1, 1, L, L, 31, AttentionMask::none, 0, 0, false});
  }
  // Few rows per (batch, kv head) but more than one 16-row tile; many rows against many keys with few blocks (the
  // split path of the 64-row tile); a long sliding window over a cache.
  cases.push_back({1, 6, 2, 7, 300, 333, 64, AttentionMask::causal, 0, 293, false});
  cases.push_back({1, 3, 1, 5, 77, 80, 16, AttentionMask::sliding_window, 3, 72, false});
  cases.push_back({1, 1, 1, 65, 4099, 4099, 64, AttentionMask::none, 0, 0, false});
  cases.push_back({1, 2, 1, 64, 2000, 2048, 128, AttentionMask::causal, 0, 1936, false});
  cases.push_back({1, 2, 2, 129, 1500, 1600, 32, AttentionMask::sliding_window, 700, 1371, false});
  // Every tile width (D up to 32, 64, 96, 128, 256) and the unvectorised loads of a vectorisable D.
  for (int64_t D1 : {int64_t{33}, int64_t{96}, int64_t{100}, int64_t{129}, int64_t{200}, int64_t{256}}) {
    cases.push_back({1, 2, 1, 65, 65, 70, D1, AttentionMask::causal, 0, 0, false});
    cases.push_back({2, 2, 2, 1, 129, 130, D1, AttentionMask::causal, 0, 128, false});
  }
  // The tensor-core tiles (64 rows x 64 keys, 16-wide fragments over D): head dims off and on the fragment width,
  // lengths of one, a prime, one past a tile and several tiles, every mask, GQA; D and the ratio cycle.
  const int64_t tc_Ds[] = {3, 17, 64, 80, 128};
  int tc = 0;
  for (int64_t T : {int64_t{1}, int64_t{13}, int64_t{65}, int64_t{200}}) {
    for (AttentionMask m : {AttentionMask::none, AttentionMask::causal, AttentionMask::sliding_window}) {
      const int64_t ratio = ratios[tc % 3], D1 = tc_Ds[tc % 5];
      cases.push_back({1 + tc % 2, 2 * ratio, 2, T, T, T + tc % 4, D1, m, tc % 2 == 0 ? 5 : 70, 0, tc % 4 == 3});
      ++tc;
    }
  }
  cases.push_back({1, 4, 1, 200, 450, 460, 128, AttentionMask::causal, 0, 250, false});  // a cache behind 200 rows
  cases.push_back({2, 4, 2, 65, 129, 129, 64, AttentionMask::causal, 0, 64, true});
  cases.push_back({1, 3, 3, 31, 31, 40, 128, AttentionMask::none, 0, 0, true});
  cases.push_back({1, 2, 1, 1, 200, 210, 80, AttentionMask::causal, 0, 199, true});
  return cases;
}

void test_attention() {
  const std::vector<Case> cases = test_cases();
  std::printf("attention forward/backward vs CPU: %zu shapes, float32 (tol %.0e), float64 (tol %.0e) and float32 "
              "under the bf16 matmul precision (tensor-core kernels where they apply, then the CUDA-core kernels)\n",
              cases.size(), kTolF32, kTolF64);
  for (const Case& c : cases) {
    check_case<float>(c);
    check_case<double>(c);
    check_case<float>(c, MatmulPrecision::bf16);
    check_case<float>(c, MatmulPrecision::bf16, false);
  }
}

// ================================================================ KV cache copy, causal mask fill
template <typename T> void check_kv_copy(int64_t BH, int64_t dst_cap, int64_t pos, int64_t src_cap, int64_t rows,
                                         int64_t D) {
  std::vector<T> src = uniform<T>(BH * src_cap * D), dst = uniform<T>(BH * dst_cap * D), ref = dst;
  cpu::attention_kv_copy<T>(ref.data(), src.data(), BH, dst_cap, pos, src_cap, rows, D);
  gpu::DeviceBuffer<T> src_d = upload(src), dst_d = upload(dst);
  gpu::attention_kv_copy<T>(dst_d.get(), src_d.get(), BH, dst_cap, pos, src_cap, rows, D, g_stream);
  char buf[160];
  std::snprintf(buf, sizeof(buf), "kv_copy %s BH=%lld dst %lld@%lld src %lld rows=%lld D=%lld", type_name<T>(),
                (long long)BH, (long long)dst_cap, (long long)pos, (long long)src_cap, (long long)rows, (long long)D);
  expect_identical(buf, download(dst_d), ref);
}

template <typename T> void check_mask_fill(int64_t N, int64_t Tq, int64_t Tk, int64_t q_offset) {
  std::vector<T> s = uniform<T>(N * Tq * Tk), ref = s;
  cpu::attention_causal_mask_fill<T>(ref.data(), N, Tq, Tk, q_offset);
  gpu::DeviceBuffer<T> s_d = upload(s);
  gpu::attention_causal_mask_fill<T>(s_d.get(), N, Tq, Tk, q_offset, g_stream);
  char buf[160];
  std::snprintf(buf, sizeof(buf), "causal_mask_fill %s N=%lld Tq=%lld Tk=%lld q_offset=%lld", type_name<T>(),
                (long long)N, (long long)Tq, (long long)Tk, (long long)q_offset);
  expect_identical(buf, download(s_d), ref);
}

void test_kv_cache_and_mask() {
  std::printf("attention_kv_copy, attention_causal_mask_fill vs CPU\n");
  check_kv_copy<float>(3, 10, 4, 7, 5, 3);       // append 5 rows
  check_kv_copy<float>(6, 300, 257, 1, 1, 64);   // decode: one new row
  check_kv_copy<float>(4, 512, 0, 300, 300, 80);  // grow a cache
  check_kv_copy<double>(5, 33, 31, 2, 2, 31);
  check_mask_fill<float>(3, 7, 7, 0);
  check_mask_fill<float>(2, 5, 65, 60);
  check_mask_fill<float>(2, 9, 4, -3);
  check_mask_fill<double>(1, 31, 129, 98);
  check_mask_fill<double>(4, 3, 3, 10);  // nothing hidden
}

// ================================================================ error paths
void test_errors() {
  std::printf("attention argument errors\n");
  AttentionParams p;
  p.B = 1, p.Hq = 3, p.Hkv = 2, p.Tq = 1, p.kv_capacity = 4, p.kv_length = 4, p.D = 8;
  auto throws = [&](const AttentionParams& bad, const char* what) {
    std::string err;
    try {
      gpu::attention_forward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, bad, g_stream);
    } catch (const std::invalid_argument& e) {
      err = e.what();
    }
    std::printf("  %-40s -> %s\n", what, err.empty() ? "NO ERROR" : err.c_str());
    expect_true(!err.empty(), std::string("no error for ") + what);
  };
  throws(p, "Hq not a multiple of Hkv");
  p.Hkv = 1, p.D = 257;
  throws(p, "D = 257");
  p.D = 8, p.mask = AttentionMask::sliding_window, p.window = 0;
  throws(p, "window 0");
}

// ================================================================ bench
struct BenchRow {
  int64_t T, B, H;
  double fwd_ms, fwd_bwd_ms;
};

int bench(const gpu::DeviceInfo& info) {
  const int64_t H = 12, D = 64;
  std::printf("fused attention, float32 data, causal, H = %lld heads of D = %lld, on %s; fp32, then the bf16 matmul "
              "precision on the tensor-core kernels and on the CUDA-core kernels\n",
              (long long)H, (long long)D, info.name.c_str());
  std::printf("%-16s %7s %3s %4s %11s %11s %13s %13s\n", "precision", "T", "B", "H", "fwd ms", "fwd TFLOP/s",
              "fwd+bwd ms", "fwd+bwd TFLOP/s");
  std::string json = "{\"device\":\"" + info.name + "\",\"dtype\":\"float32\",\"attention\":[";
  bool first = true;
  struct Mode {
    MatmulPrecision precision;
    bool tensor_cores;
    const char* label;
  };
  for (const Mode& mode : {Mode{MatmulPrecision::fp32, false, "fp32"}, Mode{MatmulPrecision::bf16, true, "bf16 tensor"},
                           Mode{MatmulPrecision::bf16, false, "bf16 cuda-cores"}}) {
    cpu::set_matmul_precision(mode.precision);
    gpu::attention_allow_tensor_cores(mode.tensor_cores);
    for (int64_t T : {int64_t{1024}, int64_t{4096}, int64_t{16384}}) {
      const int64_t B = std::max<int64_t>(1, std::min<int64_t>(4, 16384 / T));
      AttentionParams p;
      p.B = B, p.Hq = H, p.Hkv = H, p.Tq = T, p.kv_capacity = T, p.kv_length = T, p.D = D;
      p.mask = AttentionMask::causal, p.scale = 1.0 / std::sqrt(static_cast<double>(D));
      const size_t n = B * H * T * D;
      gpu::DeviceBuffer<float> q = upload(normal<float>(n)), k = upload(normal<float>(n)),
                               v = upload(normal<float>(n)), dout = upload(normal<float>(n)), out(n), lse(B * H * T),
                               dq(n), dk(n), dv(n);
      WAVEMOE_CUDA_CHECK(cudaMemsetAsync(dq.get(), 0, n * sizeof(float), g_stream));
      WAVEMOE_CUDA_CHECK(cudaMemsetAsync(dk.get(), 0, n * sizeof(float), g_stream));
      WAVEMOE_CUDA_CHECK(cudaMemsetAsync(dv.get(), 0, n * sizeof(float), g_stream));
      auto fwd = [&] { gpu::attention_forward<float>(out.get(), lse.get(), q.get(), k.get(), v.get(), p, g_stream); };
      const double fwd_ms = time_ms(fwd);
      const double fwd_bwd_ms = time_ms([&] {
        fwd();
        gpu::attention_backward<float>(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                       out.get(), lse.get(), p, g_stream);
      });
      // FlashAttention's count: 4·B·H·T²·D for the forward, halved under the causal mask; backward 2.5x that.
      const double flop = 4.0 * B * H * T * T * D / 2;
      const double fwd_tf = flop / (fwd_ms * 1e9), fwd_bwd_tf = 3.5 * flop / (fwd_bwd_ms * 1e9);
      std::printf("%-16s %7lld %3lld %4lld %11.3f %11.2f %13.3f %13.2f\n", mode.label, (long long)T, (long long)B,
                  (long long)H, fwd_ms, fwd_tf, fwd_bwd_ms, fwd_bwd_tf);
      char buf[400];
      std::snprintf(buf, sizeof(buf),
                    "%s{\"precision\":\"%s\",\"tensor_cores\":%s,\"T\":%lld,\"B\":%lld,\"H\":%lld,\"D\":%lld,"
                    "\"causal\":true,\"fwd_ms\":%.4f,\"fwd_tflops\":%.3f,\"fwd_bwd_ms\":%.4f,\"fwd_bwd_tflops\":%.3f}",
                    first ? "" : ",", cpu::matmul_precision_name(mode.precision),
                    mode.tensor_cores ? "true" : "false", (long long)T, (long long)B, (long long)H, (long long)D,
                    fwd_ms, fwd_tf, fwd_bwd_ms, fwd_bwd_tf);
      json += buf;
      first = false;
    }
  }
  cpu::set_matmul_precision(MatmulPrecision::fp32);
  gpu::attention_allow_tensor_cores(true);
  json += "],\"decode\":[";
  std::printf("decoding: one query per head against the KV cache, float32, B = 1, Hq = Hkv = %lld, D = %lld\n",
              (long long)H, (long long)D);
  std::printf("%10s %10s %14s\n", "kv_length", "us/call", "K+V GB/s");
  first = true;
  for (int64_t L : {int64_t{1024}, int64_t{4096}, int64_t{16384}}) {
    AttentionParams p;
    p.B = 1, p.Hq = H, p.Hkv = H, p.Tq = 1, p.kv_capacity = L, p.kv_length = L, p.D = D;
    p.mask = AttentionMask::causal, p.q_offset = L - 1, p.scale = 1.0 / std::sqrt(static_cast<double>(D));
    gpu::DeviceBuffer<float> q = upload(normal<float>(H * D)), k = upload(normal<float>(H * L * D)),
                             v = upload(normal<float>(H * L * D)), out(H * D);
    const double ms = time_ms(
        [&] { gpu::attention_forward<float>(out.get(), nullptr, q.get(), k.get(), v.get(), p, g_stream); });
    const double gbps = 2.0 * H * L * D * sizeof(float) / (ms * 1e6);
    std::printf("%10lld %10.2f %14.0f\n", (long long)L, ms * 1e3, gbps);
    char buf[200];
    std::snprintf(buf, sizeof(buf), "%s{\"kv_length\":%lld,\"B\":1,\"Hq\":%lld,\"Hkv\":%lld,\"D\":%lld,\"us\":%.3f,"
                  "\"kv_gbps\":%.1f}",
                  first ? "" : ",", (long long)L, (long long)H, (long long)H, (long long)D, ms * 1e3, gbps);
    json += buf;
    first = false;
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cuda_test_main(
      "cuda_test_attention", argc, argv,
      [] {
        test_attention();
        test_kv_cache_and_mask();
        test_errors();
      },
      bench);
}
