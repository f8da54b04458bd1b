// Native test of the wavelet analysis ops on the GPU (cuda/wavelet_analysis.h): the Haar approximation and the
// complex Morlet CWT against the CPU kernels (csrc/kernels/wavelet.h), BIT-IDENTICAL in float32 and float64 (both
// sum in double in the same order with separately rounded operations), on random signals of awkward lengths
// (1, odd lengths that pad at several levels, primes), every level count up to the maximum, several scale sets.
//
//   bash scripts/cuda-build.sh && build/cuda/cuda_test_wavelet_analysis
#include <cuda_runtime.h>

#include <cstdio>
#include <string>
#include <vector>

#include "check.h"
#include "cuda_check.h"
#include "cuda/wavelet_analysis.h"
#include "kernels/wavelet.h"

using namespace cuda_test;

namespace {

template <typename T> void check_haar(int64_t B, int64_t N, int levels) {
  const int64_t L = cpu::haar_output_length(N, levels);
  const std::vector<T> x = uniform<T>(static_cast<size_t>(B * N), -3.0, 3.0);
  std::vector<T> want(static_cast<size_t>(B * L));
  cpu::haar_forward<T>(want.data(), x.data(), B, N, levels);
  auto dx = upload(x);
  gpu::DeviceBuffer<T> dout(want.size());
  gpu::haar_forward<T>(dout.get(), dx.get(), B, N, levels, g_stream);
  char name[128];
  std::snprintf(name, sizeof(name), "haar %s B=%lld N=%lld levels=%d", sizeof(T) == 4 ? "f32" : "f64", (long long)B,
                (long long)N, levels);
  expect_identical(name, download(dout, want.size()), want);
}

template <typename T> void check_cwt(int64_t B, int64_t n, const std::vector<double>& scales, double bandwidth,
                                     double center) {
  cpu::CmorSpec spec;
  spec.bandwidth = cpu::cmor_parameter(bandwidth);
  spec.center = cpu::cmor_parameter(center);
  const int64_t S = static_cast<int64_t>(scales.size());
  const cpu::CwtPlan plan = cpu::cwt_plan(spec, scales.data(), S, n);
  const std::vector<T> x = uniform<T>(static_cast<size_t>(B * n), -2.0, 2.0);
  std::vector<T> want(static_cast<size_t>(B * S * n * 2));
  cpu::cwt_forward<T>(want.data(), x.data(), plan, B);
  auto dx = upload(x);
  gpu::DeviceBuffer<T> dout(want.size());
  gpu::cwt_forward<T>(dout.get(), dx.get(), plan, B, g_stream);
  char name[160];
  std::snprintf(name, sizeof(name), "cwt %s B=%lld n=%lld S=%lld cmor%.2f-%.2f", sizeof(T) == 4 ? "f32" : "f64",
                (long long)B, (long long)n, (long long)S, bandwidth, center);
  expect_identical(name, download(dout, want.size()), want);
}

template <typename T> void run_all() {
  for (const auto& [B, N] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {2, 31}, {5, 256}, {1, 1031}}) {
    int max_levels = 0;
    while ((int64_t{1} << (max_levels + 1)) <= N) ++max_levels;
    for (int levels = 0; levels <= max_levels; ++levels) check_haar<T>(B, N, levels);
  }
  check_cwt<T>(1, 1, {2.0}, 1.5, 1.0);
  check_cwt<T>(3, 16, {2.0}, 1.5, 1.0);
  check_cwt<T>(2, 37, {2.0, 3.5, 8.0}, 1.1, 1.3);
  check_cwt<T>(4, 130, {1.5, 16.0}, 2.0, 0.5);
}

}  // namespace

int main(int argc, char** argv) {
  return run_cuda_test_main("cuda_test_wavelet_analysis", argc, argv, [] {
    std::printf("wavelet analysis (bit-identical to the CPU)\n");
    run_all<float>();
    run_all<double>();
  });
}
