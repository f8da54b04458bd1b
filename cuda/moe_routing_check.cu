#include "moe_routing_check.h"

#include "common.cuh"

namespace wavemoe {
namespace gpu {
namespace {

__device__ void fail(int* failed, unsigned long long* bad, int64_t position, RoutingProblem p) {
  atomicExch(failed, 1);  // many threads may fail: plain stores of the same value would still be a data race
  report_bad_index(bad, position, static_cast<int32_t>(p));
}

// One grid-stride pass over every index the backward reads.
__global__ void __launch_bounds__(kElementwiseThreads)
    check_routing_kernel(const int32_t* offsets, const int32_t* counts, const int32_t* expert, const int32_t* slot_row,
                         const int32_t* row_slot, int64_t E, int64_t P, int* failed, unsigned long long* bad) {
  const int64_t R = offsets[E];
  WAVEMOE_GRID_STRIDE(i, P) {
    if (i < E) {
      if (offsets[i + 1] < offsets[i]) fail(failed, bad, i, RoutingProblem::offsets_decrease);
      if (counts[i] < 0) fail(failed, bad, i, RoutingProblem::negative_count);
    }
    if (expert[i] < 0 || expert[i] >= E) fail(failed, bad, i, RoutingProblem::expert_out_of_range);
    if (slot_row[i] < -1 || slot_row[i] >= R) fail(failed, bad, i, RoutingProblem::slot_row_out_of_range);
    if (i < R && (row_slot[i] < 0 || row_slot[i] >= P)) fail(failed, bad, i, RoutingProblem::row_slot_out_of_range);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    if (offsets[0] != 0) fail(failed, bad, 0, RoutingProblem::first_offset_not_zero);
    if (R > P) fail(failed, bad, E, RoutingProblem::too_many_rows);
  }
  // E > P (more experts than pairs): the loop above covered e < P only.
  for (int64_t e = P + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < E;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (offsets[e + 1] < offsets[e]) fail(failed, bad, e, RoutingProblem::offsets_decrease);
    if (counts[e] < 0) fail(failed, bad, e, RoutingProblem::negative_count);
  }
}

// The copy, or (failed) a routing with no rows and every slot dropped.
__global__ void __launch_bounds__(kElementwiseThreads)
    copy_routing_kernel(int32_t* offsets_out, int32_t* counts_out, int32_t* expert_out, int32_t* slot_row_out,
                        int32_t* row_slot_out, const int32_t* offsets, const int32_t* counts, const int32_t* expert,
                        const int32_t* slot_row, const int32_t* row_slot, int64_t E, int64_t P, const int* failed) {
  const bool ok = *failed == 0;
  const int64_t n = P > E + 1 ? P : E + 1;
  WAVEMOE_GRID_STRIDE(i, n) {
    if (i <= E) offsets_out[i] = ok ? offsets[i] : 0;
    if (i < E) counts_out[i] = ok ? counts[i] : 0;
    if (i < P) {
      expert_out[i] = ok ? expert[i] : 0;
      slot_row_out[i] = ok ? slot_row[i] : -1;
      row_slot_out[i] = ok ? row_slot[i] : 0;
    }
  }
}

}  // namespace

std::string routing_problem_message(int64_t position, int32_t problem) {
  const std::string at = std::to_string(position);
  switch (static_cast<RoutingProblem>(problem)) {
    case RoutingProblem::first_offset_not_zero: return "offsets[0] != 0";
    case RoutingProblem::offsets_decrease: return "offsets decrease at expert " + at;
    case RoutingProblem::negative_count: return "negative count at expert " + at;
    case RoutingProblem::too_many_rows: return "offsets[E] exceeds tokens · topK";
    case RoutingProblem::expert_out_of_range: return "expert index out of range at " + at;
    case RoutingProblem::slot_row_out_of_range: return "slotRow out of range at " + at;
    case RoutingProblem::row_slot_out_of_range: return "rowSlot out of range at " + at;
  }
  return "routing problem " + std::to_string(problem) + " at " + at;
}

template <typename T>
MoeSaved<T> checked_routing(const MoeSaved<T>& s, const MoeConfig& c, CheckedRouting* out, unsigned long long* bad,
                            cudaStream_t stream) {
  const int64_t E = c.E, P = c.N * c.k;
  out->expert = DeviceBuffer<int32_t>(static_cast<size_t>(P));
  out->slot_row = DeviceBuffer<int32_t>(static_cast<size_t>(P));
  out->row_slot = DeviceBuffer<int32_t>(static_cast<size_t>(P));
  out->offsets = DeviceBuffer<int32_t>(static_cast<size_t>(E + 1));
  out->counts = DeviceBuffer<int32_t>(static_cast<size_t>(E));
  out->failed = DeviceBuffer<int32_t>(1);
  WAVEMOE_CUDA_CHECK(cudaMemsetAsync(out->failed.get(), 0, sizeof(int32_t), stream));
  const int64_t n = P > E + 1 ? P : E + 1;
  check_routing_kernel<<<grid_for(n), kElementwiseThreads, 0, stream>>>(
      s.offsets, s.counts, s.expert, s.slot_row, s.row_slot, E, P, out->failed.get(), bad);
  WAVEMOE_CUDA_CHECK_LAUNCH("check_routing_kernel");
  copy_routing_kernel<<<grid_for(n), kElementwiseThreads, 0, stream>>>(
      out->offsets.get(), out->counts.get(), out->expert.get(), out->slot_row.get(), out->row_slot.get(), s.offsets,
      s.counts, s.expert, s.slot_row, s.row_slot, E, P, out->failed.get());
  WAVEMOE_CUDA_CHECK_LAUNCH("copy_routing_kernel");
  MoeSaved<T> checked = s;
  checked.expert = out->expert.get();
  checked.slot_row = out->slot_row.get();
  checked.row_slot = out->row_slot.get();
  checked.offsets = out->offsets.get();
  checked.counts = out->counts.get();
  return checked;
}

template MoeSaved<float> checked_routing<float>(const MoeSaved<float>&, const MoeConfig&, CheckedRouting*,
                                                unsigned long long*, cudaStream_t);
template MoeSaved<double> checked_routing<double>(const MoeSaved<double>&, const MoeConfig&, CheckedRouting*,
                                                  unsigned long long*, cudaStream_t);

}  // namespace gpu
}  // namespace wavemoe
