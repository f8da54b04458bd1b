// Token sampling for generation: sampleTokens(outIds, logits, opts). The kernel reports NaN / +Infinity logits and
// fully masked rows itself (it reads every logit anyway); everything else is checked here.
#include <napi.h>

#include <string>

#include "../kernels/sampling.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/sampling.h"
#endif
#include "tensor_wrap.h"

namespace wavemoe {
namespace {

constexpr int64_t kMaxSafeInteger = 9007199254740991LL;  // 2^53 - 1, the largest integer a JS number holds exactly

// A live Tensor under `key` of the options object, or nullopt if the key is absent (undefined or null).
std::optional<Tensor> option_tensor(const Args& a, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  TensorWrap* w = TensorWrap::Unwrap(v);
  if (w == nullptr) a.fail_type(std::string("option '") + key + "' must be a Tensor");
  if (w->disposed()) a.fail(std::string("option '") + key + "' is a disposed tensor");
  return w->tensor();
}

// history is (B, H) int32.
void check_history(const Args& a, const Tensor& history, int64_t B) {
  a.expect_dtype(history, "history", DType::i32);
  a.expect_rank(history, "history", 2, 2);
  if (history.dim(0) != B) {
    a.fail_range("option 'history' must have " + std::to_string(B) + " rows (one per logits row), got shape " +
                 history.shape_str());
  }
}

std::string history_message(int32_t id, int64_t row, int64_t column, int64_t V) {
  return "option 'history' holds token id " + std::to_string(id) + " at [" + std::to_string(row) + ", " +
         std::to_string(column) + "], outside [-1, " + std::to_string(V) + ") (-1 is padding)";
}

// "" when every history entry is in [-1, V); else the first bad one.
std::string history_problem(const Tensor& history, int64_t V) {
  const HostInts host(history);
  const int32_t* h = host.data();
  const int64_t H = history.dim(1);
  for (int64_t i = 0; i < history.numel(); ++i) {
    if (h[i] < -1 || h[i] >= V) return history_message(h[i], i / H, i % H, V);
  }
  return "";
}

// The numeric options; topK is checked against V.
SamplingParams read_params(const Args& a, const Napi::Object& o, int64_t V) {
  SamplingParams p;
  p.temperature = a.option_number(o, "temperature", 1);
  if (p.temperature < 0) {
    a.fail_range("option 'temperature' must be >= 0 (0 is greedy), got " + std::to_string(p.temperature));
  }
  p.top_k = a.option_integer(o, "topK", 0, 0, V);
  p.top_p = a.option_number(o, "topP", 1);
  if (!(p.top_p > 0 && p.top_p <= 1)) a.fail_range("option 'topP' must be in (0, 1], got " + std::to_string(p.top_p));
  p.repetition_penalty = a.option_number(o, "repetitionPenalty", 1);
  if (!(p.repetition_penalty > 0)) {
    a.fail_range("option 'repetitionPenalty' must be > 0, got " + std::to_string(p.repetition_penalty));
  }
  if (p.temperature > 0 && (o.Get("seed").IsUndefined() || o.Get("counter").IsUndefined())) {
    a.fail_type("options 'seed' and 'counter' are required when temperature > 0 (pass the generation step as counter)");
  }
  p.seed = static_cast<uint64_t>(a.option_integer(o, "seed", 0, 0, kMaxSafeInteger));
  p.counter = static_cast<uint64_t>(a.option_integer(o, "counter", 0, 0, kMaxSafeInteger));
  return p;
}

// sampleTokens(outIds, logits, opts): outIds (B) int32, logits (B, V) float; opts.history (B, H) int32,
// opts.probs (B, V) of logits' dtype.
Job prepare_sample_tokens(const Napi::CallbackInfo& info) {
  Args a(info, "sampleTokens");
  const Tensor out = a.tensor(0, "outIds"), logits = a.tensor(1, "logits");
  a.expect_float(logits, "logits");
  a.expect_rank(logits, "logits", 2, 2);
  const int64_t B = logits.dim(0), V = logits.dim(1);
  if (V < 1 || V > INT32_MAX) {
    a.fail_range("argument 'logits' must have between 1 and 2^31 - 1 columns (the vocabulary), got shape " +
                 logits.shape_str());
  }
  a.expect_dtype(out, "outIds", DType::i32);
  a.expect_shape(out, "outIds", {B});
  a.expect_no_overlap(out, "outIds", logits, "logits");
  const Napi::Object o =
      a.options(2, {"temperature", "topK", "topP", "repetitionPenalty", "history", "seed", "counter", "probs"});
  const SamplingParams p = read_params(a, o, V);
  const std::optional<Tensor> history = option_tensor(a, o, "history");
  if (history) {
    check_history(a, *history, B);
    a.check_data([&] { return history_problem(*history, V); });
    a.expect_no_overlap(out, "outIds", *history, "history");
  }
  const std::optional<Tensor> probs = option_tensor(a, o, "probs");
  if (probs) {
    a.expect_same_dtype(*probs, "probs", logits, "logits");
    a.expect_shape(*probs, "probs", {B, V});
    a.expect_no_overlap(*probs, "probs", logits, "logits");
    a.expect_no_overlap(*probs, "probs", out, "outIds");
    if (history) a.expect_no_overlap(*probs, "probs", *history, "history");
  }
  const int64_t H = history ? history->dim(1) : 0;
  // On a GPU the kernel reports a bad row (NaN, +Infinity, all -Infinity) in a status: read back at once for a
  // direct call (the sampled ids are read right after anyway), or, in a recorded run, put in check words of the run
  // with any history id out of range (gpu_job.h), so that a generation step waits only where its tokens are read.
  WAVEMOE_GPU_JOB(a, [=, recorded = a.recording()](cudaStream_t stream) {
    const DeviceRef d = logits.device();
    const bool deferred = recorded && DeviceRun::current() != nullptr && 4 * B < kMaxCheckedIndex;
    unsigned long long* bad_history =
        history ? gpu_index_check(
                      recorded, d, history->numel(),
                      [H, V](int64_t i, int32_t id) { return history_message(id, i / H, i % H, V); },
                      [&] { return history_problem(*history, V); })
                : nullptr;
    unsigned long long* bad_row =
        deferred ? gpu_index_check(true, d, 4 * B, gpu::sampling_fault_message, [] { return std::string(); }) : nullptr;
    gpu::DeviceBuffer<gpu::SamplingStatus> status(deferred ? static_cast<size_t>(B) : 0);
    dispatch_float(logits.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::sample_tokens<T>(out.ptr<int32_t>(), probs ? probs->ptr<T>() : nullptr, logits.ptr<T>(),
                            history ? history->ptr<int32_t>() : nullptr, p, B, V, H, stream,
                            deferred ? status.get() : nullptr);
    });
    if (bad_row || bad_history) {
      gpu::report_sampling_problems(deferred ? status.get() : nullptr, B, history ? history->ptr<int32_t>() : nullptr,
                                    H, V, bad_row, bad_history, stream);
    }
  });
  return {[=] {
    if (history) check_data_at_run_time(history_problem(*history, V));
    dispatch_float(logits.dtype, [&](auto t) {
      using T = decltype(t);
      sample_tokens<T>(out.ptr<int32_t>(), probs ? probs->ptr<T>() : nullptr, logits.ptr<T>(),
                       history ? history->ptr<int32_t>() : nullptr, p, B, V, H);
    });
    return 0.0;
  }};
}

}  // namespace

void register_sampling_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "sampleTokens", prepare_sample_tokens);
}

}  // namespace wavemoe
