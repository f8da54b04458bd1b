// Op recording. Between recordBegin() and recordRunAsync(), every op call (and Tensor.fill / copyFrom) is
// validated at once but not run: it is appended to the environment's Recording. recordRunAsync() then runs the
// whole list, in order, as one job on the libuv thread pool; successive recordings run one after another, in the
// order they were queued. A model's decode step is a few dozen small ops; run
// this way it costs one thread hop, and the event loop stays free for the whole step.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "../core/storage.h"

namespace wavemoe {

class Recording {
 public:
  ~Recording();
  // Appends a step; pins the storages it uses until the recording is run or dropped, so that dispose() of an
  // intermediate tensor while recording (a normal thing for a forward pass to do) defers the free. A step that
  // returns a number (an op with a scalar result) gets the next scalar slot: its result is kept for the caller.
  void add(std::string name, std::function<double()> run, bool returns_number,
           const std::vector<std::shared_ptr<Storage>>& used);
  // Runs every step in order; the first failure stops the run and is rethrown with the step's name.
  void run_all();
  size_t size() const { return steps_.size(); }
  // How many steps with a scalar result were added so far (the next one's slot index).
  size_t scalar_count() const { return scalars_.size(); }
  // The scalar results in slot order (NaN until run_all has run their steps).
  const std::vector<double>& scalars() const { return scalars_; }

 private:
  struct Step {
    std::string name;
    std::function<double()> run;
    int64_t scalar_slot;  // -1: no scalar result
  };
  std::vector<Step> steps_;
  std::vector<double> scalars_;
  std::vector<std::shared_ptr<Storage>> pinned_;
  std::unordered_set<const Storage*> pinned_set_;
};

// The environment's active recording, or nullptr when ops run immediately.
Recording* active_recording(Napi::Env env);

// recordBegin(), recordCancel(), recordScalarCount(), recordRunAsync() -> Promise<scalar results, in slot order>.
void register_recording(Napi::Env env, Napi::Object exports);

}  // namespace wavemoe
