// Counter-based random numbers on the GPU: the contract of csrc/kernels/random.h, plus the stream. Element i of a
// fill with seed s is the same pure function of (s, i) as on the CPU, so a GPU fill equals the CPU fill:
//  - random_uniform: BIT-IDENTICAL in float and double. The bits come from integer mixing (mix64 below, a copy of
//    the CPU's), the scaling by 2^-53 is exact, and lo + (hi - lo)·u is rounded op by op (no FMA contraction), like
//    the CPU kernel (compiled for baseline x86-64: no FMA).
//  - random_normal: Box-Muller on the counter pair (2⌊i/2⌋, 2⌊i/2⌋+1) as on the CPU, cosine for even i, sine for
//    odd. log, cos and sin are CUDA's (≤ 1, 2, 2 ulp in double) rather than glibc's, so the double value can differ
//    from the CPU's by a few double ulps. float results (the double rounded once) are therefore identical except
//    when the double lies within those few ulps of a float rounding boundary (about 1 element in 10^8), where they
//    differ by 1 float ulp; double results are within a few ulps.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

// __host__ __device__ copies of wavemoe::mix64 and wavemoe::uniform01 (csrc/kernels/random.h): the same operations,
// so the same bits (cuda_test_random checks them against the CPU's on the host). Device kernels (sampling's draw)
// call these.
__host__ __device__ inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// Uniform in [0, 1): the top 53 bits times 2^-53, an exact product (so no rounding mode or contraction matters).
__host__ __device__ inline double uniform01(uint64_t seed, uint64_t counter) {
  const uint64_t z = mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (counter * 0xd1b54a32d192ed03ULL));
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

// out is (n) on the device: out[i] ~ U[lo, hi), out[i] = lo + (hi - lo) · uniform01(seed, i).
template <typename T>
void random_uniform(T* out, int64_t n, uint64_t seed, double lo, double hi, cudaStream_t stream);

// out is (n) on the device: out[i] ~ N(mean, std²), Box-Muller on counter pairs as on the CPU.
template <typename T>
void random_normal(T* out, int64_t n, uint64_t seed, double mean, double std, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
