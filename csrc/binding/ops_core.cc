// Process settings and introspection (threads, ISA, allocation counters) and the random fills.
#include <napi.h>

#include "../core/cpu_features.h"
#include "../core/error.h"
#include "../core/storage.h"
#include "../core/thread_pool.h"
#include "../kernels/matmul_precision.h"
#include "../kernels/random.h"
#include "args.h"
#include "gpu_job.h"
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include "../../cuda/random.h"
#endif

namespace wavemoe {
namespace {

// randomUniform(out, seed, lo, hi)
Job prepare_random_uniform(const Napi::CallbackInfo& info) {
  Args a(info, "randomUniform");
  Tensor out = a.tensor(0, "out");
  a.expect_float(out, "out");
  int64_t seed = a.integer(1, "seed", 0, 9007199254740991LL);
  double lo = a.number(2, "lo"), hi = a.number(3, "hi");
  if (!(lo < hi)) a.fail_range("'lo' must be less than 'hi'");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(out.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::random_uniform<T>(out.ptr<T>(), out.numel(), static_cast<uint64_t>(seed), lo, hi, stream);
    });
  });
  return {[=] {
    dispatch_float(out.dtype, [&](auto t) {
      using T = decltype(t);
      random_uniform<T>(out.ptr<T>(), out.numel(), static_cast<uint64_t>(seed), lo, hi);
    });
    return 0.0;
  }};
}

// randomNormal(out, seed, mean, std)
Job prepare_random_normal(const Napi::CallbackInfo& info) {
  Args a(info, "randomNormal");
  Tensor out = a.tensor(0, "out");
  a.expect_float(out, "out");
  int64_t seed = a.integer(1, "seed", 0, 9007199254740991LL);
  double mean = a.number(2, "mean"), std = a.number(3, "std");
  if (std < 0) a.fail_range("'std' must be >= 0");
  WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) {
    dispatch_float(out.dtype, [&](auto t) {
      using T = decltype(t);
      gpu::random_normal<T>(out.ptr<T>(), out.numel(), static_cast<uint64_t>(seed), mean, std, stream);
    });
  });
  return {[=] {
    dispatch_float(out.dtype, [&](auto t) {
      using T = decltype(t);
      random_normal<T>(out.ptr<T>(), out.numel(), static_cast<uint64_t>(seed), mean, std);
    });
    return 0.0;
  }};
}

}  // namespace

void register_core_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("numThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return Napi::Number::New(info.Env(), num_threads());
              }));
  exports.Set("setNumThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                Args a(info, "setNumThreads");
                set_num_threads(static_cast<int>(a.integer(0, "threads", 1, 1024)));
                return info.Env().Undefined();
              }));
  exports.Set("isa", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return Napi::String::New(info.Env(), isa_name(current_isa()));
              }));
  exports.Set("defaultIsa", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return Napi::String::New(info.Env(), isa_name(default_isa()));
              }));
  exports.Set("isaSupported", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                Args a(info, "isaSupported");
                if (info.Length() < 1 || !info[0].IsString()) a.fail_type("argument 'isa' must be a string");
                try {
                  return Napi::Boolean::New(info.Env(), isa_supported(isa_from_name(info[0].As<Napi::String>())));
                } catch (const Error& e) {
                  a.fail_range(e.what());
                }
              }));
  exports.Set("setIsa", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                Args a(info, "setIsa");
                if (info.Length() < 1 || !info[0].IsString()) a.fail_type("argument 'isa' must be a string");
                try {
                  set_isa(isa_from_name(info[0].As<Napi::String>()));
                } catch (const Error& e) {
                  a.fail_range(e.what());
                }
                return info.Env().Undefined();
              }));
  exports.Set("setMatmulPrecision", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                Args a(info, "setMatmulPrecision");
                const std::string p = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
                if (p == "fp32") set_matmul_precision(MatmulPrecision::fp32);
                else if (p == "tf32") set_matmul_precision(MatmulPrecision::tf32);
                else if (p == "bf16") set_matmul_precision(MatmulPrecision::bf16);
                else a.fail_type("argument 'precision' must be 'fp32', 'tf32' or 'bf16'");
                return info.Env().Undefined();
              }));
  exports.Set("matmulPrecision", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return Napi::String::New(info.Env(), matmul_precision_name(matmul_precision()));
              }));
  exports.Set("allocStats", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                AllocStats s = alloc_stats();
                Napi::Object o = Napi::Object::New(info.Env());
                o.Set("liveBytes", static_cast<double>(s.live_bytes));
                o.Set("liveAllocations", static_cast<double>(s.live_allocations));
                o.Set("peakBytes", static_cast<double>(s.peak_bytes));
                o.Set("totalAllocations", static_cast<double>(s.total_allocations));
                return o;
              }));
  export_op(env, exports, "randomUniform", prepare_random_uniform);
  export_op(env, exports, "randomNormal", prepare_random_normal);
}

}  // namespace wavemoe
