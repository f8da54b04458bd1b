#include "tensor_wrap.h"

#include <cstring>
#include <string>

#include "../core/device.h"
#include "../core/error.h"
#include "addon_data.h"
#include "args.h"
#include "recording.h"

namespace wavemoe {
namespace {

// Marks objects created by this addon so that a look-alike plain object is never unwrapped.
const napi_type_tag kTensorTag = {0x7761'7665'6d6f'6531ULL, 0x7465'6e73'6f72'0001ULL};

thread_local Tensor* pending_tensor = nullptr;  // handed from NewFrom to the constructor on the same thread
thread_local StorageCollector* current_collector = nullptr;

std::vector<int64_t> parse_shape(const Napi::Env& env, Napi::Value v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(what) + ": shape must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value d = a.Get(i);
    double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!d.IsNumber() || x < 0 || x != static_cast<double>(static_cast<int64_t>(x)) || x > 9007199254740991.0) {
      throw Napi::TypeError::New(env, std::string(what) + ": shape[" + std::to_string(i) +
                                          "] must be a non-negative integer");
    }
    shape.push_back(static_cast<int64_t>(x));
  }
  if (shape.size() > 8) throw Napi::RangeError::New(env, std::string(what) + ": at most 8 dimensions");
  return shape;
}

// A device name from JS: "cpu", "cuda", "cuda:N".
DeviceRef parse_device_arg(const Napi::Env& env, Napi::Value v, const char* what) {
  DeviceRef d;
  if (!v.IsString() || !parse_device(v.As<Napi::String>().Utf8Value(), &d)) {
    const std::string got = v.IsString() ? "'" + v.As<Napi::String>().Utf8Value().substr(0, 40) + "'" : "not a string";
    throw Napi::TypeError::New(env, std::string(what) + ": device must be 'cpu', 'cuda' or 'cuda:N', got " + got);
  }
  return d;
}

}  // namespace

Napi::Function TensorWrap::Init(Napi::Env env) {
  return DefineClass(env, "Tensor",
                     {
                         InstanceAccessor<&TensorWrap::JS_shape>("shape"),
                         InstanceAccessor<&TensorWrap::JS_dtype>("dtype"),
                         InstanceAccessor<&TensorWrap::JS_numel>("numel"),
                         InstanceAccessor<&TensorWrap::JS_device>("device"),
                         InstanceMethod<&TensorWrap::JS_to>("to"),
                         InstanceAccessor<&TensorWrap::JS_disposed>("disposed"),
                         InstanceMethod<&TensorWrap::JS_toArray>("toArray"),
                         InstanceMethod<&TensorWrap::JS_copyFrom>("copyFrom"),
                         InstanceMethod<&TensorWrap::JS_fill>("fill"),
                         InstanceMethod<&TensorWrap::JS_reshape>("reshape"),
                         InstanceMethod<&TensorWrap::JS_narrow>("narrow"),
                         InstanceMethod<&TensorWrap::JS_dispose>("dispose"),
                     });
}

// new Tensor(dtype, shape, device = 'cpu'): zero-filled storage.
TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  info.This().As<Napi::Object>().TypeTag(&kTensorTag);
  if (pending_tensor != nullptr) {  // created from native code: adopt the given tensor (a view shares storage)
    tensor_ = *pending_tensor;
    pending_tensor = nullptr;
    return;
  }
  if (info.Length() < 2 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "new Tensor(dtype, shape): dtype must be 'float32', 'float64' or 'int32'");
  }
  DType dtype;
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!dtype_from_name(name, &dtype)) {
    throw Napi::TypeError::New(env, "new Tensor: unknown dtype '" + name + "' (expected float32, float64 or int32)");
  }
  std::vector<int64_t> shape = parse_shape(env, info[1], "new Tensor");
  DeviceRef device;
  if (info.Length() > 2 && !info[2].IsUndefined()) device = parse_device_arg(env, info[2], "new Tensor");
  Tensor t;
  try {
    t = make_tensor(shape, dtype, device);
  } catch (const Error& e) {
    if (!device.is_cpu()) throw Napi::Error::New(env, std::string("new Tensor: ") + e.what());
    throw Napi::RangeError::New(env, std::string("new Tensor: ") + e.what());
  } catch (const std::exception& e) {  // a device backend's error (no driver, out of device memory)
    throw Napi::Error::New(env, std::string("new Tensor: ") + e.what());
  }
  adopt_new(std::move(t), env);
}

void TensorWrap::adopt_new(Tensor t, const Napi::Env& env) {
  tensor_ = std::move(t);
  owner_ = true;
  // Device memory is reported too, so that tensors the program dropped without dispose() are collected (and their
  // GPU memory returned) under pressure, as host ones are.
  reported_bytes_ = static_cast<int64_t>(tensor_->nbytes());
  if (reported_bytes_ != 0) Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
}

StorageCollector::StorageCollector() : previous_(current_collector) { current_collector = this; }
StorageCollector::~StorageCollector() { current_collector = previous_; }

void StorageCollector::note(const Tensor& t) {
  if (current_collector != nullptr) current_collector->used_.push_back(t.storage);
}

const Tensor& TensorWrap::tensor() const {
  StorageCollector::note(*tensor_);
  return *tensor_;
}

// Garbage collection only drops this object's reference: views that are still alive keep the memory.
TensorWrap::~TensorWrap() {
  owner_ = false;
  release();
}

void TensorWrap::release() {
  if (reported_bytes_ != 0 && env_ != nullptr) {
    napi_adjust_external_memory(env_, -reported_bytes_, nullptr);
  }
  reported_bytes_ = 0;
  if (owner_ && tensor_) tensor_->storage->release();  // dispose(): free now, whoever else holds a view
  tensor_.reset();
}

Napi::Object TensorWrap::NewFrom(Napi::Env env, Tensor t) {
  AddonData* data = env.GetInstanceData<AddonData>();
  pending_tensor = &t;
  Napi::Object obj;
  try {
    obj = data->tensor_constructor.Value().New({});
  } catch (...) {
    pending_tensor = nullptr;
    throw;
  }
  pending_tensor = nullptr;
  return obj;
}

TensorWrap* TensorWrap::Unwrap(Napi::Value v) {
  if (!v.IsObject()) return nullptr;
  Napi::Object o = v.As<Napi::Object>();
  if (!o.CheckTypeTag(&kTensorTag)) return nullptr;
  return Napi::ObjectWrap<TensorWrap>::Unwrap(o);
}

const Tensor& TensorWrap::live(const Napi::Env& env, const char* method) const {
  if (disposed()) throw Napi::Error::New(env, std::string("Tensor.") + method + ": the tensor has been disposed");
  return *tensor_;
}

Napi::Value TensorWrap::JS_shape(const Napi::CallbackInfo& info) {
  const Tensor& t = live(info.Env(), "shape");
  Napi::Array a = Napi::Array::New(info.Env(), t.shape.size());
  for (size_t i = 0; i < t.shape.size(); ++i) a.Set(i, Napi::Number::New(info.Env(), static_cast<double>(t.shape[i])));
  return a;
}

Napi::Value TensorWrap::JS_dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(live(info.Env(), "dtype").dtype));
}

Napi::Value TensorWrap::JS_numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env(), "numel").numel()));
}

Napi::Value TensorWrap::JS_device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), live(info.Env(), "device").device().str());
}

// to(device): a new tensor on `device` holding a copy (also when it is this tensor's device), so that each tensor
// has one owner to dispose.
Napi::Value TensorWrap::JS_to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "to");
  const DeviceRef dst_device = parse_device_arg(env, info.Length() ? info[0] : env.Undefined(), "Tensor.to");
  if (active_recording(env) != nullptr) {
    throw Napi::Error::New(env, "Tensor.to: not available while ops are being recorded (inside ops.runAsync); move "
                                "tensors before or after the run");
  }
  Tensor out;
  try {
    out = make_tensor(t.shape, t.dtype, dst_device);
    const size_t n = t.nbytes();
    const DeviceRef& src_device = t.device();
    if (src_device.is_cpu() && dst_device.is_cpu()) {
      if (n) std::memcpy(out.data(), t.data(), n);
    } else if (src_device.is_cpu()) {
      usable_backend(dst_device).copy_from_host(out.data(), t.data(), n, dst_device.index);
    } else if (dst_device.is_cpu()) {
      usable_backend(src_device).copy_to_host(out.data(), t.data(), n, src_device.index);
    } else if (src_device == dst_device) {
      usable_backend(src_device).copy_on_device(out.data(), t.data(), n, src_device.index);
    } else {  // between two GPUs: through the host (peer copies are not worth their set-up here)
      std::vector<char> staging(n);
      usable_backend(src_device).copy_to_host(staging.data(), t.data(), n, src_device.index);
      usable_backend(dst_device).copy_from_host(out.data(), staging.data(), n, dst_device.index);
    }
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, "Tensor.to('" + dst_device.str() + "'): " + e.what());
  }
  Napi::Object obj = NewFrom(env, out);
  TensorWrap* w = Unwrap(obj);
  w->adopt_new(std::move(out), env);
  return obj;
}

Napi::Value TensorWrap::JS_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed()); }


// Copies the elements out into a new JS-owned typed array of the tensor's dtype.
Napi::Value TensorWrap::JS_toArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "toArray");
  if (active_recording(env) != nullptr) {
    throw Napi::Error::New(env, "Tensor.toArray: ops are being recorded (inside ops.runAsync) and have not run yet; "
                                "read the tensor after the run");
  }
  size_t n = static_cast<size_t>(t.numel());
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, t.nbytes());
  // An empty ArrayBuffer's Data() is null, and memcpy from or to null is undefined even for 0 bytes (UBSan).
  if (t.nbytes() > 0) {
    if (t.device().is_cpu()) {
      std::memcpy(buf.Data(), t.data(), t.nbytes());
    } else {
      try {  // waits for the kernels queued before it
        usable_backend(t.device()).copy_to_host(buf.Data(), t.data(), t.nbytes(), t.device().index);
      } catch (const std::exception& e) {
        throw Napi::Error::New(env, std::string("Tensor.toArray: ") + e.what());
      }
    }
  }
  switch (t.dtype) {
    case DType::f32: return Napi::Float32Array::New(env, n, buf, 0);
    case DType::f64: return Napi::Float64Array::New(env, n, buf, 0);
    case DType::i32: return Napi::Int32Array::New(env, n, buf, 0);
  }
  return env.Undefined();
}

// copyFrom(typedArray): the array's element type must match the dtype and its length the element count.
Napi::Value TensorWrap::JS_copyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "copyFrom");
  if (info.Length() < 1 || !info[0].IsTypedArray()) {
    throw Napi::TypeError::New(env, "Tensor.copyFrom: expected a Float32Array, Float64Array or Int32Array");
  }
  Napi::TypedArray a = info[0].As<Napi::TypedArray>();
  napi_typedarray_type want = t.dtype == DType::f32   ? napi_float32_array
                              : t.dtype == DType::f64 ? napi_float64_array
                                                      : napi_int32_array;
  if (a.TypedArrayType() != want) {
    throw Napi::TypeError::New(env, std::string("Tensor.copyFrom: a ") + dtype_name(t.dtype) +
                                        " tensor needs a matching typed array (" +
                                        (t.dtype == DType::f32   ? "Float32Array"
                                         : t.dtype == DType::f64 ? "Float64Array"
                                                                 : "Int32Array") +
                                        ")");
  }
  if (static_cast<int64_t>(a.ElementLength()) != t.numel()) {
    throw Napi::RangeError::New(env, "Tensor.copyFrom: array has " + std::to_string(a.ElementLength()) +
                                         " elements, tensor " + t.shape_str() + " has " + std::to_string(t.numel()));
  }
  // Nothing to copy; and an empty typed array's Data() may be null, which memcpy must not get (UBSan).
  if (t.nbytes() == 0) return info.This();
  const char* src = static_cast<const char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  auto copy_in = [](const Tensor& dst, const void* from) {
    if (dst.device().is_cpu()) {
      std::memcpy(dst.data(), from, dst.nbytes());
    } else {
      usable_backend(dst.device()).copy_from_host(dst.data(), from, dst.nbytes(), dst.device().index);
    }
  };
  if (Recording* rec = active_recording(env)) {  // the copy happens in order with the recorded ops
    auto bytes = std::make_shared<std::vector<char>>(src, src + t.nbytes());
    Tensor dst = t;
    rec->add("Tensor.copyFrom", [dst, bytes, copy_in] { copy_in(dst, bytes->data()); return 0.0; }, false,
             {t.storage});
    return info.This();
  }
  try {
    copy_in(t, src);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("Tensor.copyFrom: ") + e.what());
  }
  return info.This();
}

// fill(value): every element set to value (finite or not: filling with NaN is a legitimate test tool).
Napi::Value TensorWrap::JS_fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "fill");
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "Tensor.fill: value must be a number");
  double v = info[0].As<Napi::Number>().DoubleValue();
  if (t.dtype == DType::i32 && !(v >= INT32_MIN && v <= INT32_MAX && v == static_cast<double>(static_cast<int32_t>(v)))) {
    throw Napi::RangeError::New(env, "Tensor.fill: an int32 tensor needs an integer in int32 range");
  }
  auto fill = [t = t, v] {
    int64_t n = t.numel();
    if (!t.device().is_cpu()) {
      usable_backend(t.device()).fill(t.data(), t.dtype, static_cast<size_t>(n), v, t.device().index);
      return;
    }
    switch (t.dtype) {
      case DType::f32: std::fill(t.ptr<float>(), t.ptr<float>() + n, static_cast<float>(v)); break;
      case DType::f64: std::fill(t.ptr<double>(), t.ptr<double>() + n, v); break;
      case DType::i32: std::fill(t.ptr<int32_t>(), t.ptr<int32_t>() + n, static_cast<int32_t>(v)); break;
    }
  };
  if (Recording* rec = active_recording(env)) {
    rec->add("Tensor.fill", [fill] { fill(); return 0.0; }, false, {t.storage});
  } else {
    try {
      fill();
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("Tensor.fill: ") + e.what());
    }
  }
  return info.This();
}

// reshape(shape): a view sharing storage; the element count must not change.
Napi::Value TensorWrap::JS_reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "reshape");
  Tensor v = t;
  v.shape = parse_shape(env, info.Length() ? info[0] : env.Undefined(), "Tensor.reshape");
  if (v.numel() != t.numel()) {
    throw Napi::RangeError::New(env, "Tensor.reshape: cannot view " + t.shape_str() + " (" +
                                         std::to_string(t.numel()) + " elements) as " + v.shape_str());
  }
  return NewFrom(env, v);
}

// narrow(start, length): a view of rows [start, start + length) along the first dimension, sharing storage.
Napi::Value TensorWrap::JS_narrow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = live(env, "narrow");
  if (t.rank() == 0) throw Napi::RangeError::New(env, "Tensor.narrow: a scalar has no first dimension");
  auto int_arg = [&](size_t i, const char* name) {
    if (info.Length() <= i || !info[i].IsNumber()) {
      throw Napi::TypeError::New(env, std::string("Tensor.narrow: ") + name + " must be an integer");
    }
    double x = info[i].As<Napi::Number>().DoubleValue();
    if (x != static_cast<double>(static_cast<int64_t>(x)) || x < 0) {
      throw Napi::RangeError::New(env, std::string("Tensor.narrow: ") + name + " must be a non-negative integer");
    }
    return static_cast<int64_t>(x);
  };
  int64_t start = int_arg(0, "start"), length = int_arg(1, "length");
  if (start + length > t.shape[0]) {
    throw Napi::RangeError::New(env, "Tensor.narrow: rows [" + std::to_string(start) + ", " +
                                         std::to_string(start + length) + ") exceed the first dimension " +
                                         std::to_string(t.shape[0]));
  }
  Tensor v = t;
  v.offset += start * (t.numel() / (t.shape[0] == 0 ? 1 : t.shape[0]));
  v.shape[0] = length;
  return NewFrom(env, v);
}

Napi::Value TensorWrap::JS_dispose(const Napi::CallbackInfo& info) {
  release();  // disposing twice is harmless
  return info.Env().Undefined();
}

}  // namespace wavemoe
