// GPU jobs for the ops: in the CUDA-enabled addon an op whose tensors are on a GPU returns a Job that launches the
// kernels of cuda/ on that device's stream instead of running the CPU kernels. In the CPU-only build the macro
// expands to nothing, so the CUDA names in its argument are never compiled.
//
//   WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) { gpu::rmsnorm_forward<T>(..., stream); });
//   return {cpu job};
//
// An op with a number result (a loss, a norm) uses WAVEMOE_GPU_NUMBER_JOB, whose launch also receives the device
// double to write the number to:
//
//   WAVEMOE_GPU_NUMBER_JOB(a, [=](cudaStream_t stream, double* result) { gpu::clip_grad_norm<T>(result, ...); });
//
// Kernels are queued, not waited for: the promise of an async op resolves when its kernels are queued, and the
// next op queues after them on the same stream. Inside a recorded run (runAsync) numbers and index checks are read
// back once, at the run's end (csrc/core/device_run.h); an op called directly reads its number at once (a wait).
#pragma once
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include <cuda_runtime_api.h>

#include <functional>
#include <limits>
#include <string>

#include "../../cuda/allocator.h"
#include "../../cuda/backend.h"
#include "../core/device_run.h"
#include "args.h"

namespace wavemoe {

// A Job that runs launch(stream) on device `d` (whichever thread runs it).
template <typename F> Job gpu_job(const DeviceRef& d, F launch) {
  Job job;
  job.on_device = true;
  const int index = d.index;
  job.run = [index, launch]() -> double {
    gpu::use_device(index);
    launch(gpu::stream(index));
    return 0.0;
  };
  return job;
}

// A Job whose launch(stream, double* result) queues kernels that write the op's number to the device double
// `result`: a word of the recorded run (read back at its end; the job's return value is then a placeholder), or,
// for a direct call, scratch read back at once.
template <typename F> Job gpu_number_job(const DeviceRef& d, F launch) {
  Job job;
  job.on_device = true;
  job.returns_number = true;
  job.run = [d, launch]() -> double {
    gpu::use_device(d.index);
    cudaStream_t stream = gpu::stream(d.index);
    if (DeviceRun* run = DeviceRun::current()) {
      launch(stream, run->number(d));
      return std::numeric_limits<double>::quiet_NaN();
    }
    gpu::DeviceBuffer<double> result(1);
    launch(stream, result.get());
    double host = 0;
    usable_backend(d).copy_to_host(&host, result.get(), sizeof(double), d.index);  // the wait
    return host;
  };
  return job;
}

// Where a GPU job's kernel reports an index out of range (cuda/common.cuh report_bad_index). A direct call checked
// its indices on the host when it was prepared (Args::check_data): nullptr. A recorded one gets a check word of the
// run, read at its end, so the run does not wait here; an index tensor too large for the word's encoding is checked
// on the host now (a wait). describe(index, value) names the problem, as the host check would.
inline unsigned long long* gpu_index_check(bool recorded, const DeviceRef& d, int64_t count,
                                           DeviceRun::Describe describe,
                                           const std::function<std::string()>& host_problem) {
  if (!recorded) return nullptr;
  DeviceRun* run = DeviceRun::current();
  if (run != nullptr && count < kMaxCheckedIndex) {
    return reinterpret_cast<unsigned long long*>(run->index_check(d, std::move(describe)));
  }
  check_data_at_run_time(host_problem());
  return nullptr;
}

}  // namespace wavemoe

// Returns a GPU job from the enclosing prepare function when the op's tensors (Args `a`) are on a GPU.
#define WAVEMOE_GPU_JOB(a, ...) \
  if (!(a).device().is_cpu()) return ::wavemoe::gpu_job((a).device(), __VA_ARGS__)
#define WAVEMOE_GPU_NUMBER_JOB(a, ...) \
  if (!(a).device().is_cpu()) return ::wavemoe::gpu_number_job((a).device(), __VA_ARGS__)

#else
#define WAVEMOE_GPU_JOB(a, ...) ((void)0)
#define WAVEMOE_GPU_NUMBER_JOB(a, ...) ((void)0)
#endif
