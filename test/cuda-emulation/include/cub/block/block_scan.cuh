// cub::BlockScan of the CPU emulation of CUDA: inclusive and exclusive sums over a block's items (blocked
// arrangement: thread t holds items t·ITEMS ... t·ITEMS + ITEMS − 1), with CUB's rules: every thread calls it, the
// temporary storage needs a __syncthreads before reuse, and a block prefix callback is called by the first warp
// (lane 0's return value is the prefix).
#pragma once
#include "../../cuda_runtime.h"

namespace cub {

template <typename T, int BLOCK_DIM_X> class BlockScan {
 public:
  struct TempStorage {
    T totals[BLOCK_DIM_X];
    T prefix;
  };
  explicit BlockScan(TempStorage& storage) : s_(storage) {}

  template <int ITEMS, typename PrefixOp> void InclusiveSum(const T (&in)[ITEMS], T (&out)[ITEMS], PrefixOp& op) {
    scan<ITEMS>(in, out, true, &op);
  }
  template <int ITEMS> void InclusiveSum(const T (&in)[ITEMS], T (&out)[ITEMS]) {
    scan<ITEMS, int>(in, out, true, nullptr);
  }
  template <int ITEMS> void ExclusiveSum(const T (&in)[ITEMS], T (&out)[ITEMS]) {
    scan<ITEMS, int>(in, out, false, nullptr);
  }
  void InclusiveSum(T in, T& out) {
    T a[1] = {in}, b[1];
    scan<1, int>(a, b, true, nullptr);
    out = b[0];
  }
  void ExclusiveSum(T in, T& out) {
    T a[1] = {in}, b[1];
    scan<1, int>(a, b, false, nullptr);
    out = b[0];
  }

 private:
  template <int ITEMS, typename PrefixOp> void scan(const T (&in)[ITEMS], T (&out)[ITEMS], bool inclusive, PrefixOp* op) {
    if (blockDim.x != static_cast<unsigned>(BLOCK_DIM_X) || blockDim.y != 1 || blockDim.z != 1)
      emu::fail("cub::BlockScan: the block is not BLOCK_DIM_X threads");
    const unsigned t = threadIdx.x;
    T local[ITEMS];
    T running = T(0);
    for (int i = 0; i < ITEMS; ++i) {
      running = running + in[i];
      local[i] = running;
    }
    s_.totals[t] = running;
    __syncthreads();
    T before = T(0), aggregate = T(0);
    for (unsigned u = 0; u < static_cast<unsigned>(BLOCK_DIM_X); ++u) {
      if (u < t) before = before + s_.totals[u];
      aggregate = aggregate + s_.totals[u];
    }
    if constexpr (!std::is_same<PrefixOp, int>::value) {
      __syncthreads();  // totals read before lane 0 writes the prefix
      if (t < 32) {
        const T prefix = (*op)(aggregate);
        if (t == 0) s_.prefix = prefix;
      }
      __syncthreads();
      before = s_.prefix + before;
    }
    for (int i = 0; i < ITEMS; ++i) {
      const T ex = i == 0 ? T(0) : local[i - 1];
      out[i] = before + (inclusive ? local[i] : ex);
    }
  }
  TempStorage& s_;
};

}  // namespace cub
