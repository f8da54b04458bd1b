#include "recording.h"

#include <limits>
#include <stdexcept>

#include "../core/device_run.h"
#include "addon_data.h"

namespace wavemoe {

Recording::~Recording() {
  for (auto& s : pinned_) s->unpin();
}

void Recording::add(std::string name, std::function<double()> run, bool returns_number,
                    const std::vector<std::shared_ptr<Storage>>& used) {
  for (const auto& s : used) {
    if (pinned_set_.insert(s.get()).second) {
      s->pin();
      pinned_.push_back(s);
    }
  }
  int64_t slot = -1;
  if (returns_number) {
    slot = static_cast<int64_t>(scalars_.size());
    scalars_.push_back(std::numeric_limits<double>::quiet_NaN());
  }
  steps_.push_back({std::move(name), std::move(run), slot});
}

void Recording::run_all() {
  // GPU ops write their numbers and index checks to device words of this run, read back once at the end
  // (csrc/core/device_run.h); CPU ops return their numbers directly.
  DeviceRun device_run;
  {
    DeviceRun::Scope scope(&device_run);
    for (size_t i = 0; i < steps_.size(); ++i) {
      const Step& step = steps_[i];
      device_run.begin_step(step.name, i + 1, steps_.size(), step.scalar_slot);
      try {
        const double r = step.run();
        if (step.scalar_slot >= 0 && !device_run.number_deferred(step.scalar_slot)) {
          scalars_[static_cast<size_t>(step.scalar_slot)] = r;
        }
      } catch (const std::exception& e) {
        throw std::runtime_error(step.name + " (recorded step " + std::to_string(i + 1) + " of " +
                                 std::to_string(steps_.size()) + "): " + e.what());
      }
    }
  }
  device_run.finish(&scalars_);
}

Recording* active_recording(Napi::Env env) { return env.GetInstanceData<AddonData>()->recording.get(); }

namespace {

class RecordingWorker : public Napi::AsyncWorker {
 public:
  RecordingWorker(Napi::Env env, std::unique_ptr<Recording> rec, std::shared_future<void> previous,
                  std::shared_ptr<std::promise<void>> done)
      : Napi::AsyncWorker(env, "wavemoe.recording"), rec_(std::move(rec)),
        deferred_(Napi::Promise::Deferred::New(env)), previous_(std::move(previous)), done_(std::move(done)) {}
  ~RecordingWorker() override {
    if (done_) done_->set_value();  // never ran (environment teardown): release the next in the chain
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    // Recordings run in the order they were queued, one after another: the next one may be recorded while this
    // one runs (generation records step n + 1 during step n), and both may use the same scratch buffers.
    if (previous_.valid()) previous_.wait();
    try {
      rec_->run_all();
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown error in a recorded op");
    }
    done_->set_value();
    done_.reset();
  }
  void OnOK() override {
    const std::vector<double>& scalars = rec_->scalars();
    Napi::Array out = Napi::Array::New(Env(), scalars.size());
    for (size_t i = 0; i < scalars.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(Env(), scalars[i]));
    deferred_.Resolve(out);
    rec_.reset();  // unpin now (not when the worker object happens to be deleted)
  }
  void OnError(const Napi::Error& e) override {
    rec_.reset();
    deferred_.Reject(e.Value());
  }

 private:
  std::unique_ptr<Recording> rec_;
  Napi::Promise::Deferred deferred_;
  std::shared_future<void> previous_;
  std::shared_ptr<std::promise<void>> done_;
};

}  // namespace

void register_recording(Napi::Env env, Napi::Object exports) {
  exports.Set("recordBegin", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                AddonData* d = info.Env().GetInstanceData<AddonData>();
                if (d->recording) {
                  throw Napi::Error::New(info.Env(), "recordBegin: ops are already being recorded (runAsync calls do not nest)");
                }
                d->recording = std::make_unique<Recording>();
                return info.Env().Undefined();
              }, "recordBegin"));
  exports.Set("recordCancel", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                info.Env().GetInstanceData<AddonData>()->recording.reset();
                return info.Env().Undefined();
              }, "recordCancel"));
  exports.Set("recordScalarCount", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                Recording* rec = active_recording(info.Env());
                if (rec == nullptr) throw Napi::Error::New(info.Env(), "recordScalarCount: no recording was begun");
                return Napi::Number::New(info.Env(), static_cast<double>(rec->scalar_count()));
              }, "recordScalarCount"));
  exports.Set("recordRunAsync", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                AddonData* d = info.Env().GetInstanceData<AddonData>();
                if (!d->recording) throw Napi::Error::New(info.Env(), "recordRunAsync: no recording was begun");
                auto done = std::make_shared<std::promise<void>>();
                std::shared_future<void> previous = d->last_recording;
                d->last_recording = done->get_future().share();
                auto* worker = new RecordingWorker(info.Env(), std::move(d->recording), std::move(previous), done);
                Napi::Promise p = worker->promise();
                worker->Queue();
                return p;
              }, "recordRunAsync"));
}

}  // namespace wavemoe
