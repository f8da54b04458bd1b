// How an op is exported. An op's "prepare" function validates its JS arguments and returns a Job: a closure over
// plain pointers and sizes that holds its tensors' storage alive. export_op() defines two functions from it:
//   name(...)       runs the job now, on the calling thread (small calls; returns undefined or a number)
//   nameAsync(...)  runs it on the libuv thread pool and returns a Promise, so the event loop stays free
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/storage.h"

namespace wavemoe {

struct Job {
  std::function<double()> run;   // returns the op's scalar result, if it has one
  bool returns_number = false;  // false: the JS call returns undefined
  bool on_device = false;       // run launches GPU kernels (gpu_job.h); false: CPU kernels, CPU tensors only
};

// Refuses a CPU job whose tensors are on a GPU (an op without a GPU kernel yet): the CPU kernel must never see
// device pointers. export_op calls it after every prepare.
void expect_job_device(const std::string& op, const Job& job, const std::vector<std::shared_ptr<Storage>>& used);

using PrepareFn = Job (*)(const Napi::CallbackInfo& info);

void export_op(Napi::Env env, Napi::Object exports, const char* name, PrepareFn prepare);

// One registration function per op family (csrc/binding/ops_<family>.cc); addon.cc calls them all.
void register_core_ops(Napi::Env env, Napi::Object exports);
void register_elementwise_ops(Napi::Env env, Napi::Object exports);
void register_matmul_ops(Napi::Env env, Napi::Object exports);
void register_embedding_ops(Napi::Env env, Napi::Object exports);
void register_norm_ops(Napi::Env env, Napi::Object exports);
void register_activation_ops(Napi::Env env, Napi::Object exports);
void register_softmax_ops(Napi::Env env, Napi::Object exports);
void register_rope_ops(Napi::Env env, Napi::Object exports);
void register_cross_entropy_ops(Napi::Env env, Napi::Object exports);
void register_optimizer_ops(Napi::Env env, Napi::Object exports);
void register_attention_ops(Napi::Env env, Napi::Object exports);
void register_moe_ops(Napi::Env env, Napi::Object exports);
void register_wavelet_ops(Napi::Env env, Napi::Object exports);
void register_sampling_ops(Napi::Env env, Napi::Object exports);
void register_cuda_info(Napi::Env env, Napi::Object exports);  // cuda_info.cc

}  // namespace wavemoe
