#include "zflow/nn/velocity.h"

#include <cmath>
#include <ostream>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/nn/mlp.h"
#include "zflow/nn/unet.h"

namespace zflow::nn {

std::vector<std::string> time_embedding_names() { return {"linear", "sinusoidal"}; }

int64_t time_feature_count(const std::string& embedding, int64_t size) {
  if (embedding == "linear") return 1;
  if (embedding == "sinusoidal") {
    if (size <= 0 || size % 2 != 0) {
      throw ConfigError("velocity field: embedding_size must be a positive even number (got " +
                        std::to_string(size) + ")");
    }
    return size + 1;
  }
  throw ConfigError("velocity field: unknown time_embedding '" + embedding +
                    "' (choose linear or sinusoidal)");
}

Tensor time_features(const Tensor& t, const std::string& embedding, int64_t size) {
  TORCH_CHECK(t.dim() == 1, "time_features: t must be [B], got ", t.sizes());
  const int64_t count = time_feature_count(embedding, size);
  Tensor column = t.unsqueeze(1);
  if (count == 1) return column;
  // ω_k geometric from 1 to 32 rad over t ∈ [0, 1].
  const int64_t half = size / 2;
  Tensor omega = half == 1 ? at::ones({1}, t.options())
                           : at::exp(at::linspace(0.0, std::log(32.0), half, t.options()));
  Tensor phase = column * omega.unsqueeze(0);
  return at::cat({column, at::sin(phase), at::cos(phase)}, 1);
}

VelocityMLPImpl::VelocityMLPImpl(const Json& spec, int64_t features, int64_t context_features)
    : features_(features), context_features_(context_features) {
  reject_unknown_fields(spec,
                        {"hidden", "layers", "activation", "time_embedding", "embedding_size"});
  require_positive("velocity field mlp: features", features);
  hidden_ = spec_optional<int64_t>(spec, "hidden", 64);
  layers_ = spec_optional<int64_t>(spec, "layers", 3);
  activation_ = spec_optional<std::string>(spec, "activation", "silu");
  time_embedding_ = spec_optional<std::string>(spec, "time_embedding", "linear");
  embedding_size_ = spec_optional<int64_t>(spec, "embedding_size", 16);
  require_positive("velocity field mlp: hidden", hidden_);
  require_positive("velocity field mlp: layers", layers_);
  const int64_t time_count = time_feature_count(time_embedding_, embedding_size_);
  // The last layer starts at zero: the flow starts as the identity.
  net_ = register_module("net", MLP(MLPOptions(features + time_count, features)
                                        .hidden_features(hidden_)
                                        .num_layers(layers_)
                                        .activation(activation_)
                                        .context_features(context_features))
                                    .ptr());
}

Tensor VelocityMLPImpl::forward(const Tensor& t, const Tensor& x, const Tensor& context) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == features_, "velocity field mlp: x must be [B, ",
              features_, "], got ", x.sizes());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == x.size(0), "velocity field mlp: t must be [", x.size(0),
              "], got ", t.sizes());
  Tensor inputs = at::cat({x, time_features(t, time_embedding_, embedding_size_)}, 1);
  return std::static_pointer_cast<MLPImpl>(net_)->forward(inputs, context);
}

Json VelocityMLPImpl::spec() const {
  return {{"type", "mlp"},
          {"hidden", hidden_},
          {"layers", layers_},
          {"activation", activation_},
          {"time_embedding", time_embedding_},
          {"embedding_size", embedding_size_}};
}

void VelocityMLPImpl::pretty_print(std::ostream& stream) const {
  stream << "VelocityMLP(" << features_ << " + t";
  if (context_features_ > 0) stream << " + " << context_features_ << " context";
  stream << " -> " << hidden_ << " x " << layers_ << " -> " << features_ << ", " << activation_
         << ", " << time_embedding_ << " time)";
}

VelocityFieldPtr make_velocity_field(const Json& spec, const std::vector<int64_t>& event_shape,
                                     int64_t context_features) {
  const Json s = spec.is_null() ? Json::object() : spec;
  if (!s.is_object()) throw ConfigError("velocity field: the spec must be a JSON object");
  const auto type = spec_optional<std::string>(s, "type", event_shape.size() == 1 ? "mlp" : "unet");
  Json fields = s;
  fields.erase("type");
  if (type == "mlp") {
    if (event_shape.size() != 1) {
      throw ConfigError("velocity field mlp is for tabular data [D]; for images of shape " +
                        shape_string(event_shape) + " use unet");
    }
    return std::make_shared<VelocityMLPImpl>(fields, event_shape[0], context_features);
  }
  if (type == "unet") {
    if (event_shape.size() != 3) {
      throw ConfigError("velocity field unet is for images [C, H, W], not events of shape " +
                        shape_string(event_shape) + "; use mlp");
    }
    return std::make_shared<VelocityUNetImpl>(fields, event_shape, context_features);
  }
  throw ConfigError("velocity field: unknown type '" + type + "' (choose mlp or unet)");
}

}  // namespace zflow::nn
