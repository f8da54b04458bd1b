// The CUDA device backend of the core (csrc/core/device.h): device tensors' memory from the caching allocator, the
// copies between host and device, and the one stream per device on which every kernel of that device runs.
//
// One stream per device keeps the caching allocator's reuse safe (see allocator.h) and orders every op after the
// ones queued before it, whichever libuv thread launches it. Kernels are queued without waiting; a host read
// (Tensor.toArray, a scalar result) synchronises that stream.
#pragma once
#include <cuda_runtime_api.h>

namespace wavemoe {
namespace gpu {

// Makes `index` the calling thread's current device (every job calls this first: jobs run on any libuv thread).
void use_device(int index);

// The device's work stream, created on first use (non-blocking with respect to the legacy default stream).
cudaStream_t stream(int index);

// Registers the CUDA backend with the core (register_device_backend). Called once by the CUDA-enabled addon.
void install_backend();

}  // namespace gpu
}  // namespace wavemoe
