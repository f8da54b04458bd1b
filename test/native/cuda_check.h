// Shared helpers of the CUDA native test programs (test/native/cuda_test_*.cc): one stream, a seeded generator,
// upload/download through the caching allocator, random inputs, tolerance checks that print the worst error, a
// CUDA-event timer for --bench, and the common main (SKIPPED line without a GPU).
#pragma once
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
#include "cuda/allocator.h"
#include "cuda/check.h"
#include "cuda/cublas_loader.h"
#include "cuda/device.h"

namespace cpu = wavemoe;
namespace gpu = wavemoe::gpu;

namespace cuda_test {

inline constexpr double kEps32 = 1.0 / (1 << 24);  // float32 unit roundoff (2^-24)
inline constexpr double kEps64 = 1.0 / 9007199254740992.0;
inline cudaStream_t g_stream = nullptr;

// On the CPU emulation of CUDA (test/cuda-emulation) a kernel's threads run one by one, so what a GPU repeats in
// milliseconds for statistics (many seeds; every option combination at the full vocabulary) is thinned there to
// one repetition in kEmulationStride; `group` rotates the choice so that successive groups keep different ones.
// Every shape, path and option still runs; on a GPU everything runs.
#ifdef WAVEMOE_CUDA_EMULATION
inline constexpr int64_t kEmulationStride = 8;
#else
inline constexpr int64_t kEmulationStride = 1;
#endif
inline bool emulation_keeps(int64_t repetition, int64_t group = 0) {
  return (repetition + group) % kEmulationStride == 0;
}
inline std::mt19937 g_gen(1234);

// ---------------------------------------------------------------- host <-> device
template <typename T> gpu::DeviceBuffer<T> upload(const std::vector<T>& h) {
  gpu::DeviceBuffer<T> d(h.size());
  if (!h.empty()) {
    WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, g_stream));
  }
  return d;
}
template <typename T> std::vector<T> download(const gpu::DeviceBuffer<T>& d, size_t n) {
  std::vector<T> h(n);
  if (n) WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(h.data(), d.get(), n * sizeof(T), cudaMemcpyDeviceToHost, g_stream));
  WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
  return h;
}
template <typename T> std::vector<T> download(const gpu::DeviceBuffer<T>& d) { return download(d, d.size()); }
template <typename T> T download_scalar(const T* d) {
  T h;
  WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof(T), cudaMemcpyDeviceToHost, g_stream));
  WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
  return h;
}

template <typename T> std::vector<T> uniform(size_t n, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(g_gen));
  return v;
}

// ---------------------------------------------------------------- comparison
// Elementwise |g - r| <= atol + rtol·|r| (+ bound[i] when given); NaN must match NaN. Prints the worst error.
template <typename T>
void expect_close(const std::string& name, const std::vector<T>& got, const std::vector<T>& ref, double atol,
                  double rtol, const std::vector<double>* bound = nullptr) {
  CHECK(got.size() == ref.size());
  double worst = 0.0, worst_ratio = 0.0;
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < got.size() && i < ref.size(); ++i) {
    const double g = got[i], r = ref[i];
    if (std::isnan(r) || std::isnan(g)) {
      if (std::isnan(r) != std::isnan(g) && bad++ == 0) first_bad = i;
      continue;
    }
    if (std::isinf(r) || std::isinf(g)) {
      if (g != r && bad++ == 0) first_bad = i;
      continue;
    }
    const double err = std::fabs(g - r);
    const double tol = atol + rtol * std::fabs(r) + (bound ? (*bound)[i] : 0.0);
    worst = std::max(worst, err);
    if (tol > 0) worst_ratio = std::max(worst_ratio, err / tol);
    if (err > tol && bad++ == 0) first_bad = i;
  }
  std::printf("  %-58s max|err| %.3g (%.2f of tol)%s\n", name.c_str(), worst, worst_ratio, bad ? "  FAILED" : "");
  if (bad) {
    std::fprintf(stderr, "FAIL %s: %zu of %zu elements out of tolerance; first at %zu: gpu %.9g cpu %.9g\n",
                 name.c_str(), bad, got.size(), first_bad, static_cast<double>(got[first_bad]),
                 static_cast<double>(ref[first_bad]));
    ++native_test_failures();
  }
}

template <typename T> void expect_identical(const std::string& name, const std::vector<T>& got,
                                            const std::vector<T>& ref) {
  const bool same = got.size() == ref.size() && std::memcmp(got.data(), ref.data(), got.size() * sizeof(T)) == 0;
  std::printf("  %-58s %s\n", name.c_str(), same ? "bit-identical" : "DIFFERENT  FAILED");
  if (!same) ++native_test_failures();
}

// Mean milliseconds per call of fn on g_stream (CUDA events; one warm-up call, then up to 100 calls or 0.2 s).
double time_ms(const std::function<void()>& fn) {
  cudaEvent_t start, stop;
  WAVEMOE_CUDA_CHECK(cudaEventCreate(&start));
  WAVEMOE_CUDA_CHECK(cudaEventCreate(&stop));
  fn();  // warm-up (and cuBLAS heuristics)
  WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
  int iters = 0;
  float ms = 0.0f;
  WAVEMOE_CUDA_CHECK(cudaEventRecord(start, g_stream));
  const auto wall0 = std::chrono::steady_clock::now();
  do {
    fn();
    ++iters;
    WAVEMOE_CUDA_CHECK(cudaEventRecord(stop, g_stream));
    WAVEMOE_CUDA_CHECK(cudaEventSynchronize(stop));
  } while (iters < 100 && std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count() < 0.2);
  WAVEMOE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}


// The common main of a CUDA test program: prints SKIPPED and returns 0 without a GPU; else creates g_stream, loads
// cuBLAS, runs `tests` (or `bench` with --bench when given) and returns non-zero on any failure or exception.
inline int run_cuda_test_main(const char* name, int argc, char** argv, const std::function<void()>& tests,
                              const std::function<int(const gpu::DeviceInfo&)>& bench = nullptr) {
  const bool bench_mode = argc > 1 && std::strcmp(argv[1], "--bench") == 0;
  std::string reason;
  if (!gpu::cuda_available(&reason)) {
    std::printf("%s: SKIPPED (no CUDA device: %s)\n", name, reason.c_str());
    return 0;
  }
  try {
    const gpu::DeviceInfo info = gpu::device_info(0);
    std::printf("device: %s\n", gpu::describe(info).c_str());
    WAVEMOE_CUDA_CHECK(cudaStreamCreate(&g_stream));
    gpu::cublas_api();
    if (gpu::cublas_loaded()) gpu::cublas_handle(g_stream);  // creates the handle, so the version is known
    std::printf("matmul: %s\n", gpu::matmul_backend_description().c_str());
    if (bench_mode) return bench ? bench(info) : (std::printf("%s: no --bench here\n", name), 0);
    tests();
    WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: exception: %s\n", name, e.what());
    return 1;
  }
  return native_test_result(name);
}

}  // namespace cuda_test
