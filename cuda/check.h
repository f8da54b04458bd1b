// Error checking for every CUDA runtime call and kernel launch: a failure throws std::runtime_error naming the
// operation, the file:line and the CUDA error, so that the binding can turn it into a JS error (never a crash).
//
//   WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(...));       // any call returning cudaError_t
//   kernel<<<grid, block, 0, stream>>>(...);
//   WAVEMOE_CUDA_CHECK_LAUNCH("rmsnorm_forward");   // cudaGetLastError() after a launch
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace wavemoe {
namespace gpu {

// A hint for the two errors a user without a working GPU meets first.
inline const char* cuda_error_hint(cudaError_t err) {
  switch (err) {
    case cudaErrorInsufficientDriver:
      return " (no NVIDIA driver, or one older than this CUDA runtime: install or update the driver)";
    case cudaErrorNoDevice: return " (no CUDA-capable GPU is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES)";
    default: return "";
  }
}

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* op, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error in ") + op + " at " + file + ":" + std::to_string(line) + ": " +
                           cudaGetErrorName(err) + ": " + cudaGetErrorString(err) + cuda_error_hint(err));
}

}  // namespace gpu
}  // namespace wavemoe

#define WAVEMOE_CUDA_CHECK(call)                                                         \
  do {                                                                                   \
    const cudaError_t wavemoe_err_ = (call);                                             \
    if (wavemoe_err_ != cudaSuccess) ::wavemoe::gpu::throw_cuda_error(wavemoe_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: catches bad launch configurations (and earlier asynchronous errors) without a sync.
#define WAVEMOE_CUDA_CHECK_LAUNCH(name)                                                  \
  do {                                                                                   \
    const cudaError_t wavemoe_err_ = cudaGetLastError();                                 \
    if (wavemoe_err_ != cudaSuccess) ::wavemoe::gpu::throw_cuda_error(wavemoe_err_, "launch of " name, __FILE__, __LINE__); \
  } while (0)
