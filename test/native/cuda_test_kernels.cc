// Native test of the CUDA kernels (cuda/): every kernel, forward and backward, against its CPU kernel
// (csrc/kernels/) on random inputs of awkward sizes, with a stated tolerance per check; plus the caching allocator,
// the error paths, and (--bench) matmul GFLOP/s at the model's shapes for the own kernel and cuBLAS.
// Needs no Node.js. Without a GPU or driver it prints one SKIPPED line and exits 0.
//
//   bash scripts/cuda-build.sh && build/cuda/cuda_test_kernels            # tests; exit 1 on any failure
//   build/cuda/cuda_test_kernels --bench                                    # matmul table, JSON on the last line
//   WAVEMOE_CUBLAS=/path/to/libcublas.so.13 build/cuda/cuda_test_kernels    # choose the cuBLAS (0: none)
//
// Tolerances: |gpu - cpu| <= atol + rtol·|cpu| per element unless stated; each check prints its worst error.
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"
#include "cuda_check.h"
#include "cuda/activations.h"
#include "cuda/adamw.h"
#include "cuda/allocator.h"
#include "cuda/check.h"
#include "cuda/cross_entropy.h"
#include "cuda/cublas_loader.h"
#include "cuda/device.h"
#include "cuda/elementwise.h"
#include "cuda/embedding.h"
#include "cuda/matmul.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "cuda/softmax.h"
#include "kernels/activations.h"
#include "kernels/adamw.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/softmax.h"


using namespace cuda_test;

namespace {

// ================================================================ matmul
struct MatmulCase {
  int64_t batch, M, N, K;
  bool ta, tb, acc;
  int64_t sa, sb, sc;  // 0 broadcasts (sa, sb); -1: contiguous
};

std::string case_name(const MatmulCase& c, const char* what) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%s b=%lld M=%lld N=%lld K=%lld ta=%d tb=%d acc=%d sa=%lld sb=%lld", what,
                (long long)c.batch, (long long)c.M, (long long)c.N, (long long)c.K, c.ta, c.tb, c.acc,
                (long long)c.sa, (long long)c.sb);
  return buf;
}

std::vector<double> abs_d(const std::vector<float>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = std::fabs(static_cast<double>(v[i]));
  return r;
}

// float32 forward and backward vs the CPU kernels. Any summation order of a length-L dot product is within
// (L + 2)·eps·Σ|a||b| of the exact value (the classic bound, used by test_matmul.cc), so two correct float32 results
// differ by at most twice that: tol[i] = 2 (L + 2) eps32 Σ|a||b|, with Σ|a||b| from the float64 reference on |A|,
// |B|, plus eps32·|ref| for the accumulated initial value.
void check_matmul_case(MatmulCase c, gpu::MatmulBackend backend, const char* label) {
  if (c.sa < 0) c.sa = c.M * c.K;
  if (c.sb < 0) c.sb = c.K * c.N;
  c.sc = c.M * c.N;
  const size_t na = c.sa ? (c.batch - 1) * c.sa + c.M * c.K : c.M * c.K;
  const size_t nb = c.sb ? (c.batch - 1) * c.sb + c.K * c.N : c.K * c.N;
  const size_t nc = (c.batch - 1) * c.sc + c.M * c.N;
  std::vector<float> A = uniform<float>(na), B = uniform<float>(nb), C0 = uniform<float>(nc);
  // forward
  std::vector<float> ref = C0;
  cpu::matmul_forward<float>(ref.data(), A.data(), B.data(), c.batch, c.M, c.N, c.K, c.ta, c.tb, c.sa, c.sb, c.sc,
                             c.acc);
  std::vector<double> bound(nc, 0.0), aA = abs_d(A), aB = abs_d(B);
  cpu::matmul_forward_naive<double>(bound.data(), aA.data(), aB.data(), c.batch, c.M, c.N, c.K, c.ta, c.tb, c.sa,
                                    c.sb, c.sc, false);
  for (double& b : bound) b *= 2.0 * (c.K + 2) * kEps32;
  auto dA = upload(A), dB = upload(B), dC = upload(C0);
  gpu::matmul_forward<float>(dC.get(), dA.get(), dB.get(), c.batch, c.M, c.N, c.K, c.ta, c.tb, c.sa, c.sb, c.sc, c.acc,
                             g_stream, backend);
  expect_close(std::string(label) + " " + case_name(c, "fwd"), download(dC), ref, 0.0, kEps32, &bound);
  // backward: dA, dB start non-zero (+= is checked)
  std::vector<float> gC = uniform<float>(nc), gA0 = uniform<float>(na), gB0 = uniform<float>(nb);
  std::vector<float> refA = gA0, refB = gB0;
  cpu::matmul_backward<float>(refA.data(), refB.data(), gC.data(), A.data(), B.data(), c.batch, c.M, c.N, c.K, c.ta,
                              c.tb, c.sa, c.sb, c.sc);
  std::vector<double> bA(na, 0.0), bB(nb, 0.0), agC = abs_d(gC);
  cpu::matmul_backward<double>(bA.data(), bB.data(), agC.data(), aA.data(), aB.data(), c.batch, c.M, c.N, c.K, c.ta,
                               c.tb, c.sa, c.sb, c.sc);
  const double LA = double(c.N) * (c.sa == 0 ? c.batch : 1), LB = double(c.M) * (c.sb == 0 ? c.batch : 1);
  for (double& b : bA) b *= 2.0 * (LA + 2) * kEps32;
  for (double& b : bB) b *= 2.0 * (LB + 2) * kEps32;
  auto d_gC = upload(gC), d_gA = upload(gA0), d_gB = upload(gB0);
  gpu::matmul_backward<float>(d_gA.get(), d_gB.get(), d_gC.get(), dA.get(), dB.get(), c.batch, c.M, c.N, c.K, c.ta,
                              c.tb, c.sa, c.sb, c.sc, g_stream, backend);
  expect_close(std::string(label) + " " + case_name(c, "bwd dA"), download(d_gA), refA, 0.0, kEps32, &bA);
  expect_close(std::string(label) + " " + case_name(c, "bwd dB"), download(d_gB), refB, 0.0, kEps32, &bB);
}

void test_matmul() {
  std::printf("matmul (float32; tol = 2(L+2)·2^-24·Σ|a||b| + 2^-24|ref|, L = reduction length)\n");
  std::vector<MatmulCase> cases = {
      {1, 1, 1, 1, false, false, false, -1, -1, 0},      {1, 7, 13, 5, false, false, true, -1, -1, 0},
      {1, 129, 131, 257, false, false, false, -1, -1, 0}, {4, 130, 67, 200, false, false, false, -1, 0, 0},
      {3, 31, 97, 130, false, false, true, 0, -1, 0},     {1, 300, 260, 33, false, false, false, -1, -1, 0},
  };
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      cases.push_back({2, 33, 65, 129, ta, tb, true, -1, -1, 0});
      cases.push_back({3, 37, 41, 43, ta, tb, false, -1, 0, 0});  // broadcast B: dB summed over the batch
      cases.push_back({3, 37, 41, 43, ta, tb, false, 0, -1, 0});  // broadcast A
    }
  }
  for (const MatmulCase& c : cases) check_matmul_case(c, gpu::MatmulBackend::own, "own");
  if (gpu::cublas_loaded()) {
    for (const MatmulCase& c : cases) check_matmul_case(c, gpu::MatmulBackend::cublas, "cublas");
  } else {
    std::printf("  (cuBLAS cases skipped: %s)\n", gpu::cublas_api().error.c_str());
  }
  // float64 on the own kernel: tol = 2(K+2)·2^-53·Σ|a||b|.
  const int64_t M = 67, N = 45, K = 131;
  std::vector<double> A = uniform<double>(M * K), B = uniform<double>(N * K), ref(M * N, 0.0), bound(M * N, 0.0);
  cpu::matmul_forward<double>(ref.data(), A.data(), B.data(), 1, M, N, K, false, true, M * K, N * K, M * N, false);
  std::vector<double> aA(A), aB(B);
  for (double& x : aA) x = std::fabs(x);
  for (double& x : aB) x = std::fabs(x);
  cpu::matmul_forward_naive<double>(bound.data(), aA.data(), aB.data(), 1, M, N, K, false, true, M * K, N * K, M * N,
                                    false);
  for (double& b : bound) b *= 2.0 * (K + 2) * kEps64;
  auto dA = upload(A), dB = upload(B);
  gpu::DeviceBuffer<double> dC(M * N);
  gpu::matmul_forward<double>(dC.get(), dA.get(), dB.get(), 1, M, N, K, false, true, M * K, N * K, M * N, false,
                              g_stream);
  expect_close("own float64 fwd M=67 N=45 K=131 tb=1", download(dC), ref, 0.0, 0.0, &bound);
}

// ================================================================ rmsnorm
// GPU sums in float32 over a 256-thread block tree (CPU: double): relative error of a reduction of C terms is
// about log2(C)·eps32 + C/256·eps32 ≲ 1e-6 for C ≤ 1031; 1e-5 gives a 10x margin. dweight is summed in double on both.
void test_rmsnorm() {
  std::printf("rmsnorm (float32; atol 1e-5, rtol 1e-5)\n");
  for (auto [N, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {37, 255}, {64, 1031}}) {
    std::vector<float> x = uniform<float>(N * C, -2, 2), w = uniform<float>(C), out(N * C), rstd(N);
    cpu::rmsnorm_forward<float>(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
    auto dx_ = upload(x), dw_ = upload(w);
    gpu::DeviceBuffer<float> dout_(N * C), drstd(N);
    gpu::rmsnorm_forward<float>(dout_.get(), drstd.get(), dx_.get(), dw_.get(), N, C, 1e-5, g_stream);
    const std::string shape = " N=" + std::to_string(N) + " C=" + std::to_string(C);
    expect_close("rmsnorm fwd out" + shape, download(dout_), out, 1e-5, 1e-5);
    expect_close("rmsnorm fwd rstd" + shape, download(drstd), rstd, 1e-5, 1e-5);
    std::vector<float> g = uniform<float>(N * C), gx = uniform<float>(N * C), gw = uniform<float>(C);
    std::vector<float> rgx = gx, rgw = gw;
    cpu::rmsnorm_backward<float>(rgx.data(), rgw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C);
    auto d_g = upload(g), d_gx = upload(gx), d_gw = upload(gw), d_rstd = upload(rstd);
    gpu::rmsnorm_backward<float>(d_gx.get(), d_gw.get(), d_g.get(), dx_.get(), dw_.get(), d_rstd.get(), N, C,
                                 g_stream);
    expect_close("rmsnorm bwd dx" + shape, download(d_gx), rgx, 1e-5, 1e-5);
    expect_close("rmsnorm bwd dweight" + shape, download(d_gw), rgw, 1e-5, 1e-5);
  }
}

// ================================================================ cross-entropy
// Losses: the GPU sums exps in float32 (CPU: double) over ≤ 50254 terms in ~98-term thread chains plus a 512-way
// tree, relative error ≲ 1e-5 of the sum, i.e. ≲ 1e-5 absolute on the loss: atol 5e-5. dlogits: exp (≤ 2 ulp) times
// one scale: rtol 2e-5 (the scale carries the sum's error), atol 1e-10 (probabilities of ~1e-9).
void test_cross_entropy() {
  std::printf("cross_entropy (float32; loss atol 5e-5; dlogits rtol 2e-5 atol 1e-10)\n");
  struct Case {
    int64_t N, V;
    int ignored_every;  // every k-th row ignored (0: none; 1: all)
    bool in_place;
  };
  for (const Case& c : {Case{7, 50254, 3, false}, Case{5, 50254, 0, true}, Case{3, 1, 0, false},
                        Case{4, 97, 1, false}, Case{33, 1000, 5, true}}) {
    std::vector<float> logits = uniform<float>(c.N * c.V, -8, 8);
    std::vector<int32_t> targets(c.N);
    std::uniform_int_distribution<int32_t> tdist(0, static_cast<int32_t>(c.V - 1));
    for (int64_t i = 0; i < c.N; ++i) targets[i] = (c.ignored_every && i % c.ignored_every == 0) ? -100 : tdist(g_gen);
    std::vector<float> dref(c.N * c.V), lref(c.N);
    const double mean_ref = cpu::cross_entropy_forward_backward<float>(dref.data(), lref.data(), logits.data(),
                                                                       targets.data(), c.N, c.V, -100, 1.0);
    auto d_logits = upload(logits);
    auto d_targets = upload(targets);
    gpu::DeviceBuffer<float> d_d(c.in_place ? 0 : c.N * c.V), d_l(c.N);
    gpu::DeviceBuffer<double> d_mean(1);
    float* dl = c.in_place ? d_logits.get() : d_d.get();
    gpu::cross_entropy_forward_backward<float>(dl, d_l.get(), d_mean.get(), d_logits.get(), d_targets.get(), c.N, c.V,
                                               -100, 1.0, nullptr, g_stream);
    const std::string shape = " N=" + std::to_string(c.N) + " V=" + std::to_string(c.V) +
                              (c.in_place ? " in-place" : "") + (c.ignored_every ? " with ignored rows" : "");
    const double mean = download_scalar(d_mean.get());
    expect_close("cross_entropy mean loss" + shape, std::vector<double>{mean}, std::vector<double>{mean_ref}, 5e-5,
                 0.0);
    expect_close("cross_entropy row losses" + shape, download(d_l), lref, 5e-5, 0.0);
    expect_close("cross_entropy dlogits" + shape, download(c.in_place ? d_logits : d_d, c.N * c.V), dref, 1e-10,
                 2e-5);
  }
}

// ================================================================ adamw + clipping
// The same float32 operations, rounded one by one (no FMA contraction on either side): expected bit-identical;
// checked with rtol 1e-6 (a few ulps), and bit identity reported.
void test_adamw() {
  std::printf("adamw (float32; rtol 1e-6, atol 1e-7; expected bit-identical), grad clipping (norm rtol 1e-9)\n");
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(100003)}) {
    std::vector<float> p = uniform<float>(n), m = uniform<float>(n, -0.1, 0.1), v = uniform<float>(n, 0, 0.01);
    auto dp = upload(p), dm = upload(m), dv = upload(v);
    for (int64_t step = 1; step <= 3; ++step) {
      std::vector<float> g = uniform<float>(n);
      const cpu::AdamWParams prm{1e-3, 0.9, 0.95, 1e-8, 0.1, step};
      cpu::adamw_step<float>(p.data(), m.data(), v.data(), g.data(), n, prm);
      auto dg = upload(g);
      gpu::adamw_step<float>(dp.get(), dm.get(), dv.get(), dg.get(), n, prm, g_stream);
    }
    const std::string shape = " n=" + std::to_string(n) + " (3 steps)";
    const std::vector<float> gp = download(dp), gm = download(dm), gv = download(dv);
    expect_close("adamw param" + shape, gp, p, 1e-7, 1e-6);
    expect_close("adamw m" + shape, gm, m, 1e-7, 1e-6);
    expect_close("adamw v" + shape, gv, v, 1e-7, 1e-6);
    std::printf("    (param bit-identical to the CPU: %s)\n",
                std::memcmp(gp.data(), p.data(), n * sizeof(float)) == 0 ? "yes" : "no");
  }
  // Three tensors of awkward sizes, clipped (max_norm below the norm) and not clipped (above).
  const std::vector<int64_t> sizes = {1, 8193, 30011};
  for (double max_norm : {1.0, 1e6}) {
    std::vector<std::vector<float>> h;
    std::vector<gpu::DeviceBuffer<float>> d;
    std::vector<float*> hp, dp;
    for (int64_t s : sizes) {
      h.push_back(uniform<float>(s));
      d.push_back(upload(h.back()));
    }
    for (size_t k = 0; k < sizes.size(); ++k) {
      hp.push_back(h[k].data());
      dp.push_back(d[k].get());
    }
    std::vector<const float*> dcp(dp.begin(), dp.end());
    gpu::DeviceBuffer<double> sq(1), norm(1);
    gpu::grad_norm_squared<float>(sq.get(), dcp.data(), sizes.data(), 3, g_stream);
    const double ref_sq = cpu::grad_norm_squared<float>(std::vector<const float*>(hp.begin(), hp.end()).data(),
                                                        sizes.data(), 3);
    const double ref_norm = cpu::clip_grad_norm<float>(hp.data(), sizes.data(), 3, max_norm);
    gpu::clip_grad_norm<float>(norm.get(), dp.data(), sizes.data(), 3, max_norm, g_stream);
    const std::string what = max_norm < 10 ? " (clipped)" : " (not clipped)";
    expect_close("grad_norm_squared" + what, std::vector<double>{download_scalar(sq.get())},
                 std::vector<double>{ref_sq}, 0.0, 1e-9);
    expect_close("clip_grad_norm norm" + what, std::vector<double>{download_scalar(norm.get())},
                 std::vector<double>{ref_norm}, 0.0, 1e-9);
    for (size_t k = 0; k < sizes.size(); ++k) {
      expect_close("clip_grad_norm grads[" + std::to_string(k) + "]" + what, download(d[k]), h[k], 1e-7, 1e-6);
    }
  }
}

// ================================================================ elementwise
// One rounding per element on both sides: exact, except axpy (the GPU may fuse a·x + y into one FMA: 1 ulp) and
// sinusoidal positions (double sin/cos of different libraries, then rounded to float: atol 1e-6).
void test_elementwise() {
  std::printf("elementwise (float32; exact unless stated)\n");
  for (int64_t n : {int64_t(1), int64_t(1009), int64_t(65537)}) {
    std::vector<float> a = uniform<float>(n), b = uniform<float>(n), ref(n);
    auto da = upload(a), db = upload(b);
    gpu::DeviceBuffer<float> dout(n);
    const std::string s = " n=" + std::to_string(n);
    cpu::add_forward<float>(ref.data(), a.data(), b.data(), n);
    gpu::add_forward<float>(dout.get(), da.get(), db.get(), n, g_stream);
    expect_identical("add_forward" + s, download(dout), ref);
    std::vector<float> y = b;
    cpu::axpy<float>(y.data(), a.data(), 0.37, n);
    gpu::axpy<float>(db.get(), da.get(), 0.37, n, g_stream);
    expect_close("axpy (rtol 2^-23)" + s, download(db), y, 0.0, 2 * kEps32);
    cpu::scale_inplace<float>(a.data(), -1.7, n);
    gpu::scale_inplace<float>(da.get(), -1.7, n, g_stream);
    expect_identical("scale_inplace" + s, download(da), a);
  }
  for (auto [N, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {129, 33}, {1000, 257}}) {
    const std::string s = " N=" + std::to_string(N) + " C=" + std::to_string(C);
    std::vector<float> x = uniform<float>(N * C), bias = uniform<float>(C), db0 = uniform<float>(C);
    auto dx = upload(x), dbias = upload(bias), ddb = upload(db0);
    cpu::bias_add_forward<float>(x.data(), bias.data(), N, C);
    gpu::bias_add_forward<float>(dx.get(), dbias.get(), N, C, g_stream);
    expect_identical("bias_add_forward" + s, download(dx), x);
    // Column sums in double on both, in different orders, then rounded: 1 ulp.
    cpu::bias_add_backward<float>(db0.data(), x.data(), N, C);
    gpu::bias_add_backward<float>(ddb.get(), dx.get(), N, C, g_stream);
    expect_close("bias_add_backward (rtol 2^-23, atol 1e-6)" + s, download(ddb), db0, 1e-6, 2 * kEps32);
  }
  {
    const int64_t A = 2, B = 3, C = 5, D = 7;
    std::vector<float> x = uniform<float>(A * B * C * D), ref(x.size());
    cpu::permute0213<float>(ref.data(), x.data(), A, B, C, D);
    auto dx = upload(x);
    gpu::DeviceBuffer<float> dout(x.size());
    gpu::permute0213<float>(dout.get(), dx.get(), A, B, C, D, g_stream);
    expect_identical("permute0213 (2,3,5,7)", download(dout), ref);
  }
  {
    const int64_t T = 37, C = 18, off = 1000;
    std::vector<float> ref(T * C);
    cpu::sinusoidal_positions<float>(ref.data(), T, C, off);
    gpu::DeviceBuffer<float> d(T * C);
    gpu::sinusoidal_positions<float>(d.get(), T, C, off, g_stream);
    expect_close("sinusoidal_positions T=37 C=18 offset=1000 (atol 1e-6)", download(d), ref, 1e-6, 0.0);
  }
}

// ================================================================ activations
// CUDA's expf/erff are within 2 ulp, the CPU's libm within 1; a handful of dependent float operations: rtol 1e-5,
// atol 1e-6 (near the zeros of f and f').
void test_activations() {
  std::printf("activations (float32; atol 1e-6, rtol 1e-5)\n");
  const char* names[] = {"relu", "gelu_tanh", "gelu_erf", "silu"};
  for (int64_t n : {int64_t(1), int64_t(1001), int64_t(65537)}) {
    std::vector<float> x = uniform<float>(n, -6, 6), g = uniform<float>(n), d0 = uniform<float>(n);
    auto dx = upload(x), dg = upload(g);
    for (int k = 0; k < 4; ++k) {
      const auto kind = static_cast<cpu::Activation>(k);
      const std::string s = std::string(names[k]) + " n=" + std::to_string(n);
      std::vector<float> ref(n), rd = d0;
      cpu::activation_forward<float>(ref.data(), x.data(), n, kind);
      gpu::DeviceBuffer<float> dout(n);
      gpu::activation_forward<float>(dout.get(), dx.get(), n, kind, g_stream);
      expect_close("activation fwd " + s, download(dout), ref, 1e-6, 1e-5);
      cpu::activation_backward<float>(rd.data(), g.data(), x.data(), n, kind);
      auto dd = upload(d0);
      gpu::activation_backward<float>(dd.get(), dg.get(), dx.get(), n, kind, g_stream);
      expect_close("activation bwd " + s, download(dd), rd, 1e-6, 1e-5);
    }
    std::vector<float> b = uniform<float>(n, -3, 3), ref(n), da0 = uniform<float>(n), db0 = uniform<float>(n);
    auto d_b = upload(b), d_da = upload(da0), d_db = upload(db0);
    gpu::DeviceBuffer<float> dout(n);
    cpu::swiglu_forward<float>(ref.data(), x.data(), b.data(), n);
    gpu::swiglu_forward<float>(dout.get(), dx.get(), d_b.get(), n, g_stream);
    expect_close("swiglu fwd n=" + std::to_string(n), download(dout), ref, 1e-6, 1e-5);
    cpu::swiglu_backward<float>(da0.data(), db0.data(), g.data(), x.data(), b.data(), n);
    gpu::swiglu_backward<float>(d_da.get(), d_db.get(), dg.get(), dx.get(), d_b.get(), n, g_stream);
    expect_close("swiglu bwd da n=" + std::to_string(n), download(d_da), da0, 1e-6, 1e-5);
    expect_close("swiglu bwd db n=" + std::to_string(n), download(d_db), db0, 1e-6, 1e-5);
  }
}

// ================================================================ embedding
// Gather: copies. Scatter-add: the same float adds in the same order (sorted by id, stable): bit-identical.
void test_embedding() {
  std::printf("embedding (float32; exact: gather copies, scatter-add in the CPU's order)\n");
  struct Case {
    int64_t V, C, N;
  };
  for (const auto [V, C, N] : {Case{1, 1, 1}, Case{97, 129, 1031}, Case{50254, 64, 517}}) {
    std::vector<float> table = uniform<float>(V * C), out(N * C), dout = uniform<float>(N * C);
    std::vector<float> dtable = uniform<float>(V * C);
    std::vector<int32_t> ids(N);
    std::uniform_int_distribution<int32_t> idist(0, static_cast<int32_t>(V - 1));
    for (auto& id : ids) id = V > 50 ? idist(g_gen) % (V > 1000 ? 300 : 50) : idist(g_gen);  // many repeats
    const std::string s = " V=" + std::to_string(V) + " C=" + std::to_string(C) + " N=" + std::to_string(N);
    cpu::embedding_forward<float>(out.data(), ids.data(), table.data(), N, C);
    auto dtab = upload(table), ddo = upload(dout), ddt = upload(dtable);
    auto dids = upload(ids);
    gpu::DeviceBuffer<float> dout_(N * C);
    gpu::embedding_forward<float>(dout_.get(), dids.get(), dtab.get(), N, C, V, nullptr, g_stream);
    expect_identical("embedding fwd" + s, download(dout_), out);
    cpu::embedding_backward<float>(dtable.data(), dout.data(), ids.data(), N, C);
    gpu::embedding_backward<float>(ddt.get(), ddo.get(), dids.get(), N, C, V, nullptr, g_stream);
    expect_identical("embedding bwd (deterministic scatter-add)" + s, download(ddt), dtable);
  }
}

// ================================================================ softmax
// float32 sums over ≤ 1000 terms in a block tree (CPU: double): rtol 1e-5, atol 1e-7.
void test_softmax() {
  std::printf("softmax (float32; rtol 1e-5, atol 1e-7; masked rows)\n");
  for (auto [N, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 33}, {9, 1000}}) {
    std::vector<float> x = uniform<float>(N * C, -5, 5);
    if (N > 1) {
      for (int64_t j = 0; j < C; ++j) x[j] = -INFINITY;  // row 0 fully masked
      for (int64_t j = 0; j < C; j += 2) x[C + j] = -INFINITY;  // row 1 half masked
    }
    std::vector<float> ref(N * C);
    cpu::softmax_forward<float>(ref.data(), x.data(), N, C);
    auto dx = upload(x);
    gpu::DeviceBuffer<float> dy(N * C);
    gpu::softmax_forward<float>(dy.get(), dx.get(), N, C, g_stream);
    const std::string s = " N=" + std::to_string(N) + " C=" + std::to_string(C);
    expect_close("softmax fwd" + s, download(dy), ref, 1e-7, 1e-5);
    gpu::softmax_forward<float>(dx.get(), dx.get(), N, C, g_stream);  // in place
    expect_close("softmax fwd in place" + s, download(dx), ref, 1e-7, 1e-5);
    std::vector<float> g = uniform<float>(N * C), d0 = uniform<float>(N * C), rd = d0;
    cpu::softmax_backward<float>(rd.data(), g.data(), ref.data(), N, C);
    auto dg = upload(g), dd = upload(d0), dref = upload(ref);
    gpu::softmax_backward<float>(dd.get(), dg.get(), dref.get(), N, C, g_stream);
    expect_close("softmax bwd" + s, download(dd), rd, 1e-7, 1e-5);
  }
}

// ================================================================ rope
// cos/sin in double (CUDA's and glibc's may differ by an ulp of double, rarely changing the float rounding), then
// two float products and a sum: atol 1e-6, rtol 1e-5.
void test_rope() {
  std::printf("rope (float32; atol 1e-6, rtol 1e-5)\n");
  struct Case {
    int64_t B, T, H, D, off;
  };
  for (const Case& c : {Case{1, 1, 1, 2, 0}, Case{2, 5, 3, 14, 7}, Case{3, 67, 4, 64, 1000}}) {
    const int64_t n = c.B * c.T * c.H * c.D;
    std::vector<float> x = uniform<float>(n), ref(n), g = uniform<float>(n), d0 = uniform<float>(n);
    cpu::rope_forward<float>(ref.data(), x.data(), c.B, c.T, c.H, c.D, 10000.0, c.off);
    auto dx = upload(x);
    gpu::DeviceBuffer<float> dy(n);
    gpu::rope_forward<float>(dy.get(), dx.get(), c.B, c.T, c.H, c.D, 10000.0, c.off, g_stream);
    const std::string s = " B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
                          " D=" + std::to_string(c.D) + " offset=" + std::to_string(c.off);
    expect_close("rope fwd" + s, download(dy), ref, 1e-6, 1e-5);
    std::vector<float> rd = d0;
    cpu::rope_backward<float>(rd.data(), g.data(), c.B, c.T, c.H, c.D, 10000.0, c.off);
    auto dg = upload(g), dd = upload(d0);
    gpu::rope_backward<float>(dd.get(), dg.get(), c.B, c.T, c.H, c.D, 10000.0, c.off, g_stream);
    expect_close("rope bwd" + s, download(dd), rd, 1e-6, 1e-5);
  }
}

// ================================================================ allocator and errors
void test_allocator() {
  std::printf("allocator\n");
  int dev = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&dev));
  gpu::release_cached();
  const gpu::AllocatorStats s0 = gpu::allocator_stats(dev);
  {
    gpu::DeviceBuffer<float> a(1000), b(300000), c(5 << 20);
  }
  const gpu::AllocatorStats s1 = gpu::allocator_stats(dev);
  CHECK(s1.device_mallocs == s0.device_mallocs + 3);
  CHECK(s1.bytes_in_use == s0.bytes_in_use);
  CHECK(s1.bytes_cached >= s0.bytes_cached + 1000 * 4 + 300000 * 4 + (size_t(5) << 22));
  CHECK(s1.peak_bytes_in_use >= s0.bytes_in_use + (size_t(5) << 22));
  {
    gpu::DeviceBuffer<float> a(1000), b(300000), c(5 << 20);  // same sizes: from the cache
    CHECK(gpu::allocator_stats(dev).bytes_in_use >= s0.bytes_in_use + (size_t(5) << 22));
  }
  const gpu::AllocatorStats s2 = gpu::allocator_stats(dev);
  CHECK(s2.device_mallocs == s1.device_mallocs);
  CHECK(s2.cache_hits >= s1.cache_hits + 3);
  // A kernel sequence, run twice: the second run allocates nothing new.
  auto step = [&]() {
    std::vector<float> logits = uniform<float>(8 * 50254);
    std::vector<int32_t> t(8, 5);
    auto dl = upload(logits);
    auto dt = upload(t);
    gpu::DeviceBuffer<double> mean(1);
    gpu::cross_entropy_forward_backward<float>(dl.get(), nullptr, mean.get(), dl.get(), dt.get(), 8, 50254, -100, 1.0,
                                               nullptr, g_stream);
    gpu::DeviceBuffer<float> dtab(1000 * 64), dout(8 * 64);
    WAVEMOE_CUDA_CHECK(cudaMemsetAsync(dtab.get(), 0, 1000 * 64 * sizeof(float), g_stream));
    WAVEMOE_CUDA_CHECK(cudaMemsetAsync(dout.get(), 0, 8 * 64 * sizeof(float), g_stream));
    gpu::embedding_backward<float>(dtab.get(), dout.get(), dt.get(), 8, 64, 1000, nullptr, g_stream);
    WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
  };
  step();
  const uint64_t mallocs = gpu::allocator_stats(dev).device_mallocs;
  step();
  CHECK(gpu::allocator_stats(dev).device_mallocs == mallocs);
  gpu::release_cached();
  const gpu::AllocatorStats s3 = gpu::allocator_stats(dev);
  CHECK(s3.bytes_cached == 0);
  std::printf("  reuse without cudaMalloc, stats, release: %s (mallocs %llu, hits %llu, peak %zu bytes)\n",
              native_test_failures() ? "see failures" : "ok", (unsigned long long)s3.device_mallocs,
              (unsigned long long)s3.cache_hits, s3.peak_bytes_in_use);
  // Out of memory: an absurd request becomes an exception that says how much was asked and how much is free.
  std::string msg;
  try {
    gpu::device_allocate(size_t(1) << 50);
  } catch (const std::runtime_error& e) {
    msg = e.what();
  }
  std::printf("  OOM message: %s\n", msg.c_str());
  CHECK(msg.find("out of memory") != std::string::npos);
  CHECK(msg.find("1.00 PiB") != std::string::npos);
  CHECK(msg.find("free of") != std::string::npos);
  CHECK(cudaGetLastError() == cudaSuccess);  // the failed cudaMalloc left no stale error behind
  // Checked calls name the operation.
  std::string err;
  try {
    WAVEMOE_CUDA_CHECK(cudaSetDevice(1 << 20));
  } catch (const std::runtime_error& e) {
    err = e.what();
  }
  std::printf("  checked call error: %s\n", err.c_str());
  CHECK(err.find("cudaSetDevice") != std::string::npos && err.find("cuda_test_kernels.cc:") != std::string::npos);
  WAVEMOE_CUDA_CHECK(cudaSetDevice(dev));
  cudaGetLastError();
}

// ================================================================ bench
int bench(const gpu::DeviceInfo& info) {
  const int64_t M = 2048;  // B·T
  const int64_t dims[] = {256, 512, 1024, 50254};
  const bool have_cublas = gpu::cublas_loaded();
  std::printf("matmul forward C(M,N) = A(M,K)·B(K,N), float32, M = %lld, on %s\n", (long long)M, info.name.c_str());
  std::printf("%8s %8s %8s %14s %14s %8s\n", "M", "K", "N", "own GFLOP/s", "cuBLAS GFLOP/s", "ratio");
  std::string json = "{\"device\":\"" + info.name + "\",\"cublas\":" +
                     (have_cublas ? "\"" + gpu::cublas_api().path + "\"" : std::string("null")) + ",\"tf32\":false," +
                     "\"results\":[";
  bool first = true;
  for (int64_t K : dims) {
    for (int64_t N : dims) {
      if (K == 50254 && N == 50254) continue;  // not a model shape (10 TFLOP)
      gpu::DeviceBuffer<float> A(M * K), B(K * N), C(M * N);
      auto fill = [&](float* p, int64_t n) {
        std::vector<float> h = uniform<float>(n);
        WAVEMOE_CUDA_CHECK(cudaMemcpy(p, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
      };
      fill(A.get(), M * K);
      fill(B.get(), K * N);
      const double flop = 2.0 * M * N * K;
      auto run = [&](gpu::MatmulBackend be) {
        return time_ms([&] {
          gpu::matmul_forward<float>(C.get(), A.get(), B.get(), 1, M, N, K, false, false, M * K, K * N, M * N, false,
                                     g_stream, be);
        });
      };
      const double own = flop / (run(gpu::MatmulBackend::own) * 1e6);
      const double cub = have_cublas ? flop / (run(gpu::MatmulBackend::cublas) * 1e6) : 0.0;
      std::printf("%8lld %8lld %8lld %14.0f %14.0f %8.2f\n", (long long)M, (long long)K, (long long)N, own, cub,
                  have_cublas ? own / cub : 0.0);
      char buf[256];
      std::snprintf(buf, sizeof(buf), "%s{\"M\":%lld,\"K\":%lld,\"N\":%lld,\"own_gflops\":%.1f,\"cublas_gflops\":%s}",
                    first ? "" : ",", (long long)M, (long long)K, (long long)N, own,
                    have_cublas ? std::to_string(cub).c_str() : "null");
      json += buf;
      first = false;
    }
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cuda_test_main("cuda_test_kernels", argc, argv, [] {
    test_matmul();
    test_rmsnorm();
    test_cross_entropy();
    test_adamw();
    test_elementwise();
    test_activations();
    test_embedding();
    test_softmax();
    test_rope();
    test_allocator();
  }, bench);
}
