#include "zflow/nn/made.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/core/kernels.h"
#include "zflow/core/random.h"
#include "zflow/nn/dense.h"
#include "zflow/nn/mlp.h"

namespace zflow::nn {

namespace {

// mask[out][in] = 1 where the connection is allowed. Hidden units see inputs of degree
// ≤ their own (≥); outputs see hidden units of strictly smaller degree (>), so output i
// never depends on inputs of degree ≥ deg(i) — that includes input i itself.
Tensor build_mask(const std::vector<int64_t>& in_degrees, const std::vector<int64_t>& out_degrees,
                  bool strict) {
  Tensor mask =
      at::zeros({static_cast<int64_t>(out_degrees.size()), static_cast<int64_t>(in_degrees.size())},
                at::kFloat);
  auto m = mask.accessor<float, 2>();
  for (size_t o = 0; o < out_degrees.size(); ++o) {
    for (size_t i = 0; i < in_degrees.size(); ++i) {
      m[o][i] =
          (strict ? out_degrees[o] > in_degrees[i] : out_degrees[o] >= in_degrees[i]) ? 1.f : 0.f;
    }
  }
  return mask;
}

// Hidden degrees cycle through 1..D−1 (deterministic, as in Germain et al. §4 without the
// random resampling): every degree is present whenever the layer is at least D−1 wide.
std::vector<int64_t> hidden_degrees(int64_t width, int64_t features) {
  std::vector<int64_t> d(static_cast<size_t>(width));
  const int64_t span = std::max<int64_t>(features - 1, 1);
  for (int64_t k = 0; k < width; ++k) d[k] = k % span + 1;
  return d;
}

}  // namespace

MaskedLinearImpl::MaskedLinearImpl(const Tensor& mask_, bool zero_init) {
  const int64_t out = mask_.size(0), in = mask_.size(1);
  const double bound = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(in, 1)));
  weight = register_parameter(
      "weight", zero_init ? at::zeros({out, in}) : at::rand({out, in}) * (2 * bound) - bound);
  bias = register_parameter("bias",
                            zero_init ? at::zeros({out}) : at::rand({out}) * (2 * bound) - bound);
  mask = register_buffer("mask", mask_.clone());
  masked_weight();
}

Tensor MaskedLinearImpl::forward(const Tensor& inputs) {
  return at::linear(inputs, weight * mask, bias);
}

const Tensor& MaskedLinearImpl::masked_weight() {
  if (weight._version() != masked_version_) {
    at::NoGradGuard no_grad;
    weight.mul_(mask);
    masked_version_ = static_cast<int64_t>(weight._version());
  }
  return weight;
}

MADEImpl::MADEImpl(MADEOptions options_) : options(std::move(options_)) {
  const int64_t d = options.features(), p = options.params_per_feature();
  require_positive("made: features", d);
  require_positive("made: params_per_feature", p);
  if (options.hidden().empty()) throw ConfigError("made: needs at least one hidden layer");
  for (auto h : options.hidden()) require_positive("made: hidden width", h);
  if (options.residual() && std::adjacent_find(options.hidden().begin(), options.hidden().end(),
                                               std::not_equal_to<>()) != options.hidden().end()) {
    throw ConfigError("made: residual blocks need equal hidden widths");
  }
  if (options.context_features() < 0) throw ConfigError("made: context_features must be >= 0");
  apply_activation(options.activation(), at::zeros({1}));

  // Input degrees from the ordering: degree = 1 + position in the order.
  std::vector<int64_t> order(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) order[i] = i;
  if (options.ordering() == "reversed") {
    std::reverse(order.begin(), order.end());
  } else if (options.ordering() == "random") {
    order = random_permutation(d, options.seed());
  } else if (options.ordering() != "natural") {
    throw ConfigError("made: ordering must be natural, reversed or random, got '" +
                      options.ordering() + "'");
  }
  input_degrees_.assign(static_cast<size_t>(d), 0);
  for (int64_t pos = 0; pos < d; ++pos) input_degrees_[order[pos]] = pos + 1;

  layers_ = register_module("layers", torch::nn::ModuleList());
  context_layers_ = register_module("context", torch::nn::ModuleList());
  std::vector<int64_t> previous = input_degrees_;
  for (size_t l = 0; l < options.hidden().size(); ++l) {
    const auto degrees = hidden_degrees(options.hidden()[l], d);
    if (options.residual() && l > 0) {
      // A residual block: two masked layers between hidden units of the same degrees.
      layers_->push_back(MaskedLinear(build_mask(degrees, degrees, false)));
      layers_->push_back(MaskedLinear(build_mask(degrees, degrees, false)));
    } else {
      layers_->push_back(MaskedLinear(build_mask(previous, degrees, false)));
    }
    previous = degrees;
  }
  if (options.context_features() > 0) {
    context_layers_->push_back(torch::nn::Linear(options.context_features(), options.hidden()[0]));
  }
  // Output unit i·P + q belongs to input i; zero-initialised so the layer starts as identity.
  std::vector<int64_t> out_degrees;
  for (int64_t i = 0; i < d; ++i) out_degrees.insert(out_degrees.end(), p, input_degrees_[i]);
  output_ = register_module("output", MaskedLinear(build_mask(previous, out_degrees, true), true));
}

Tensor MADEImpl::forward(const Tensor& inputs, const Tensor& context) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == options.features(),
              "made: expected inputs [B, ", options.features(), "], got ", inputs.sizes());
  if (options.context_features() == 0 && !options.residual() && fused_kernels()) {
    // A plain stack of masked layers: one fused node with masked weight gradients.
    std::vector<Tensor> weights, biases, masks;
    for (size_t i = 0; i <= layers_->size(); ++i) {
      MaskedLinearImpl* layer =
          i < layers_->size() ? layers_->ptr<MaskedLinearImpl>(i).get() : output_.get();
      weights.push_back(layer->masked_weight());
      biases.push_back(layer->bias);
      masks.push_back(layer->mask);
    }
    return dense_stack(inputs, DenseLayers{weights, biases, masks, options.activation()})
        .view({inputs.size(0), options.features(), options.params_per_feature()});
  }
  const auto act = [this](const Tensor& x) { return apply_activation(options.activation(), x); };
  Tensor h = layers_->ptr<MaskedLinearImpl>(0)->forward(inputs);
  if (options.context_features() > 0) {
    TORCH_CHECK(context.defined() && context.size(-1) == options.context_features(),
                "made: needs a context with ", options.context_features(), " features");
    h = h + context_layers_->ptr<torch::nn::LinearImpl>(0)->forward(context);
  }
  if (options.residual()) {
    for (size_t i = 1; i + 1 < layers_->size(); i += 2) {
      Tensor r = layers_->ptr<MaskedLinearImpl>(i)->forward(act(h));
      h = h + layers_->ptr<MaskedLinearImpl>(i + 1)->forward(act(r));
    }
    h = act(h);
  } else {
    h = act(h);
    for (size_t i = 1; i < layers_->size(); ++i)
      h = act(layers_->ptr<MaskedLinearImpl>(i)->forward(h));
  }
  return output_->forward(h).view(
      {inputs.size(0), options.features(), options.params_per_feature()});
}

void MADEImpl::pretty_print(std::ostream& stream) const {
  stream << "MADE(" << options.features();
  if (options.context_features() > 0) stream << "+" << options.context_features() << " context";
  stream << " ->";
  for (auto h : options.hidden()) stream << " " << h;
  stream << " -> " << options.features() << "x" << options.params_per_feature() << ", "
         << options.ordering() << (options.residual() ? ", residual" : "") << ", "
         << options.activation() << ")";
}

MADEOptions made_options_from_spec(const Json& spec, int64_t features, int64_t params_per_feature,
                                   int64_t context_features) {
  const Json s = spec.is_null() ? Json::object({{"type", "made"}}) : spec;
  reject_unknown_fields(s, {"hidden", "ordering", "seed", "residual", "activation"});
  const MADEOptions defaults(features, params_per_feature);
  return MADEOptions(defaults)
      .hidden(spec_optional<std::vector<int64_t>>(s, "hidden", defaults.hidden()))
      .ordering(spec_optional<std::string>(s, "ordering", defaults.ordering()))
      .seed(spec_optional<uint64_t>(s, "seed", defaults.seed()))
      .residual(spec_optional<bool>(s, "residual", defaults.residual()))
      .activation(spec_optional<std::string>(s, "activation", defaults.activation()))
      .context_features(context_features);
}

Json made_spec(const MADEOptions& o) {
  return {{"type", "made"},   {"hidden", o.hidden()},     {"ordering", o.ordering()},
          {"seed", o.seed()}, {"residual", o.residual()}, {"activation", o.activation()}};
}

ConditionerFactoryPtr made_conditioner(const MADEOptions& options) {
  return conditioner_factory(
      [options](int64_t in, int64_t out, int64_t context) -> ConditionerPtr {
        require_positive("made: features", in);
        if (out % in != 0) {
          throw ConfigError("made: " + std::to_string(out) +
                            " outputs are not a whole number per " + "each of the " +
                            std::to_string(in) + " features");
        }
        return std::make_shared<MADEImpl>(
            MADEOptions(options).features(in).params_per_feature(out / in).context_features(
                context));
      },
      made_spec(options));
}

ConditionerFactoryPtr made_conditioner_from_spec(const Json& spec) {
  return made_conditioner(made_options_from_spec(spec, 0, 0, 0));
}

}  // namespace zflow::nn
