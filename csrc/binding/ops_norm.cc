// RMSNorm and LayerNorm over the last dimension. x of any rank >= 1 is treated as (N, C) with C its last dimension;
// the saved row statistics (rstd, mean) have shape x.shape[:-1] or [N].
#include <napi.h>

#include <optional>
#include <string>
#include <vector>

#include "../kernels/layernorm.h"
#include "../kernels/rmsnorm.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/layernorm.h"
#include "../../cuda/rmsnorm.h"
#endif

namespace wavemoe {
namespace {

struct Named {
  const Tensor* t;
  const char* name;
};

// Rows and columns of the normalised tensor: x is (..., C) with C >= 1.
struct RowShape {
  int64_t N, C;
};

RowShape row_shape(const Args& a, const Tensor& x, const char* name) {
  a.expect_rank(x, name, 1, 64);
  const int64_t C = x.dim(-1);
  if (C < 1) a.fail_range(std::string("argument '") + name + "' must have a last dimension of at least 1, got shape " +
                          x.shape_str());
  return {x.numel() / C, C};
}

// A float tensor of x's dtype holding one value per row: shape x.shape[:-1] or [N].
void expect_row_stat(const Args& a, const Tensor& t, const char* name, const Tensor& x, const char* xname, int64_t N) {
  a.expect_same_dtype(t, name, x, xname);
  const std::vector<int64_t> lead(x.shape.begin(), x.shape.end() - 1);
  if (t.shape != lead && t.shape != std::vector<int64_t>{N}) {
    a.fail_range(std::string("argument '") + name + "' must have shape " + Tensor::shape_to_string(lead) + " or [" +
                 std::to_string(N) + "], got " + t.shape_str());
  }
}

// A float tensor of x's dtype with the given shape.
void expect_like(const Args& a, const Tensor& t, const char* name, const Tensor& x, const char* xname,
                 const std::vector<int64_t>& shape) {
  a.expect_same_dtype(t, name, x, xname);
  a.expect_shape(t, name, shape);
}

// Outputs must not share memory with each other or with any input.
void expect_outputs_disjoint(const Args& a, const std::vector<Named>& outs, const std::vector<Named>& ins) {
  for (size_t o = 0; o < outs.size(); ++o) {
    for (size_t p = o + 1; p < outs.size(); ++p) {
      a.expect_no_overlap(*outs[o].t, outs[o].name, *outs[p].t, outs[p].name);
    }
    for (const Named& i : ins) a.expect_no_overlap(*outs[o].t, outs[o].name, *i.t, i.name);
  }
}

double positive_eps(const Args& a, size_t i) {
  const double eps = a.number(i, "eps");
  if (!(eps > 0)) a.fail_range("argument 'eps' must be > 0, got " + std::to_string(eps));
  return eps;
}

// rmsnormForward(out, rstd, x, weight, eps): out (..., C), rstd (...) or (N), x (..., C), weight (C).
Job prepare_rmsnorm_forward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormForward");
  const Tensor out = a.tensor(0, "out"), rstd = a.tensor(1, "rstd"), x = a.tensor(2, "x"), w = a.tensor(3, "weight");
  a.expect_float(x, "x");
  const RowShape s = row_shape(a, x, "x");
  expect_like(a, w, "weight", x, "x", {s.C});
  expect_like(a, out, "out", x, "x", x.shape);
  expect_row_stat(a, rstd, "rstd", x, "x", s.N);
  const double eps = positive_eps(a, 4);
  expect_outputs_disjoint(a, {{&out, "out"}, {&rstd, "rstd"}}, {{&x, "x"}, {&w, "weight"}});
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::rmsnorm_forward<T>(out.ptr<T>(), rstd.ptr<T>(), x.ptr<T>(), w.ptr<T>(), s.N, s.C, eps, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      rmsnorm_forward<T>(out.ptr<T>(), rstd.ptr<T>(), x.ptr<T>(), w.ptr<T>(), s.N, s.C, eps);
    });
    return 0.0;
  }};
}

// rmsnormBackward(dx, dweight, dout, x, weight, rstd): adds into dx (..., C) and dweight (C).
Job prepare_rmsnorm_backward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormBackward");
  const Tensor dx = a.tensor(0, "dx"), dw = a.tensor(1, "dweight"), dout = a.tensor(2, "dout"), x = a.tensor(3, "x"),
               w = a.tensor(4, "weight"), rstd = a.tensor(5, "rstd");
  a.expect_float(x, "x");
  const RowShape s = row_shape(a, x, "x");
  expect_like(a, w, "weight", x, "x", {s.C});
  expect_like(a, dout, "dout", x, "x", x.shape);
  expect_like(a, dx, "dx", x, "x", x.shape);
  expect_like(a, dw, "dweight", x, "x", {s.C});
  expect_row_stat(a, rstd, "rstd", x, "x", s.N);
  expect_outputs_disjoint(a, {{&dx, "dx"}, {&dw, "dweight"}},
                          {{&dout, "dout"}, {&x, "x"}, {&w, "weight"}, {&rstd, "rstd"}});
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::rmsnorm_backward<T>(dx.ptr<T>(), dw.ptr<T>(), dout.ptr<T>(), x.ptr<T>(), w.ptr<T>(), rstd.ptr<T>(), s.N, s.C, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      rmsnorm_backward<T>(dx.ptr<T>(), dw.ptr<T>(), dout.ptr<T>(), x.ptr<T>(), w.ptr<T>(), rstd.ptr<T>(), s.N, s.C);
    });
    return 0.0;
  }};
}

// layernormForward(out, mean, rstd, x, weight, bias | null, eps): out (..., C), mean and rstd (...) or (N).
Job prepare_layernorm_forward(const Napi::CallbackInfo& info) {
  Args a(info, "layernormForward");
  const Tensor out = a.tensor(0, "out"), mean = a.tensor(1, "mean"), rstd = a.tensor(2, "rstd"), x = a.tensor(3, "x"),
               w = a.tensor(4, "weight");
  const std::optional<Tensor> bias = a.optional_tensor(5, "bias");
  a.expect_float(x, "x");
  const RowShape s = row_shape(a, x, "x");
  expect_like(a, w, "weight", x, "x", {s.C});
  if (bias) expect_like(a, *bias, "bias", x, "x", {s.C});
  expect_like(a, out, "out", x, "x", x.shape);
  expect_row_stat(a, mean, "mean", x, "x", s.N);
  expect_row_stat(a, rstd, "rstd", x, "x", s.N);
  const double eps = positive_eps(a, 6);
  std::vector<Named> ins = {{&x, "x"}, {&w, "weight"}};
  if (bias) ins.push_back({&*bias, "bias"});
  expect_outputs_disjoint(a, {{&out, "out"}, {&mean, "mean"}, {&rstd, "rstd"}}, ins);
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::layernorm_forward<T>(out.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), x.ptr<T>(), w.ptr<T>(),
                           bias ? bias->ptr<T>() : nullptr, s.N, s.C, eps, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      layernorm_forward<T>(out.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), x.ptr<T>(), w.ptr<T>(),
                           bias ? bias->ptr<T>() : nullptr, s.N, s.C, eps);
    });
    return 0.0;
  }};
}

// layernormBackward(dx, dweight, dbias | null, dout, x, weight, mean, rstd): adds into dx, dweight and dbias.
Job prepare_layernorm_backward(const Napi::CallbackInfo& info) {
  Args a(info, "layernormBackward");
  const Tensor dx = a.tensor(0, "dx"), dw = a.tensor(1, "dweight");
  const std::optional<Tensor> dbias = a.optional_tensor(2, "dbias");
  const Tensor dout = a.tensor(3, "dout"), x = a.tensor(4, "x"), w = a.tensor(5, "weight"), mean = a.tensor(6, "mean"),
               rstd = a.tensor(7, "rstd");
  a.expect_float(x, "x");
  const RowShape s = row_shape(a, x, "x");
  expect_like(a, w, "weight", x, "x", {s.C});
  expect_like(a, dout, "dout", x, "x", x.shape);
  expect_like(a, dx, "dx", x, "x", x.shape);
  expect_like(a, dw, "dweight", x, "x", {s.C});
  if (dbias) expect_like(a, *dbias, "dbias", x, "x", {s.C});
  expect_row_stat(a, mean, "mean", x, "x", s.N);
  expect_row_stat(a, rstd, "rstd", x, "x", s.N);
  std::vector<Named> outs = {{&dx, "dx"}, {&dw, "dweight"}};
  if (dbias) outs.push_back({&*dbias, "dbias"});
  expect_outputs_disjoint(a, outs, {{&dout, "dout"}, {&x, "x"}, {&w, "weight"}, {&mean, "mean"}, {&rstd, "rstd"}});
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::layernorm_backward<T>(dx.ptr<T>(), dw.ptr<T>(), dbias ? dbias->ptr<T>() : nullptr, dout.ptr<T>(), x.ptr<T>(),
                            w.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), s.N, s.C, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      layernorm_backward<T>(dx.ptr<T>(), dw.ptr<T>(), dbias ? dbias->ptr<T>() : nullptr, dout.ptr<T>(), x.ptr<T>(),
                            w.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), s.N, s.C);
    });
    return 0.0;
  }};
}

}  // namespace

void register_norm_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "rmsnormForward", prepare_rmsnorm_forward);
  export_op(env, exports, "rmsnormBackward", prepare_rmsnorm_backward);
  export_op(env, exports, "layernormForward", prepare_layernorm_forward);
  export_op(env, exports, "layernormBackward", prepare_layernorm_backward);
}

}  // namespace wavemoe
