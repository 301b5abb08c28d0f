#pragma once
// Shape helpers shared by the distributions whose events have any shape ({D} or {C, H, W}).

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace zflow::detail {

/// TORCH_CHECK that `x` is a batch [B, ...shape] of events.
inline void check_event(const std::string& type, const std::vector<int64_t>& shape,
                        const at::Tensor& x) {
  TORCH_CHECK(x.dim() == static_cast<int64_t>(shape.size()) + 1 &&
                  x.sizes().slice(1) == at::IntArrayRef(shape),
              type, ": expected inputs [B, ", at::IntArrayRef(shape), "], got ", x.sizes());
}

/// {n, ...shape}: the size of n events.
inline std::vector<int64_t> batch_shape(int64_t n, const std::vector<int64_t>& shape) {
  std::vector<int64_t> full{n};
  full.insert(full.end(), shape.begin(), shape.end());
  return full;
}

}  // namespace zflow::detail
