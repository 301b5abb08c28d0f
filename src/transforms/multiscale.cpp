#include "zflow/transforms/multiscale.h"

#include <cmath>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

std::vector<int64_t> batched(int64_t batch, const std::vector<int64_t>& shape) {
  std::vector<int64_t> out{batch};
  out.insert(out.end(), shape.begin(), shape.end());
  return out;
}

}  // namespace

MultiscaleImpl::MultiscaleImpl(const MultiscaleOptions& options)
    : TransformImpl("multiscale"),
      shape_(options.shape()),
      levels_(options.levels()),
      context_features_(options.context_features()),
      split_context_(options.split_context()),
      prior_(AffineTransformerOptions().scale_bound(options.scale_bound()), "multiscale") {
  if (context_features_ < 0) throw ConfigError("multiscale: context_features must be >= 0");
  if (shape_.size() != 3) {
    throw ConfigError("multiscale: shape must be [C, H, W], got " + shape_string(shape_));
  }
  for (auto s : shape_) require_positive("multiscale: shape entries", s);
  if (levels_.empty()) throw ConfigError("multiscale: needs at least one level");
  std::vector<int64_t> current = shape_;
  for (size_t i = 0; i < levels_.size(); ++i) {
    TORCH_CHECK(levels_[i] != nullptr, "multiscale: level ", i, " is null");
    register_module("level" + std::to_string(i), levels_[i]);
    current = levels_[i]->forward_shape(current);
    if (current.size() != 3) {
      throw ConfigError("multiscale: level " + std::to_string(i) + " must output [C, H, W], got " +
                        shape_string(current));
    }
    if (i + 1 == levels_.size()) break;
    const int64_t channels = current[0];
    if (channels < 2) {
      throw ConfigError("multiscale: level " + std::to_string(i) + " outputs " +
                        shape_string(current) +
                        ", too few channels to factor half out (squeeze in the level first)");
    }
    const int64_t kept = channels / 2;
    const int64_t factored = channels - kept;
    latent_shapes_.push_back({factored, current[1], current[2]});
    priors_.push_back(
        register_module("prior" + std::to_string(i), nn::ZeroConv(kept, 2 * factored)));
    current[0] = kept;
  }
  latent_shapes_.push_back(current);
  for (size_t i = 0; i < latent_shapes_.size(); ++i) {
    const bool top = i + 1 == latent_shapes_.size();
    if (context_features_ == 0 || (!top && !split_context_)) {
      context_weights_.emplace_back();
      context_biases_.emplace_back();
      continue;
    }
    // Zero-initialised (Glow's linear_zeros): the prior starts as N(0, I).
    const int64_t out = 2 * latent_shapes_[i][0];
    const std::string name = "context" + std::to_string(i);
    context_weights_.push_back(
        register_parameter(name + "_weight", at::zeros({out, context_features_})));
    context_biases_.push_back(register_parameter(name + "_bias", at::zeros({out})));
  }
  int64_t total = 0;
  for (const auto& s : latent_shapes_) total += numel(s);
  TORCH_CHECK(total == numel(shape_), "multiscale: levels change the number of elements (",
              numel(shape_), " in, ", total, " out)");
}

bool MultiscaleImpl::has_inverse() const {
  for (const auto& level : levels_) {
    if (!level->has_inverse()) return false;
  }
  return true;
}

void MultiscaleImpl::check(const Tensor& inputs) const {
  TORCH_CHECK(inputs.dim() == 4 && inputs.sizes().slice(1) == at::IntArrayRef(shape_),
              "multiscale: expected [B, ", at::IntArrayRef(shape_), "], got ", inputs.sizes());
}

void MultiscaleImpl::check_context(const Tensor& context) const {
  if (context_features_ == 0) return;
  TORCH_CHECK(context.defined(), "multiscale: needs a context of ", context_features_,
              " features (the one-hot class of a class-conditional model)");
  TORCH_CHECK(context.dim() == 2 && context.size(1) == context_features_,
              "multiscale: context must be [B, ", context_features_, "], got ", context.sizes());
}

Tensor MultiscaleImpl::context_term(size_t i, const Tensor& context) const {
  if (!context_weights_[i].defined()) return {};
  return at::linear(context, context_weights_[i], context_biases_[i]).unsqueeze(-1).unsqueeze(-1);
}

Tensor MultiscaleImpl::prior_params(size_t i, const Tensor& h, const Tensor& context,
                                    int64_t batch) {
  const auto& shape = latent_shapes_[i];
  const Tensor term = context_term(i, context);
  if (!h.defined()) {
    // The last level's output: the context's term alone, the same on every pixel.
    return term.expand({batch, 2 * shape[0], shape[1], shape[2]});
  }
  const Tensor conv = priors_[i]->forward(h);
  return term.defined() ? conv + term : conv;
}

std::vector<Tensor> MultiscaleImpl::split_latent(const Tensor& z) const {
  check(z);
  const Tensor flat = z.reshape({z.size(0), -1});
  std::vector<Tensor> parts;
  int64_t offset = 0;
  for (const auto& s : latent_shapes_) {
    parts.push_back(flat.narrow(1, offset, numel(s)).reshape(batched(z.size(0), s)));
    offset += numel(s);
  }
  return parts;
}

Tensor MultiscaleImpl::join_latent(const std::vector<Tensor>& parts) const {
  TORCH_CHECK(parts.size() == latent_shapes_.size(), "multiscale: expected ", latent_shapes_.size(),
              " latent parts, got ", parts.size());
  std::vector<Tensor> flat;
  for (size_t i = 0; i < parts.size(); ++i) {
    TORCH_CHECK(
        parts[i].dim() == 4 && parts[i].sizes().slice(1) == at::IntArrayRef(latent_shapes_[i]),
        "multiscale: latent part ", i, " must be [B, ", at::IntArrayRef(latent_shapes_[i]),
        "], got ", parts[i].sizes());
    flat.push_back(parts[i].reshape({parts[i].size(0), -1}));
  }
  return at::cat(flat, 1).reshape(batched(parts[0].size(0), shape_));
}

TransformOutput MultiscaleImpl::forward_impl(const Tensor& inputs, const Tensor& context) {
  check(inputs);
  check_context(context);
  const int64_t batch = inputs.size(0);
  Tensor h = inputs;
  Tensor total = at::zeros({batch}, inputs.options());
  std::vector<Tensor> parts;
  for (size_t i = 0; i < levels_.size(); ++i) {
    auto out = levels_[i]->forward(h, context);
    h = out.outputs;
    total = total + out.logabsdet;
    if (i + 1 == levels_.size()) break;
    const int64_t kept = h.size(1) / 2;
    const Tensor y = h.narrow(1, kept, h.size(1) - kept);
    h = h.narrow(1, 0, kept);
    // ε = (y − μ(h)) · exp(−log σ(h)): the learned prior as an affine map.
    auto eps =
        prior_.apply_image(y, prior_params(i, h, context, batch), Tensor(), /*inverse=*/true);
    parts.push_back(eps.outputs);
    total = total + eps.logabsdet;
  }
  if (context_features_ > 0) {
    // The class prior of the last level's output: ε = (h − μ(c)) / σ(c).
    auto eps = prior_.apply_image(h, prior_params(parts.size(), Tensor(), context, batch), Tensor(),
                                  /*inverse=*/true);
    h = eps.outputs;
    total = total + eps.logabsdet;
  }
  parts.push_back(h);
  return {join_latent(parts), total};
}

TransformOutput MultiscaleImpl::inverse_impl(const Tensor& inputs, const Tensor& context) {
  check_context(context);
  const int64_t batch = inputs.size(0);
  const std::vector<Tensor> parts = split_latent(inputs);
  Tensor total = at::zeros({batch}, inputs.options());
  Tensor h = parts.back();
  if (context_features_ > 0) {
    // h = μ(c) + σ(c) · ε.
    auto top = prior_.apply_image(h, prior_params(parts.size() - 1, Tensor(), context, batch),
                                  Tensor(), /*inverse=*/false);
    h = top.outputs;
    total = total + top.logabsdet;
  }
  for (size_t k = levels_.size(); k-- > 0;) {
    if (k + 1 < levels_.size()) {
      // y = μ(h) + σ(h) · ε, then the factored channels rejoin.
      auto y = prior_.apply_image(parts[k], prior_params(k, h, context, batch), Tensor(),
                                  /*inverse=*/false);
      total = total + y.logabsdet;
      h = at::cat({h, y.outputs}, 1);
    }
    auto out = levels_[k]->inverse(h, context);
    h = out.outputs;
    total = total + out.logabsdet;
  }
  return {h, total};
}

Json MultiscaleImpl::spec() const {
  Json levels = Json::array();
  for (const auto& level : levels_) levels.push_back(level->spec());
  Json out = {{"type", "multiscale"},
              {"shape", shape_},
              {"levels", levels},
              {"scale_bound", prior_.options().scale_bound()}};
  if (context_features_ > 0) {
    out["context_features"] = context_features_;
    out["split_context"] = split_context_;
  }
  return out;
}

std::string MultiscaleImpl::describe() const {
  std::string parts;
  for (const auto& s : latent_shapes_) parts += (parts.empty() ? "" : " + ") + shape_string(s);
  std::string context;
  if (context_features_ > 0) {
    context = ", context " + std::to_string(context_features_) +
              (split_context_ ? " (every prior)" : " (last level's prior)");
  }
  return "multiscale(" + std::to_string(levels_.size()) + " levels, latents " + parts + context +
         ")";
}

}  // namespace zflow
