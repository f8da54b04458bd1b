// Wavelet embedding: table build and raw mode as GEMMs with the wavelet matrix W (built on the host).
#include "wavelet.h"

#include <vector>

#include "allocator.h"
#include "backend.h"
#include "check.h"
#include "embedding.h"
#include "matmul.h"

namespace wavemoe {
namespace gpu {

// ================================= kernel launchers (GEMMs; no kernels of their own) =================================

template <typename T> void wavelet_matrix(T* W, int64_t R, const WaveletSpec& spec, cudaStream_t stream) {
  const int64_t C = wavelet_channels(R, spec);
  if (R <= 0 || C <= 0) return;
  std::vector<T> host(static_cast<size_t>(R * C));
  wavemoe::wavelet_matrix<T>(host.data(), R, spec);  // the CPU kernel: double inside, rounded once to T
  // Staged through pinned memory: `host` may be freed on return, and the device is not waited for.
  copy_to_device_async(W, host.data(), host.size() * sizeof(T), stream);
}

template <typename T>
void wavelet_table_forward(T* table, const T* raw, int64_t V, int64_t R, const WaveletSpec& spec,
                           cudaStream_t stream) {
  const int64_t C = wavelet_channels(R, spec);
  if (V <= 0 || R <= 0 || C <= 0) return;
  DeviceBuffer<T> W(static_cast<size_t>(R * C));
  wavelet_matrix<T>(W.get(), R, spec, stream);
  // table (V, C) = raw (V, R) · W (R, C).
  matmul_forward<T>(table, raw, W.get(), 1, V, C, R, false, false, V * R, R * C, V * C, false, stream);
}

template <typename T>
void wavelet_embedding_raw_forward(T* out, const int32_t* ids, const T* raw, const T* W, int64_t N, int64_t V,
                                   int64_t R, int64_t C, unsigned long long* bad, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  if (R <= 0) {  // an empty sum, as on the CPU (no row of raw is read, so no id is either)
    WAVEMOE_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(N * C) * sizeof(T), stream));
    return;
  }
  DeviceBuffer<T> x(static_cast<size_t>(N * R));
  embedding_forward<T>(x.get(), ids, raw, N, R, V, bad, stream);  // x[i] = raw[ids[i]] (NaN for a bad id)
  // out (N, C) = x (N, R) · W (R, C).
  matmul_forward<T>(out, x.get(), W, 1, N, C, R, false, false, N * R, R * C, N * C, false, stream);
}

template <typename T>
void wavelet_embedding_raw_backward(T* draw, const T* dout, const int32_t* ids, const T* W, int64_t N, int64_t V,
                                    int64_t R, int64_t C, unsigned long long* bad, cudaStream_t stream) {
  if (N <= 0 || R <= 0 || C <= 0) return;  // C == 0: nothing flows back through an empty W
  DeviceBuffer<T> g(static_cast<size_t>(N * R));
  // g (N, R) = dout (N, C) · Wᵀ: W is stored (R, C), i.e. op(B) with trans_b.
  matmul_forward<T>(g.get(), dout, W, 1, N, R, C, false, true, N * C, R * C, N * R, false, stream);
  embedding_backward<T>(draw, g.get(), ids, N, R, V, bad, stream);  // draw[ids[i]] += g[i], in increasing i per id
}

#define WAVEMOE_INSTANTIATE(T)                                                                                   \
  template void wavelet_matrix<T>(T*, int64_t, const WaveletSpec&, cudaStream_t);                                \
  template void wavelet_table_forward<T>(T*, const T*, int64_t, int64_t, const WaveletSpec&, cudaStream_t);      \
  template void wavelet_embedding_raw_forward<T>(T*, const int32_t*, const T*, const T*, int64_t, int64_t,        \
                                                 int64_t, int64_t, unsigned long long*, cudaStream_t);           \
  template void wavelet_embedding_raw_backward<T>(T*, const T*, const int32_t*, const T*, int64_t, int64_t,       \
                                                  int64_t, int64_t, unsigned long long*, cudaStream_t);
WAVEMOE_INSTANTIATE(float)
WAVEMOE_INSTANTIATE(double)
#undef WAVEMOE_INSTANTIATE

}  // namespace gpu
}  // namespace wavemoe
