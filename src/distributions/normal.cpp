#include "zflow/distributions/normal.h"

#include <cmath>

#include <ATen/ATen.h>

#include "event_shape.h"
#include "zflow/core/transform.h"

namespace zflow {

using detail::batch_shape;
using detail::check_event;

namespace {

constexpr double kHalfLog2Pi = 0.91893853320467274178;  // ½ log(2π)

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

Json shape_json(const std::vector<int64_t>& shape) { return Json(shape); }

}  // namespace

Tensor standard_normal_log_prob(const Tensor& x) {
  double d = 1;
  for (auto s : x.sizes().slice(1)) d *= static_cast<double>(s);
  return -0.5 * sum_except_batch(x * x) - d * kHalfLog2Pi;
}

StandardNormalImpl::StandardNormalImpl(std::vector<int64_t> shape)
    : DistributionImpl("standard_normal"), shape_(std::move(shape)) {
  for (auto s : shape_) require_positive("standard_normal: event size", s);
  anchor_ = register_buffer("anchor", at::zeros({0}, at::kFloat));
}

Tensor StandardNormalImpl::log_prob(const Tensor& inputs, const Tensor&) {
  check_event(type(), shape_, inputs);
  return standard_normal_log_prob(inputs);
}

Tensor StandardNormalImpl::sample(int64_t n, const Tensor&) {
  return at::randn(batch_shape(n, shape_), anchor_.options());
}

Json StandardNormalImpl::spec() const {
  return {{"type", "standard_normal"}, {"shape", shape_json(shape_)}};
}

DiagonalNormalImpl::DiagonalNormalImpl(std::vector<int64_t> shape)
    : DistributionImpl("diagonal_normal"), shape_(std::move(shape)) {
  for (auto s : shape_) require_positive("diagonal_normal: event size", s);
  mean = register_parameter("mean", at::zeros(shape_, at::kFloat));
  log_scale = register_parameter("log_scale", at::zeros(shape_, at::kFloat));
}

Tensor DiagonalNormalImpl::log_prob(const Tensor& inputs, const Tensor&) {
  check_event(type(), shape_, inputs);
  Tensor u = (inputs - mean) * at::exp(-log_scale);
  const auto d = static_cast<double>(numel_of(shape_));
  return -0.5 * sum_except_batch(u * u) - log_scale.sum() - d * kHalfLog2Pi;
}

Tensor DiagonalNormalImpl::sample(int64_t n, const Tensor&) {
  Tensor eps = at::randn(batch_shape(n, shape_), mean.options());
  return mean + at::exp(log_scale) * eps;
}

Json DiagonalNormalImpl::spec() const {
  return {{"type", "diagonal_normal"}, {"shape", shape_json(shape_)}};
}

}  // namespace zflow
