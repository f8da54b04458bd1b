// Per-instance state (one per Node environment: the main thread and each worker_thread), so the addon is
// context-aware and holds no mutable globals besides the process-wide thread pool.
#pragma once
#include <napi.h>

#include <future>
#include <memory>

#include "recording.h"

namespace wavemoe {

struct AddonData {
  Napi::FunctionReference tensor_base;         // the native Tensor class
  Napi::FunctionReference tensor_constructor;  // the class native code instantiates (the TS subclass once set)
  std::unique_ptr<Recording> recording;        // non-null between recordBegin() and recordRunAsync()
  std::shared_future<void> last_recording;     // done when the last recording queued has run (runs are chained)
};

}  // namespace wavemoe
