#include "args.h"

#include "../core/device.h"

#include "recording.h"
#include "tensor_wrap.h"

namespace wavemoe {

Tensor Args::tensor(size_t i, const char* name) const {
  Napi::Value v = at(i);
  TensorWrap* w = TensorWrap::Unwrap(v);
  if (w == nullptr) fail_type(std::string("argument '") + name + "' must be a Tensor");
  if (w->disposed()) fail(std::string("argument '") + name + "' is a disposed tensor");
  const Tensor& t = w->tensor();
  expect_device(t, name);
  return t;
}

void Args::expect_device(const Tensor& t, const char* name) const {
  if (device_name_.empty()) {
    device_ = t.device();
    device_name_ = name;
  } else if (t.device() != device_) {
    fail(std::string("argument '") + name + "' is on " + t.device().str() + " but '" + device_name_ + "' is on " +
         device_.str() + ": the tensors of one op must be on the same device (move one with .to('" + device_.str() +
         "'))");
  }
}

HostInts::HostInts(const Tensor& t) : ptr_(t.ptr<int32_t>()) {
  if (t.device().is_cpu()) return;
  copy_.resize(static_cast<size_t>(t.numel()));
  usable_backend(t.device()).copy_to_host(copy_.data(), t.data(), t.nbytes(), t.device().index);
  ptr_ = copy_.data();
}

std::optional<Tensor> Args::optional_tensor(size_t i, const char* name) const {
  Napi::Value v = at(i);
  if (v.IsNull() || v.IsUndefined()) return std::nullopt;
  return tensor(i, name);
}

double Args::number(size_t i, const char* name) const {
  Napi::Value v = at(i);
  if (!v.IsNumber()) fail_type(std::string("argument '") + name + "' must be a number");
  double x = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(x)) fail_range(std::string("argument '") + name + "' must be finite, got " + std::to_string(x));
  return x;
}

int64_t Args::integer(size_t i, const char* name, int64_t lo, int64_t hi) const {
  Napi::Value v = at(i);
  if (!v.IsNumber()) fail_type(std::string("argument '") + name + "' must be an integer");
  double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= static_cast<double>(lo) && x <= static_cast<double>(hi)) || x != std::floor(x)) {
    fail_range(std::string("argument '") + name + "' must be an integer in [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "], got " + std::to_string(x));
  }
  return static_cast<int64_t>(x);
}

bool Args::boolean(size_t i, const char* name) const {
  Napi::Value v = at(i);
  if (!v.IsBoolean()) fail_type(std::string("argument '") + name + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::Object Args::options(size_t i, std::initializer_list<const char*> known) const {
  Napi::Value v = at(i);
  if (v.IsUndefined() || v.IsNull()) return Napi::Object::New(env_);
  if (!v.IsObject() || v.IsArray()) fail_type("options must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t k = 0; k < keys.Length(); ++k) {
    std::string key = keys.Get(k).ToString().Utf8Value();
    bool ok = false;
    for (const char* name : known) ok = ok || key == name;
    if (!ok) {
      std::string list;
      for (const char* name : known) list += (list.empty() ? "" : ", ") + std::string(name);
      fail_type("unknown option '" + key + "' (known: " + list + ")");
    }
  }
  return o;
}

bool Args::option_bool(const Napi::Object& o, const char* key, bool fallback) const {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) fail_type(std::string("option '") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

double Args::option_number(const Napi::Object& o, const char* key, double fallback) const {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) fail_type(std::string("option '") + key + "' must be a number");
  double x = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(x)) fail_range(std::string("option '") + key + "' must be finite");
  return x;
}

int64_t Args::option_integer(const Napi::Object& o, const char* key, int64_t fallback, int64_t lo, int64_t hi) const {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) fail_type(std::string("option '") + key + "' must be an integer");
  double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= static_cast<double>(lo) && x <= static_cast<double>(hi)) || x != std::floor(x)) {
    fail_range(std::string("option '") + key + "' must be an integer in [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "]");
  }
  return static_cast<int64_t>(x);
}

bool Args::recording() const { return active_recording(env_) != nullptr; }

void Args::check_data(const std::function<std::string()>& problem) const {
  if (active_recording(env_) != nullptr) return;  // checked when the recorded Job runs
  const std::string p = problem();
  if (!p.empty()) fail_range(p);
}

void Args::expect_dtype(const Tensor& t, const char* name, DType d) const {
  if (t.dtype != d) {
    fail_type(std::string("argument '") + name + "' must be " + dtype_name(d) + ", got " + dtype_name(t.dtype));
  }
}

void Args::expect_float(const Tensor& t, const char* name) const {
  if (t.dtype != DType::f32 && t.dtype != DType::f64) {
    fail_type(std::string("argument '") + name + "' must be float32 or float64, got " + dtype_name(t.dtype));
  }
}

void Args::expect_same_dtype(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name) const {
  if (t.dtype != ref.dtype) {
    fail_type(std::string("argument '") + name + "' is " + dtype_name(t.dtype) + " but '" + ref_name + "' is " +
              dtype_name(ref.dtype) + " (dtypes must match)");
  }
}

void Args::expect_shape(const Tensor& t, const char* name, const std::vector<int64_t>& shape) const {
  if (t.shape != shape) {
    fail_range(std::string("argument '") + name + "' must have shape " + Tensor::shape_to_string(shape) + ", got " +
               t.shape_str());
  }
}

void Args::expect_rank(const Tensor& t, const char* name, int lo, int hi) const {
  if (t.rank() < lo || t.rank() > hi) {
    std::string want = lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi);
    fail_range(std::string("argument '") + name + "' must have " + want + " dimensions, got shape " + t.shape_str());
  }
}

void Args::expect_no_overlap(const Tensor& a, const char* an, const Tensor& b, const char* bn) const {
  if (a.overlaps(b)) fail_range(std::string("arguments '") + an + "' and '" + bn + "' must not share memory");
}

}  // namespace wavemoe
