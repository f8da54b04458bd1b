// A contiguous, row-major view into shared Storage: shape, dtype and an element offset. Views (reshape, slices along
// the first dimension) share storage, so a KV cache or a parameter block can hand out pieces without copies.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"
#include "storage.h"

namespace wavemoe {

struct Tensor {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  std::vector<int64_t> shape;
  DType dtype = DType::f32;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  const DeviceRef& device() const { return storage->device(); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  int rank() const { return static_cast<int>(shape.size()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  void* data() const { return static_cast<char*>(storage->data()) + offset * dtype_size(dtype); }
  template <typename T> T* ptr() const { return static_cast<T*>(data()); }

  // Row-major strides of a contiguous tensor, in elements.
  std::vector<int64_t> strides() const {
    std::vector<int64_t> s(shape.size(), 1);
    for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * shape[i + 1];
    return s;
  }

  // [2, 3, 4] -> "[2, 3, 4]"
  std::string shape_str() const { return shape_to_string(shape); }
  static std::string shape_to_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }

  // True if the byte ranges of the two tensors intersect.
  bool overlaps(const Tensor& o) const {
    if (storage != o.storage) return false;
    const char* a = static_cast<const char*>(data());
    const char* b = static_cast<const char*>(o.data());
    return a < b + o.nbytes() && b < a + nbytes();
  }
};

// Fresh zeroed tensor. Throws wavemoe::Error for a negative dimension, a size that overflows, or a device that
// cannot be used.
Tensor make_tensor(const std::vector<int64_t>& shape, DType dtype, const DeviceRef& device = DeviceRef{});

}  // namespace wavemoe
