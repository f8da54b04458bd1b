// Native test of cuda/layernorm.{h,cu}: forward (out, mean, rstd) and backward (dx, dweight, dbias, each starting
// non-zero, so += is checked) against the CPU kernel (csrc/kernels/layernorm.h), with and without bias, float32 and
// float64, awkward sizes (1, primes, non-multiples of 32 and 4, C up to 1031), and rows whose mean is far from 0.
// Without a GPU or driver it prints one SKIPPED line and exits 0.
//
//   build/cuda/cuda_test_layernorm
//
// Tolerances. Both sides sum the row statistics in double and then do the same T operations, rounded one by one
// (cuda/layernorm.h); only the ORDER of the double sums differs.
//  - float32: a rounded statistic (mean, rstd, the backward's two row means) may differ by 1 ulp in rare rows, which
//    moves out and dx by a few float ulps of values ≤ ~4: out/dx atol 1e-6 rtol 1e-6; mean/rstd 1 ulp (rtol 2^-23,
//    atol 1e-12 for a mean near 0). dweight/dbias: the double column sums rounded once, then one float add:
//    2^-23·(Σ|terms| + |ref|).
//  - float64: reordering a double sum of C terms of size ≤ s moves it by ≤ C·2^-53·s; with s = 2 + |offset| (the
//    inputs' magnitude) and outputs ≤ ~4 times a statistic, tol = 16·C·2^-53·(2 + |offset|) (atol and rtol; ~4e-12
//    at C = 1031). dweight/dbias: 2N·2^-53·Σ|terms| + 2·2^-53·|ref|.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "check.h"
#include "cuda_check.h"
#include "cuda/layernorm.h"
#include "kernels/layernorm.h"

using namespace cuda_test;

namespace {

struct Case {
  int64_t N, C;
  double offset;  // inputs in [offset - 2, offset + 2]
};

const Case kCases[] = {{1, 1, 0}, {1, 7, 0}, {3, 33, 0}, {37, 255, 0}, {5, 1031, 0}, {129, 64, 0}, {11, 97, 100.0},
                       {2, 1031, -50.0}};

template <typename T> constexpr bool is_float() { return sizeof(T) == 4; }

// Per-column bounds for a column sum out[c] = init[c] + Σ_n term(n, c) reduced in double in any order.
template <typename T>
std::vector<double> column_sum_bound(const std::vector<double>& abs_terms, const std::vector<T>& ref, int64_t N,
                                     int64_t C) {
  std::vector<double> bound(C, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0.0;
    for (int64_t n = 0; n < N; ++n) s += abs_terms[n * C + c];
    const double r = std::fabs(static_cast<double>(ref[c]));
    bound[c] = is_float<T>() ? 2 * kEps32 * (s + r) : 2 * N * kEps64 * s + 2 * kEps64 * r;
  }
  return bound;
}

template <typename T> void check_case(const Case& k, bool with_bias) {
  const int64_t N = k.N, C = k.C;
  const double eps = 1e-5;
  const double tol64 = 16.0 * C * kEps64 * (2.0 + std::fabs(k.offset));
  const double out_atol = is_float<T>() ? 1e-6 : tol64, out_rtol = is_float<T>() ? 1e-6 : tol64;
  const double stat_atol = is_float<T>() ? 1e-12 : tol64, stat_rtol = is_float<T>() ? 2 * kEps32 : tol64;
  char buf[160];
  std::snprintf(buf, sizeof(buf), " %s N=%lld C=%lld offset=%g %s", is_float<T>() ? "float32" : "float64",
                (long long)N, (long long)C, k.offset, with_bias ? "bias" : "no bias");
  const std::string s = buf;

  // ---- forward
  std::vector<T> x = uniform<T>(N * C, k.offset - 2, k.offset + 2), w = uniform<T>(C, -1.5, 1.5);
  std::vector<T> bias = with_bias ? uniform<T>(C) : std::vector<T>();
  std::vector<T> out(N * C), mean(N), rstd(N);
  cpu::layernorm_forward<T>(out.data(), mean.data(), rstd.data(), x.data(), w.data(), with_bias ? bias.data() : nullptr,
                            N, C, eps);
  auto d_x = upload(x), d_w = upload(w), d_b = upload(bias);
  gpu::DeviceBuffer<T> d_out(N * C), d_mean(N), d_rstd(N);
  gpu::layernorm_forward<T>(d_out.get(), d_mean.get(), d_rstd.get(), d_x.get(), d_w.get(),
                            with_bias ? d_b.get() : nullptr, N, C, eps, g_stream);
  expect_close("layernorm fwd out" + s, download(d_out), out, out_atol, out_rtol);
  expect_close("layernorm fwd mean" + s, download(d_mean), mean, stat_atol, stat_rtol);
  expect_close("layernorm fwd rstd" + s, download(d_rstd), rstd, stat_atol, stat_rtol);

  // ---- backward, from the CPU's saved statistics (the same inputs on both sides); gradients start non-zero.
  std::vector<T> dout = uniform<T>(N * C), dx0 = uniform<T>(N * C), dw0 = uniform<T>(C), db0 = uniform<T>(C);
  std::vector<T> dx = dx0, dw = dw0, db = db0;
  cpu::layernorm_backward<T>(dx.data(), dw.data(), with_bias ? db.data() : nullptr, dout.data(), x.data(), w.data(),
                             mean.data(), rstd.data(), N, C);
  auto d_dout = upload(dout), d_dx = upload(dx0), d_dw = upload(dw0), d_db = upload(db0);
  auto d_cmean = upload(mean), d_crstd = upload(rstd);
  gpu::layernorm_backward<T>(d_dx.get(), d_dw.get(), with_bias ? d_db.get() : nullptr, d_dout.get(), d_x.get(),
                             d_w.get(), d_cmean.get(), d_crstd.get(), N, C, g_stream);
  expect_close("layernorm bwd dx (+=)" + s, download(d_dx), dx, out_atol, out_rtol);
  std::vector<double> abs_dw(N * C), abs_db(N * C);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      const double norm = (double(x[n * C + c]) - double(mean[n])) * double(rstd[n]);
      abs_dw[n * C + c] = std::fabs(double(dout[n * C + c]) * norm);
      abs_db[n * C + c] = std::fabs(double(dout[n * C + c]));
    }
  }
  const std::vector<double> bw = column_sum_bound(abs_dw, dw, N, C);
  expect_close("layernorm bwd dweight (+=)" + s, download(d_dw), dw, 0.0, 0.0, &bw);
  if (with_bias) {
    const std::vector<double> bb = column_sum_bound(abs_db, db, N, C);
    expect_close("layernorm bwd dbias (+=)" + s, download(d_db), db, 0.0, 0.0, &bb);
  } else {
    expect_identical("layernorm bwd no bias: dbias untouched" + s, download(d_db), db0);
  }
}

void test_layernorm() {
  std::printf("layernorm (tolerances: see the top of this file)\n");
  for (const Case& k : kCases) {
    for (bool with_bias : {true, false}) {
      check_case<float>(k, with_bias);
      check_case<double>(k, with_bias);
    }
  }
  // N = 0 or C = 0 launch nothing.
  gpu::layernorm_forward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 5, 1e-5, g_stream);
  gpu::layernorm_backward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 5, 0,
                                 g_stream);
  WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

// Backward twice from the same start: the same bits (deterministic column sums, no atomics).
void test_determinism() {
  std::printf("layernorm backward determinism (float32, N=257 C=1031, run twice: bit-identical)\n");
  const int64_t N = 257, C = 1031;
  std::vector<float> x = uniform<float>(N * C, -2, 2), w = uniform<float>(C), dout = uniform<float>(N * C);
  std::vector<float> mean(N), rstd(N), out(N * C);
  cpu::layernorm_forward<float>(out.data(), mean.data(), rstd.data(), x.data(), w.data(), nullptr, N, C, 1e-5);
  auto d_x = upload(x), d_w = upload(w), d_dout = upload(dout), d_m = upload(mean), d_r = upload(rstd);
  std::vector<std::vector<float>> runs;
  for (int k = 0; k < 2; ++k) {
    gpu::DeviceBuffer<float> dx(N * C), dw(C), db(C);
    WAVEMOE_CUDA_CHECK(cudaMemsetAsync(dx.get(), 0, N * C * sizeof(float), g_stream));
    WAVEMOE_CUDA_CHECK(cudaMemsetAsync(dw.get(), 0, C * sizeof(float), g_stream));
    WAVEMOE_CUDA_CHECK(cudaMemsetAsync(db.get(), 0, C * sizeof(float), g_stream));
    gpu::layernorm_backward<float>(dx.get(), dw.get(), db.get(), d_dout.get(), d_x.get(), d_w.get(), d_m.get(),
                                   d_r.get(), N, C, g_stream);
    std::vector<float> all = download(dx), wv = download(dw), bv = download(db);
    all.insert(all.end(), wv.begin(), wv.end());
    all.insert(all.end(), bv.begin(), bv.end());
    runs.push_back(all);
  }
  expect_identical("layernorm bwd run 1 vs run 2", runs[1], runs[0]);
}

}  // namespace

int main(int argc, char** argv) {
  return run_cuda_test_main("cuda_test_layernorm", argc, argv, [] {
    test_layernorm();
    test_determinism();
  });
}
