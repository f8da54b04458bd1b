// Token sampling: penalty -> temperature -> top-k -> top-p -> softmax -> inverse-CDF draw, in the CPU's order.
// See sampling.h for the method; the kernels in the order they run:
//   to_double_kernel + penalise_kernel   (only with a repetition penalty): z = the penalised logits in double
//   sample_prepare_kernel                 per row: status, row maximum; greedy ids, or the sort keys
//   CUB radix sorts (+ row_of_kernel)     per row: the positions in the fixed order
//   sample_finish_kernel                  per row: top-k, top-p, probs, the draw
#include "sampling.h"

#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <string>
#include <vector>

#include "allocator.h"
#include "backend.h"
#include "common.cuh"
#include "csrc/core/error.h"
#include "random.h"

namespace wavemoe {
namespace gpu {
namespace {

constexpr int kThreads = 256;                 // per row block (a multiple of 32: block_reduce)
constexpr int kItems = 4;                     // consecutive sorted positions per thread in one scan tile
constexpr int64_t kTile = int64_t(kThreads) * kItems;
constexpr long long kNone = 0x7fffffffffffffffLL;  // "no position": the identity of a min-reduction

// What the kernels need of SamplingParams.
struct Params {
  double temperature;  // > 0 in the finish kernel
  double top_p;        // < 1: nucleus on
  int64_t candidates;  // top-k: the first `candidates` of the order are kept (V when top-k is off)
  uint64_t seed, counter;
};

// ============================================ device helpers ============================================

struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct MaxOp {
  template <typename V> __device__ V operator()(V a, V b) const { return a > b ? a : b; }
};
struct MinOp {
  template <typename V> __device__ V operator()(V a, V b) const { return a < b ? a : b; }
};

// Reduction over the block; every thread gets the result. `shared` holds 32 values. A fixed butterfly and tree, so
// deterministic; IEEE + is commutative, so every lane of the butterfly holds the same bits. Starts and ends with the
// block converged and ends with a barrier, so `shared` may be reused at once.
template <typename V, typename Op> __device__ V block_reduce(V v, Op op, V identity, V* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  V r = lane < warps ? shared[lane] : identity;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) r = op(r, __shfl_xor_sync(0xffffffffu, r, offset));
  __syncthreads();
  return r;
}

// Sort key of a logit: ascending keys = descending logits. -0 becomes +0 first (the CPU compares -0 == +0 and then
// orders by index; the stable sort keeps the index order among equal keys). NaN rows are never sampled.
__device__ __forceinline__ uint64_t descending_key(double x) {
  if (x == 0.0) x = 0.0;
  const uint64_t bits = static_cast<uint64_t>(__double_as_longlong(x));
  const uint64_t ascending = (bits >> 63) ? ~bits : (bits | 0x8000000000000000ULL);
  return ~ascending;
}

// One row in the fixed order: sorted position i holds token id(i) with weight exp((z - zmax) / t), the CPU's
// expression (w = 1 for the first token, non-increasing after it).
template <typename S> struct SortedRow {
  const S* z;             // the row's (penalised) logits, (V)
  const int32_t* order;   // the row's sorted global positions b·V + j, (V)
  int64_t base;           // b·V
  double zmax, temperature;
  __device__ int64_t id(int64_t i) const { return static_cast<int64_t>(order[i]) - base; }
  __device__ double weight(int64_t i) const {
    return exp((static_cast<double>(z[id(i)]) - zmax) / temperature);
  }
};

// Σ of the first n weights (a fixed tree: deterministic).
template <typename S> __device__ double weight_sum(const SortedRow<S>& row, int64_t n, double* shared) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += row.weight(i);
  return block_reduce(s, SumOp(), 0.0, shared);
}

// The last of the first n positions with weight > 0 (-1 if none): the fallback of a draw that rounding left short.
template <typename S> __device__ long long last_positive(const SortedRow<S>& row, int64_t n, long long* shared) {
  long long last = -1;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    if (row.weight(i) > 0) last = i;
  }
  return block_reduce(last, MaxOp(), -1LL, shared);
}

using BlockScan = cub::BlockScan<double, kThreads>;

// The block prefix of CUB's scan: the total of the tiles before, carried by the first warp (which alone calls it).
struct RunningTotal {
  double total;
  __device__ double operator()(double tile_sum) {
    const double before = total;
    total += tile_sum;
    return before;
  }
};

// The first of the first n sorted positions whose cumulative probability cum_i = Σ_{k<=i} w_k / scale (a prefix
// sum of the CPU walk's terms w / scale) reaches `level` (cum_i >= level: the top-p cut) or, when strict, exceeds
// it (level < cum_i: the draw, level = u). kNone if none does. Tiles of kTile positions, blocked (thread t holds
// kItems consecutive ones), scanned with a running total; stops at the first tile holding the answer.
template <typename S>
__device__ long long first_crossing(const SortedRow<S>& row, int64_t n, double scale, double level, bool strict,
                                    BlockScan::TempStorage& storage, long long* shared) {
  RunningTotal carry{0.0};
  for (int64_t tile = 0; tile < n; tile += kTile) {
    const int64_t first = tile + static_cast<int64_t>(threadIdx.x) * kItems;
    double cum[kItems];
#pragma unroll
    for (int k = 0; k < kItems; ++k) cum[k] = first + k < n ? row.weight(first + k) / scale : 0.0;
    BlockScan(storage).InclusiveSum(cum, cum, carry);
    long long found = kNone;
#pragma unroll
    for (int k = kItems - 1; k >= 0; --k) {  // downwards: ends at this thread's lowest qualifying position
      if (first + k < n && (strict ? level < cum[k] : cum[k] >= level)) found = first + k;
    }
    found = block_reduce(found, MinOp(), kNone, shared);  // its barriers also free `storage` for the next tile
    if (found != kNone) return found;
  }
  return kNone;
}

// ============================================ CUDA kernels ============================================

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) to_double_kernel(double* out, const T* x, int64_t n) {
  WAVEMOE_GRID_STRIDE(i, n) { out[i] = static_cast<double>(x[i]); }
}

// z[b, id] = the penalised logit of every id in row b's history (z holds the logits in double already). Each is
// computed from the original logit, so a repeated id writes the same value again (penalised once); the store is an
// atomic exchange, since plain stores of one word by two threads are a data race even when the values agree
// (found by the emulation's race check, cuda-emulate.sh --race).
template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) penalise_kernel(double* z, const T* logits,
                                                                       const int32_t* history, int64_t B, int64_t V,
                                                                       int64_t H, double penalty) {
  WAVEMOE_GRID_STRIDE(i, B * H) {
    const int64_t b = i / H;
    const int32_t id = history[i];
    if (id < 0 || id >= V) continue;  // -1 is padding (ids >= V break the contract; skipped, never written)
    const double x = static_cast<double>(logits[b * V + id]);
    const double penalised = x > 0 ? x / penalty : x * penalty;
    atomicExch(reinterpret_cast<unsigned long long*>(z + b * V + id),
               static_cast<unsigned long long>(__double_as_longlong(penalised)));
  }
}

// Recorded runs: the first bad row and the first history id outside [-1, V), into check words (no wait).
__global__ void __launch_bounds__(kElementwiseThreads) report_sampling_kernel(const SamplingStatus* status, int64_t B,
                                                                               const int32_t* history, int64_t H,
                                                                               int64_t V, unsigned long long* bad_row,
                                                                               unsigned long long* bad_history) {
  WAVEMOE_GRID_STRIDE(b, B) {
    if (status != nullptr && bad_row != nullptr && status[b].fault != kSamplingOk) {
      report_bad_index(bad_row, 4 * b + status[b].fault, status[b].index);
    }
  }
  if (history == nullptr || bad_history == nullptr) return;
  WAVEMOE_GRID_STRIDE(i, B * H) {
    if (history[i] < -1 || history[i] >= V) report_bad_index(bad_history, i, history[i]);
  }
}

// One block per row (grid-stride over rows). Finds the first NaN / +Infinity and the maximum, writes the status and
// the maximum; then either the greedy id (the first position holding the maximum; probs 1 there) or, for sampling,
// the sort keys and positions of the row (written for every row, even a bad one, so the sort reads defined data).
template <typename S, typename T>
__global__ void __launch_bounds__(kThreads) sample_prepare_kernel(SamplingStatus* status, double* row_max,
                                                                   int32_t* out_ids, T* probs, uint64_t* keys,
                                                                   int32_t* positions, const S* z, int64_t B,
                                                                   int64_t V, bool greedy) {
  __shared__ double dshared[32];
  __shared__ long long ishared[32];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const S* zr = z + b * V;
    long long bad = kNone;
    double mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      const double x = static_cast<double>(zr[j]);
      if (isnan(x) || x == INFINITY) {
        if (bad == kNone) bad = j;  // j ascends: this thread's first
      } else if (x > mx) {
        mx = x;
      }
      if (!greedy) {
        keys[b * V + j] = descending_key(x);
        positions[b * V + j] = static_cast<int32_t>(b * V + j);
      }
    }
    bad = block_reduce(bad, MinOp(), kNone, ishared);
    mx = block_reduce(mx, MaxOp(), static_cast<double>(-INFINITY), dshared);
    SamplingStatus st{kSamplingOk, -1};
    if (bad != kNone) {
      st = {isnan(static_cast<double>(zr[bad])) ? kSamplingNaN : kSamplingPosInf, static_cast<int32_t>(bad)};
    } else if (mx == -INFINITY) {
      st = {kSamplingAllMasked, -1};
    }
    if (threadIdx.x == 0) {
      status[b] = st;
      row_max[b] = mx;
    }
    if (st.fault != kSamplingOk || !greedy) continue;  // uniform: st and greedy are the same in every thread
    long long first = kNone;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      if (static_cast<double>(zr[j]) == mx) {  // -0 == +0, as between logits on the CPU
        first = j;
        break;
      }
    }
    first = block_reduce(first, MinOp(), kNone, ishared);
    if (threadIdx.x == 0) {
      out_ids[b] = static_cast<int32_t>(first);
      if (probs != nullptr) probs[b * V + first] = T(1);
    }
  }
}

// rows[i] = the row of sorted global position pos[i]: the key of the second (stable) sort.
__global__ void __launch_bounds__(kElementwiseThreads) row_of_kernel(uint32_t* rows, const int32_t* pos, int64_t n,
                                                                     int64_t V) {
  WAVEMOE_GRID_STRIDE(i, n) { rows[i] = static_cast<uint32_t>(pos[i] / V); }
}

// One block per row (grid-stride over rows), temperature > 0, rows in the fixed order. The CPU's steps:
//   candidates = the first k (all V without top-k); Z = Σ w;
//   top-p < 1: n = the shortest prefix with Σ w / Z >= top_p (all if rounding never gets there), norm = Σ_{<n} w;
//   probs = w / norm on the kept tokens; the draw: the first kept token with u < Σ w / norm, else the last kept
//   token with w > 0.
template <typename S, typename T>
__global__ void __launch_bounds__(kThreads) sample_finish_kernel(int32_t* out_ids, T* probs, const S* z,
                                                                  const int32_t* order,
                                                                  const SamplingStatus* status,
                                                                  const double* row_max, Params p, int64_t B,
                                                                  int64_t V) {
  __shared__ BlockScan::TempStorage scan_storage;
  __shared__ double dshared[32];
  __shared__ long long ishared[32];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    if (status[b].fault != kSamplingOk) continue;  // uniform across the block
    const SortedRow<S> row{z + b * V, order + b * V, b * V, row_max[b], p.temperature};
    const int64_t candidates = p.candidates;
    const double Z = weight_sum(row, candidates, dshared);
    int64_t n = candidates;
    double norm = Z;
    if (p.top_p < 1) {
      const long long cut = first_crossing(row, candidates, Z, p.top_p, false, scan_storage, ishared);
      if (cut != kNone) n = cut + 1;
      norm = weight_sum(row, n, dshared);
    }
    if (probs != nullptr) {
      T* prow = probs + b * V;  // zeroed before the prepare kernel
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) prow[row.id(i)] = static_cast<T>(row.weight(i) / norm);
    }
    const double u = uniform01(p.seed, p.counter * static_cast<uint64_t>(B) + static_cast<uint64_t>(b));
    long long pick = first_crossing(row, n, norm, u, true, scan_storage, ishared);
    if (pick == kNone) pick = last_positive(row, n, ishared);
    if (pick < 0) pick = 0;  // unreachable: position 0 holds the maximum, w = 1
    if (threadIdx.x == 0) out_ids[b] = static_cast<int32_t>(row.id(pick));
  }
}

// ============================================ host helpers ============================================

unsigned int row_blocks(int64_t B) { return static_cast<unsigned int>(std::min<int64_t>(B, 1 << 20)); }

// Bits that hold every row index 0 .. B-1 (B >= 2).
int row_bits(int64_t B) {
  int bits = 1;
  while ((int64_t(1) << bits) < B) ++bits;
  return bits;
}

// Stable LSD radix sort of n (key, value) pairs on bits [0, end_bit) of the key (CUB: equal keys keep their order).
template <typename K>
void stable_sort_pairs(const K* keys_in, K* keys_out, const int32_t* values_in, int32_t* values_out, int64_t n,
                       int end_bit, cudaStream_t stream) {
  size_t temp_bytes = 0;
  WAVEMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, values_in, values_out,
                                                     static_cast<int>(n), 0, end_bit, stream));
  DeviceBuffer<unsigned char> temp(std::max<size_t>(temp_bytes, 1));  // never null: null means "size query"
  WAVEMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, keys_in, keys_out, values_in,
                                                     values_out, static_cast<int>(n), 0, end_bit, stream));
}

// The prepare kernel, then (sampling) the sorts and the finish kernel, over logits z (T, or penalised doubles).
template <typename S, typename T>
void sample_rows(int32_t* out_ids, T* probs, const S* z, const Params& prm, SamplingStatus* status, int64_t B,
                 int64_t V, cudaStream_t stream) {
  DeviceBuffer<double> row_max(static_cast<size_t>(B));
  if (prm.temperature == 0) {  // greedy: the prepare kernel writes the ids
    sample_prepare_kernel<S, T><<<row_blocks(B), kThreads, 0, stream>>>(status, row_max.get(), out_ids, probs,
                                                                        nullptr, nullptr, z, B, V, true);
    WAVEMOE_CUDA_CHECK_LAUNCH("sample_prepare_kernel");
    return;
  }
  const int64_t n = B * V;
  DeviceBuffer<uint64_t> keys(n), sorted_keys(n);
  DeviceBuffer<int32_t> pos(n), sorted_pos(n);
  sample_prepare_kernel<S, T><<<row_blocks(B), kThreads, 0, stream>>>(status, row_max.get(), out_ids, probs,
                                                                      keys.get(), pos.get(), z, B, V, false);
  WAVEMOE_CUDA_CHECK_LAUNCH("sample_prepare_kernel");
  // 1. All logits by descending value (ties: increasing position, i.e. row-major index order).
  stable_sort_pairs(keys.get(), sorted_keys.get(), pos.get(), sorted_pos.get(), n, 64, stream);
  const int32_t* order = sorted_pos.get();
  if (B > 1) {
    // 2. By row, stably: each row's positions end up contiguous, still in the fixed order.
    DeviceBuffer<uint32_t> rows(n), sorted_rows(n);
    row_of_kernel<<<grid_for(n), kElementwiseThreads, 0, stream>>>(rows.get(), sorted_pos.get(), n, V);
    WAVEMOE_CUDA_CHECK_LAUNCH("row_of_kernel");
    stable_sort_pairs(rows.get(), sorted_rows.get(), sorted_pos.get(), pos.get(), n, row_bits(B), stream);
    order = pos.get();
  }
  sample_finish_kernel<S, T><<<row_blocks(B), kThreads, 0, stream>>>(out_ids, probs, z, order, status,
                                                                     row_max.get(), prm, B, V);
  WAVEMOE_CUDA_CHECK_LAUNCH("sample_finish_kernel");
}

// The CPU kernel's messages (csrc/kernels/sampling.cc fault_message), word for word.
std::string fault_message(const SamplingStatus& s, int64_t b) {
  const std::string where = "row " + std::to_string(b) + ": ";
  const std::string at = "logits[" + std::to_string(b) + ", " + std::to_string(s.index) + "]";
  switch (s.fault) {
    case kSamplingNaN: return where + at + " is NaN";
    case kSamplingPosInf: return where + at + " is +Infinity (logits must be finite or -Infinity)";
    case kSamplingAllMasked: return where + "every logit is -Infinity, so there is nothing to sample";
    default: break;
  }
  return where + "unknown fault";
}

}  // namespace

// ============================================ kernel launchers ============================================

template <typename T>
void sample_tokens(int32_t* out_ids, T* probs, const T* logits, const int32_t* history, const SamplingParams& p,
                   int64_t B, int64_t V, int64_t H, cudaStream_t stream, SamplingStatus* status) {
  if (B <= 0 || V <= 0) return;
  constexpr int64_t kMaxPositions = 0x7fffffff;  // positions b·V + j are int32
  if (V > kMaxPositions || B > kMaxPositions / V) {
    throw Error("sample_tokens (CUDA): B * V = " + std::to_string(B) + " * " + std::to_string(V) +
                " logits is more than 2^31 - 1; sample fewer rows at a time");
  }
  DeviceBuffer<SamplingStatus> own_status(status != nullptr ? 0 : static_cast<size_t>(B));
  SamplingStatus* st = status != nullptr ? status : own_status.get();
  if (probs != nullptr) {
    WAVEMOE_CUDA_CHECK(cudaMemsetAsync(probs, 0, static_cast<size_t>(B * V) * sizeof(T), stream));
  }
  const Params prm{p.temperature, p.top_p, p.top_k > 0 && p.top_k < V ? p.top_k : V, p.seed, p.counter};
  if (history != nullptr && H > 0 && p.repetition_penalty != 1) {
    DeviceBuffer<double> z(static_cast<size_t>(B * V));
    to_double_kernel<T><<<grid_for(B * V), kElementwiseThreads, 0, stream>>>(z.get(), logits, B * V);
    WAVEMOE_CUDA_CHECK_LAUNCH("to_double_kernel");
    penalise_kernel<T><<<grid_for(B * H), kElementwiseThreads, 0, stream>>>(z.get(), logits, history, B, V, H,
                                                                            p.repetition_penalty);
    WAVEMOE_CUDA_CHECK_LAUNCH("penalise_kernel");
    sample_rows<double, T>(out_ids, probs, z.get(), prm, st, B, V, stream);
  } else {
    sample_rows<T, T>(out_ids, probs, logits, prm, st, B, V, stream);
  }
  if (status == nullptr) check_sampling_status(st, B, stream);
}

void report_sampling_problems(const SamplingStatus* status, int64_t B, const int32_t* history, int64_t H, int64_t V,
                              unsigned long long* bad_row, unsigned long long* bad_history, cudaStream_t stream) {
  if (B <= 0) return;
  report_sampling_kernel<<<grid_for(std::max<int64_t>(B, B * H)), kElementwiseThreads, 0, stream>>>(
      status, B, history, H, V, bad_row, bad_history);
  WAVEMOE_CUDA_CHECK_LAUNCH("report_sampling_kernel");
}

std::string sampling_fault_message(int64_t position, int32_t index) {
  return fault_message(SamplingStatus{static_cast<int32_t>(position % 4), index}, position / 4);
}

void check_sampling_status(const SamplingStatus* status, int64_t B, cudaStream_t stream) {
  if (B <= 0) return;
  std::vector<SamplingStatus> host(static_cast<size_t>(B));
  WAVEMOE_CUDA_CHECK(cudaMemcpyAsync(host.data(), status, host.size() * sizeof(SamplingStatus),
                                     cudaMemcpyDeviceToHost, stream));
  host_wait(stream);
  for (int64_t b = 0; b < B; ++b) {
    if (host[b].fault != kSamplingOk) throw Error(fault_message(host[b], b));
  }
}

template void sample_tokens<float>(int32_t*, float*, const float*, const int32_t*, const SamplingParams&, int64_t,
                                   int64_t, int64_t, cudaStream_t, SamplingStatus*);
template void sample_tokens<double>(int32_t*, double*, const double*, const int32_t*, const SamplingParams&, int64_t,
                                    int64_t, int64_t, cudaStream_t, SamplingStatus*);

}  // namespace gpu
}  // namespace wavemoe
