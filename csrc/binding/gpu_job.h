// GPU jobs for the ops: in the CUDA-enabled addon an op whose tensors are on a GPU returns a Job that launches the
// kernels of cuda/ on that device's stream instead of running the CPU kernels. In the CPU-only build the macro
// expands to nothing, so the CUDA names in its argument are never compiled.
//
//   WAVEMOE_GPU_JOB(a, [=](cudaStream_t stream) { gpu::rmsnorm_forward<T>(..., stream); });
//   return {cpu job};
//
// Kernels are queued, not waited for: the promise of an async op resolves when its kernels are queued, and the
// next op queues after them on the same stream. Reading data back (Tensor.toArray, a scalar result) waits.
#pragma once
#include "ops.h"

#ifdef WAVEMOE_CUDA
#include <cuda_runtime_api.h>

#include "../../cuda/backend.h"

namespace wavemoe {

// A Job that runs launch(stream) on device `d` (whichever thread runs it) and returns launch's result, if any.
template <typename F> Job gpu_job(const DeviceRef& d, F launch, bool returns_number = false) {
  Job job;
  job.on_device = true;
  job.returns_number = returns_number;
  const int index = d.index;
  job.run = [index, launch]() -> double {
    gpu::use_device(index);
    if constexpr (std::is_void_v<decltype(launch(cudaStream_t{}))>) {
      launch(gpu::stream(index));
      return 0.0;
    } else {
      return static_cast<double>(launch(gpu::stream(index)));
    }
  };
  return job;
}

}  // namespace wavemoe

// Returns a GPU job from the enclosing prepare function when the op's tensors (Args `a`) are on a GPU.
#define WAVEMOE_GPU_JOB(a, ...) \
  if (!(a).device().is_cpu()) return ::wavemoe::gpu_job((a).device(), __VA_ARGS__)
#define WAVEMOE_GPU_NUMBER_JOB(a, ...) \
  if (!(a).device().is_cpu()) return ::wavemoe::gpu_job((a).device(), __VA_ARGS__, true)

#else
#define WAVEMOE_GPU_JOB(a, ...) ((void)0)
#define WAVEMOE_GPU_NUMBER_JOB(a, ...) ((void)0)
#endif
