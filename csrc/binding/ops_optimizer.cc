// adamwStep and clipGradNorm: validation at the boundary, then csrc/kernels/adamw.
#include <napi.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "../kernels/adamw.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/adamw.h"
#include "../../cuda/allocator.h"
#include "../../cuda/check.h"
#endif
#include "tensor_wrap.h"

namespace wavemoe {
namespace {

using OptTensor = std::optional<Tensor>;

// A required finite number option.
double required_number(const Args& a, const Napi::Object& o, const char* key) {
  if (o.Get(key).IsUndefined()) a.fail_type(std::string("option '") + key + "' is required");
  return a.option_number(o, key, 0.0);
}

void expect_in(const Args& a, bool ok, const char* key, const std::string& range, double x) {
  if (!ok) a.fail_range(std::string("option '") + key + "' must be " + range + ", got " + std::to_string(x));
}

// lr and step are required; beta1, beta2, eps and weightDecay default to torch.optim.AdamW's.
AdamWParams adamw_params(const Args& a, const Napi::Object& o) {
  AdamWParams p;
  p.lr = required_number(a, o, "lr");
  if (o.Get("step").IsUndefined()) a.fail_type("option 'step' is required");
  p.step = a.option_integer(o, "step", 1, 1, int64_t{1} << 53);
  p.beta1 = a.option_number(o, "beta1", 0.9);
  p.beta2 = a.option_number(o, "beta2", 0.999);
  p.eps = a.option_number(o, "eps", 1e-8);
  p.weight_decay = a.option_number(o, "weightDecay", 0.01);
  expect_in(a, p.lr >= 0, "lr", ">= 0", p.lr);
  expect_in(a, p.beta1 >= 0 && p.beta1 < 1, "beta1", "in [0, 1)", p.beta1);
  expect_in(a, p.beta2 >= 0 && p.beta2 < 1, "beta2", "in [0, 1)", p.beta2);
  expect_in(a, p.eps > 0, "eps", "> 0", p.eps);
  expect_in(a, p.weight_decay >= 0, "weightDecay", ">= 0", p.weight_decay);
  return p;
}

// The optional one-element float64 tensor under `key`: a scalar that ops write or read at run time (not record time).
OptTensor scalar_tensor_option(const Args& a, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return OptTensor{};
  TensorWrap* w = TensorWrap::Unwrap(v);
  if (w == nullptr) a.fail_type(std::string("option '") + key + "' must be a Tensor");
  if (w->disposed()) a.fail(std::string("option '") + key + "' is a disposed tensor");
  const Tensor& t = w->tensor();
  a.expect_device(t, key);
  if (t.dtype != DType::f64 || t.numel() != 1) {
    a.fail_type(std::string("option '") + key + "' must be a float64 tensor of one element");
  }
  return OptTensor{t};
}

// adamwStep(param, grad, m, v, { lr, step, beta1?, beta2?, eps?, weightDecay?, skipIfNonFinite? }): param, m, v
// updated in place. skipIfNonFinite: a float64 [1] tensor (clipGradNorm's normOut) read when the step runs; if it
// holds NaN or ±Infinity nothing is changed. The decision then needs no trip to JavaScript, so a whole training step
// can be recorded and run off the main thread (PyTorch's GradScaler skips steps on its found_inf tensor the same way).
Job prepare_adamw_step(const Napi::CallbackInfo& info) {
  Args a(info, "adamwStep");
  Tensor param = a.tensor(0, "param"), grad = a.tensor(1, "grad"), m = a.tensor(2, "m"), v = a.tensor(3, "v");
  Napi::Object o = a.options(4, {"lr", "beta1", "beta2", "eps", "weightDecay", "step", "skipIfNonFinite"});
  const OptTensor guard = scalar_tensor_option(a, o, "skipIfNonFinite");
  a.expect_float(param, "param");
  const std::vector<std::pair<const Tensor*, const char*>> all = {{&param, "param"}, {&grad, "grad"}, {&m, "m"},
                                                                   {&v, "v"}};
  for (size_t i = 1; i < all.size(); ++i) {
    a.expect_same_dtype(*all[i].first, all[i].second, param, "param");
    a.expect_shape(*all[i].first, all[i].second, param.shape);
  }
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = i + 1; j < all.size(); ++j) {
      a.expect_no_overlap(*all[i].first, all[i].second, *all[j].first, all[j].second);
    }
  }
  const AdamWParams p = adamw_params(a, o);
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(param.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::adamw_step<T>(param.ptr<T>(), m.ptr<T>(), v.ptr<T>(), grad.ptr<T>(), param.numel(), p, stream,
                         guard ? guard->ptr<double>() : nullptr);
    });
  });
  return {[=] {
    if (guard && !std::isfinite(guard->ptr<double>()[0])) return 0.0;
    dispatch_float(param.dtype, [&](auto t) {
      using T = decltype(t);
      adamw_step<T>(param.ptr<T>(), m.ptr<T>(), v.ptr<T>(), grad.ptr<T>(), param.numel(), p);
    });
    return 0.0;
  }};
}

// The tensors of a non-empty JS array, live, float, all of one dtype, pairwise disjoint.
std::vector<Tensor> grad_list(const Args& a, const Napi::Value& v) {
  if (!v.IsArray()) a.fail_type("argument 'grads' must be an array of Tensors");
  Napi::Array arr = v.As<Napi::Array>();
  if (arr.Length() == 0) a.fail_range("argument 'grads' must not be empty");
  std::vector<Tensor> grads;
  std::vector<std::string> names;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    names.push_back("grads[" + std::to_string(i) + "]");
    TensorWrap* w = TensorWrap::Unwrap(arr.Get(i));
    if (w == nullptr) a.fail_type("argument '" + names[i] + "' must be a Tensor");
    if (w->disposed()) a.fail("argument '" + names[i] + "' is a disposed tensor");
    grads.push_back(w->tensor());
    a.expect_device(grads[i], names[i].c_str());
    a.expect_float(grads[i], names[i].c_str());
    if (i > 0) a.expect_same_dtype(grads[i], names[i].c_str(), grads[0], "grads[0]");
    for (uint32_t j = 0; j < i; ++j) a.expect_no_overlap(grads[j], names[j].c_str(), grads[i], names[i].c_str());
  }
  return grads;
}

// clipGradNorm(grads, maxNorm, normOut?): returns the total L2 norm before clipping, and writes it into normOut (a
// float64 [1] tensor) when given. maxNorm > 0, or Infinity (no clipping).
Job prepare_clip_grad_norm(const Napi::CallbackInfo& info) {
  Args a(info, "clipGradNorm");
  const std::vector<Tensor> grads = grad_list(a, info.Length() > 0 ? info[0] : info.Env().Undefined());
  // +Infinity is allowed, as in PyTorch: measure the norm without clipping.
  if (info.Length() < 2 || !info[1].IsNumber()) a.fail_type("argument 'maxNorm' must be a number");
  const double max_norm = info[1].As<Napi::Number>().DoubleValue();
  if (!(max_norm > 0)) a.fail_range("argument 'maxNorm' must be > 0 (or Infinity), got " + std::to_string(max_norm));
  OptTensor norm_out;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    norm_out = a.tensor(2, "normOut");
    if (norm_out->dtype != DType::f64 || norm_out->numel() != 1) {
      a.fail_type("argument 'normOut' must be a float64 tensor of one element");
    }
    for (size_t i = 0; i < grads.size(); ++i) {
      a.expect_no_overlap(*norm_out, "normOut", grads[i], ("grads[" + std::to_string(i) + "]").c_str());
    }
  }
  // On a GPU the norm stays on the device: in normOut when given (AdamW reads it there to skip a non-finite step)
  // and in the op's result word (read back at the end of a recorded run).
  WAVEMOE_GPU_NUMBER_JOB(a, [=](cudaStream_t stream, double* result) {
    double* norm_dev = norm_out ? norm_out->ptr<double>() : result;
    dispatch_float(grads[0].dtype, [&](auto t) {
      using T = decltype(t);
      std::vector<T*> ptrs;
      std::vector<int64_t> sizes;
      for (const Tensor& g : grads) {
        ptrs.push_back(g.ptr<T>());
        sizes.push_back(g.numel());
      }
      gpu::clip_grad_norm<T>(norm_dev, ptrs.data(), sizes.data(), static_cast<int64_t>(grads.size()), max_norm,
                             stream);
    });
    if (norm_out) {
      WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(result, norm_dev, sizeof(double), cudaMemcpyDeviceToDevice, stream));
    }
  });
  return {[=] {
            const double norm = dispatch_float(grads[0].dtype, [&](auto t) {
              using T = decltype(t);
              std::vector<T*> ptrs;
              std::vector<int64_t> sizes;
              for (const Tensor& g : grads) {
                ptrs.push_back(g.ptr<T>());
                sizes.push_back(g.numel());
              }
              return clip_grad_norm<T>(ptrs.data(), sizes.data(), static_cast<int64_t>(grads.size()), max_norm);
            });
            if (norm_out) norm_out->ptr<double>()[0] = norm;
            return norm;
          },
          true};
}

}  // namespace

void register_optimizer_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "adamwStep", prepare_adamw_step);
  export_op(env, exports, "clipGradNorm", prepare_clip_grad_norm);
}

}  // namespace wavemoe
