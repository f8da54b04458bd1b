// The race check's own test (scripts/cuda-emulate.sh --race): small kernels, each either correctly synchronised or
// missing exactly one barrier. `race_selftest <case>` runs one case and exits 0; under ThreadSanitizer a racy case
// must instead be stopped by a report (exit 66), and a clean one must pass. `race_selftest --list` prints each case
// with "race" or "clean", which is what the script expects of it.
#include <mma.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kThreads = 64;

// Every thread stores its value in shared memory; thread t then reads its neighbour's. The barrier orders the two.
__global__ void neighbour_kernel(float* out, bool barrier) {
  __shared__ float s[kThreads];
  const int t = threadIdx.x;
  s[t] = static_cast<float>(t);
  if (barrier) __syncthreads();
  out[t] = s[(t + 1) % kThreads];
}

// A tiled loop's second barrier: the next tile's store must wait until every thread has read the current tile.
__global__ void tiles_kernel(float* out, bool second_barrier) {
  __shared__ float s[kThreads];
  const int t = threadIdx.x;
  float acc = 0.f;
  for (int tile = 0; tile < 3; ++tile) {
    s[t] = static_cast<float>(tile * kThreads + t);
    __syncthreads();
    acc += s[kThreads - 1 - t];
    if (second_barrier) __syncthreads();
  }
  out[t] = acc;
}

// Lanes store to shared memory, then meet at a shuffle, then read another lane's store. The shuffle makes the lanes
// wait for each other but does not order memory on a GPU: only __syncwarp does.
__global__ void shuffle_kernel(float* out, bool syncwarp) {
  __shared__ float s[32];
  const int lane = threadIdx.x;
  s[lane] = static_cast<float>(lane);
  if (syncwarp) __syncwarp();
  const float from_shuffle = __shfl_xor_sync(0xffffffffu, static_cast<float>(lane), 1);
  out[lane] = from_shuffle + s[31 - lane];
}

// A WMMA load of a tile that the warp's lanes stored element by element: __syncwarp must come between.
__global__ void wmma_kernel(float* out, bool syncwarp) {
  using namespace nvcuda;
  __shared__ __align__(32) __nv_bfloat16 a[16 * 16];
  __shared__ __align__(32) __nv_bfloat16 b[16 * 16];
  __shared__ __align__(32) float c[16 * 16];
  const int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) {
    a[i] = __float2bfloat16(static_cast<float>(i % 7));
    b[i] = __float2bfloat16(static_cast<float>(i % 5));
  }
  if (syncwarp) __syncwarp();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
  wmma::fill_fragment(fc, 0.f);
  wmma::load_matrix_sync(fa, a, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(fc, fa, fb, fc);
  wmma::store_matrix_sync(c, fc, 16, wmma::mem_row_major);
  __syncwarp();
  for (int i = lane; i < 256; i += 32) out[i] = c[i];
}

// Half-warp barriers: __syncwarp(0x0000ffff) orders lanes 0-15 among themselves, not lane 0 with lane 20.
__global__ void half_warp_kernel(float* out, bool full_warp) {
  __shared__ float s[32];
  const int lane = threadIdx.x;
  s[lane] = static_cast<float>(lane);
  if (full_warp) __syncwarp();
  else __syncwarp(lane < 16 ? 0x0000ffffu : 0xffff0000u);
  out[lane] = s[(lane + 20) % 32];
}

// Every thread adds to one word: atomics do not race with each other; the plain read after the barrier is ordered.
__global__ void atomics_kernel(unsigned* counter, unsigned* out) {
  __shared__ unsigned total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  atomicAdd(&total, 1u);
  atomicAdd(counter, static_cast<unsigned>(threadIdx.x));
  __syncthreads();
  out[threadIdx.x] = total;
}

// Two threads store the same value to one word without atomics: still a race on a GPU (reported, not excused).
__global__ void same_value_kernel(int* flag) {
  if (threadIdx.x % 2 == 0) *flag = 1;
}

template <typename T> T* device_alloc(size_t n) {
  void* p = nullptr;
  if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) {
    std::fprintf(stderr, "race_selftest: cudaMalloc failed\n");
    std::exit(1);
  }
  return static_cast<T*>(p);
}

void finish() {
  if (cudaDeviceSynchronize() != cudaSuccess || cudaGetLastError() != cudaSuccess) {
    std::fprintf(stderr, "race_selftest: a CUDA call failed\n");
    std::exit(1);
  }
}

// Runs `launch` on a fresh float output of n elements, waits, frees it.
template <typename Launch> void with_output(size_t n, Launch launch) {
  float* out = device_alloc<float>(n);
  launch(out);
  finish();
  cudaFree(out);
}
void neighbour(bool barrier) {
  with_output(kThreads, [&](float* out) {
    neighbour_kernel<<<2, kThreads>>>(out, barrier);
  });
}
void tiles(bool second_barrier) {
  with_output(kThreads, [&](float* out) {
    tiles_kernel<<<1, kThreads>>>(out, second_barrier);
  });
}
void shuffle(bool syncwarp) {
  with_output(32, [&](float* out) {
    shuffle_kernel<<<1, 32>>>(out, syncwarp);
  });
}
void wmma(bool syncwarp) {
  with_output(256, [&](float* out) {
    wmma_kernel<<<1, 32>>>(out, syncwarp);
  });
}
void half_warp(bool full_warp) {
  with_output(32, [&](float* out) {
    half_warp_kernel<<<1, 32>>>(out, full_warp);
  });
}
void atomics() {
  unsigned* counter = device_alloc<unsigned>(1);
  unsigned* out = device_alloc<unsigned>(kThreads);
  cudaMemset(counter, 0, sizeof(unsigned));
  atomics_kernel<<<3, kThreads>>>(counter, out);
  finish();
  unsigned total = 0, first = 0;
  cudaMemcpy(&total, counter, sizeof total, cudaMemcpyDeviceToHost);
  cudaMemcpy(&first, out, sizeof first, cudaMemcpyDeviceToHost);
  if (total != 3u * kThreads * (kThreads - 1) / 2 || first != kThreads) {
    std::fprintf(stderr, "race_selftest: atomics gave %u and %u\n", total, first);
    std::exit(1);
  }
  cudaFree(counter);
  cudaFree(out);
}
void same_value() {
  int* flag = device_alloc<int>(1);
  same_value_kernel<<<1, kThreads>>>(flag);
  finish();
  cudaFree(flag);
}

struct Case {
  const char* name;
  bool racy;
  void (*run)();
};

const Case kCases[] = {
    {"neighbour_with_syncthreads", false, [] { neighbour(true); }},
    {"neighbour_without_syncthreads", true, [] { neighbour(false); }},
    {"tiles_with_second_syncthreads", false, [] { tiles(true); }},
    {"tiles_without_second_syncthreads", true, [] { tiles(false); }},
    {"shuffle_after_syncwarp", false, [] { shuffle(true); }},
    {"shuffle_without_syncwarp", true, [] { shuffle(false); }},
    {"wmma_load_after_syncwarp", false, [] { wmma(true); }},
    {"wmma_load_without_syncwarp", true, [] { wmma(false); }},
    {"full_warp_syncwarp", false, [] { half_warp(true); }},
    {"half_warp_syncwarp_read_across", true, [] { half_warp(false); }},
    {"atomics", false, atomics},
    {"same_value_stores", true, same_value},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const Case& c : kCases) std::printf("%s %s\n", c.name, c.racy ? "race" : "clean");
    return 0;
  }
  if (argc != 2) {
    std::fprintf(stderr, "usage: race_selftest --list | race_selftest <case>\n");
    return 2;
  }
  for (const Case& c : kCases) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    c.run();
    std::printf("race_selftest: %s ran to the end\n", c.name);
    return 0;
  }
  std::fprintf(stderr, "race_selftest: no case '%s'\n", argv[1]);
  return 2;
}
