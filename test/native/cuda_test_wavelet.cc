// Native test of cuda/wavelet.{h,cu}: the wavelet matrix upload, the table build, and raw mode forward and backward
// (draw starting non-zero, so += is checked; ids with many repeats), against the CPU kernels
// (csrc/kernels/wavelet.h), float32 and float64, for the default spec (R = 256, levels 4, scale 2: C = 32) and the
// other valid specs of the CPU tests (test/kernels/wavelet.test.ts), V up to 50254.
// Without a GPU or driver it prints one SKIPPED line and exits 0.
//
//   build/cuda/cuda_test_wavelet
//
// Tolerances: the GPU computes a GEMM with W (float32: float32 sums, W rounded to float32; float64: double sums), the
// CPU sums in double. Any summation order of an L-term dot product is within (L + 2)·ε·Σ|a||b| of the exact value,
// so per element, with ε = 2^-24 (float32) or 2^-53 (float64) and S = Σ|raw||W| (from |raw|·|W| in double):
//  - wavelet_matrix: bit-identical (the CPU function, copied);
//  - table: ε|ref| + 2(R + C + 8)·ε·S. The CPU builds the table by Haar then CWT (≤ levels + L more rounded terms,
//    L ≤ C), not through W, hence C + 8 on top of the GEMM's R + 2;
//  - raw forward: ε|ref| + 2(R + 2)·ε·S (both sides use the same rounded W);
//  - raw backward: per draw element, 2(C + 2)·ε·Σ_i G_i (G = |dout|·|W|ᵀ, the GEMM bound of each token's row) plus
//    2(n_v + 1)·ε·(|draw0| + Σ_i G_i) for the n_v adds into it (the same order on both sides, different operands).
//  Backward twice from the same start: bit-identical (no atomics).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cuda_check.h"
#include "cuda/wavelet.h"
#include "kernels/matmul.h"
#include "kernels/wavelet.h"

using namespace cuda_test;

namespace {

struct Case {
  int64_t V, R, N;
  int levels;
  std::vector<double> scales;
  double bandwidth, center;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> k = {
      {300, 256, 517, 4, {2.0}, 1.5, 1.0},           // the default transform: C = 32
      {97, 256, 1031, 2, {1.0, 2.5}, 1.5, 1.0},       // L = 64, C = 256
      {13, 16, 40, 2, {1.0, 3.7}, 3.0, 2.5},          // specs of test/kernels/wavelet.test.ts
      {5, 31, 7, 1, {10.0}, 0.5, 0.5},                // odd R
      {3, 8, 5, 0, {2.0, 0.3, 7.0}, 1.0, 1.0},        // no Haar level, a tiny scale
      {1, 12, 1, 2, {1.0, 2.5}, 0.8, 1.7},            // one token
      {50254, 256, 2053, 4, {2.0}, 1.5, 1.0},         // the vocabulary's size
  };
  return k;
}

cpu::WaveletSpec spec_of(const Case& c) {
  cpu::WaveletSpec s;
  s.levels = c.levels;
  s.scales = c.scales;
  s.cmor.bandwidth = c.bandwidth;
  s.cmor.center = c.center;
  return s;
}

template <typename T> double eps_of() { return sizeof(T) == 4 ? kEps32 : kEps64; }

std::vector<double> absd(const std::vector<double>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = std::fabs(v[i]);
  return r;
}
template <typename T> std::vector<double> absd_t(const std::vector<T>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = std::fabs(static_cast<double>(v[i]));
  return r;
}

template <typename T> void check_case(const Case& k) {
  const int64_t V = k.V, R = k.R, N = k.N;
  const cpu::WaveletSpec spec = spec_of(k);
  const int64_t C = cpu::wavelet_channels(R, spec);
  const double eps = eps_of<T>();
  char buf[200];
  std::snprintf(buf, sizeof(buf), " %s V=%lld R=%lld N=%lld levels=%d S=%zu C=%lld", sizeof(T) == 4 ? "f32" : "f64",
                (long long)V, (long long)R, (long long)N, k.levels, k.scales.size(), (long long)C);
  const std::string s = buf;

  // ---- W: the CPU function, uploaded
  std::vector<T> W(R * C);
  cpu::wavelet_matrix<T>(W.data(), R, spec);
  gpu::DeviceBuffer<T> d_W(R * C);
  gpu::wavelet_matrix<T>(d_W.get(), R, spec, g_stream);
  expect_identical("wavelet_matrix" + s, download(d_W), W);
  std::vector<double> Wd(R * C);
  cpu::wavelet_matrix<double>(Wd.data(), R, spec);
  const std::vector<double> absW = absd(Wd);

  // ---- table = raw · W
  const std::vector<T> raw = uniform<T>(V * R);
  const std::vector<double> abs_raw = absd_t(raw);
  std::vector<T> table(V * C);
  cpu::wavelet_table_forward<T>(table.data(), raw.data(), V, R, spec);
  auto d_raw = upload(raw);
  gpu::DeviceBuffer<T> d_table(V * C);
  gpu::wavelet_table_forward<T>(d_table.get(), d_raw.get(), V, R, spec, g_stream);
  std::vector<double> bound(V * C, 0.0);
  cpu::matmul_forward_naive<double>(bound.data(), abs_raw.data(), absW.data(), 1, V, C, R, false, false, V * R, R * C,
                                    V * C, false);
  for (double& b : bound) b *= 2.0 * (R + C + 8) * eps;
  expect_close("wavelet_table_forward" + s, download(d_table), table, 0.0, eps, &bound);

  // ---- raw forward: out[i] = raw[ids[i]] · W; ids with many repeats
  std::vector<int32_t> ids(N);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(V - 1));
  for (int64_t i = 0; i < N; ++i) ids[i] = V > 64 ? pick(g_gen) % 64 * (V / 64) : pick(g_gen);
  std::vector<T> out(N * C);
  cpu::wavelet_embedding_raw_forward<T>(out.data(), ids.data(), raw.data(), W.data(), N, R, C);
  auto d_ids = upload(ids);
  gpu::DeviceBuffer<T> d_out(N * C);
  gpu::wavelet_embedding_raw_forward<T>(d_out.get(), d_ids.get(), d_raw.get(), d_W.get(), N, V, R, C, nullptr,
                                        g_stream);
  std::vector<double> abs_x(N * R), ob(N * C, 0.0);
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t r = 0; r < R; ++r) abs_x[i * R + r] = abs_raw[static_cast<int64_t>(ids[i]) * R + r];
  }
  cpu::matmul_forward_naive<double>(ob.data(), abs_x.data(), absW.data(), 1, N, C, R, false, false, N * R, R * C,
                                    N * C, false);
  for (double& b : ob) b *= 2.0 * (R + 2) * eps;
  expect_close("wavelet_embedding_raw_forward" + s, download(d_out), out, 0.0, eps, &ob);

  // ---- raw backward: draw[ids[i]] += dout[i] · Wᵀ, draw starting non-zero
  const std::vector<T> dout = uniform<T>(N * C), draw0 = uniform<T>(V * R);
  std::vector<T> draw = draw0;
  cpu::wavelet_embedding_raw_backward<T>(draw.data(), dout.data(), ids.data(), W.data(), N, R, C);
  auto d_dout = upload(dout), d_draw = upload(draw0);
  gpu::wavelet_embedding_raw_backward<T>(d_draw.get(), d_dout.get(), d_ids.get(), d_W.get(), N, V, R, C, nullptr,
                                         g_stream);
  std::vector<double> G(N * R, 0.0), sumG(V * R, 0.0), count(V, 0.0);
  const std::vector<double> abs_dout = absd_t(dout);
  cpu::matmul_forward_naive<double>(G.data(), abs_dout.data(), absW.data(), 1, N, R, C, false, true, N * C, R * C,
                                    N * R, false);
  for (int64_t i = 0; i < N; ++i) {
    count[ids[i]] += 1;
    for (int64_t r = 0; r < R; ++r) sumG[static_cast<int64_t>(ids[i]) * R + r] += G[i * R + r];
  }
  std::vector<double> bb(V * R);
  for (int64_t v = 0; v < V; ++v) {
    for (int64_t r = 0; r < R; ++r) {
      const double g = sumG[v * R + r], d0 = std::fabs(static_cast<double>(draw0[v * R + r]));
      bb[v * R + r] = 2.0 * (C + 2) * eps * g + 2.0 * (count[v] + 1) * eps * (d0 + g);
    }
  }
  const std::vector<T> got = download(d_draw);
  expect_close("wavelet_embedding_raw_backward (+=)" + s, got, draw, 0.0, 0.0, &bb);

  // ---- the backward again from the same start: the same bits
  auto d_draw2 = upload(draw0);
  gpu::wavelet_embedding_raw_backward<T>(d_draw2.get(), d_dout.get(), d_ids.get(), d_W.get(), N, V, R, C, nullptr,
                                         g_stream);
  expect_identical("wavelet_embedding_raw_backward run 2 == run 1" + s, download(d_draw2), got);
}

void test_wavelet() {
  std::printf("wavelet (tolerances: see the top of this file; matmul: %s)\n",
              gpu::matmul_backend_description().c_str());
  for (const Case& k : cases()) {
    check_case<float>(k);
    check_case<double>(k);
  }
}

}  // namespace

int main(int argc, char** argv) {
  return run_cuda_test_main("cuda_test_wavelet", argc, argv, [] { test_wavelet(); });
}
