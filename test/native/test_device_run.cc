// Native tests of DeviceRun (csrc/core/device_run.h), the end-of-run read-back of GPU ops' numbers and index checks,
// against a host-memory backend that counts its copies (each copy_to_host is one wait on a real device).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "core/device.h"
#include "core/device_run.h"
#include "core/error.h"

using namespace wavemoe;

namespace {

class CountingBackend final : public DeviceBackend {
 public:
  int copies_to_host = 0, allocations = 0, frees = 0;
  std::string name() const override { return "counting test backend"; }
  void check_usable(int) override {}
  void* allocate(size_t bytes, int) override {
    ++allocations;
    void* p = ::operator new(bytes);
    std::memset(p, 0, bytes);
    return p;
  }
  void free(void* p, size_t, int) noexcept override {
    ++frees;
    ::operator delete(p);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes, int) override {
    ++copies_to_host;
    std::memcpy(dst, src, bytes);
  }
  void copy_from_host(void* dst, const void* src, size_t bytes, int) override { std::memcpy(dst, src, bytes); }
  void copy_on_device(void* dst, const void* src, size_t bytes, int) override { std::memcpy(dst, src, bytes); }
  void fill(void*, DType, size_t, double, int) override {}
  void synchronize(int) override {}
};

const DeviceRef kCuda0{Device::cuda, 0}, kCuda1{Device::cuda, 1};

// What report_bad_index does on the device: atomicMax of the encoded word.
void report(uint64_t* word, int64_t index, int32_t value) {
  auto* w = reinterpret_cast<std::atomic<uint64_t>*>(word);
  const uint64_t v = encode_bad_index(index, value);
  uint64_t old = w->load();
  while (old < v && !w->compare_exchange_weak(old, v)) {
  }
}

std::string finish_error(DeviceRun& run, std::vector<double>* scalars) {
  try {
    run.finish(scalars);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void test_numbers_are_read_back_once_per_device(CountingBackend& b) {
  b.copies_to_host = 0;
  std::vector<double> scalars(4, -1.0);
  {
    DeviceRun run;
    run.begin_step("crossEntropyForwardBackward", 1, 5, 0);
    *run.number(kCuda0) = 2.75;
    CHECK(run.number_deferred(0));
    run.begin_step("moeForward", 2, 5, 1);
    CHECK(!run.number_deferred(1));  // a CPU op: its job's return value is the result
    scalars[1] = 0.125;
    run.begin_step("moeForward", 3, 5, 2);
    *run.number(kCuda1) = -3.5e-7;
    run.begin_step("matmulForward", 4, 5, -1);
    run.index_check(kCuda0, [](int64_t, int32_t) { return std::string("never"); });  // stays 0: no problem
    run.begin_step("clipGradNorm", 5, 5, 3);
    *run.number(kCuda0) = 17.0;
    CHECK(b.copies_to_host == 0);  // nothing read before the end
    CHECK(finish_error(run, &scalars).empty());
    CHECK(b.copies_to_host == 2);  // cuda:0 and cuda:1, one each
  }
  CHECK(scalars[0] == 2.75 && scalars[1] == 0.125 && scalars[2] == -3.5e-7 && scalars[3] == 17.0);
  CHECK(b.allocations == b.frees);
}

void test_a_run_without_device_words_does_not_wait(CountingBackend& b) {
  b.copies_to_host = 0;
  DeviceRun run;
  run.begin_step("softmaxForward", 1, 1, -1);
  std::vector<double> scalars;
  CHECK(finish_error(run, &scalars).empty());
  CHECK(b.copies_to_host == 0);
}

void test_first_bad_index_wins_whatever_the_thread_order(CountingBackend&) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    DeviceRun run;
    run.begin_step("embeddingForward", 3, 9, -1);
    uint64_t* word = run.index_check(kCuda0, [](int64_t i, int32_t v) {
      return "ids at " + std::to_string(i) + " is " + std::to_string(v);
    });
    // Bad elements at scattered positions, reported by 4 threads in a shuffled order.
    std::vector<std::pair<int64_t, int32_t>> bad = {{40, 60000}, {13, -7}, {977, 2147483647}, {14 + trial * 100, -1}};
    std::shuffle(bad.begin(), bad.end(), rng);
    std::vector<std::thread> threads;
    for (const auto& [i, v] : bad) threads.emplace_back([word, i = i, v = v] { report(word, i, v); });
    for (auto& t : threads) t.join();
    std::vector<double> scalars;
    const std::string msg = finish_error(run, &scalars);
    CHECK(msg == "embeddingForward (recorded step 3 of 9): ids at 13 is -7");
  }
}

void test_extreme_indices_and_values_round_trip(CountingBackend&) {
  for (const auto& [index, value] : std::vector<std::pair<int64_t, int32_t>>{
           {0, 0}, {0, -2147483647 - 1}, {kMaxCheckedIndex - 1, 2147483647}, {123456789, -100}}) {
    DeviceRun run;
    run.begin_step("op", 1, 1, -1);
    uint64_t* w = run.index_check(kCuda1, [](int64_t i, int32_t v) { return std::to_string(i) + ":" + std::to_string(v); });
    report(w, index, value);
    std::vector<double> scalars;
    CHECK(finish_error(run, &scalars) == "op (recorded step 1 of 1): " + std::to_string(index) + ":" + std::to_string(value));
  }
}

void test_first_failed_check_in_step_order(CountingBackend&) {
  DeviceRun run;
  run.begin_step("embeddingForward", 1, 3, -1);
  uint64_t* first = run.index_check(kCuda0, [](int64_t, int32_t) { return std::string("ok"); });
  run.begin_step("crossEntropyForwardBackward", 2, 3, 0);
  double* loss = run.number(kCuda1);
  uint64_t* second = run.index_check(kCuda1, [](int64_t i, int32_t v) {
    return "targets[" + std::to_string(i) + "] is " + std::to_string(v);
  });
  run.begin_step("embeddingBackward", 3, 3, -1);
  uint64_t* third = run.index_check(kCuda0, [](int64_t, int32_t) { return std::string("third"); });
  (void)first;
  *loss = 1.0;
  report(second, 5, 50300);
  report(third, 0, -1);
  std::vector<double> scalars(1, 0.0);
  CHECK(finish_error(run, &scalars) == "crossEntropyForwardBackward (recorded step 2 of 3): targets[5] is 50300");
  CHECK(scalars[0] == 1.0);  // numbers are filled before a check fails
}

void test_many_words_span_blocks(CountingBackend& b) {
  b.copies_to_host = 0;
  const int allocations = b.allocations;
  std::vector<double> scalars(3000, 0.0);
  {
    DeviceRun run;
    for (int64_t i = 0; i < 3000; ++i) {
      run.begin_step("clipGradNorm", static_cast<size_t>(i + 1), 3000, i);
      *run.number(kCuda0) = static_cast<double>(i) * 0.5;
    }
    CHECK(finish_error(run, &scalars).empty());
  }
  bool all = true;
  for (int64_t i = 0; i < 3000; ++i) all = all && scalars[static_cast<size_t>(i)] == static_cast<double>(i) * 0.5;
  CHECK(all);
  CHECK(b.allocations - allocations == 3);  // 1,024 words per block
  CHECK(b.copies_to_host == 3);
  CHECK(b.allocations == b.frees);
}

void test_number_without_a_slot_is_an_error(CountingBackend&) {
  DeviceRun run;
  run.begin_step("matmulForward", 1, 1, -1);
  bool threw = false;
  try {
    run.number(kCuda0);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("matmulForward (recorded step 1 of 1) has no number result") != std::string::npos;
  }
  CHECK(threw);
}

void test_scope_sets_the_current_run(CountingBackend&) {
  CHECK(DeviceRun::current() == nullptr);
  DeviceRun outer, inner;
  {
    DeviceRun::Scope a(&outer);
    CHECK(DeviceRun::current() == &outer);
    {
      DeviceRun::Scope b(&inner);
      CHECK(DeviceRun::current() == &inner);
      DeviceRun* seen = &outer;
      std::thread([&] { seen = DeviceRun::current(); }).join();
      CHECK(seen == nullptr);  // per thread: another thread's ops are not in this run
    }
    CHECK(DeviceRun::current() == &outer);
  }
  CHECK(DeviceRun::current() == nullptr);
}

}  // namespace

int main() {
  CountingBackend backend;
  register_device_backend(Device::cuda, &backend);
  test_numbers_are_read_back_once_per_device(backend);
  test_a_run_without_device_words_does_not_wait(backend);
  test_first_bad_index_wins_whatever_the_thread_order(backend);
  test_extreme_indices_and_values_round_trip(backend);
  test_first_failed_check_in_step_order(backend);
  test_many_words_span_blocks(backend);
  test_number_without_a_slot_is_an_error(backend);
  test_scope_sets_the_current_run(backend);
  CHECK(backend.allocations == backend.frees);
  return native_test_result("test_device_run");
}
