// Fused softmax + cross-entropy on the GPU: the contract of csrc/kernels/cross_entropy.h, plus the stream.
//
// Gradient rule: dlogits is WRITTEN (=), not accumulated, and may be the logits buffer itself (in place).
// The CPU function returns the mean loss; here it is written to a device scalar (no host synchronisation), and
// n_valid is counted on the device too.
//
// One block per row, chunked over the vocabulary (50254 wide): pass 1 keeps a running max and a sum of exps
// rescaled online (each thread over its strided elements, then a block reduction of (max, sum) pairs); pass 2
// writes dlogits = exp(x - max) / sum * grad_scale / n_valid, minus that scale at the target. The row's target logit
// is read before pass 2 writes (in place is safe).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace wavemoe {
namespace gpu {

// dlogits is (N, V) or null, losses is (N) or null, mean_loss is a device scalar or null; logits is (N, V),
// targets is (N) (device int32). Rows with targets[i] == ignore_index: loss 0, dlogits row 0. The mean is over the
// non-ignored rows (0 if none), the row losses summed in double in a fixed order. A target outside [0, V) that is not
// the ignore index is never used to read: its row's loss and dlogits are NaN, and the first one is reported in `bad`
// (a check word of a recorded run, csrc/core/device_run.h; null when the caller checked the targets on the host).
template <typename T>
void cross_entropy_forward_backward(T* dlogits, T* losses, double* mean_loss, const T* logits,
                                    const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index,
                                    double grad_scale, unsigned long long* bad, cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
