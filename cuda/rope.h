// Rotary position embedding on the GPU: the contract of csrc/kernels/rope.h, plus the stream. Interleaved pairs;
// pair i of a head at position p = pos_offset + t is rotated by p · theta^(-2i/D). The cos/sin table (T, D/2) is
// computed in double on the device and stored as T, as on the CPU. Backward rotates by -angle and ADDS into dx.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

// out and x are (B, T, H, D), D even; out may equal x.
template <typename T>
void rope_forward(T* out, const T* x, int64_t B, int64_t T_, int64_t H, int64_t D, double theta, int64_t pos_offset,
                  cudaStream_t stream);
// dx and dout are (B, T, H, D); dx must not share memory with dout.
template <typename T>
void rope_backward(T* dx, const T* dout, int64_t B, int64_t T_, int64_t H, int64_t D, double theta,
                   int64_t pos_offset, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
