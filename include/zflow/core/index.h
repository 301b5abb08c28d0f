#pragma once
/// \file
/// Integer index lists used by transforms (masks, permutations). They are kept as plain
/// vectors and turned into tensors on the inputs' device on demand, not registered as
/// buffers: LibTorch's Module::to(dtype) converts every buffer, integer ones included,
/// which would silently break index_select after `flow->to(torch::kFloat64)`. Indices are
/// part of the transform's spec, so they are saved with the model all the same.
///
/// Example (a permutation of the features of x [B, 3]):
///
///     zflow::IndexList order(std::vector<int64_t>{2, 0, 1});
///     at::Tensor y = x.index_select(1, order.on(x.device()));  // y[:, i] = x[:, order[i]]

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow {

/// An index list with a per-device tensor cache.
class IndexList {
 public:
  IndexList() = default;
  explicit IndexList(std::vector<int64_t> values);
  const std::vector<int64_t>& values() const { return values_; }
  int64_t size() const { return static_cast<int64_t>(values_.size()); }
  /// The indices as an int64 tensor on `device` (built once per device).
  const at::Tensor& on(const at::Device& device) const;

 private:
  std::vector<int64_t> values_;
  mutable at::Tensor cpu_;
  mutable at::Tensor other_;
  std::shared_ptr<std::mutex> mutex_ = std::make_shared<std::mutex>();
};

}  // namespace zflow
