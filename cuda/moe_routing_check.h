// The saved routing of a recorded MoE backward, checked on the device instead of the host (a host check would wait
// for the forward to finish, once per MoE layer per step).
//
// moeBackward reads the routing (offsets, counts, expert, slot_row, row_slot) as indices. Called directly, the
// binding checks it on the host first; in a recorded run the routing does not exist until its forward has run, so
// checked_routing() queues a check and a copy: the copy is the routing when it is consistent, and a routing that
// reads nothing (no rows, every slot dropped) when it is not, so that the backward kernels, which use the copy, never
// index out of bounds. The first problem is reported in `bad` (a check word of the run, csrc/core/device_run.h):
// index = the position, value = a RoutingProblem; routing_problem_message() names it.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "allocator.h"
#include "csrc/kernels/moe.h"

namespace wavemoe {
namespace gpu {

enum class RoutingProblem : int32_t {
  first_offset_not_zero = 1,  // offsets[0] != 0 (position 0)
  offsets_decrease = 2,       // offsets[e + 1] < offsets[e] (position e)
  negative_count = 3,         // counts[e] < 0 (position e)
  too_many_rows = 4,          // offsets[E] > N·k (position E)
  expert_out_of_range = 5,    // expert[i] outside [0, E) (position i)
  slot_row_out_of_range = 6,  // slot_row[i] outside [-1, offsets[E]) (position i)
  row_slot_out_of_range = 7,  // row_slot[r] outside [0, N·k) for r < offsets[E] (position r)
};

// "offsets decrease at expert 3" (the wording of the binding's host check).
std::string routing_problem_message(int64_t position, int32_t problem);

// The checked copy's device memory: keep it alive until the backward's kernels are queued.
struct CheckedRouting {
  DeviceBuffer<int32_t> expert, slot_row, row_slot, offsets, counts, failed;
};

// s with its routing pointers replaced by checked copies held in `out` (see above); every other pointer unchanged.
template <typename T>
MoeSaved<T> checked_routing(const MoeSaved<T>& s, const MoeConfig& c, CheckedRouting* out, unsigned long long* bad,
                            cudaStream_t stream);

}  // namespace gpu
}  // namespace wavemoe
