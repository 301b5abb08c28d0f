#include "zflow/core/index.h"

#include <ATen/ATen.h>

namespace zflow {

IndexList::IndexList(std::vector<int64_t> values) : values_(std::move(values)) {
  cpu_ = at::tensor(values_, at::kLong);
}

const at::Tensor& IndexList::on(const at::Device& device) const {
  if (device.is_cpu()) return cpu_;
  std::lock_guard<std::mutex> lock(*mutex_);
  if (!other_.defined() || other_.device() != device) other_ = cpu_.to(device);
  return other_;
}

}  // namespace zflow
