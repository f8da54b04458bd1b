#include "ops.h"

#include "../core/device.h"
#include "recording.h"
#include "tensor_wrap.h"

#include <cmath>
#include <memory>
#include <string>

namespace wavemoe {
namespace {

void expect_device(const Napi::Env& env, const std::string& op, const Job& job,
                   const std::vector<std::shared_ptr<Storage>>& used) {
  try {
    expect_job_device(op, job, used);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, op + ": " + e.what());
  }
}

class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, Job job, std::string name, std::vector<std::shared_ptr<Storage>> pinned)
      : Napi::AsyncWorker(env, name.c_str()), job_(std::move(job)), deferred_(Napi::Promise::Deferred::New(env)),
        name_(std::move(name)), pinned_(std::move(pinned)) {
    for (auto& s : pinned_) s->pin();
  }
  ~OpWorker() override {
    for (auto& s : pinned_) s->unpin();
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = job_.run();
    } catch (const std::exception& e) {
      SetError(name_ + ": " + e.what());
    } catch (...) {
      SetError("Unknown error in " + name_);
    }
  }
  void OnOK() override {
    deferred_.Resolve(job_.returns_number ? Napi::Number::New(Env(), result_) : Env().Undefined());
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Job job_;
  Napi::Promise::Deferred deferred_;
  std::string name_;
  std::vector<std::shared_ptr<Storage>> pinned_;  // dispose() during the run waits for unpin
  double result_ = NAN;
};

}  // namespace

void expect_job_device(const std::string& op, const Job& job, const std::vector<std::shared_ptr<Storage>>& used) {
  if (job.on_device) return;
  for (const auto& s : used) {
    const DeviceBackend* backend = device_backend(s->device().type);
    if (!s->device().is_cpu() && !(backend != nullptr && backend->runs_cpu_kernels())) {
      throw std::runtime_error("has no kernel for " + s->device().str() +
                               " yet: its tensors must be on the CPU (move them with .to('cpu'))");
    }
  }
}

void export_op(Napi::Env env, Napi::Object exports, const char* name, PrepareFn prepare) {
  std::string op_name(name);
  exports.Set(name, Napi::Function::New(
                        env,
                        [prepare, op_name](const Napi::CallbackInfo& info) -> Napi::Value {
                          if (Recording* rec = active_recording(info.Env())) {
                            // Recorded: validated now, run later in order. A scalar result is not available yet
                            // (NaN now); the run delivers it in its slot (recordScalarCount, recordRunAsync).
                            StorageCollector used;
                            Job job = prepare(info);
                            std::vector<std::shared_ptr<Storage>> storages = used.take();
                            expect_device(info.Env(), op_name, job, storages);
                            rec->add(op_name, std::move(job.run), job.returns_number, storages);
                            return job.returns_number ? Napi::Value(Napi::Number::New(info.Env(), NAN))
                                                      : info.Env().Undefined();
                          }
                          StorageCollector used;
                          Job job = prepare(info);
                          expect_device(info.Env(), op_name, job, used.take());
                          double r;
                          try {
                            r = job.run();
                          } catch (const std::exception& e) {
                            throw Napi::Error::New(info.Env(), op_name + ": " + e.what());
                          }
                          return job.returns_number ? Napi::Value(Napi::Number::New(info.Env(), r))
                                                    : info.Env().Undefined();
                        },
                        name));
  std::string async_name = op_name + "Async";
  exports.Set(async_name, Napi::Function::New(
                              env,
                              [prepare, op_name](const Napi::CallbackInfo& info) -> Napi::Value {
                                if (active_recording(info.Env()) != nullptr) {
                                  throw Napi::Error::New(info.Env(), op_name +
                                                                         "Async: cannot start an async op while ops "
                                                                         "are being recorded (call " +
                                                                         op_name + " inside ops.runAsync)");
                                }
                                StorageCollector used;
                                Job job = prepare(info);  // validation errors throw synchronously
                                std::vector<std::shared_ptr<Storage>> storages = used.take();
                                expect_device(info.Env(), op_name, job, storages);
                                auto* worker = new OpWorker(info.Env(), std::move(job), op_name, storages);
                                Napi::Promise p = worker->promise();
                                worker->Queue();
                                return p;
                              },
                              async_name.c_str()));
}

}  // namespace wavemoe
