// Rotary position embedding on interleaved pairs. x is (..., T, H, D) with D even; leading dimensions are a batch.
// Forward may run in place (out is exactly x's view); backward's dx must not share memory with dout.
#include <napi.h>

#include <string>

#include "../kernels/rope.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/rope.h"
#endif

namespace wavemoe {
namespace {

constexpr int64_t kMaxSafeInteger = 9007199254740991LL;  // 2^53 - 1: positions stay exact in double

struct RopeShape {
  int64_t B, T, H, D;
};

RopeShape rope_shape(const Args& a, const Tensor& x, const char* name) {
  a.expect_rank(x, name, 3, 64);
  const int64_t T = x.dim(-3), H = x.dim(-2), D = x.dim(-1);
  if (D % 2 != 0) {
    a.fail_range(std::string("argument '") + name + "' must have an even last dimension (head size D), got shape " +
                 x.shape_str());
  }
  int64_t B = 1;
  for (int i = 0; i < x.rank() - 3; ++i) B *= x.shape[i];
  return {B, T, H, D};
}

double rope_theta(const Args& a, size_t i) {
  const double theta = a.number(i, "theta");
  if (!(theta > 0)) a.fail_range("argument 'theta' must be > 0, got " + std::to_string(theta));
  return theta;
}

// ropeForward(out, x, theta, posOffset): out and x are (..., T, H, D); out may be x.
Job prepare_rope_forward(const Napi::CallbackInfo& info) {
  Args a(info, "ropeForward");
  const Tensor out = a.tensor(0, "out"), x = a.tensor(1, "x");
  a.expect_float(x, "x");
  const RopeShape s = rope_shape(a, x, "x");
  a.expect_same_dtype(out, "out", x, "x");
  a.expect_shape(out, "out", x.shape);
  const bool in_place = out.storage == x.storage && out.offset == x.offset;
  if (!in_place) a.expect_no_overlap(out, "out", x, "x");
  const double theta = rope_theta(a, 2);
  const int64_t pos_offset = a.integer(3, "posOffset", 0, kMaxSafeInteger - s.T);
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::rope_forward<T>(out.ptr<T>(), x.ptr<T>(), s.B, s.T, s.H, s.D, theta, pos_offset, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      rope_forward<T>(out.ptr<T>(), x.ptr<T>(), s.B, s.T, s.H, s.D, theta, pos_offset);
    });
    return 0.0;
  }};
}

// ropeBackward(dx, dout, theta, posOffset): dx += rotation of dout by -angle; both (..., T, H, D).
Job prepare_rope_backward(const Napi::CallbackInfo& info) {
  Args a(info, "ropeBackward");
  const Tensor dx = a.tensor(0, "dx"), dout = a.tensor(1, "dout");
  a.expect_float(dout, "dout");
  const RopeShape s = rope_shape(a, dout, "dout");
  a.expect_same_dtype(dx, "dx", dout, "dout");
  a.expect_shape(dx, "dx", dout.shape);
  a.expect_no_overlap(dx, "dx", dout, "dout");
  const double theta = rope_theta(a, 2);
  const int64_t pos_offset = a.integer(3, "posOffset", 0, kMaxSafeInteger - s.T);
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(dout.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::rope_backward<T>(dx.ptr<T>(), dout.ptr<T>(), s.B, s.T, s.H, s.D, theta, pos_offset, stream);
    });
  });
  return {[=] {
    dispatch_float(dout.dtype, [&](auto t) {
      using T = decltype(t);
      rope_backward<T>(dx.ptr<T>(), dout.ptr<T>(), s.B, s.T, s.H, s.D, theta, pos_offset);
    });
    return 0.0;
  }};
}

}  // namespace

void register_rope_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "ropeForward", prepare_rope_forward);
  export_op(env, exports, "ropeBackward", prepare_rope_backward);
}

}  // namespace wavemoe
