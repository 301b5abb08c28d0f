#include "zflow/flows/flow.h"

#include <ATen/ATen.h>

#include <cmath>

#include "zflow/core/error.h"

namespace zflow {

FlowImpl::FlowImpl(TransformPtr transform, DistributionPtr base, int64_t context_features,
                   std::shared_ptr<TransformImpl> context_standardize,
                   std::shared_ptr<nn::MLPImpl> embedding)
    : DistributionImpl("flow"),
      transform_(std::move(transform)),
      base_(std::move(base)),
      context_standardize_(std::move(context_standardize)),
      embedding_(std::move(embedding)),
      context_features_(context_features) {
  TORCH_CHECK(transform_ && base_, "flow: transform and base must not be null");
  TORCH_CHECK(context_features_ >= 0, "flow: context_features must be >= 0");
  TORCH_CHECK(!embedding_ || embedding_->options.in_features() == context_features_,
              "flow: the embedding takes ", embedding_ ? embedding_->options.in_features() : 0,
              " context features, the flow has ", context_features_);
  register_module("transform", transform_);
  register_module("base", base_);
  if (context_standardize_) register_module("context_standardize", context_standardize_);
  if (embedding_) register_module("embedding", embedding_);
}

Tensor FlowImpl::embed_context(const Tensor& context) {
  if (!context.defined()) {
    TORCH_CHECK(context_features_ == 0, "flow: this flow is conditional and needs a context of ",
                context_features_, " features");
    return context;
  }
  TORCH_CHECK(context_features_ > 0, "flow: this flow is unconditional but was given a context");
  TORCH_CHECK(context.dim() == 2 && context.size(1) == context_features_,
              "flow: context must be [B, ", context_features_, "], got ", context.sizes());
  Tensor c = context;
  if (context_standardize_) c = context_standardize_->forward(c).outputs;
  if (embedding_) c = embedding_->forward(c);
  return c;
}

Tensor FlowImpl::log_prob(const Tensor& inputs, const Tensor& context) {
  const Tensor c = embed_context(context);
  auto out = transform_->forward(inputs, c);
  return base_->log_prob(out.outputs, c) + out.logabsdet;
}

Tensor FlowImpl::draw_noise(int64_t n, const Tensor& embedded) {
  if (!embedded.defined()) return base_->sample(n);
  if (base_->context_features() == 0) return base_->sample(embedded.size(0) * n);
  return base_->sample(n, embedded).flatten(0, 1);  // [C, n, ...] → [C·n, ...]
}

std::pair<Tensor, Tensor> FlowImpl::draw(int64_t n, const Tensor& context, double temperature,
                                         bool with_log_prob) {
  TORCH_CHECK(n >= 0, "flow: number of samples must be >= 0, got ", n);
  const bool one_context = context.defined() && context.dim() == 1;
  const Tensor raw = one_context ? context.unsqueeze(0) : context;
  const Tensor embedded = embed_context(raw);
  // Every context row gets n consecutive samples.
  const Tensor repeated = embedded.defined() ? embedded.repeat_interleave(n, 0) : embedded;
  Tensor z = draw_noise(n, embedded);
  if (temperature != 1.0) z = z * temperature;
  Tensor x;
  Tensor log_prob;
  if (with_log_prob) {
    auto out = transform_->inverse(z, repeated);
    // log p(x) = log π(z) − log|det ∂x/∂z| (the model's density, whatever the temperature).
    x = out.outputs;
    log_prob = base_->log_prob(z, repeated) - out.logabsdet;
  } else {
    // Without the log-determinant, which some layers (continuous flows) pay dearly for.
    x = transform_->inverse_outputs(z, repeated);
  }
  if (raw.defined() && !one_context) {
    std::vector<int64_t> shape{raw.size(0), n};
    for (auto s : x.sizes().slice(1)) shape.push_back(s);
    x = x.reshape(shape);
    if (with_log_prob) log_prob = log_prob.reshape({raw.size(0), n});
  }
  return {x, log_prob};
}

std::pair<Tensor, Tensor> FlowImpl::sample_and_log_prob(int64_t n, const Tensor& context) {
  return draw(n, context, 1.0, true);
}

Tensor FlowImpl::sample(int64_t n, const Tensor& context) {
  return draw(n, context, 1.0, false).first;
}

Tensor FlowImpl::sample_at_temperature(int64_t n, double temperature, const Tensor& context) {
  if (!(temperature > 0) || !std::isfinite(temperature)) {
    throw ConfigError("temperature must be a positive number, got " + std::to_string(temperature));
  }
  if (base_->type() != "standard_normal") {
    throw ConfigError("sampling at a temperature needs a standard_normal base, this flow has " +
                      base_->type());
  }
  return draw(n, context, temperature, false).first;
}

Tensor FlowImpl::transform_to_noise(const Tensor& inputs, const Tensor& context) {
  return transform_->forward_outputs(inputs, embed_context(context));
}

Tensor FlowImpl::decode(const Tensor& noise, const Tensor& context) {
  return transform_->inverse_outputs(noise, embed_context(context));
}

Json FlowImpl::spec() const {
  Json s = {{"type", "flow"}, {"transform", transform_->spec()}, {"base", base_->spec()}};
  if (context_features_ > 0) s["context_features"] = context_features_;
  if (context_standardize_) s["context_standardize"] = context_standardize_->spec();
  if (embedding_) {
    Json e = nn::mlp_spec(embedding_->options);
    e["features"] = embedding_->options.out_features();
    s["embedding"] = e;
  }
  return s;
}

void FlowImpl::pretty_print(std::ostream& stream) const {
  stream << "flow(base " << base_->type() << ", " << transform_->describe();
  if (context_features_ > 0) stream << ", context " << context_features_;
  if (embedding_) {
    stream << " embedded by ";
    embedding_->pretty_print(stream);
  }
  stream << ")";
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) {
    if (p.requires_grad()) n += p.numel();
  }
  return n;
}

}  // namespace zflow
