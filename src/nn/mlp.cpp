#include "zflow/nn/mlp.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include "zflow/core/error.h"
#include "zflow/core/kernels.h"
#include "zflow/nn/dense.h"

namespace zflow::nn {

Tensor apply_activation(const std::string& name, const Tensor& x) {
  if (name == "relu") return at::relu(x);
  if (name == "gelu") return at::gelu(x);
  if (name == "silu") return at::silu(x);
  if (name == "tanh") return at::tanh(x);
  if (name == "elu") return at::elu(x);
  if (name == "leaky_relu") return at::leaky_relu(x, 0.01);
  throw ConfigError("unknown activation '" + name +
                    "' (choose relu, gelu, silu, tanh, elu or leaky_relu)");
}

MLPImpl::MLPImpl(MLPOptions options_) : options(std::move(options_)) { reset(); }

void MLPImpl::reset() {
  require_positive("mlp: in_features + context_features",
                   options.in_features() + options.context_features());
  require_positive("mlp: out_features", options.out_features());
  require_positive("mlp: hidden_features", options.hidden_features());
  if (options.num_layers() < 0) throw ConfigError("mlp: num_layers must be >= 0");
  apply_activation(options.activation(), at::zeros({1}));  // validates the name early

  const int64_t in = options.in_features() + options.context_features();
  const int64_t hidden = options.hidden_features();
  layers_ = register_module("layers", torch::nn::ModuleList());
  if (options.residual()) {
    // Input projection, then residual blocks h ← h + W₂ act(W₁ act(h)).
    layers_->push_back(torch::nn::Linear(in, hidden));
    for (int64_t i = 0; i < options.num_layers(); ++i) {
      layers_->push_back(torch::nn::Linear(hidden, hidden));
      layers_->push_back(torch::nn::Linear(hidden, hidden));
    }
  } else {
    int64_t width = in;
    for (int64_t i = 0; i < options.num_layers(); ++i) {
      layers_->push_back(torch::nn::Linear(width, hidden));
      width = hidden;
    }
  }
  const int64_t last_in = (options.residual() || options.num_layers() > 0) ? hidden : in;
  output_ = register_module("output", torch::nn::Linear(last_in, options.out_features()));
  if (options.zero_init_last()) {
    torch::NoGradGuard no_grad;
    output_->weight.zero_();
    output_->bias.zero_();
  }
}

Tensor MLPImpl::activate(const Tensor& x) const {
  return apply_activation(options.activation(), x);
}

Tensor MLPImpl::forward(const Tensor& inputs, const Tensor& context) {
  Tensor h = inputs;
  if (options.context_features() > 0) {
    TORCH_CHECK(context.defined(), "mlp: this conditioner needs a context of size ",
                options.context_features());
    TORCH_CHECK(context.size(-1) == options.context_features(), "mlp: context must have ",
                options.context_features(), " features, got ", context.sizes());
    h = inputs.size(-1) > 0 ? at::cat({inputs, context}, -1) : context;
  }
  if (options.residual()) {
    h = layers_->ptr<torch::nn::LinearImpl>(0)->forward(h);
    for (size_t i = 1; i + 1 < layers_->size(); i += 2) {
      Tensor r = layers_->ptr<torch::nn::LinearImpl>(i)->forward(activate(h));
      r = layers_->ptr<torch::nn::LinearImpl>(i + 1)->forward(activate(r));
      h = h + r;
    }
    h = activate(h);
    return output_->forward(h);
  }
  if (!fused_kernels()) {
    for (size_t i = 0; i < layers_->size(); ++i) {
      h = activate(layers_->ptr<torch::nn::LinearImpl>(i)->forward(h));
    }
    return output_->forward(h);
  }
  // The plain MLP is one dense stack with a hand-written backward pass (nn/dense.h).
  std::vector<Tensor> weights, biases;
  weights.reserve(layers_->size() + 1);
  biases.reserve(layers_->size() + 1);
  for (size_t i = 0; i < layers_->size(); ++i) {
    const auto* linear = layers_->ptr<torch::nn::LinearImpl>(i).get();
    weights.push_back(linear->weight);
    biases.push_back(linear->bias);
  }
  weights.push_back(output_->weight);
  biases.push_back(output_->bias);
  const DenseLayers stack{weights, biases, {}, options.activation()};
  if (h.dim() == 2) return dense_stack(h, stack);
  // Leading batch dimensions flattened into one and restored.
  std::vector<int64_t> shape(h.sizes().begin(), h.sizes().end());
  shape.back() = options.out_features();
  return dense_stack(h.reshape({-1, h.size(-1)}), stack).view(shape);
}

void MLPImpl::pretty_print(std::ostream& stream) const {
  stream << (options.residual() ? "ResidualMLP(" : "MLP(") << options.in_features();
  if (options.context_features() > 0) stream << "+" << options.context_features() << " context";
  stream << " -> " << options.hidden_features() << " x " << options.num_layers() << " -> "
         << options.out_features() << ", " << options.activation() << ")";
}

MLPOptions mlp_options_from_spec(const Json& spec, int64_t in_features, int64_t out_features,
                                 int64_t context_features) {
  const Json s = spec.is_null() ? Json::object({{"type", "mlp"}}) : spec;
  reject_unknown_fields(s, {"hidden", "layers", "activation"});
  const auto type = spec_optional<std::string>(s, "type", "mlp");
  if (type != "mlp" && type != "resmlp") {
    throw ConfigError("unknown conditioner type '" + type + "' (choose mlp or resmlp)");
  }
  const MLPOptions defaults(in_features, out_features);
  return MLPOptions(defaults)
      .hidden_features(spec_optional<int64_t>(s, "hidden", defaults.hidden_features()))
      .num_layers(spec_optional<int64_t>(s, "layers", defaults.num_layers()))
      .activation(spec_optional<std::string>(s, "activation", defaults.activation()))
      .residual(type == "resmlp")
      .context_features(context_features);
}

Json mlp_spec(const MLPOptions& options) {
  return {{"type", options.residual() ? "resmlp" : "mlp"},
          {"hidden", options.hidden_features()},
          {"layers", options.num_layers()},
          {"activation", options.activation()}};
}

ConditionerFactoryPtr mlp_conditioner(const MLPOptions& options) {
  return conditioner_factory(
      [options](int64_t in, int64_t out, int64_t context) -> ConditionerPtr {
        return std::make_shared<MLPImpl>(
            MLPOptions(options).in_features(in).out_features(out).context_features(context));
      },
      mlp_spec(options));
}

ConditionerFactoryPtr mlp_conditioner_from_spec(const Json& spec) {
  return mlp_conditioner(mlp_options_from_spec(spec, 0, 0, 0));
}

}  // namespace zflow::nn
