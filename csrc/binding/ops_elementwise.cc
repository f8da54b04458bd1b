// Elementwise glue ops: add, axpy, scale, copy, biasAdd and its backward.
#include <cstring>

#include "../kernels/elementwise.h"
#include "../core/device.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/elementwise.h"
#endif

namespace wavemoe {
namespace {

// The number of rows N and columns C of x viewed as (N, C) with C its last dimension.
void rows_cols(const Tensor& x, int64_t* N, int64_t* C) {
  *C = x.rank() == 0 ? 1 : x.shape.back();
  *N = *C == 0 ? 0 : x.numel() / *C;
}

// add(out, a, b): out = a + b; out may be a or b itself.
Job prepare_add(const Napi::CallbackInfo& info) {
  Args a(info, "add");
  Tensor out = a.tensor(0, "out"), x = a.tensor(1, "a"), y = a.tensor(2, "b");
  a.expect_float(x, "a");
  a.expect_same_dtype(y, "b", x, "a");
  a.expect_same_dtype(out, "out", x, "a");
  a.expect_shape(y, "b", x.shape);
  a.expect_shape(out, "out", x.shape);
  for (const auto& [t, name] : {std::pair<const Tensor&, const char*>{x, "a"}, {y, "b"}}) {
    if (out.overlaps(t) && out.data() != t.data()) a.fail_range(std::string("'out' partly overlaps '") + name + "'");
  }
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::add_forward<T>(out.ptr<T>(), x.ptr<T>(), y.ptr<T>(), x.numel(), stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      add_forward<T>(out.ptr<T>(), x.ptr<T>(), y.ptr<T>(), x.numel());
    });
    return 0.0;
  }};
}

// axpy(y, x, alpha): y += alpha * x
Job prepare_axpy(const Napi::CallbackInfo& info) {
  Args a(info, "axpy");
  Tensor y = a.tensor(0, "y"), x = a.tensor(1, "x");
  double alpha = a.number(2, "alpha");
  a.expect_float(y, "y");
  a.expect_same_dtype(x, "x", y, "y");
  if (x.numel() != y.numel()) a.fail_range("'x' " + x.shape_str() + " and 'y' " + y.shape_str() + " differ in size");
  if (x.overlaps(y) && x.data() != y.data()) a.fail_range("'x' partly overlaps 'y'");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(y.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::axpy<T>(y.ptr<T>(), x.ptr<T>(), alpha, y.numel(), stream);
    });
  });
  return {[=] {
    dispatch_float(y.dtype, [&](auto t) {
      using T = decltype(t);
      axpy<T>(y.ptr<T>(), x.ptr<T>(), alpha, y.numel());
    });
    return 0.0;
  }};
}

// scale(x, alpha): x *= alpha
Job prepare_scale(const Napi::CallbackInfo& info) {
  Args a(info, "scale");
  Tensor x = a.tensor(0, "x");
  double alpha = a.number(1, "alpha");
  a.expect_float(x, "x");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::scale_inplace<T>(x.ptr<T>(), alpha, x.numel(), stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      scale_inplace<T>(x.ptr<T>(), alpha, x.numel());
    });
    return 0.0;
  }};
}

// copy(dst, src): same dtype and element count (shapes may differ, as for a reshape).
Job prepare_copy(const Napi::CallbackInfo& info) {
  Args a(info, "copy");
  Tensor dst = a.tensor(0, "dst"), src = a.tensor(1, "src");
  a.expect_same_dtype(src, "src", dst, "dst");
  if (src.numel() != dst.numel()) {
    a.fail_range("'src' " + src.shape_str() + " and 'dst' " + dst.shape_str() + " differ in size");
  }
  a.expect_no_overlap(dst, "dst", src, "src");
  if (!a.device().is_cpu()) {  // any device backend copies (no kernel needed)
    Job job{[=] {
      usable_backend(dst.device()).copy_on_device(dst.data(), src.data(), dst.nbytes(), dst.device().index);
      return 0.0;
    }};
    job.on_device = true;
    return job;
  }
  return {[=] {
    std::memcpy(dst.data(), src.data(), dst.nbytes());
    return 0.0;
  }};
}

// biasAdd(x, bias): x[..., c] += bias[c] in place.
Job prepare_bias_add(const Napi::CallbackInfo& info) {
  Args a(info, "biasAdd");
  Tensor x = a.tensor(0, "x"), bias = a.tensor(1, "bias");
  a.expect_float(x, "x");
  a.expect_same_dtype(bias, "bias", x, "x");
  a.expect_rank(x, "x", 1, 8);
  int64_t N, C;
  rows_cols(x, &N, &C);
  a.expect_shape(bias, "bias", {C});
  a.expect_no_overlap(x, "x", bias, "bias");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::bias_add_forward<T>(x.ptr<T>(), bias.ptr<T>(), N, C, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      bias_add_forward<T>(x.ptr<T>(), bias.ptr<T>(), N, C);
    });
    return 0.0;
  }};
}

// biasAddBackward(dbias, dout): dbias[c] += sum of dout[..., c].
Job prepare_bias_add_backward(const Napi::CallbackInfo& info) {
  Args a(info, "biasAddBackward");
  Tensor dbias = a.tensor(0, "dbias"), dout = a.tensor(1, "dout");
  a.expect_float(dout, "dout");
  a.expect_same_dtype(dbias, "dbias", dout, "dout");
  a.expect_rank(dout, "dout", 1, 8);
  int64_t N, C;
  rows_cols(dout, &N, &C);
  a.expect_shape(dbias, "dbias", {C});
  a.expect_no_overlap(dbias, "dbias", dout, "dout");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(dout.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::bias_add_backward<T>(dbias.ptr<T>(), dout.ptr<T>(), N, C, stream);
    });
  });
  return {[=] {
    dispatch_float(dout.dtype, [&](auto t) {
      using T = decltype(t);
      bias_add_backward<T>(dbias.ptr<T>(), dout.ptr<T>(), N, C);
    });
    return 0.0;
  }};
}

// permute0213(out, x): x (A, B, C, D) -> out (A, C, B, D).
Job prepare_permute0213(const Napi::CallbackInfo& info) {
  Args a(info, "permute0213");
  Tensor out = a.tensor(0, "out"), x = a.tensor(1, "x");
  a.expect_float(x, "x");
  a.expect_same_dtype(out, "out", x, "x");
  a.expect_rank(x, "x", 4, 4);
  a.expect_shape(out, "out", {x.shape[0], x.shape[2], x.shape[1], x.shape[3]});
  a.expect_no_overlap(out, "out", x, "x");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::permute0213<T>(out.ptr<T>(), x.ptr<T>(), x.shape[0], x.shape[1], x.shape[2], x.shape[3], stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      permute0213<T>(out.ptr<T>(), x.ptr<T>(), x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    });
    return 0.0;
  }};
}

// sinusoidalPositions(out, posOffset): out (T, C) with C even.
Job prepare_sinusoidal_positions(const Napi::CallbackInfo& info) {
  Args a(info, "sinusoidalPositions");
  Tensor out = a.tensor(0, "out");
  int64_t offset = a.integer(1, "posOffset", 0, 1LL << 40);
  a.expect_float(out, "out");
  a.expect_rank(out, "out", 2, 2);
  if (out.shape[1] % 2 != 0) a.fail_range("the channel count of 'out' must be even, got " + out.shape_str());
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(out.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::sinusoidal_positions<T>(out.ptr<T>(), out.shape[0], out.shape[1], offset, stream);
    });
  });
  return {[=] {
    dispatch_float(out.dtype, [&](auto t) {
      using T = decltype(t);
      sinusoidal_positions<T>(out.ptr<T>(), out.shape[0], out.shape[1], offset);
    });
    return 0.0;
  }};
}

}  // namespace

void register_elementwise_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "add", prepare_add);
  export_op(env, exports, "axpy", prepare_axpy);
  export_op(env, exports, "scale", prepare_scale);
  export_op(env, exports, "copy", prepare_copy);
  export_op(env, exports, "biasAdd", prepare_bias_add);
  export_op(env, exports, "biasAddBackward", prepare_bias_add_backward);
  export_op(env, exports, "permute0213", prepare_permute0213);
  export_op(env, exports, "sinusoidalPositions", prepare_sinusoidal_positions);
}

}  // namespace wavemoe
