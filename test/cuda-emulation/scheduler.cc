// Kernel launches of the CPU emulation of CUDA: blocks run one after another; the threads of a block are fibers on
// the launching OS thread, switched by a few instructions of assembly (x86-64 System V), so a million CUDA threads
// cost well under a second. A fiber runs until it finishes or reaches a barrier; when no fiber can run, the
// scheduler releases a warp barrier whose lanes have all arrived, else the block barrier if every thread of the
// block has arrived, else it reports the divergence and aborts.
//
// The order in which runnable fibers are resumed (WAVEMOE_EMU_ORDER): forward (thread 0 first, the default),
// reverse, or random (seeded by WAVEMOE_EMU_SEED). A thread runs as far as it can before the next one starts, so a
// read of another thread's result without a barrier sees the 0xFF poison (a NaN) under one order or the other.
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "cuda_runtime.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WAVEMOE_EMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WAVEMOE_EMU_ASAN 1
#endif
#ifdef WAVEMOE_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// ThreadSanitizer (scripts/cuda-emulate.sh --race: the kernels and tests are instrumented, this file is not, so that
// the scheduler's own bookkeeping is not checked). Each CUDA thread of a block runs on its own TSan fiber and the
// switches between them carry no synchronisation; the only happens-before edges are CUDA's: __syncthreads among the
// block, __syncwarp among its lanes, the launch (the host's work before it) and the end of each block (the next
// block, the host after the kernel). Two threads of a block touching the same bytes, one of them writing, with no
// barrier between them and not both atomic, is then a reported race whatever order the fibers ran in.
#ifdef WAVEMOE_EMU_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if !defined(__x86_64__)
#error "the CUDA emulation switches fibers with x86-64 assembly"
#endif

extern "C" void wavemoe_emu_switch(void** save_sp, void* load_sp);
// Saves the callee-saved registers on the current stack, stores its pointer in *save_sp, loads load_sp, restores.
asm(R"(
  .text
  .globl wavemoe_emu_switch
  .type wavemoe_emu_switch, @function
wavemoe_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size wavemoe_emu_switch, .-wavemoe_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

namespace emu {

uint3 g_thread_idx, g_block_idx;
dim3 g_block_dim, g_grid_dim;

namespace {

enum class State { runnable, block_barrier, warp_barrier, done };

struct Fiber {
  void* sp = nullptr;
  State state = State::runnable;
  unsigned mask = 0;  // the lanes named by the warp barrier it waits at
  void* sync_key = nullptr;  // ThreadSanitizer: what the barrier it waits at orders (nullptr: a warp collective)
};

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;
constexpr size_t kSharedBytes = 232448;  // 227 KiB: the opt-in maximum of sm_90

struct Block {
  std::vector<Fiber> fibers;
  std::vector<char*> stacks;  // each below a PROT_NONE guard page: an overflow faults instead of corrupting
  std::vector<uint64_t> exchange;
  std::vector<uint32_t> tiles;  // kTileElements per warp: WMMA loads (tile_put, tile_get_all)
  unsigned current = 0;
  void* scheduler_sp = nullptr;
  Body body = nullptr;
  void* context = nullptr;
};

Block g_block;
std::mutex g_launch_mutex;  // kernels share the fibers, the static __shared__ variables and the dynamic array
const char* g_kernel_name = "";
alignas(128) unsigned char g_dynamic_smem[kSharedBytes];
std::mutex g_attribute_mutex;
std::map<const void*, int> g_max_dynamic_smem;

enum class Order { forward, reverse, random };
Order order_from_env() {
  const char* v = std::getenv("WAVEMOE_EMU_ORDER");
  if (v == nullptr || std::strcmp(v, "forward") == 0) return Order::forward;
  if (std::strcmp(v, "reverse") == 0) return Order::reverse;
  if (std::strcmp(v, "random") == 0) return Order::random;
  std::fprintf(stderr, "WAVEMOE_EMU_ORDER must be forward, reverse or random, not '%s'\n", v);
  std::exit(2);
}
const Order g_order = order_from_env();
std::mt19937_64 g_random(std::getenv("WAVEMOE_EMU_SEED") ? std::strtoull(std::getenv("WAVEMOE_EMU_SEED"), nullptr, 10)
                                                           : 1);

char* new_stack() {
  void* m = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    std::perror("CUDA emulation: mmap of a fiber stack");
    std::abort();
  }
  mprotect(m, kGuardBytes, PROT_NONE);
  return static_cast<char*>(m) + kGuardBytes;
}

// AddressSanitizer must be told about every switch of stacks (sanitizer/common_interface_defs.h): the scheduler's
// stack bounds are learnt when the first fiber starts.
#ifdef WAVEMOE_EMU_ASAN
const void* g_scheduler_stack = nullptr;
size_t g_scheduler_stack_bytes = 0;
void* g_scheduler_fake_stack = nullptr;
void to_fiber_begin(unsigned i) {
  __sanitizer_start_switch_fiber(&g_scheduler_fake_stack, g_block.stacks[i], kStackBytes);
}
void to_fiber_end() { __sanitizer_finish_switch_fiber(g_scheduler_fake_stack, nullptr, nullptr); }
void fiber_started() { __sanitizer_finish_switch_fiber(nullptr, &g_scheduler_stack, &g_scheduler_stack_bytes); }
void to_scheduler_begin(void** fake, bool finished) {
  __sanitizer_start_switch_fiber(finished ? nullptr : fake, g_scheduler_stack, g_scheduler_stack_bytes);
}
void to_scheduler_end(void* fake) { __sanitizer_finish_switch_fiber(fake, nullptr, nullptr); }
#else
void to_fiber_begin(unsigned) {}
void to_fiber_end() {}
void fiber_started() {}
void to_scheduler_begin(void**, bool) {}
void to_scheduler_end(void*) {}
#endif

// ThreadSanitizer's sync objects (any distinct addresses): the block's start and end, and __syncthreads.
char g_tsan_block_start, g_tsan_block_end, g_tsan_block_barrier;
#ifdef WAVEMOE_EMU_TSAN
std::map<uint64_t, char> g_tsan_warp_keys;
std::vector<void*> g_tsan_fibers;  // one per thread of the largest block yet; reused by later blocks
void* g_tsan_host = nullptr;       // the launching thread
void tsan_switch_to_fiber(unsigned i) { __tsan_switch_to_fiber(g_tsan_fibers[i], __tsan_switch_to_fiber_no_sync); }
void tsan_switch_to_host() { __tsan_switch_to_fiber(g_tsan_host, __tsan_switch_to_fiber_no_sync); }
void tsan_release(void* key) { __tsan_release(key); }
void tsan_acquire(void* key) { __tsan_acquire(key); }
// Fiber i acquires the barrier it leaves: called by the scheduler when it releases the barrier, so that every
// participant has released and none has yet gone on to release its next accesses under the same key.
void tsan_leave_barrier(unsigned i, void* key) {
  if (key == nullptr) return;
  __tsan_switch_to_fiber(g_tsan_fibers[i], __tsan_switch_to_fiber_no_sync);
  __tsan_acquire(key);
  __tsan_switch_to_fiber(g_tsan_host, __tsan_switch_to_fiber_no_sync);
}
void* tsan_warp_key(unsigned warp, unsigned mask) { return &g_tsan_warp_keys[uint64_t(warp) << 32 | mask]; }
void tsan_prepare_block(unsigned n) {
  g_tsan_host = __tsan_get_current_fiber();
  while (g_tsan_fibers.size() < n) {
    void* fiber = __tsan_create_fiber(0);
    const std::string name = "CUDA thread " + std::to_string(g_tsan_fibers.size()) + " of the block";
    __tsan_set_fiber_name(fiber, name.c_str());  // in the report's thread lines
    g_tsan_fibers.push_back(fiber);
  }
  __tsan_release(&g_tsan_block_start);  // the host's writes so far (copies, earlier blocks) are seen by this block
}
void tsan_finish_block() { __tsan_acquire(&g_tsan_block_end); }
#else
void tsan_switch_to_fiber(unsigned) {}
void tsan_switch_to_host() {}
void tsan_release(void*) {}
void tsan_acquire(void*) {}
void tsan_leave_barrier(unsigned, void*) {}
void* tsan_warp_key(unsigned, unsigned) { return nullptr; }
void tsan_prepare_block(unsigned) {}
void tsan_finish_block() {}
#endif

[[noreturn]] void fiber_main() {
  fiber_started();
  tsan_acquire(&g_tsan_block_start);
  Block& b = g_block;
  b.body(b.context);
  b.fibers[b.current].state = State::done;
  tsan_release(&g_tsan_block_end);
  tsan_switch_to_host();
  to_scheduler_begin(nullptr, true);
  wavemoe_emu_switch(&b.fibers[b.current].sp, b.scheduler_sp);
  std::abort();  // a finished fiber is never resumed
}

void start_fiber(unsigned i) {
  // The stack as wavemoe_emu_switch leaves it: six saved registers, then fiber_main as the return address, then a
  // dummy return address for fiber_main, so that it starts with the stack aligned as after a call.
  uintptr_t top = reinterpret_cast<uintptr_t>(g_block.stacks[i]) + kStackBytes;
  top &= ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;
  *--sp = reinterpret_cast<void*>(&fiber_main);
  for (int r = 0; r < 6; ++r) *--sp = nullptr;
  g_block.fibers[i] = Fiber{sp, State::runnable, 0};
}

void set_thread(unsigned linear) {
  g_thread_idx.x = linear % g_block_dim.x;
  g_thread_idx.y = linear / g_block_dim.x % g_block_dim.y;
  g_thread_idx.z = linear / (g_block_dim.x * g_block_dim.y);
}

std::string where() {
  char buf[256];
  std::snprintf(buf, sizeof buf, "kernel %s, block (%u, %u, %u) of (%u, %u, %u), %u threads", g_kernel_name,
                g_block_idx.x, g_block_idx.y, g_block_idx.z, g_grid_dim.x, g_grid_dim.y, g_grid_dim.z,
                g_block_dim.x * g_block_dim.y * g_block_dim.z);
  return buf;
}

[[noreturn]] void stuck(const char* why) {
  std::fprintf(stderr, "CUDA emulation: %s (%s)\n", why, where().c_str());
  std::abort();
}

// Releases each warp barrier of the warp starting at thread `base` whose lanes have all reached it. Lanes of
// disjoint masks (divergent halves of a warp) wait at their own barriers; a lane named by a barrier that waits at
// another one, or has exited, or waits at __syncthreads, can never let it complete.
bool release_warp(unsigned base, unsigned n) {
  std::vector<Fiber>& f = g_block.fibers;
  const unsigned lanes = std::min(32u, n - base);
  bool released = false;
  for (unsigned first = 0; first < lanes; ++first) {
    if (f[base + first].state != State::warp_barrier) continue;
    const unsigned mask = f[base + first].mask;
    bool ready = true;
    for (unsigned l = 0; l < 32 && ready; ++l) {
      if (!(mask >> l & 1u)) continue;
      if (l >= lanes) stuck("a warp barrier or shuffle names a lane beyond the block's last thread");
      const State s = f[base + l].state;
      if (s == State::runnable) ready = false;  // not there yet
      if (s == State::done) stuck("a warp barrier or shuffle waits for a lane that has exited");
      if (s == State::block_barrier) stuck("divergent barriers: lanes of one warp wait at __syncwarp and __syncthreads");
      if (s == State::warp_barrier && f[base + l].mask != mask)
        stuck("lanes of a warp wait at warp barriers whose masks overlap but differ");
    }
    if (!ready) continue;
    for (unsigned l = 0; l < lanes; ++l) {
      if (!(mask >> l & 1u)) continue;
      f[base + l].state = State::runnable;
      tsan_leave_barrier(base + l, f[base + l].sync_key);
    }
    released = true;
  }
  return released;
}

// Warp by warp: a warp runs until every lane waits at __syncthreads or has finished (its warp barriers released as
// soon as its lanes arrive), then the next warp runs. So one warp gets as far ahead of the others as a GPU could
// let it, and a missing __syncthreads shows up as a read of a value not yet written (or already overwritten).
void run_block(unsigned n) {
  Block& b = g_block;
  while (b.stacks.size() < n) b.stacks.push_back(new_stack());
  if (b.fibers.size() < n) b.fibers.resize(n);
  b.exchange.assign(n, ~uint64_t(0));
  b.tiles.assign((n + 31) / 32 * kTileElements, ~uint32_t(0));
  for (unsigned i = 0; i < n; ++i) start_fiber(i);
  tsan_prepare_block(n);
  const unsigned warps = (n + 31) / 32;
  std::vector<unsigned> warp_order(warps), lane_order;
  for (unsigned w = 0; w < warps; ++w) warp_order[w] = g_order == Order::reverse ? warps - 1 - w : w;
  for (;;) {
    if (g_order == Order::random) std::shuffle(warp_order.begin(), warp_order.end(), g_random);
    for (unsigned w : warp_order) {
      const unsigned base = 32 * w, lanes = std::min(32u, n - base);
      lane_order.resize(lanes);
      for (unsigned l = 0; l < lanes; ++l) lane_order[l] = base + (g_order == Order::reverse ? lanes - 1 - l : l);
      do {
        if (g_order == Order::random) std::shuffle(lane_order.begin(), lane_order.end(), g_random);
        for (unsigned i : lane_order) {
          if (b.fibers[i].state != State::runnable) continue;
          b.current = i;
          set_thread(i);
          to_fiber_begin(i);
          tsan_switch_to_fiber(i);
          wavemoe_emu_switch(&b.scheduler_sp, b.fibers[i].sp);
          to_fiber_end();
        }
      } while (release_warp(base, n));
    }
    unsigned done = 0, waiting = 0;
    for (unsigned i = 0; i < n; ++i) {
      done += b.fibers[i].state == State::done;
      waiting += b.fibers[i].state == State::block_barrier;
    }
    if (done == n) {
      tsan_finish_block();
      return;
    }
    if (waiting + done != n) stuck("deadlock: threads wait at warp barriers that cannot complete");
    if (done != 0) {
      char why[160];
      std::snprintf(why, sizeof why, "__syncthreads reached by %u threads after %u threads of the block exited",
                    waiting, done);
      stuck(why);
    }
    for (unsigned i = 0; i < n; ++i) {
      b.fibers[i].state = State::runnable;
      tsan_leave_barrier(i, &g_tsan_block_barrier);
    }
  }
}

// Parks the running fiber at a barrier; `sync_key` (ThreadSanitizer) is released now and acquired when the scheduler
// lets the fiber go on (tsan_leave_barrier).
void wait_here(State s, unsigned mask, void* sync_key) {
  Block& b = g_block;
  Fiber& f = b.fibers[b.current];
  f.state = s;
  f.mask = mask;
  f.sync_key = sync_key;
  if (sync_key != nullptr) tsan_release(sync_key);
  const unsigned me = b.current;
  void* fake = nullptr;
  tsan_switch_to_host();
  to_scheduler_begin(&fake, false);
  wavemoe_emu_switch(&f.sp, b.scheduler_sp);
  to_scheduler_end(fake);
  b.current = me;
}

}  // namespace

void fail(const char* what) {
  std::fprintf(stderr, "CUDA emulation: %s (%s, thread %u)\n", what, where().c_str(), g_block.current);
  std::abort();
}

void block_barrier() { wait_here(State::block_barrier, 0, &g_tsan_block_barrier); }

static void check_mask(unsigned mask) {
  if (!(mask >> (g_block.current % 32) & 1u))
    fail("__syncwarp, a shuffle, a vote or a WMMA operation whose mask leaves out the calling lane");
}

void warp_collective(unsigned mask) {
  check_mask(mask);
  wait_here(State::warp_barrier, mask, nullptr);
}

void warp_barrier(unsigned mask) {
  check_mask(mask);
  wait_here(State::warp_barrier, mask, tsan_warp_key(g_block.current / 32, mask));
}

void exchange_store(unsigned linear, uint64_t value) { g_block.exchange[linear] = value; }
uint64_t exchange_load(unsigned linear) { return g_block.exchange[linear]; }

void tile_put(unsigned element, uint32_t bits) {
  if (element >= kTileElements) fail("a WMMA tile of more than 256 elements");
  g_block.tiles[g_block.current / 32 * kTileElements + element] = bits;
}
void tile_get_all(void* destination, unsigned elements, unsigned element_bytes) {
  const uint32_t* tile = &g_block.tiles[g_block.current / 32 * kTileElements];
  // Through volatile stores: a loop the compiler turned into memcpy would be intercepted by ThreadSanitizer.
  if (element_bytes == 2) {
    volatile uint16_t* out = static_cast<uint16_t*>(destination);
    for (unsigned e = 0; e < elements; ++e) out[e] = static_cast<uint16_t>(tile[e]);
  } else if (element_bytes == 4) {
    volatile uint32_t* out = static_cast<uint32_t*>(destination);
    for (unsigned e = 0; e < elements; ++e) out[e] = tile[e];
  } else {
    fail("a WMMA fragment element of neither 2 nor 4 bytes");
  }
}

unsigned char* dynamic_smem() { return g_dynamic_smem; }

void launch_kernel(const void* kernel, const char* name, Body body, void* context, dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream) {
  (void)stream;
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  int limit = 48 * 1024;
  {
    std::lock_guard<std::mutex> lock(g_attribute_mutex);
    auto it = g_max_dynamic_smem.find(kernel);
    if (it != g_max_dynamic_smem.end()) limit = it->second;
  }
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 || smem > static_cast<size_t>(limit)) {
    emu_set_launch_error(cudaErrorInvalidConfiguration);
    return;
  }
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  g_kernel_name = name;
  g_grid_dim = grid;
  g_block_dim = block;
  g_block.body = body;
  g_block.context = context;
#ifdef WAVEMOE_EMU_ASAN
  ASAN_POISON_MEMORY_REGION(g_dynamic_smem + smem, kSharedBytes - smem);  // past the launch's dynamic shared memory
#endif
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        g_block_idx = uint3{x, y, z};
        std::memset(g_dynamic_smem, 0xFF, smem);  // NaN in every float, double and bfloat16 until written
        run_block(static_cast<unsigned>(threads));
      }
#ifdef WAVEMOE_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(g_dynamic_smem + smem, kSharedBytes - smem);
#endif
}

}  // namespace emu

cudaError_t emu_func_set_max_dynamic_smem(const void* kernel, int bytes) {
  if (bytes < 0 || static_cast<size_t>(bytes) > emu::kSharedBytes) return cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(emu::g_attribute_mutex);
  emu::g_max_dynamic_smem[kernel] = bytes;
  return cudaSuccess;
}

#ifdef WAVEMOE_EMU_TSAN
// ThreadSanitizer calls this after it prints a report: name the launch and block the race happened in (the report's
// thread lines name the CUDA threads within the block).
extern "C" void __tsan_on_report(const void*) {
  std::fprintf(stderr, "CUDA emulation: the report above comes from %s, running thread %u\n", emu::where().c_str(),
               emu::g_block.current);
}
#endif
