// Token sampling on the GPU: the contract of csrc/kernels/sampling.h, plus the stream. Forward only.
//
// Same pipeline and the same fixed order as the CPU: repetition penalty (from the history, -1 = padding, once per
// token) -> temperature (0 = greedy, the lowest index among equal maxima) -> top-k -> top-p -> softmax over the kept
// tokens -> inverse-CDF draw with u = uniform01(seed, counter * B + b). Tokens rank by descending (penalised) logit,
// the lower index first among equal logits (-0 == +0). All arithmetic after reading a logit is in double.
//
// How (per call):
//  - temperature 0: one block per row finds the first maximum. No sort.
//  - otherwise: every row's tokens are put in the fixed order by a device-wide stable CUB radix sort of
//    (descending-logit key, position), then a stable sort by row (skipped for B = 1); then one block per row sums
//    the weights exp((z - max) / t) of the first k (deterministic block tree), finds the top-p cut and the draw by
//    block prefix sums over the sorted tokens (stopping at the tile where each is reached), and writes probs.
//    Scratch: about 24 bytes per logit (32 with B > 1; +8 with a repetition penalty), from the caching allocator.
// The ids equal the CPU's: both follow the same order and the same comparisons (cum >= top_p for the nucleus,
// u < cum for the draw); only the order of the double sums and the last bit of exp differ, which could change an id
// only if u or top_p fell within rounding (~1e-16 relative) of a cumulative probability. probs agree to a few double
// ulps before their rounding to T.
// Results are deterministic (no atomics; fixed reduction trees).
//
// Errors: the CPU throws for a row with a NaN or +Infinity logit (after the penalty) or only -Infinity logits.
// Here each row's outcome goes to a device status array; check_sampling_status reads it (ONE small device-to-host
// copy, which synchronises the stream) and throws wavemoe::Error with the CPU's message for the first bad row, or,
// in a recorded run, report_sampling_problems puts it in a check word of the run (no wait).
// Rows before and after a bad row are still sampled (their ids written), as on the CPU; a bad row's id is not
// written and its probs row is all zero.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "csrc/kernels/sampling.h"  // SamplingParams

namespace wavemoe {
namespace gpu {

using wavemoe::SamplingParams;

enum SamplingFault : int32_t {
  kSamplingOk = 0,
  kSamplingNaN = 1,        // logits[b, index] is NaN
  kSamplingPosInf = 2,     // logits[b, index] is +Infinity (also a penalised logit that overflowed)
  kSamplingAllMasked = 3,  // every logit of the row is -Infinity (index -1)
};

// One row's outcome, written for every row by sample_tokens.
struct SamplingStatus {
  int32_t fault;  // a SamplingFault
  int32_t index;  // the first bad column for NaN / +Infinity, else -1
};

// out_ids is (B); probs is (B, V) or null (the final distribution, zero outside the kept tokens); logits is (B, V);
// history is (B, H) or null; all on the device. p is read on the host. Needs V <= 2^31 - 1 and B·V <= 2^31 - 1.
// status (B, device) or null:
//  - given: every row's outcome is written there and nothing waits for the GPU; the caller (the binding) calls
//    check_sampling_status(status, B, stream) before using the ids, to raise the CPU's error;
//  - null: a scratch status is used and checked before returning (one synchronisation), so the call throws like
//    the CPU kernel.
template <typename T>
void sample_tokens(int32_t* out_ids, T* probs, const T* logits, const int32_t* history, const SamplingParams& p,
                   int64_t B, int64_t V, int64_t H, cudaStream_t stream, SamplingStatus* status = nullptr);

// Copies the B statuses to the host (synchronises `stream`) and throws wavemoe::Error naming the first bad row, with
// the CPU kernel's message ("row 3: logits[3, 17] is NaN", ...). Returns normally when every row is fine.
void check_sampling_status(const SamplingStatus* status, int64_t B, cudaStream_t stream);

// The same checks without a wait, for a recorded run (csrc/core/device_run.h): the first bad row goes to the check
// word `bad_row` as position 4·b + fault, value = the bad column; a history id outside [-1, V) to `bad_history`
// (position b·H + j, value = the id). Any pointer may be null (status with bad_row, history with bad_history). sampling_fault_message() turns a reported
// row back into the CPU's message.
void report_sampling_problems(const SamplingStatus* status, int64_t B, const int32_t* history, int64_t H, int64_t V,
                              unsigned long long* bad_row, unsigned long long* bad_history, cudaStream_t stream);
std::string sampling_fault_message(int64_t position, int32_t index);

}  // namespace gpu
}  // namespace wavemoe
