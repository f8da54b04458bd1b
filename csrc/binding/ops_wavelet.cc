// The wavelet token embedding ops: Haar DWT, complex Morlet CWT, the table builder, the linear map W, and the
// embedding's raw mode (forward and backward). The table modes use embeddingForward/Backward (ops_embedding.cc).
// Kernels: csrc/kernels/wavelet.h.
#include <napi.h>

#include <cmath>
#include <string>
#include <vector>

#include "../kernels/wavelet.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/wavelet.h"
#include "../../cuda/wavelet_analysis.h"
#endif

namespace wavemoe {
namespace {

constexpr int64_t kMaxScales = 1024;

// n >= 1 and 2^levels <= n: the deepest decomposition PyWavelets computes without its "level too high" warning.
void check_levels(const Args& a, int64_t n, int levels, const char* what) {
  if (n < 1) a.fail_range(std::string(what) + " must have length >= 1");
  if (levels > 62 || (int64_t{1} << levels) > n) {
    a.fail_range("levels " + std::to_string(levels) + " is too many for " + what + " of length " + std::to_string(n) +
                 " (needs 2^levels <= length)");
  }
}

// `scales`: a number or a non-empty array of numbers, each in (0, kMaxCwtScale] and not too small for pywt.
std::vector<double> parse_scales(const Args& a, const Napi::Object& o) {
  Napi::Value v = o.Get("scales");
  std::vector<double> scales;
  if (v.IsUndefined()) return {2.0};
  if (v.IsNumber()) {
    scales.push_back(v.As<Napi::Number>().DoubleValue());
  } else if (v.IsArray()) {
    Napi::Array arr = v.As<Napi::Array>();
    if (arr.Length() == 0 || arr.Length() > kMaxScales) {
      a.fail_range("option 'scales' must hold 1 to " + std::to_string(kMaxScales) + " scales");
    }
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value s = arr.Get(i);
      if (!s.IsNumber()) a.fail_type("option 'scales' must hold numbers only");
      scales.push_back(s.As<Napi::Number>().DoubleValue());
    }
  } else {
    a.fail_type("option 'scales' must be a number or an array of numbers");
  }
  for (double s : scales) {
    if (!(s > 0 && s <= kMaxCwtScale)) {
      a.fail_range("every scale must be positive, finite and at most " + std::to_string(kMaxCwtScale) + ", got " +
                   std::to_string(s));
    }
    if (cwt_filter_length(s) < 2) {
      a.fail_range("scale " + std::to_string(s) + " is too small: the sampled wavelet has fewer than 2 taps "
                   "(PyWavelets raises 'Selected scale too small')");
    }
  }
  return scales;
}

CmorSpec parse_cmor(const Args& a, const Napi::Object& o) {
  CmorSpec spec;
  spec.bandwidth = a.option_number(o, "bandwidth", spec.bandwidth);
  spec.center = a.option_number(o, "center", spec.center);
  // B and C act as float32 values (cmor_parameter): they must stay positive and finite after that rounding.
  if (!(cmor_parameter(spec.bandwidth) > 0) || !std::isfinite(cmor_parameter(spec.bandwidth))) {
    a.fail_range("option 'bandwidth' must be positive (and a finite float32), got " + std::to_string(spec.bandwidth));
  }
  if (!std::isfinite(cmor_parameter(spec.center))) {
    a.fail_range("option 'center' must be a finite float32, got " + std::to_string(spec.center));
  }
  return spec;
}

WaveletSpec parse_wavelet_spec(const Args& a, size_t i) {
  Napi::Object o = a.options(i, {"levels", "scales", "bandwidth", "center"});
  WaveletSpec spec;
  spec.levels = static_cast<int>(a.option_integer(o, "levels", spec.levels, 0, 62));
  spec.cmor = parse_cmor(a, o);
  spec.scales = parse_scales(a, o);
  return spec;
}

// A float tensor of rank 1 or 2 holding signals along its last dimension; returns (rows, length).
std::pair<int64_t, int64_t> signal_rows(const Args& a, const Tensor& x, const char* name) {
  a.expect_float(x, name);
  a.expect_rank(x, name, 1, 2);
  return {x.rank() == 2 ? x.dim(0) : 1, x.dim(-1)};
}

// The shape of x with its last dimension replaced by `tail`.
std::vector<int64_t> replace_last(const Tensor& x, std::initializer_list<int64_t> tail) {
  std::vector<int64_t> s(x.shape.begin(), x.shape.end() - 1);
  s.insert(s.end(), tail);
  return s;
}

std::string bad_id_message(int64_t i, int32_t value, int64_t V) {
  return "ids[" + std::to_string(i) + "] = " + std::to_string(value) + " is out of range [0, " + std::to_string(V) + ")";
}

// "" when every id is in [0, V); else the first bad one.
std::string ids_problem(const Tensor& ids, int64_t V) {
  const HostInts host(ids);
  const int32_t* p = host.data();
  for (int64_t i = 0, n = ids.numel(); i < n; ++i) {
    if (p[i] < 0 || p[i] >= V) return bad_id_message(i, p[i], V);
  }
  return "";
}

#ifdef WAVEMOE_CUDA
// The check word of a recorded GPU job (nullptr for a direct call, checked when prepared): gpu_job.h.
unsigned long long* ids_check(bool recorded, const Tensor& ids, int64_t V) {
  return gpu_index_check(
      recorded, ids.device(), ids.numel(), [V](int64_t i, int32_t value) { return bad_id_message(i, value, V); },
      [&] { return ids_problem(ids, V); });
}
#endif

// ids: int32 of any shape with every value in [0, V) (checked now, or when the Job runs if recorded). Returns the
// element count.
int64_t check_ids(const Args& a, const Tensor& ids, int64_t V) {
  a.expect_dtype(ids, "ids", DType::i32);
  a.check_data([&] { return ids_problem(ids, V); });
  return ids.numel();
}

std::vector<int64_t> with_channels(const Tensor& ids, int64_t C) {
  std::vector<int64_t> s = ids.shape;
  s.push_back(C);
  return s;
}

// waveletHaarForward(out, x, levels): x (..., N), out (..., L)
Job prepare_haar_forward(const Napi::CallbackInfo& info) {
  Args a(info, "waveletHaarForward");
  Tensor out = a.tensor(0, "out"), x = a.tensor(1, "x");
  auto [rows, n] = signal_rows(a, x, "x");
  int levels = static_cast<int>(a.integer(2, "levels", 0, 62));
  check_levels(a, n, levels, "a signal");
  a.expect_same_dtype(out, "out", x, "x");
  a.expect_shape(out, "out", replace_last(x, {haar_output_length(n, levels)}));
  a.expect_no_overlap(out, "out", x, "x");
  WAVEMOE_GPU_JOB(a, [=, rows = rows, n = n](cudaStream_t stream) {
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::haar_forward<T>(out.ptr<T>(), x.ptr<T>(), rows, n, levels, stream);
    });
  });
  return {[=, rows = rows, n = n] {  // structured bindings are captured by name only from C++20 (clang 14)
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      haar_forward<T>(out.ptr<T>(), x.ptr<T>(), rows, n, levels);
    });
    return 0.0;
  }};
}

// waveletCwtForward(out, x, {scales, bandwidth, center}): x (..., N), out (..., S, 2N)
Job prepare_cwt_forward(const Napi::CallbackInfo& info) {
  Args a(info, "waveletCwtForward");
  Tensor out = a.tensor(0, "out"), x = a.tensor(1, "x");
  auto [rows, n] = signal_rows(a, x, "x");
  Napi::Object o = a.options(2, {"scales", "bandwidth", "center"});
  CmorSpec spec = parse_cmor(a, o);
  std::vector<double> scales = parse_scales(a, o);
  if (n < 1) a.fail_range("the signals in 'x' must have length >= 1");
  const int64_t S = static_cast<int64_t>(scales.size());
  a.expect_same_dtype(out, "out", x, "x");
  a.expect_shape(out, "out", replace_last(x, {S, 2 * n}));
  a.expect_no_overlap(out, "out", x, "x");
  WAVEMOE_GPU_JOB(a, [=, rows = rows, n = n](cudaStream_t stream) {
    const CwtPlan plan = cwt_plan(spec, scales.data(), S, n);  // taps on the host, in double; copied by the kernel
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::cwt_forward<T>(out.ptr<T>(), x.ptr<T>(), plan, rows, stream);
    });
  });
  return {[=, rows = rows, n = n] {  // structured bindings are captured by name only from C++20 (clang 14)
    const CwtPlan plan = cwt_plan(spec, scales.data(), S, n);
    dispatch_float(x.dtype, [&](auto t) {
      using T = decltype(t);
      cwt_forward<T>(out.ptr<T>(), x.ptr<T>(), plan, rows);
    });
    return 0.0;
  }};
}

// waveletTableForward(table, raw, opts): raw (V, R), table (V, C)
Job prepare_table_forward(const Napi::CallbackInfo& info) {
  Args a(info, "waveletTableForward");
  Tensor table = a.tensor(0, "table"), raw = a.tensor(1, "raw");
  WaveletSpec spec = parse_wavelet_spec(a, 2);
  a.expect_float(raw, "raw");
  a.expect_rank(raw, "raw", 2, 2);
  const int64_t V = raw.dim(0), R = raw.dim(1);
  check_levels(a, R, spec.levels, "raw rows");
  a.expect_same_dtype(table, "table", raw, "raw");
  a.expect_shape(table, "table", {V, wavelet_channels(R, spec)});
  a.expect_no_overlap(table, "table", raw, "raw");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(raw.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::wavelet_table_forward<T>(table.ptr<T>(), raw.ptr<T>(), V, R, spec, stream);
    });
  });
  return {[=] {
    dispatch_float(raw.dtype, [&](auto t) {
      using T = decltype(t);
      wavelet_table_forward<T>(table.ptr<T>(), raw.ptr<T>(), V, R, spec);
    });
    return 0.0;
  }};
}

// waveletMatrix(W, opts): W (R, C)
Job prepare_matrix(const Napi::CallbackInfo& info) {
  Args a(info, "waveletMatrix");
  Tensor W = a.tensor(0, "W");
  WaveletSpec spec = parse_wavelet_spec(a, 1);
  a.expect_float(W, "W");
  a.expect_rank(W, "W", 2, 2);
  const int64_t R = W.dim(0);
  check_levels(a, R, spec.levels, "raw rows");
  a.expect_shape(W, "W", {R, wavelet_channels(R, spec)});
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(W.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::wavelet_matrix<T>(W.ptr<T>(), R, spec, stream);
    });
  });
  return {[=] {
    dispatch_float(W.dtype, [&](auto t) {
      using T = decltype(t);
      wavelet_matrix<T>(W.ptr<T>(), R, spec);
    });
    return 0.0;
  }};
}

// raw (V, R) and W (R, C) of one float dtype; returns {V, R, C}.
std::vector<int64_t> check_raw_and_matrix(const Args& a, const Tensor& raw, const char* raw_name, const Tensor& W) {
  a.expect_float(raw, raw_name);
  a.expect_rank(raw, raw_name, 2, 2);
  a.expect_same_dtype(W, "W", raw, raw_name);
  a.expect_rank(W, "W", 2, 2);
  if (W.dim(0) != raw.dim(1)) {
    a.fail_range(std::string("argument 'W' must have ") + std::to_string(raw.dim(1)) + " rows (the width of '" +
                 raw_name + "'), got shape " + W.shape_str());
  }
  return {raw.dim(0), raw.dim(1), W.dim(1)};
}

// waveletEmbeddingRawForward(out, ids, raw, W): ids S, raw (V, R), W (R, C), out S + [C]
Job prepare_raw_forward(const Napi::CallbackInfo& info) {
  Args a(info, "waveletEmbeddingRawForward");
  Tensor out = a.tensor(0, "out"), ids = a.tensor(1, "ids"), raw = a.tensor(2, "raw"), W = a.tensor(3, "W");
  std::vector<int64_t> vrc = check_raw_and_matrix(a, raw, "raw", W);
  const int64_t R = vrc[1], C = vrc[2];
  const int64_t N = check_ids(a, ids, vrc[0]);
  a.expect_same_dtype(out, "out", raw, "raw");
  a.expect_shape(out, "out", with_channels(ids, C));
  a.expect_no_overlap(out, "out", raw, "raw");
  a.expect_no_overlap(out, "out", W, "W");
  const int64_t V = vrc[0];
  WAVEMOE_GPU_JOB(a, [=, recorded = a.recording()](cudaStream_t stream) {
    unsigned long long* bad = ids_check(recorded, ids, V);
    dispatch_float(raw.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::wavelet_embedding_raw_forward<T>(out.ptr<T>(), ids.ptr<int32_t>(), raw.ptr<T>(), W.ptr<T>(), N, V, R, C, bad,
                                            stream);
    });
  });
  return {[=] {
    check_data_at_run_time(ids_problem(ids, V));
    dispatch_float(raw.dtype, [&](auto t) {
      using T = decltype(t);
      wavelet_embedding_raw_forward<T>(out.ptr<T>(), ids.ptr<int32_t>(), raw.ptr<T>(), W.ptr<T>(), N, R, C);
    });
    return 0.0;
  }};
}

// waveletEmbeddingRawBackward(draw, dout, ids, W): draw (V, R) +=, dout S + [C], ids S, W (R, C)
Job prepare_raw_backward(const Napi::CallbackInfo& info) {
  Args a(info, "waveletEmbeddingRawBackward");
  Tensor draw = a.tensor(0, "draw"), dout = a.tensor(1, "dout"), ids = a.tensor(2, "ids"), W = a.tensor(3, "W");
  std::vector<int64_t> vrc = check_raw_and_matrix(a, draw, "draw", W);
  const int64_t R = vrc[1], C = vrc[2];
  const int64_t N = check_ids(a, ids, vrc[0]);
  a.expect_same_dtype(dout, "dout", draw, "draw");
  a.expect_shape(dout, "dout", with_channels(ids, C));
  a.expect_no_overlap(draw, "draw", dout, "dout");
  a.expect_no_overlap(draw, "draw", W, "W");
  const int64_t V = vrc[0];
  WAVEMOE_GPU_JOB(a, [=, recorded = a.recording()](cudaStream_t stream) {
    unsigned long long* bad = ids_check(recorded, ids, V);
    dispatch_float(draw.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::wavelet_embedding_raw_backward<T>(draw.ptr<T>(), dout.ptr<T>(), ids.ptr<int32_t>(), W.ptr<T>(), N, V, R, C,
                                             bad, stream);
    });
  });
  return {[=] {
    check_data_at_run_time(ids_problem(ids, V));
    dispatch_float(draw.dtype, [&](auto t) {
      using T = decltype(t);
      wavelet_embedding_raw_backward<T>(draw.ptr<T>(), dout.ptr<T>(), ids.ptr<int32_t>(), W.ptr<T>(), N, R, C);
    });
    return 0.0;
  }};
}

}  // namespace

void register_wavelet_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "waveletHaarForward", prepare_haar_forward);
  export_op(env, exports, "waveletCwtForward", prepare_cwt_forward);
  export_op(env, exports, "waveletTableForward", prepare_table_forward);
  export_op(env, exports, "waveletMatrix", prepare_matrix);
  export_op(env, exports, "waveletEmbeddingRawForward", prepare_raw_forward);
  export_op(env, exports, "waveletEmbeddingRawBackward", prepare_raw_backward);
}

}  // namespace wavemoe
