// The device side of the CPU emulation of CUDA (test/cuda-emulation/README.md): what kernels see. Each CUDA thread of
// a block runs as a fiber (scheduler.cc); __syncthreads, __syncwarp and the warp shuffles are barriers of the
// scheduler, so kernels run with their real synchronisation, and a barrier that not every thread reaches stops the
// program with a message instead of passing by luck. Forced into every emulated source (-include cuda_runtime.h).
#pragma once
#include <math.h>  // the float overloads of exp, log, ... in the global namespace, as CUDA has them

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "cuda_runtime_api.h"


namespace emu {

// The running CUDA thread (set by the scheduler before it resumes a fiber; launches are serialised).
extern uint3 g_thread_idx, g_block_idx;
extern dim3 g_block_dim, g_grid_dim;

[[noreturn]] void fail(const char* what);  // prints the kernel, block and thread, then aborts

void block_barrier();                  // __syncthreads: orders the block's memory accesses
void warp_barrier(unsigned mask);      // __syncwarp: orders the memory accesses of the lanes in mask
// The lanes in mask meet, and nothing more: shuffles, votes and WMMA operations wait for each other but, as on a GPU,
// do not order memory (under ThreadSanitizer, scripts/cuda-emulate.sh --race, they create no happens-before edge).
void warp_collective(unsigned mask);
// The slot of thread `linear` for the values shuffles and votes exchange (one 8-byte slot per thread of the block;
// kept in the scheduler, outside what ThreadSanitizer checks, since the exchange is the hardware's, not memory).
void exchange_store(unsigned linear, uint64_t value);
uint64_t exchange_load(unsigned linear);
// A WMMA load's tile, handed from the lanes that read it from memory to every lane of the warp (mma.h), through a
// buffer per warp in the scheduler (like the shuffle slots, outside what ThreadSanitizer checks).
inline constexpr unsigned kTileElements = 256;
void tile_put(unsigned element, uint32_t bits);                              // into the calling lane's warp buffer
void tile_get_all(void* destination, unsigned elements, unsigned element_bytes);  // the whole buffer, packed
unsigned char* dynamic_smem();         // the block's extern __shared__ array (poisoned with 0xFF before each block)

using Body = void (*)(void* context);
void launch_kernel(const void* kernel, const char* name, Body body, void* context, dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream);

template <typename F> const void* kernel_id(F* f) { return reinterpret_cast<const void*>(f); }

// KERNEL<<<grid, block, smem, stream>>>(ARGS); becomes (transform.js)
//   ::emu::launch(::emu::kernel_id(KERNEL), "KERNEL", [&] { KERNEL(ARGS); }, grid, block, smem, stream);
template <typename F>
void launch(const void* kernel, const char* name, F&& body, dim3 grid, dim3 block, size_t smem = 0,
            cudaStream_t stream = nullptr) {
  using Fn = std::remove_reference_t<F>;
  launch_kernel(kernel, name, [](void* c) { (*static_cast<Fn*>(c))(); }, &body, grid, block, smem, stream);
}

inline unsigned lane() { return g_thread_idx.x % 32; }
inline unsigned linear_tid() { return g_thread_idx.x + g_block_dim.x * (g_thread_idx.y + g_block_dim.y * g_thread_idx.z); }

template <typename T> T shuffle(unsigned mask, T value, unsigned source_lane) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move at most 8 bytes");
  const unsigned me = linear_tid(), base = me - me % 32;
  uint64_t slot = 0;
  std::memcpy(&slot, &value, sizeof(T));
  exchange_store(me, slot);
  warp_collective(mask);
  if (source_lane >= 32 || !(mask >> source_lane & 1u)) fail("shuffle from a lane outside the mask");
  slot = exchange_load(base + source_lane);
  T result;
  std::memcpy(&result, &slot, sizeof(T));
  warp_collective(mask);  // every lane has read before the slots are reused
  return result;
}

}  // namespace emu

#define threadIdx (::emu::g_thread_idx)
#define blockIdx (::emu::g_block_idx)
#define blockDim (::emu::g_block_dim)
#define gridDim (::emu::g_grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { emu::block_barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_barrier(mask); }
template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  if (width != 32) emu::fail("__shfl_xor_sync with a width other than 32 is not emulated");
  return emu::shuffle(mask, v, emu::lane() ^ static_cast<unsigned>(lane_mask));
}
template <typename T> T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  if (width != 32) emu::fail("__shfl_sync with a width other than 32 is not emulated");
  return emu::shuffle(mask, v, static_cast<unsigned>(src) % 32);
}
template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  if (width != 32) emu::fail("__shfl_down_sync with a width other than 32 is not emulated");
  const unsigned src = emu::lane() + delta;
  const T r = emu::shuffle(mask, v, src < 32 ? src : emu::lane());
  return r;
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  const unsigned me = emu::linear_tid(), base = me - me % 32;
  emu::exchange_store(me, predicate ? 1 : 0);
  emu::warp_collective(mask);
  unsigned bits = 0;
  for (unsigned l = 0; l < 32; ++l) {
    if (mask >> l & 1u) bits |= static_cast<unsigned>(emu::exchange_load(base + l)) << l;
  }
  emu::warp_collective(mask);
  return bits;
}
inline int __all_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) == mask; }
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }

// Bit casts and correctly rounded arithmetic (no contraction into FMA: the emulation is compiled without -mfma).
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int u; std::memcpy(&u, &x, 4); return u; }
inline float __int_as_float(int u) { float x; std::memcpy(&x, &u, 4); return x; }
inline long long __double_as_longlong(double x) { long long u; std::memcpy(&u, &x, 8); return u; }
inline double __longlong_as_double(long long u) { double x; std::memcpy(&x, &u, 8); return x; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }

// Atomics: relaxed read-modify-writes, as CUDA's are (they order no other memory access). The fibers of a launch
// share one OS thread, so any read-modify-write would do; __atomic builtins let ThreadSanitizer see them as atomics.
namespace emu {
template <typename T, typename Op> T atomic_update(T* p, Op op) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomics of 4 or 8 bytes");
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  Bits* word = reinterpret_cast<Bits*>(p);
  Bits seen = __atomic_load_n(word, __ATOMIC_RELAXED);
  for (;;) {
    T old;
    std::memcpy(&old, &seen, sizeof(T));
    const T next = op(old);
    Bits want;
    std::memcpy(&want, &next, sizeof(T));
    if (__atomic_compare_exchange_n(word, &seen, want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return old;
  }
}
}  // namespace emu
template <typename T> T atomicAdd(T* p, T v) { return emu::atomic_update(p, [v](T old) { return T(old + v); }); }
template <typename T> T atomicMax(T* p, T v) { return emu::atomic_update(p, [v](T old) { return v > old ? v : old; }); }
template <typename T> T atomicMin(T* p, T v) { return emu::atomic_update(p, [v](T old) { return v < old ? v : old; }); }
template <typename T> T atomicExch(T* p, T v) { return emu::atomic_update(p, [v](T) { return v; }); }
template <typename T> T atomicCAS(T* p, T compare, T v) {
  return emu::atomic_update(p, [compare, v](T old) { return old == compare ? v : old; });
}

// CUDA's min/max overloads: fminf/fmaxf for floating point (a NaN operand loses), the usual comparison otherwise.
template <typename A, typename B> inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point<C>::value) return std::fmin(C(a), C(b));
  else return C(b) < C(a) ? C(b) : C(a);
}
template <typename A, typename B> inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point<C>::value) return std::fmax(C(a), C(b));
  else return C(a) < C(b) ? C(b) : C(a);
}
