// Native test of cuda/random.{h,cu}: the counter-based uniform and normal fills against the CPU kernels
// (csrc/kernels/random.h), float32 and float64, awkward sizes (1, odd, primes), several seeds and ranges.
// Without a GPU or driver it prints one SKIPPED line and exits 0.
//
//   build/cuda/cuda_test_random
//
// Expectations (see cuda/random.h for why):
//  - uniform01 / mix64: the host copy of the device functions equals the CPU's bit for bit (checked on the host);
//  - random_uniform: bit-identical in float and double (double U[0, 1) is uniform01 itself, so this also checks
//    the device build of uniform01);
//  - random_normal: float32 within 1 ulp of the CPU (identical except in rare elements) plus the double error
//    below; float64 within 16·2^-53·(|mean| + |out - mean|): CUDA's log, cos and sin are within 1-2 double ulps
//    of glibc's, sqrt and the products are correctly rounded, so z differs by a few ulps at most.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "cuda_check.h"
#include "cuda/random.h"
#include "kernels/random.h"

using namespace cuda_test;

namespace {

const int64_t kSizes[] = {1, 2, 3, 97, 4099, 1000003};
const uint64_t kSeeds[] = {0, 42, 0x8000000000000005ULL};

template <typename T> size_t count_identical(const std::vector<T>& a, const std::vector<T>& b) {
  size_t same = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) same += std::memcmp(&a[i], &b[i], sizeof(T)) == 0;
  return same;
}

template <typename T> const char* type_name() { return sizeof(T) == 4 ? "float32" : "float64"; }

std::string label(const char* what, const char* type, int64_t n, uint64_t seed, double a, double b) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%s %s n=%lld seed=%llu (%g, %g)", what, type, (long long)n,
                (unsigned long long)seed, a, b);
  return buf;
}

// ================================================================ the mixing functions, on the host
void test_mixing() {
  std::printf("uniform01 / mix64: the __host__ __device__ copies vs the CPU's (bit-identical)\n");
  const uint64_t seeds[] = {0, 1, 42, 0x9e3779b97f4a7c15ULL, ~0ULL};
  const uint64_t far[] = {~0ULL, ~0ULL - 1, 1ULL << 63, 0x123456789abcdefULL};
  size_t checked = 0, bad = 0;
  for (uint64_t seed : seeds) {
    auto one = [&](uint64_t c) {
      ++checked;
      if (gpu::uniform01(seed, c) != cpu::uniform01(seed, c) || gpu::mix64(c ^ seed) != cpu::mix64(c ^ seed)) ++bad;
    };
    for (uint64_t c = 0; c < 20000; ++c) one(c);
    for (uint64_t c : far) one(c);
  }
  std::printf("  %zu (seed, counter) pairs, %zu different%s\n", checked, bad, bad ? "  FAILED" : "");
  CHECK(bad == 0);
}

// ================================================================ uniform
template <typename T> void check_uniform(int64_t n, uint64_t seed, double lo, double hi) {
  std::vector<T> ref(n);
  cpu::random_uniform<T>(ref.data(), n, seed, lo, hi);
  gpu::DeviceBuffer<T> d(n);
  gpu::random_uniform<T>(d.get(), n, seed, lo, hi, g_stream);
  expect_identical(label("random_uniform", type_name<T>(), n, seed, lo, hi), download(d), ref);
}

void test_uniform() {
  std::printf("random_uniform (bit-identical, float32 and float64)\n");
  const double ranges[][2] = {{0.0, 1.0}, {-0.1, 0.1}, {-3.0, 7.5}};
  for (int64_t n : kSizes) {
    for (uint64_t seed : kSeeds) {
      for (const auto& r : ranges) {
        check_uniform<float>(n, seed, r[0], r[1]);
        check_uniform<double>(n, seed, r[0], r[1]);
      }
    }
  }
}

// ================================================================ normal
template <typename T> void check_normal(int64_t n, uint64_t seed, double mean, double std) {
  std::vector<T> ref(n);
  cpu::random_normal<T>(ref.data(), n, seed, mean, std);
  gpu::DeviceBuffer<T> d(n);
  gpu::random_normal<T>(d.get(), n, seed, mean, std, g_stream);
  const std::vector<T> got = download(d);
  // The double values differ by ≤ 16·2^-53·(|mean| + |std·z|) (see the top); float32 adds one float ulp for a
  // double that lands on the other side of a float rounding boundary.
  const double ulp = sizeof(T) == 4 ? 2 * kEps32 : 0.0;
  std::vector<double> bound(n);
  for (int64_t i = 0; i < n; ++i) {
    const double r = ref[i];
    bound[i] = ulp * std::fabs(r) + 16 * kEps64 * (std::fabs(mean) + std::fabs(r - mean));
  }
  const std::string name = label("random_normal", type_name<T>(), n, seed, mean, std);
  expect_close(name, got, ref, 0.0, 0.0, &bound);
  const size_t same = count_identical(got, ref);
  if (n >= 1000) std::printf("    (%zu of %lld bit-identical)\n", same, (long long)n);
}

void test_normal() {
  std::printf("random_normal (float32: ≤ 1 ulp + 16·2^-53·|value|; float64: 16·2^-53·(|mean| + |value - mean|))\n");
  const double params[][2] = {{0.0, 1.0}, {0.0, 0.02}, {1.5, 3.0}};
  for (int64_t n : kSizes) {
    for (uint64_t seed : kSeeds) {
      for (const auto& p : params) {
        check_normal<float>(n, seed, p[0], p[1]);
        check_normal<double>(n, seed, p[0], p[1]);
      }
    }
  }
  // Empty fills launch nothing.
  gpu::random_normal<float>(nullptr, 0, 1, 0.0, 1.0, g_stream);
  gpu::random_uniform<double>(nullptr, 0, 1, 0.0, 1.0, g_stream);
  WAVEMOE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

}  // namespace

int main(int argc, char** argv) {
  return run_cuda_test_main("cuda_test_random", argc, argv, [] {
    test_mixing();
    test_uniform();
    test_normal();
  });
}
