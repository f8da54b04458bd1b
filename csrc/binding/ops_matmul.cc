// Batched matrix multiply: matmul(C, A, B, opts?) and matmulBackward(dA|null, dB|null, dC, A, B, opts?).
// A is (M, K) or (batch, M, K) ((K, M) ... with transA), B is (K, N) or (batch, K, N) ((N, K) ... with transB);
// a rank-2 operand is broadcast over the batch of the other, and C is (batch, M, N), or (M, N) if neither is batched.
#include <napi.h>

#include <optional>
#include <vector>

#include "../kernels/matmul.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/matmul.h"
#endif

namespace wavemoe {
namespace {

// The sizes of one matmul, checked from the shapes of A and B.
struct MatmulDims {
  bool batched = false;  // A or B has a batch dimension
  int64_t batch = 1, M = 0, N = 0, K = 0;
  int64_t stride_a = 0, stride_b = 0;  // 0: broadcast

  std::vector<int64_t> c_shape() const {
    return batched ? std::vector<int64_t>{batch, M, N} : std::vector<int64_t>{M, N};
  }
};

// Validates A and B (rank, dtype, inner dimensions, batch) and derives the sizes.
MatmulDims matmul_dims(const Args& a, const Tensor& A, const Tensor& B, bool trans_a, bool trans_b) {
  a.expect_float(A, "A");
  a.expect_same_dtype(B, "B", A, "A");
  a.expect_rank(A, "A", 2, 3);
  a.expect_rank(B, "B", 2, 3);
  MatmulDims d;
  d.M = trans_a ? A.dim(-1) : A.dim(-2);
  d.K = trans_a ? A.dim(-2) : A.dim(-1);
  d.N = trans_b ? B.dim(-2) : B.dim(-1);
  d.batched = A.rank() == 3 || B.rank() == 3;
  d.batch = A.rank() == 3 ? A.dim(0) : (B.rank() == 3 ? B.dim(0) : 1);
  // The shape B must have given its own N, A's K and the batch: names expected and actual in one message.
  std::vector<int64_t> want_b = trans_b ? std::vector<int64_t>{d.N, d.K} : std::vector<int64_t>{d.K, d.N};
  if (B.rank() == 3) want_b.insert(want_b.begin(), d.batch);
  if (B.shape != want_b) {
    a.fail_range("argument 'B' must have shape " + Tensor::shape_to_string(want_b) + " to match 'A' " + A.shape_str() +
                 (trans_a ? " (transA)" : "") + (trans_b ? " with transB" : "") + ", got " + B.shape_str());
  }
  d.stride_a = A.rank() == 3 ? d.M * d.K : 0;
  d.stride_b = B.rank() == 3 ? d.K * d.N : 0;
  return d;
}

// matmul(C, A, B, { transA, transB, accumulate })
Job prepare_matmul(const Napi::CallbackInfo& info) {
  Args a(info, "matmul");
  Tensor C = a.tensor(0, "C"), A = a.tensor(1, "A"), B = a.tensor(2, "B");
  Napi::Object o = a.options(3, {"transA", "transB", "accumulate"});
  bool ta = a.option_bool(o, "transA", false), tb = a.option_bool(o, "transB", false);
  bool accumulate = a.option_bool(o, "accumulate", false);
  MatmulDims d = matmul_dims(a, A, B, ta, tb);
  a.expect_same_dtype(C, "C", A, "A");
  a.expect_shape(C, "C", d.c_shape());
  a.expect_no_overlap(C, "C", A, "A");
  a.expect_no_overlap(C, "C", B, "B");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(A.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::matmul_forward<T>(C.ptr<T>(), A.ptr<T>(), B.ptr<T>(), d.batch, d.M, d.N, d.K, ta, tb, d.stride_a, d.stride_b,
                        d.M * d.N, accumulate, stream);
    });
  });
  return {[=] {
    dispatch_float(A.dtype, [&](auto t) {
      using T = decltype(t);
      matmul_forward<T>(C.ptr<T>(), A.ptr<T>(), B.ptr<T>(), d.batch, d.M, d.N, d.K, ta, tb, d.stride_a, d.stride_b,
                        d.M * d.N, accumulate);
    });
    return 0.0;
  }};
}

// matmulBackward(dA | null, dB | null, dC, A, B, { transA, transB }): dA += ..., dB += ...
Job prepare_matmul_backward(const Napi::CallbackInfo& info) {
  Args a(info, "matmulBackward");
  std::optional<Tensor> dA = a.optional_tensor(0, "dA"), dB = a.optional_tensor(1, "dB");
  Tensor dC = a.tensor(2, "dC"), A = a.tensor(3, "A"), B = a.tensor(4, "B");
  Napi::Object o = a.options(5, {"transA", "transB"});
  bool ta = a.option_bool(o, "transA", false), tb = a.option_bool(o, "transB", false);
  MatmulDims d = matmul_dims(a, A, B, ta, tb);
  a.expect_same_dtype(dC, "dC", A, "A");
  a.expect_shape(dC, "dC", d.c_shape());
  // A gradient is laid out like its operand and must not share memory with any input.
  auto check_grad = [&](const std::optional<Tensor>& g, const char* name, const Tensor& like) {
    if (!g) return;
    a.expect_same_dtype(*g, name, A, "A");
    a.expect_shape(*g, name, like.shape);
    a.expect_no_overlap(*g, name, dC, "dC");
    a.expect_no_overlap(*g, name, A, "A");
    a.expect_no_overlap(*g, name, B, "B");
  };
  check_grad(dA, "dA", A);
  check_grad(dB, "dB", B);
  if (dA && dB) a.expect_no_overlap(*dA, "dA", *dB, "dB");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(A.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::matmul_backward<T>(dA ? dA->ptr<T>() : nullptr, dB ? dB->ptr<T>() : nullptr, dC.ptr<T>(), A.ptr<T>(),
                         B.ptr<T>(), d.batch, d.M, d.N, d.K, ta, tb, d.stride_a, d.stride_b, d.M * d.N, stream);
    });
  });
  return {[=] {
    dispatch_float(A.dtype, [&](auto t) {
      using T = decltype(t);
      matmul_backward<T>(dA ? dA->ptr<T>() : nullptr, dB ? dB->ptr<T>() : nullptr, dC.ptr<T>(), A.ptr<T>(),
                         B.ptr<T>(), d.batch, d.M, d.N, d.K, ta, tb, d.stride_a, d.stride_b, d.M * d.N);
    });
    return 0.0;
  }};
}

}  // namespace

void register_matmul_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "matmul", prepare_matmul);
  export_op(env, exports, "matmulBackward", prepare_matmul_backward);
}

}  // namespace wavemoe
