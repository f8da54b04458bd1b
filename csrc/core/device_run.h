// What a run of recorded ops reads back from its devices, all at the run's end: one wait per device per run.
//
// Two things make a GPU op want the host in the middle of a run: a result that is a number (the loss, a gradient
// norm, an MoE layer's auxiliary loss) and an index check (an id out of range must be an error that names it, not a
// read out of bounds). Done at once, each is a wait: the host stops queueing kernels and the GPU runs dry, several
// times per training step. Inside a recorded run (Recording::run_all) they are deferred instead:
//  - a number is written by the op's kernels into a device word of this run (`number()`);
//  - an index check is made by the kernel that reads the index: it reads nothing out of bounds, writes NaN where the
//    result would have been, and records the first bad position and its value in a device word (`index_check()`,
//    encoding below);
// and `finish()` copies every word back, one copy per device (per 1,024 words: the one wait), fills the run's
// numbers and throws the first failed check as "<op> (recorded step i of n): <what was wrong>".
//
// Check word encoding (kernels: `report_bad_index` in cuda/common.cuh): 0 means no problem; otherwise
// ((2^32 - 1 - index) << 32) | uint32(value), combined with atomicMax, so the word keeps the smallest bad index (and
// its value) whatever order the threads ran in. Indices must be below kMaxCheckedIndex; larger tensors are checked
// on the host instead.
//
// Only the backend interface is used (csrc/core/device.h), so this is tested without a GPU
// (test/native/test_device_run.cc, against a host-memory backend).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "device.h"

namespace wavemoe {

constexpr int64_t kMaxCheckedIndex = 0xFFFFFFFFll;  // exclusive

// The check word for the bad element at flat `index` with value `value` (what a kernel writes; for tests).
inline uint64_t encode_bad_index(int64_t index, int32_t value) {
  return (static_cast<uint64_t>(0xFFFFFFFFu - static_cast<uint32_t>(index)) << 32) | static_cast<uint32_t>(value);
}

class DeviceRun {
 public:
  // describe(index, value) says what is wrong with element `index` holding `value`, e.g.
  // "ids at [1, 2] (flat index 5) is 70000, out of range [0, 50254) ...".
  using Describe = std::function<std::string(int64_t index, int32_t value)>;

  DeviceRun() = default;
  ~DeviceRun();  // frees the device words (the one-stream rule makes that safe even if kernels are still queued)
  DeviceRun(const DeviceRun&) = delete;
  DeviceRun& operator=(const DeviceRun&) = delete;

  // The run active on the calling thread (Scope, set by Recording::run_all), or nullptr outside recorded runs.
  static DeviceRun* current();
  class Scope {
   public:
    explicit Scope(DeviceRun* run);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    DeviceRun* previous_;
  };

  // The step about to run: its name and number (for error messages) and its scalar slot (-1: no number result).
  void begin_step(const std::string& name, size_t step, size_t steps, int64_t scalar_slot);

  // A device double (zero) where the running step writes its number; finish() copies it to scalars[slot].
  // Throws if the running step has no scalar slot.
  double* number(const DeviceRef& d);
  // A device word (zero) for an index check of the running step.
  uint64_t* index_check(const DeviceRef& d, Describe describe);

  // True when the running step's number is written to the device (its job's return value is then not the result).
  bool number_deferred(int64_t scalar_slot) const;

  // Copies every device's words back (one copy_to_host, that is one wait, per device used and 1,024 words), writes
  // the deferred numbers into `scalars`, then throws the first failed check (in step order). Nothing to do: no wait
  // at all.
  void finish(std::vector<double>* scalars);

 private:
  struct Block {  // one device allocation of kWordsPerBlock words
    void* device = nullptr;
    size_t used = 0;
  };
  struct NumberUse {
    DeviceRef device;
    size_t block, word;
    int64_t slot;
  };
  struct CheckUse {
    DeviceRef device;
    size_t block, word;
    std::string step;  // "<op> (recorded step i of n)"
    Describe describe;
  };
  static constexpr size_t kWordsPerBlock = 1024;

  // The next free word on `d` (a new block when the last one is full).
  void* next_word(const DeviceRef& d, size_t* block, size_t* word);

  struct DeviceKey {
    bool operator()(const DeviceRef& a, const DeviceRef& b) const {
      return a.type != b.type ? a.type < b.type : a.index < b.index;
    }
  };
  std::map<DeviceRef, std::vector<Block>, DeviceKey> blocks_;
  std::vector<NumberUse> numbers_;
  std::vector<CheckUse> checks_;
  std::string step_;
  int64_t step_slot_ = -1;
};

}  // namespace wavemoe
