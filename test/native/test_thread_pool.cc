// Native tests of the thread pool, the counter-based generator and storage accounting.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "check.h"
#include "core/error.h"
#include "core/storage.h"
#include "core/thread_pool.h"
#include "kernels/random.h"

using namespace wavemoe;

static void test_chunks_cover_range() {
  for (int threads : {1, 2, 3, 7}) {
    set_num_threads(threads);
    for (int64_t n : {0, 1, 2, 5, 13, 1000}) {
      for (int64_t grain : {1, 3, 64}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        for (auto& h : hits) h = 0;
        std::atomic<int64_t> chunks_seen{0};
        parallel_chunks(n, grain, [&](int64_t c, int64_t b, int64_t e) {
          chunks_seen++;
          CHECK(c >= 0 && c < num_chunks(n, grain));
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        });
        CHECK(chunks_seen.load() == num_chunks(n, grain));
        for (auto& h : hits) CHECK(h.load() == 1);
        CHECK(num_chunks(n, grain) <= threads);
      }
    }
  }
}

// A float sum reduced per chunk then in chunk order gives the same bits every run for a fixed thread count.
static double chunked_sum(const std::vector<float>& x) {
  int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> partial(static_cast<size_t>(num_chunks(n, 1)));
  parallel_chunks(n, 1, [&](int64_t c, int64_t b, int64_t e) {
    float s = 0;
    for (int64_t i = b; i < e; ++i) s += x[static_cast<size_t>(i)];
    partial[static_cast<size_t>(c)] = s;
  });
  float total = 0;
  for (float p : partial) total += p;
  return total;
}

static void test_deterministic_reduction() {
  std::vector<float> x(100003);
  random_normal<float>(x.data(), static_cast<int64_t>(x.size()), 7, 0.0, 1.0);
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    double first = chunked_sum(x);
    for (int rep = 0; rep < 20; ++rep) CHECK(chunked_sum(x) == first);
  }
}

static void test_nested_and_concurrent_calls() {
  set_num_threads(2);
  // Nested parallel_for runs inline and still covers everything.
  std::atomic<int64_t> total{0};
  parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) parallel_for(100, 1, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
  });
  CHECK(total.load() == 800);
  // Two OS threads using the pool at once (as two worker_threads would): both finish with correct results.
  std::vector<float> x(50000);
  random_uniform<float>(x.data(), 50000, 3, -1.0, 1.0);
  double expected = chunked_sum(x);
  std::atomic<int> mismatches{0};
  auto hammer = [&] {
    for (int rep = 0; rep < 200; ++rep)
      if (chunked_sum(x) != expected) mismatches++;
  };
  std::thread t1(hammer), t2(hammer);
  t1.join();
  t2.join();
  CHECK(mismatches.load() == 0);
}

static void test_exceptions_propagate() {
  set_num_threads(2);
  bool caught = false;
  try {
    parallel_for(10, 1, [&](int64_t b, int64_t) {
      if (b > 0) throw Error("boom");
    });
  } catch (const Error& e) {
    caught = std::strcmp(e.what(), "boom") == 0;
  }
  CHECK(caught);
  // The pool still works afterwards.
  std::atomic<int64_t> n{0};
  parallel_for(1000, 1, [&](int64_t b, int64_t e) { n += e - b; });
  CHECK(n.load() == 1000);
  bool bad_count = false;
  try {
    set_num_threads(0);
  } catch (const Error&) {
    bad_count = true;
  }
  CHECK(bad_count);
}

static void test_random_is_thread_independent() {
  const int64_t n = 40001;
  std::vector<double> a(n), b(n);
  set_num_threads(1);
  random_normal<double>(a.data(), n, 42, 0.5, 2.0);
  set_num_threads(3);
  random_normal<double>(b.data(), n, 42, 0.5, 2.0);
  CHECK(std::memcmp(a.data(), b.data(), sizeof(double) * n) == 0);
  double mean = 0, var = 0;
  for (double v : a) mean += v;
  mean /= n;
  for (double v : a) var += (v - mean) * (v - mean);
  var /= n;
  CHECK(std::fabs(mean - 0.5) < 0.05);
  CHECK(std::fabs(std::sqrt(var) - 2.0) < 0.05);
  random_uniform<double>(b.data(), n, 43, -3.0, 5.0);
  bool in_range = true;
  for (double v : b) in_range = in_range && v >= -3.0 && v < 5.0;
  CHECK(in_range);
}

static void test_storage_accounting() {
  AllocStats before = alloc_stats();
  {
    auto s = Storage::create(1000);
    CHECK(reinterpret_cast<uintptr_t>(s->data()) % kAlignment == 0);
    AllocStats during = alloc_stats();
    CHECK(during.live_bytes == before.live_bytes + 1000);
    CHECK(during.live_allocations == before.live_allocations + 1);
    const unsigned char* p = static_cast<const unsigned char*>(s->data());
    bool zero = true;
    for (int i = 0; i < 1000; ++i) zero = zero && p[i] == 0;
    CHECK(zero);
  }
  AllocStats after = alloc_stats();
  CHECK(after.live_bytes == before.live_bytes);
  CHECK(after.live_allocations == before.live_allocations);
}

// The very first job after a resize must reach the new workers too (it once ran on the caller alone).
static void test_first_job_after_resize_is_parallel() {
  for (int rep = 0; rep < 5; ++rep) {
    set_num_threads(1);
    set_num_threads(2);
    std::vector<std::thread::id> ids(2);
    std::atomic<int> started{0};
    parallel_chunks(2, 1, [&](int64_t c, int64_t, int64_t) {
      ids[static_cast<size_t>(c)] = std::this_thread::get_id();
      // Each chunk waits (up to 2 s, for a loaded machine) until the other has started: two threads get there at
      // once; a pool that left its new worker idle runs the chunks one after the other on one thread.
      started++;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (started.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    });
    CHECK(ids[0] != ids[1]);
  }
}

int main() {
  test_first_job_after_resize_is_parallel();
  test_chunks_cover_range();
  test_deterministic_reduction();
  test_nested_and_concurrent_calls();
  test_exceptions_propagate();
  test_random_is_thread_independent();
  test_storage_accounting();
  return native_test_result("test_thread_pool");
}
