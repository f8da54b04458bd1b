// RoPE forward and backward. Backward ADDS (+=) into dx; zeroing it is the caller's job.
#include "rope.h"

#include "allocator.h"
#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

// ============================================ CUDA kernels ============================================

// cos and sin of every (t, i), each (T, D/2), in double then stored as T.
template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) rope_table_kernel(T* cos_t, T* sin_t, int64_t T_, int64_t D,
                                                                          double theta, int64_t pos_offset) {
  const int64_t half = D / 2;
  WAVEMOE_GRID_STRIDE(idx, T_ * half) {
    const int64_t t = idx / half, i = idx % half;
    const double angle = static_cast<double>(pos_offset + t) * pow(theta, -2.0 * double(i) / double(D));
    cos_t[idx] = static_cast<T>(cos(angle));
    sin_t[idx] = static_cast<T>(sin(angle));
  }
}

// One thread per pair of (B, T, H, D/2).
template <bool kBackward, typename T>
__global__ void __launch_bounds__(kElementwiseThreads) rope_apply_kernel(T* out, const T* in, const T* cos_t,
                                                                          const T* sin_t, int64_t B, int64_t T_,
                                                                          int64_t H, int64_t D) {
  const int64_t half = D / 2;
  WAVEMOE_GRID_STRIDE(idx, B * T_ * H * half) {
    const int64_t i = idx % half;
    const int64_t t = (idx / (half * H)) % T_;
    const T c = cos_t[t * half + i], s = sin_t[t * half + i];
    const int64_t e = idx * 2;  // the pair's first element: pairs are contiguous in (B, T, H, D)
    const T x0 = in[e], x1 = in[e + 1];
    if (kBackward) {
      out[e] += x0 * c + x1 * s;
      out[e + 1] += x1 * c - x0 * s;
    } else {
      out[e] = x0 * c - x1 * s;
      out[e + 1] = x0 * s + x1 * c;
    }
  }
}

template <bool kBackward, typename T>
void rope_apply(T* out, const T* in, int64_t B, int64_t T_, int64_t H, int64_t D, double theta, int64_t pos_offset,
                cudaStream_t stream) {
  const int64_t half = D / 2;
  if (B * T_ * H * half <= 0) return;
  DeviceBuffer<T> cos_t(T_ * half), sin_t(T_ * half);
  rope_table_kernel<T><<<grid_for(T_ * half), kElementwiseThreads, 0, stream>>>(cos_t.get(), sin_t.get(), T_, D,
                                                                                theta, pos_offset);
  WAVEMOE_CUDA_CHECK_LAUNCH("rope_table_kernel");
  rope_apply_kernel<kBackward, T><<<grid_for(B * T_ * H * half), kElementwiseThreads, 0, stream>>>(
      out, in, cos_t.get(), sin_t.get(), B, T_, H, D);
  WAVEMOE_CUDA_CHECK_LAUNCH("rope_apply_kernel");
}

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T>
void rope_forward(T* out, const T* x, int64_t B, int64_t T_, int64_t H, int64_t D, double theta, int64_t pos_offset,
                  cudaStream_t stream) {
  rope_apply<false>(out, x, B, T_, H, D, theta, pos_offset, stream);
}

template <typename T>
void rope_backward(T* dx, const T* dout, int64_t B, int64_t T_, int64_t H, int64_t D, double theta,
                   int64_t pos_offset, cudaStream_t stream) {
  rope_apply<true>(dx, dout, B, T_, H, D, theta, pos_offset, stream);
}

template void rope_forward<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, double, int64_t,
                                  cudaStream_t);
template void rope_forward<double>(double*, const double*, int64_t, int64_t, int64_t, int64_t, double, int64_t,
                                   cudaStream_t);
template void rope_backward<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, double, int64_t,
                                   cudaStream_t);
template void rope_backward<double>(double*, const double*, int64_t, int64_t, int64_t, int64_t, double, int64_t,
                                    cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
