// The CUDA device backend of the core (csrc/core/device.h): device tensors' memory from the caching allocator, the
// copies between host and device, and the one stream per device on which every kernel of that device runs.
//
// One stream per device keeps the caching allocator's reuse safe (see allocator.h) and orders every op after the
// ones queued before it, whichever libuv thread launches it. Kernels are queued without waiting; a host read
// (Tensor.toArray, an op's number outside a recorded run) waits for that stream; inside a recorded run numbers and
// index checks are read back once, at the run's end (csrc/core/device_run.h).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

namespace wavemoe {
namespace gpu {

// Makes `index` the calling thread's current device (every job calls this first: jobs run on any libuv thread).
void use_device(int index);

// The device's work stream, created on first use (non-blocking with respect to the legacy default stream).
cudaStream_t stream(int index);

// Waits until everything queued on `s` (a stream of the calling thread's current device) has run, and counts the
// wait (host_waits): every host wait of the library goes through here, so that a test can count a step's waits.
void host_wait(cudaStream_t s);
// How many host waits device `index` has had since the process started.
unsigned long long host_waits(int index);

// Copies `bytes` of host memory to the device on `s` without waiting for the device: src is first copied into
// pinned staging memory (reused once its copy has run, an event per buffer), so src may be reused at once. Very
// large copies (a model's weights) go straight from src and wait instead.
void copy_to_device_async(void* dst, const void* src, size_t bytes, cudaStream_t s);

// Registers the CUDA backend with the core (register_device_backend). Called once by the CUDA-enabled addon.
void install_backend();

}  // namespace gpu
}  // namespace wavemoe
