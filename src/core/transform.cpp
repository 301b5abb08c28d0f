#include "zflow/core/transform.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

TransformImpl::TransformImpl(std::string type) : torch::nn::Module(type), type_(std::move(type)) {}

namespace {

void check_inputs(const std::string& type, const Tensor& inputs, const Tensor& context) {
  TORCH_CHECK(inputs.defined() && inputs.dim() >= 2, type,
              ": inputs must be [B, D] or [B, C, H, W], got ",
              inputs.defined() ? inputs.sizes() : at::IntArrayRef{});
  if (context.defined()) {
    TORCH_CHECK(context.dim() == 2 && context.size(0) == inputs.size(0), type,
                ": context must be [B, K] with B = ", inputs.size(0), ", got ", context.sizes());
  }
}

void check_output(const std::string& type, const Tensor& inputs, const TransformOutput& out) {
  TORCH_CHECK(out.logabsdet.dim() == 1 && out.logabsdet.size(0) == inputs.size(0), type,
              ": logabsdet must be [B] with B = ", inputs.size(0), ", got ", out.logabsdet.sizes());
}

}  // namespace

TransformOutput TransformImpl::forward(const Tensor& inputs, const Tensor& context) {
  check_inputs(type_, inputs, context);
  auto out = forward_impl(inputs, context);
  check_output(type_, inputs, out);
  return out;
}

TransformOutput TransformImpl::inverse(const Tensor& inputs, const Tensor& context) {
  if (!has_inverse()) {
    throw NotInvertibleError(type_ + " has no closed-form inverse");
  }
  check_inputs(type_, inputs, context);
  auto out = inverse_impl(inputs, context);
  check_output(type_, inputs, out);
  return out;
}

Tensor TransformImpl::forward_outputs(const Tensor& inputs, const Tensor& context) {
  check_inputs(type_, inputs, context);
  return forward_outputs_impl(inputs, context);
}

Tensor TransformImpl::inverse_outputs(const Tensor& inputs, const Tensor& context) {
  if (!has_inverse()) {
    throw NotInvertibleError(type_ + " has no closed-form inverse");
  }
  check_inputs(type_, inputs, context);
  return inverse_outputs_impl(inputs, context);
}

Tensor TransformImpl::forward_outputs_impl(const Tensor& inputs, const Tensor& context) {
  return forward_impl(inputs, context).outputs;
}

Tensor TransformImpl::inverse_outputs_impl(const Tensor& inputs, const Tensor& context) {
  return inverse_impl(inputs, context).outputs;
}

TransformOutput TransformImpl::inverse_impl(const Tensor&, const Tensor&) {
  throw NotInvertibleError(type_ + " has no closed-form inverse");
}

std::string TransformImpl::describe() const { return type_; }

void TransformImpl::pretty_print(std::ostream& stream) const { stream << describe(); }

Tensor sum_except_batch(const Tensor& values) {
  if (values.dim() == 1) return values;
  return values.reshape({values.size(0), -1}).sum(1);
}

// ---------------------------------------------------------------------------------------

CompositeTransformImpl::CompositeTransformImpl(std::vector<TransformPtr> layers)
    : TransformImpl("composite") {
  for (auto& layer : layers) push_back(std::move(layer));
}

void CompositeTransformImpl::push_back(TransformPtr layer) {
  TORCH_CHECK(layer != nullptr, "composite: layer must not be null");
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
}

TransformPtr CompositeTransformImpl::layer(size_t i) const {
  TORCH_CHECK(i < layers_.size(), "composite: layer ", i, " out of range (", layers_.size(), ")");
  return layers_[i];
}

bool CompositeTransformImpl::has_inverse() const {
  for (const auto& layer : layers_) {
    if (!layer->has_inverse()) return false;
  }
  return true;
}

TransformOutput CompositeTransformImpl::forward_impl(const Tensor& inputs, const Tensor& context) {
  Tensor x = inputs;
  Tensor total = at::zeros({inputs.size(0)}, inputs.options());
  for (const auto& layer : layers_) {
    auto out = layer->forward(x, context);
    x = out.outputs;
    total = total + out.logabsdet;
  }
  return {x, total};
}

TransformOutput CompositeTransformImpl::inverse_impl(const Tensor& inputs, const Tensor& context) {
  Tensor x = inputs;
  Tensor total = at::zeros({inputs.size(0)}, inputs.options());
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    auto out = (*it)->inverse(x, context);
    x = out.outputs;
    total = total + out.logabsdet;
  }
  return {x, total};
}

Tensor CompositeTransformImpl::forward_outputs_impl(const Tensor& inputs, const Tensor& context) {
  Tensor x = inputs;
  for (const auto& layer : layers_) x = layer->forward_outputs(x, context);
  return x;
}

Tensor CompositeTransformImpl::inverse_outputs_impl(const Tensor& inputs, const Tensor& context) {
  Tensor x = inputs;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it)
    x = (*it)->inverse_outputs(x, context);
  return x;
}

std::vector<Tensor> CompositeTransformImpl::forward_steps(const Tensor& inputs,
                                                          const Tensor& context) {
  std::vector<Tensor> steps{inputs};
  for (const auto& layer : layers_) steps.push_back(layer->forward(steps.back(), context).outputs);
  return steps;
}

std::vector<Tensor> CompositeTransformImpl::inverse_steps(const Tensor& inputs,
                                                          const Tensor& context) {
  std::vector<Tensor> steps{inputs};
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    steps.push_back((*it)->inverse(steps.back(), context).outputs);
  }
  return steps;
}

std::vector<int64_t> CompositeTransformImpl::forward_shape(
    const std::vector<int64_t>& input_shape) const {
  std::vector<int64_t> shape = input_shape;
  for (const auto& layer : layers_) shape = layer->forward_shape(shape);
  return shape;
}

std::vector<int64_t> CompositeTransformImpl::inverse_shape(
    const std::vector<int64_t>& output_shape) const {
  std::vector<int64_t> shape = output_shape;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) shape = (*it)->inverse_shape(shape);
  return shape;
}

Json CompositeTransformImpl::spec() const {
  Json layers = Json::array();
  for (const auto& layer : layers_) layers.push_back(layer->spec());
  return {{"type", "composite"}, {"layers", layers}};
}

std::string CompositeTransformImpl::describe() const {
  return "composite of " + std::to_string(layers_.size()) + " layers";
}

// ---------------------------------------------------------------------------------------

InverseTransformImpl::InverseTransformImpl(TransformPtr inner)
    : TransformImpl("inverse"), inner_(std::move(inner)) {
  TORCH_CHECK(inner_ != nullptr, "inverse: wrapped transform must not be null");
  register_module("inner", inner_);
}

TransformOutput InverseTransformImpl::forward_impl(const Tensor& inputs, const Tensor& context) {
  return inner_->inverse(inputs, context);
}

TransformOutput InverseTransformImpl::inverse_impl(const Tensor& inputs, const Tensor& context) {
  return inner_->forward(inputs, context);
}

Json InverseTransformImpl::spec() const {
  return {{"type", "inverse"}, {"transform", inner_->spec()}};
}

std::string InverseTransformImpl::describe() const { return "inverse of " + inner_->describe(); }

}  // namespace zflow
