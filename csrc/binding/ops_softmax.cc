// Row softmax over the last dimension. x of any rank >= 1 is treated as (N, C) with C its last dimension.
// Forward may run in place (out is exactly x's view); backward's dx must not share memory with dout or out.
#include <napi.h>

#include "../kernels/softmax.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/softmax.h"
#endif

namespace wavemoe {
namespace {

// Rows and columns of a (..., C) tensor; an empty last dimension means no rows.
void rows_cols(const Tensor& x, int64_t* N, int64_t* C) {
  *C = x.dim(-1);
  *N = *C > 0 ? x.numel() / *C : 0;
}

// softmaxForward(out, x): out and x are (..., C); out may be x.
Job prepare_softmax_forward(const Napi::CallbackInfo& info) {
  Args a(info, "softmaxForward");
  const Tensor out = a.tensor(0, "out"), x = a.tensor(1, "x");
  a.expect_float(x, "x");
  a.expect_rank(x, "x", 1, 64);
  a.expect_same_dtype(out, "out", x, "x");
  a.expect_shape(out, "out", x.shape);
  const bool in_place = out.storage == x.storage && out.offset == x.offset;
  if (!in_place) a.expect_no_overlap(out, "out", x, "x");
  int64_t N, C;
  rows_cols(x, &N, &C);
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::softmax_forward<T>(out.ptr<T>(), x.ptr<T>(), N, C, stream);
    });
  });
  return {[=] {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      softmax_forward<T>(out.ptr<T>(), x.ptr<T>(), N, C);
    });
    return 0.0;
  }};
}

// softmaxBackward(dx, dout, out): dx += out ⊙ (dout - Σ_row dout ⊙ out), all (..., C).
Job prepare_softmax_backward(const Napi::CallbackInfo& info) {
  Args a(info, "softmaxBackward");
  const Tensor dx = a.tensor(0, "dx"), dout = a.tensor(1, "dout"), out = a.tensor(2, "out");
  a.expect_float(out, "out");
  a.expect_rank(out, "out", 1, 64);
  a.expect_same_dtype(dout, "dout", out, "out");
  a.expect_shape(dout, "dout", out.shape);
  a.expect_same_dtype(dx, "dx", out, "out");
  a.expect_shape(dx, "dx", out.shape);
  a.expect_no_overlap(dx, "dx", dout, "dout");
  a.expect_no_overlap(dx, "dx", out, "out");
  int64_t N, C;
  rows_cols(out, &N, &C);
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(out.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::softmax_backward<T>(dx.ptr<T>(), dout.ptr<T>(), out.ptr<T>(), N, C, stream);
    });
  });
  return {[=] {
    dispatch_float(out.dtype, [&](auto t) {
      using T = decltype(t);
      softmax_backward<T>(dx.ptr<T>(), dout.ptr<T>(), out.ptr<T>(), N, C);
    });
    return 0.0;
  }};
}

}  // namespace

void register_softmax_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "softmaxForward", prepare_softmax_forward);
  export_op(env, exports, "softmaxBackward", prepare_softmax_backward);
}

}  // namespace wavemoe
