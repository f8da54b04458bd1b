// crossEntropyForwardBackward: validation at the boundary, then csrc/kernels/cross_entropy.
#include <napi.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../kernels/cross_entropy.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/cross_entropy.h"
#endif

namespace wavemoe {
namespace {

constexpr int64_t kDefaultIgnoreIndex = -100;  // PyTorch's

std::string bad_target_message(int64_t i, int32_t value, int64_t V, int32_t ignore_index) {
  return "targets[" + std::to_string(i) + "] is " + std::to_string(value) + ", out of range [0, " + std::to_string(V) +
         ") and not the ignore index " + std::to_string(ignore_index);
}

// "" when every target is in [0, V) or the ignore index; else the first bad one.
std::string targets_problem(const Tensor& targets, int64_t V, int32_t ignore_index) {
  const HostInts host(targets);
  const int32_t* p = host.data();
  for (int64_t i = 0, n = targets.numel(); i < n; ++i) {
    if (p[i] != ignore_index && (p[i] < 0 || p[i] >= V)) return bad_target_message(i, p[i], V, ignore_index);
  }
  return "";
}

// dlogits may be the logits tensor itself (same memory, same shape), but must not partly overlap it.
void check_dlogits(const Args& a, const Tensor& dlogits, const Tensor& logits) {
  a.expect_same_dtype(dlogits, "dlogits", logits, "logits");
  a.expect_shape(dlogits, "dlogits", logits.shape);
  bool same = dlogits.storage == logits.storage && dlogits.offset == logits.offset;
  if (!same) a.expect_no_overlap(dlogits, "dlogits", logits, "logits");
}

// crossEntropyForwardBackward(dlogits | null, losses | null, logits, targets, { ignoreIndex?, gradScale? })
// logits (..., V), targets int32 (...), losses (...), dlogits like logits. Returns the mean loss.
Job prepare_cross_entropy(const Napi::CallbackInfo& info) {
  Args a(info, "crossEntropyForwardBackward");
  std::optional<Tensor> dlogits = a.optional_tensor(0, "dlogits");
  std::optional<Tensor> losses = a.optional_tensor(1, "losses");
  Tensor logits = a.tensor(2, "logits"), targets = a.tensor(3, "targets");
  Napi::Object o = a.options(4, {"ignoreIndex", "gradScale"});
  int32_t ignore_index = static_cast<int32_t>(a.option_integer(o, "ignoreIndex", kDefaultIgnoreIndex,
                                                               std::numeric_limits<int32_t>::min(),
                                                               std::numeric_limits<int32_t>::max()));
  double grad_scale = a.option_number(o, "gradScale", 1.0);

  a.expect_float(logits, "logits");
  a.expect_rank(logits, "logits", 1, 8);
  a.expect_dtype(targets, "targets", DType::i32);
  const int64_t V = logits.dim(-1);
  if (V < 1) a.fail_range("argument 'logits' must have a last dimension (the vocabulary) of at least 1");
  std::vector<int64_t> rows(logits.shape.begin(), logits.shape.end() - 1);
  a.expect_shape(targets, "targets", rows);
  if (dlogits) check_dlogits(a, *dlogits, logits);
  if (losses) {
    a.expect_same_dtype(*losses, "losses", logits, "logits");
    a.expect_shape(*losses, "losses", rows);
    a.expect_no_overlap(*losses, "losses", logits, "logits");
    if (dlogits) a.expect_no_overlap(*losses, "losses", *dlogits, "dlogits");
  }
  a.check_data([&] { return targets_problem(targets, V, ignore_index); });
  const int64_t N = targets.numel();
  // On a GPU the kernel checks the targets itself when recorded, and the mean loss stays on the device.
  WAVEMOE_GPU_NUMBER_JOB(a, [=, recorded = a.recording()](cudaStream_t stream, double* mean_loss) {
    unsigned long long* bad = gpu_index_check(
        recorded, targets.device(), N,
        [=](int64_t i, int32_t value) { return bad_target_message(i, value, V, ignore_index); },
        [&] { return targets_problem(targets, V, ignore_index); });
    dispatch_float(logits.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::cross_entropy_forward_backward<T>(dlogits ? dlogits->ptr<T>() : nullptr, losses ? losses->ptr<T>() : nullptr,
                                             mean_loss, logits.ptr<T>(), targets.ptr<int32_t>(), N, V, ignore_index,
                                             grad_scale, bad, stream);
    });
  });
  return {[=] {
            check_data_at_run_time(targets_problem(targets, V, ignore_index));
            return dispatch_float(logits.dtype, [&](auto t) {
              using T = decltype(t);
              return cross_entropy_forward_backward<T>(dlogits ? dlogits->ptr<T>() : nullptr,
                                                       losses ? losses->ptr<T>() : nullptr, logits.ptr<T>(),
                                                       targets.ptr<int32_t>(), N, V, ignore_index, grad_scale);
            });
          },
          true};
}

}  // namespace

void register_cross_entropy_ops(Napi::Env env, Napi::Object exports) {
  export_op(env, exports, "crossEntropyForwardBackward", prepare_cross_entropy);
}

}  // namespace wavemoe
