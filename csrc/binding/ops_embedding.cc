// embeddingForward / embeddingBackward: validation at the boundary, then csrc/kernels/embedding.
#include <napi.h>

#include <string>
#include <vector>

#include "../kernels/embedding.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/embedding.h"
#endif

namespace wavemoe {
namespace {

// "[1, 2] (flat index 5)" for a multi-dimensional tensor, "5" for a vector.
std::string position_str(const std::vector<int64_t>& shape, int64_t flat) {
  if (shape.size() <= 1) return std::to_string(flat);
  std::vector<int64_t> idx(shape.size());
  int64_t rest = flat;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = rest % shape[d];
    rest /= shape[d];
  }
  return Tensor::shape_to_string(idx) + " (flat index " + std::to_string(flat) + ")";
}

std::string bad_id_message(const std::vector<int64_t>& shape, int64_t i, int32_t value, int64_t V) {
  return "ids at " + position_str(shape, i) + " is " + std::to_string(value) + ", out of range [0, " +
         std::to_string(V) + ") for a table of " + std::to_string(V) + " rows";
}

// "" when every id is in [0, V); else the first bad one and where it is.
std::string ids_problem(const Tensor& ids, int64_t V) {
  const HostInts host(ids);
  const int32_t* p = host.data();
  for (int64_t i = 0, n = ids.numel(); i < n; ++i) {
    if (p[i] < 0 || p[i] >= V) return bad_id_message(ids.shape, i, p[i], V);
  }
  return "";
}

#ifdef WAVEMOE_CUDA
// The check word of a recorded GPU job (nullptr for a direct call, checked when prepared): gpu_job.h.
unsigned long long* ids_check(bool recorded, const Tensor& ids, int64_t V) {
  return gpu_index_check(
      recorded, ids.device(), ids.numel(),
      [shape = ids.shape, V](int64_t i, int32_t value) { return bad_id_message(shape, i, value, V); },
      [&] { return ids_problem(ids, V); });
}
#endif

// ids.shape + [C]
std::vector<int64_t> rows_shape(const Tensor& ids, int64_t C) {
  std::vector<int64_t> s = ids.shape;
  s.push_back(C);
  return s;
}

// embeddingForward(out, ids, table): ids int32 of any shape S, table (V, C), out S + [C].
Job prepare_embedding_forward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingForward");
  Tensor out = a.tensor(0, "out"), ids = a.tensor(1, "ids"), table = a.tensor(2, "table");
  a.expect_dtype(ids, "ids", DType::i32);
  a.expect_float(table, "table");
  a.expect_rank(table, "table", 2, 2);
  a.expect_same_dtype(out, "out", table, "table");
  int64_t V = table.dim(0), C = table.dim(1);
  a.expect_shape(out, "out", rows_shape(ids, C));
  a.expect_no_overlap(out, "out", table, "table");
  a.check_data([&] { return ids_problem(ids, V); });
  WAVEMOE_GPU_JOB(a, [=, recorded = a.recording()](cudaStream_t stream) {
    unsigned long long* bad = ids_check(recorded, ids, V);
    dispatch_float(table.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::embedding_forward<T>(out.ptr<T>(), ids.ptr<int32_t>(), table.ptr<T>(), ids.numel(), C, V, bad, stream);
    });
  });
  return {[=] {
    check_data_at_run_time(ids_problem(ids, V));
    dispatch_float(table.dtype, [&](auto t) {
      using T = decltype(t);
      embedding_forward<T>(out.ptr<T>(), ids.ptr<int32_t>(), table.ptr<T>(), ids.numel(), C);
    });
    return 0.0;
  }};
}

// embeddingBackward(dtable, dout, ids): dtable (V, C) += scatter of dout (S + [C]) at ids (S).
Job prepare_embedding_backward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingBackward");
  Tensor dtable = a.tensor(0, "dtable"), dout = a.tensor(1, "dout"), ids = a.tensor(2, "ids");
  a.expect_float(dtable, "dtable");
  a.expect_rank(dtable, "dtable", 2, 2);
  a.expect_same_dtype(dout, "dout", dtable, "dtable");
  a.expect_dtype(ids, "ids", DType::i32);
  int64_t V = dtable.dim(0), C = dtable.dim(1);
  a.expect_shape(dout, "dout", rows_shape(ids, C));
  a.expect_no_overlap(dtable, "dtable", dout, "dout");
  a.check_data([&] { return ids_problem(ids, V); });
  WAVEMOE_GPU_JOB(a, [=, recorded = a.recording()](cudaStream_t stream) {
    unsigned long long* bad = ids_check(recorded, ids, V);
    dispatch_float(dtable.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::embedding_backward<T>(dtable.ptr<T>(), dout.ptr<T>(), ids.ptr<int32_t>(), ids.numel(), C, V, bad,
                                 stream);
    });
  });
  return {[=] {
    check_data_at_run_time(ids_problem(ids, V));
    dispatch_float(dtable.dtype, [&](auto t) {
      using T = decltype(t);
      embedding_backward<T>(dtable.ptr<T>(), dout.ptr<T>(), ids.ptr<int32_t>(), ids.numel(), C);
    });
    return 0.0;
  }};
}

}  // namespace

void register_embedding_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "embeddingForward", prepare_embedding_forward);
  export_op(env, exports, "embeddingBackward", prepare_embedding_backward);
}

}  // namespace wavemoe
