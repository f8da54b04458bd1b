// Argument validation for the ops: every check throws a JavaScript error that names the op and the argument.
// Kernels behind this layer assume valid input.
#pragma once
#include <napi.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace wavemoe {

// The run-time side of Args::check_data, called first thing in a Job on whatever thread runs it: a problem fails the
// run (export_op and the recording prefix the op's name).
inline void check_data_at_run_time(const std::string& problem) {
  if (!problem.empty()) throw std::runtime_error(problem);
}

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op) : info_(info), env_(info.Env()), op_(op) {}

  Napi::Env env() const { return env_; }
  const char* op() const { return op_; }

  [[noreturn]] void fail(const std::string& msg) const { throw Napi::Error::New(env_, std::string(op_) + ": " + msg); }
  [[noreturn]] void fail_type(const std::string& msg) const {
    throw Napi::TypeError::New(env_, std::string(op_) + ": " + msg);
  }
  [[noreturn]] void fail_range(const std::string& msg) const {
    throw Napi::RangeError::New(env_, std::string(op_) + ": " + msg);
  }

  // A live Tensor at position i. Every tensor of one op must be on the same device (else a clear error).
  Tensor tensor(size_t i, const char* name) const;
  // Notes the device of a tensor read outside tensor() (lists, options): the first fixes the op's device, and any
  // other must match it, else a clear error.
  void expect_device(const Tensor& t, const char* name) const;
  // The device of the op's tensors (the CPU when it has none).
  DeviceRef device() const { return device_; }
  // A live Tensor, or null/undefined (returns nullopt).
  std::optional<Tensor> optional_tensor(size_t i, const char* name) const;
  // A finite number.
  double number(size_t i, const char* name) const;
  // An integer in [lo, hi].
  int64_t integer(size_t i, const char* name, int64_t lo, int64_t hi) const;
  bool boolean(size_t i, const char* name) const;
  // An options object at position i (absent or undefined gives an empty object). Unknown keys are an error, so a
  // misspelled option is never silently ignored.
  Napi::Object options(size_t i, std::initializer_list<const char*> known) const;
  bool option_bool(const Napi::Object& o, const char* key, bool fallback) const;
  double option_number(const Napi::Object& o, const char* key, double fallback) const;
  int64_t option_integer(const Napi::Object& o, const char* key, int64_t fallback, int64_t lo, int64_t hi) const;

  // A check of tensor contents (index ranges): `problem` returns "" when the data is valid, else what is wrong.
  // Run now, it throws a RangeError at once. Inside a recording (runAsync) the data may be written by an earlier
  // recorded op, so it is not read now: the Job must call check_data_at_run_time, which fails the run instead.
  void check_data(const std::function<std::string()>& problem) const;
  // True while ops are recorded (runAsync): check_data then leaves the check to the Job.
  bool recording() const;

  // Shape and dtype checks.
  void expect_dtype(const Tensor& t, const char* name, DType d) const;
  void expect_float(const Tensor& t, const char* name) const;  // float32 or float64
  void expect_same_dtype(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name) const;
  void expect_shape(const Tensor& t, const char* name, const std::vector<int64_t>& shape) const;
  void expect_rank(const Tensor& t, const char* name, int lo, int hi) const;
  void expect_no_overlap(const Tensor& a, const char* an, const Tensor& b, const char* bn) const;

 private:
  Napi::Value at(size_t i) const { return i < info_.Length() ? info_[i] : env_.Undefined(); }
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  const char* op_;
  mutable DeviceRef device_;                 // of the first tensor argument
  mutable std::string device_name_;  // that argument's name; empty until a tensor was read
};

// The elements of an int32 tensor readable on the host: the tensor's own memory on the CPU, else a copy from the
// device (which waits for the device's queued work). For the index checks of check_data.
class HostInts {
 public:
  explicit HostInts(const Tensor& t);
  const int32_t* data() const { return ptr_; }

 private:
  std::vector<int32_t> copy_;
  const int32_t* ptr_;
};

// Calls fn(T{}) with T = float or double for a float tensor's dtype.
template <typename F> auto dispatch_float(DType d, F&& fn) {
  if (d == DType::f64) return fn(double{});
  return fn(float{});
}

}  // namespace wavemoe
