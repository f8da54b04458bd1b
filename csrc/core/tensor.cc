#include "tensor.h"

#include <limits>

#include "error.h"

namespace wavemoe {

Tensor make_tensor(const std::vector<int64_t>& shape, DType dtype, const DeviceRef& device) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("tensor dimensions must be >= 0, got " + Tensor::shape_to_string(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 8 / d) {
      throw Error("tensor of shape " + Tensor::shape_to_string(shape) + " is too large");
    }
    n *= d;
  }
  Tensor t;
  t.storage = Storage::create(static_cast<size_t>(n) * dtype_size(dtype), device);
  t.shape = shape;
  t.dtype = dtype;
  return t;
}

}  // namespace wavemoe
