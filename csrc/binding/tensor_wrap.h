// The JavaScript Tensor class: a handle on native storage. Data crosses into JavaScript only by copy (toArray,
// copyFrom), never as an ArrayBuffer pointing into native memory, which Electron's memory cage forbids.
#pragma once
#include <napi.h>

#include <memory>
#include <optional>
#include <vector>

#include "../core/tensor.h"

namespace wavemoe {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Wraps an existing native tensor (a view or a fresh result) in a new JS Tensor object.
  static Napi::Object NewFrom(Napi::Env env, Tensor t);
  // The wrapped object if `v` is a Tensor created by this addon; nullptr otherwise.
  static TensorWrap* Unwrap(Napi::Value v);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;

  // Disposed itself, or a view of a tensor that was disposed (its storage released).
  bool disposed() const { return !tensor_.has_value() || tensor_->storage->released(); }
  // The tensor, noted as used by the op being prepared (so an async run can pin its storage).
  const Tensor& tensor() const;

 private:
  Napi::Value JS_shape(const Napi::CallbackInfo& info);
  Napi::Value JS_dtype(const Napi::CallbackInfo& info);
  Napi::Value JS_numel(const Napi::CallbackInfo& info);
  Napi::Value JS_device(const Napi::CallbackInfo& info);
  Napi::Value JS_to(const Napi::CallbackInfo& info);
  Napi::Value JS_disposed(const Napi::CallbackInfo& info);
  Napi::Value JS_toArray(const Napi::CallbackInfo& info);
  Napi::Value JS_copyFrom(const Napi::CallbackInfo& info);
  Napi::Value JS_fill(const Napi::CallbackInfo& info);
  Napi::Value JS_reshape(const Napi::CallbackInfo& info);
  Napi::Value JS_narrow(const Napi::CallbackInfo& info);
  Napi::Value JS_dispose(const Napi::CallbackInfo& info);

  const Tensor& live(const Napi::Env& env, const char* method) const;
  void release();
  void adopt_new(Tensor t, const Napi::Env& env);  // a fresh tensor this object owns

  std::optional<Tensor> tensor_;
  bool owner_ = false;  // created the storage (not a view): dispose() releases it
  int64_t reported_bytes_ = 0;  // external memory reported to V8 so that GC runs our finalizer under pressure
  napi_env env_ = nullptr;
};

// Collects the storages an op's arguments use while the op is prepared (see export_op): an asynchronous run pins
// them so that dispose() during the run defers the free until the run ends.
class StorageCollector {
 public:
  StorageCollector();
  ~StorageCollector();
  std::vector<std::shared_ptr<Storage>> take() { return std::move(used_); }
  static void note(const Tensor& t);

 private:
  std::vector<std::shared_ptr<Storage>> used_;
  StorageCollector* previous_;
};

}  // namespace wavemoe
