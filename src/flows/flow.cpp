#include "zflow/flows/flow.h"

#include <ATen/ATen.h>

namespace zflow {

FlowImpl::FlowImpl(TransformPtr transform, DistributionPtr base)
    : DistributionImpl("flow"), transform_(std::move(transform)), base_(std::move(base)) {
  TORCH_CHECK(transform_ && base_, "flow: transform and base must not be null");
  register_module("transform", transform_);
  register_module("base", base_);
}

Tensor FlowImpl::log_prob(const Tensor& inputs, const Tensor& context) {
  auto out = transform_->forward(inputs, context);
  return base_->log_prob(out.outputs, context) + out.logabsdet;
}

Tensor FlowImpl::sample(int64_t n, const Tensor& context) {
  TORCH_CHECK(n >= 0, "flow: number of samples must be >= 0, got ", n);
  Tensor z = base_->sample(n, context);
  return transform_->inverse(z, context).outputs;
}

std::pair<Tensor, Tensor> FlowImpl::sample_and_log_prob(int64_t n, const Tensor& context) {
  TORCH_CHECK(n >= 0, "flow: number of samples must be >= 0, got ", n);
  Tensor z = base_->sample(n, context);
  Tensor base_log_prob = base_->log_prob(z, context);
  auto out = transform_->inverse(z, context);
  // log p(x) = log π(z) − log|det ∂x/∂z|.
  return {out.outputs, base_log_prob - out.logabsdet};
}

Tensor FlowImpl::transform_to_noise(const Tensor& inputs, const Tensor& context) {
  return transform_->forward(inputs, context).outputs;
}

Tensor FlowImpl::decode(const Tensor& noise, const Tensor& context) {
  return transform_->inverse(noise, context).outputs;
}

Json FlowImpl::spec() const {
  return {{"type", "flow"}, {"transform", transform_->spec()}, {"base", base_->spec()}};
}

void FlowImpl::pretty_print(std::ostream& stream) const {
  stream << "flow(base " << base_->type() << ", " << transform_->describe() << ")";
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) {
    if (p.requires_grad()) n += p.numel();
  }
  return n;
}

}  // namespace zflow
