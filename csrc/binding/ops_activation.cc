// Elementwise activations (relu, gelu_tanh, gelu_erf, silu) and SwiGLU. Forward may run in place: `out` may be the
// very same tensor view as an input (same storage and offset), but must not partly overlap one. Backward gradients
// must not share memory with anything.
#include <napi.h>

#include <string>

#include "../kernels/activations.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/activations.h"
#endif

namespace wavemoe {
namespace {

constexpr const char* kKinds = "'relu', 'gelu_tanh', 'gelu_erf', 'silu'";

Activation activation_kind(const Args& a, const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsString()) a.fail_type(std::string("argument 'kind' must be one of ") + kKinds);
  const std::string k = info[i].As<Napi::String>();
  if (k == "relu") return Activation::relu;
  if (k == "gelu_tanh") return Activation::gelu_tanh;
  if (k == "gelu_erf") return Activation::gelu_erf;
  if (k == "silu") return Activation::silu;
  a.fail_range("unknown activation kind '" + k + "' (valid: " + kKinds + ")");
}

// A tensor of x's dtype and shape.
void expect_like(const Args& a, const Tensor& t, const char* name, const Tensor& x, const char* xname) {
  a.expect_same_dtype(t, name, x, xname);
  a.expect_shape(t, name, x.shape);
}

// In place is fine for elementwise forward when out is exactly the input's view; a partial overlap is not.
void expect_same_or_disjoint(const Args& a, const Tensor& out, const char* on, const Tensor& in, const char* in_name) {
  const bool same_view = out.storage == in.storage && out.offset == in.offset;
  if (!same_view) a.expect_no_overlap(out, on, in, in_name);
}

// activationForward(out, x, kind): out and x have the same shape; out may be x.
Job prepare_activation_forward(const Napi::CallbackInfo& info) {
  Args a(info, "activationForward");
  const Tensor out = a.tensor(0, "out"), x = a.tensor(1, "x");
  const Activation kind = activation_kind(a, info, 2);
  a.expect_float(x, "x");
  expect_like(a, out, "out", x, "x");
  expect_same_or_disjoint(a, out, "out", x, "x");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::activation_forward<T>(out.ptr<T>(), x.ptr<T>(), x.numel(), kind, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      activation_forward<T>(out.ptr<T>(), x.ptr<T>(), x.numel(), kind);
    });
    return 0.0;
  }};
}

// activationBackward(dx, dout, x, kind): dx += dout ⊙ f'(x), all the same shape.
Job prepare_activation_backward(const Napi::CallbackInfo& info) {
  Args a(info, "activationBackward");
  const Tensor dx = a.tensor(0, "dx"), dout = a.tensor(1, "dout"), x = a.tensor(2, "x");
  const Activation kind = activation_kind(a, info, 3);
  a.expect_float(x, "x");
  expect_like(a, dout, "dout", x, "x");
  expect_like(a, dx, "dx", x, "x");
  a.expect_no_overlap(dx, "dx", dout, "dout");
  a.expect_no_overlap(dx, "dx", x, "x");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::activation_backward<T>(dx.ptr<T>(), dout.ptr<T>(), x.ptr<T>(), x.numel(), kind, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      activation_backward<T>(dx.ptr<T>(), dout.ptr<T>(), x.ptr<T>(), x.numel(), kind);
    });
    return 0.0;
  }};
}

// swigluForward(out, a, b): out = silu(a) ⊙ b, all the same shape; out may be a or b.
Job prepare_swiglu_forward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluForward");
  const Tensor out = a.tensor(0, "out"), ta = a.tensor(1, "a"), tb = a.tensor(2, "b");
  a.expect_float(ta, "a");
  expect_like(a, tb, "b", ta, "a");
  expect_like(a, out, "out", ta, "a");
  expect_same_or_disjoint(a, out, "out", ta, "a");
  expect_same_or_disjoint(a, out, "out", tb, "b");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(ta.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::swiglu_forward<T>(out.ptr<T>(), ta.ptr<T>(), tb.ptr<T>(), ta.numel(), stream);
    });
  });
  return {[=] {
    dispatch_float(ta.dtype, [&](auto t) {
      using T = decltype(t);
      swiglu_forward<T>(out.ptr<T>(), ta.ptr<T>(), tb.ptr<T>(), ta.numel());
    });
    return 0.0;
  }};
}

// swigluBackward(da, db, dout, a, b): da += dout ⊙ b ⊙ silu'(a), db += dout ⊙ silu(a).
Job prepare_swiglu_backward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluBackward");
  const Tensor da = a.tensor(0, "da"), db = a.tensor(1, "db"), dout = a.tensor(2, "dout"), ta = a.tensor(3, "a"),
               tb = a.tensor(4, "b");
  a.expect_float(ta, "a");
  expect_like(a, tb, "b", ta, "a");
  expect_like(a, dout, "dout", ta, "a");
  expect_like(a, da, "da", ta, "a");
  expect_like(a, db, "db", ta, "a");
  a.expect_no_overlap(da, "da", db, "db");
  for (const auto& [t, name] : {std::pair<const Tensor&, const char*>{dout, "dout"}, {ta, "a"}, {tb, "b"}}) {
    a.expect_no_overlap(da, "da", t, name);
    a.expect_no_overlap(db, "db", t, name);
  }
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(ta.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::swiglu_backward<T>(da.ptr<T>(), db.ptr<T>(), dout.ptr<T>(), ta.ptr<T>(), tb.ptr<T>(), ta.numel(), stream);
    });
  });
  return {[=] {
    dispatch_float(ta.dtype, [&](auto t) {
      using T = decltype(t);
      swiglu_backward<T>(da.ptr<T>(), db.ptr<T>(), dout.ptr<T>(), ta.ptr<T>(), tb.ptr<T>(), ta.numel());
    });
    return 0.0;
  }};
}

}  // namespace

void register_activation_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "activationForward", prepare_activation_forward);
  export_op(env, exports, "activationBackward", prepare_activation_backward);
  export_op(env, exports, "swigluForward", prepare_swiglu_forward);
  export_op(env, exports, "swigluBackward", prepare_swiglu_backward);
}

}  // namespace wavemoe
