// cub::DeviceRadixSort::SortPairs of the CPU emulation of CUDA: a stable sort on bits [begin_bit, end_bit) of the
// keys' radix order (CUB's: unsigned as is, signed with the sign bit flipped, floats by their ordered bit pattern).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "../../cuda_runtime.h"

namespace cub {

namespace detail {
template <typename K> uint64_t radix_bits(K key) {
  static_assert(sizeof(K) <= 8, "keys of at most 8 bytes");
  uint64_t u = 0;
  std::memcpy(&u, &key, sizeof(K));
  constexpr uint64_t sign = uint64_t(1) << (8 * sizeof(K) - 1);
  if constexpr (std::is_floating_point<K>::value) {
    const uint64_t all = sizeof(K) == 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * sizeof(K))) - 1;
    u = (u & sign) ? (~u & all) : (u | sign);
  } else if constexpr (std::is_signed<K>::value) {
    u ^= sign;
  }
  return u;
}
}  // namespace detail

struct DeviceRadixSort {
  template <typename K, typename V, typename NumItems>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out, const V* values_in,
                               V* values_out, NumItems num_items, int begin_bit = 0, int end_bit = sizeof(K) * 8,
                               cudaStream_t stream = nullptr) {
    (void)stream;
    const size_t needed = 256 + static_cast<size_t>(num_items > 0 ? num_items : 0) * sizeof(uint32_t);
    if (temp == nullptr) {
      temp_bytes = needed;
      return cudaSuccess;
    }
    if (temp_bytes < needed || num_items < 0 || begin_bit < 0 || end_bit > static_cast<int>(sizeof(K) * 8) ||
        begin_bit > end_bit)
      return cudaErrorInvalidValue;
    const size_t n = static_cast<size_t>(num_items);
    const int width = end_bit - begin_bit;
    const uint64_t mask = width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1;
    std::vector<uint64_t> digit(n);
    for (size_t i = 0; i < n; ++i) digit[i] = (detail::radix_bits(keys_in[i]) >> begin_bit) & mask;
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return digit[a] < digit[b]; });
    std::vector<K> keys(n);
    std::vector<V> values(n);
    for (size_t i = 0; i < n; ++i) keys[i] = keys_in[order[i]], values[i] = values_in[order[i]];
    std::copy(keys.begin(), keys.end(), keys_out);
    std::copy(values.begin(), values.end(), values_out);
    std::memset(temp, 0xFF, needed);  // the scratch holds garbage afterwards, as on a GPU
    return cudaSuccess;
  }
};

}  // namespace cub
