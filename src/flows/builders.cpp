#include "zflow/flows/builders.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "zflow/core/error.h"
#include "zflow/flows/spec_size.h"
#include "zflow/transforms/coupling.h"
#include "zflow/transforms/transformer.h"

namespace zflow {

namespace {

Json conditioner_spec(const BuilderOptions& o) {
  return {{"type", o.conditioner},
          {"hidden", o.hidden},
          {"layers", o.depth},
          {"activation", o.activation}};
}

Json affine_coupling(int64_t features, bool even, const BuilderOptions& o) {
  return {{"type", "affine_coupling"},
          {"mask", half_mask(features, even)},
          {"conditioner", conditioner_spec(o)},
          {"context_features", o.context_features},
          {"scale_bound", o.scale_bound}};
}

Json made_spec(const BuilderOptions& o) {
  return {{"type", "made"},
          {"hidden",
           std::vector<int64_t>(static_cast<size_t>(std::max<int64_t>(o.depth, 1)), o.hidden)},
          {"activation", o.activation},
          {"residual", o.conditioner == "resmlp"}};
}

Json reverse_permutation(int64_t features) {
  return {{"type", "permutation"}, {"features", features}, {"kind", "reverse"}};
}

Json lu_linear(int64_t features, const BuilderOptions& o, int64_t i) {
  return {{"type", "lu_linear"},
          {"features", features},
          {"diagonal", "softplus"},
          {"seed", o.seed * 1000003ULL + static_cast<uint64_t>(i) + 1}};
}

/// The last layer of every ready-made flow: logarithmic tails beyond ±4 standard deviations
/// of the base (LogTailsImpl), so that a point the affine layers carry far out costs
/// O(ln² |z|) nats instead of |z|²/2. Within ±4 (all but 6e-5 of each coordinate's
/// base mass) the flow is unchanged.
Json log_tails() { return {{"type", "log_tails"}, {"bound", 4.0}}; }

/// ConfigError unless the Student-t and mixture options are unset or belong to the base.
void check_base_options(const BuilderOptions& o) {
  if (o.base != "student_t" && (o.base_df != 0 || o.base_learn_df)) {
    throw ConfigError("the base's degrees of freedom are for the student_t base, not " + o.base);
  }
  if (o.base != "gaussian_mixture" && o.base_components != 0) {
    throw ConfigError("the base's components are for the gaussian_mixture base, not " + o.base);
  }
  if (o.base_df < 0 || !std::isfinite(o.base_df)) {
    std::ostringstream df;
    df << o.base_df;
    throw ConfigError("student_t base: df must be a positive finite number, got " + df.str());
  }
  if (o.base_components < 0) {
    throw ConfigError("gaussian_mixture base: components must be positive, got " +
                      std::to_string(o.base_components));
  }
}

/// The spec of base `o.base` for `features`-dimensional vectors (base_names() lists them).
Json base_distribution(int64_t features, const BuilderOptions& o) {
  check_base_options(o);
  Json base = {{"type", o.base}, {"shape", {features}}};
  if (o.base == "standard_normal" || o.base == "diagonal_normal" || o.base == "laplace") {
    return base;
  }
  if (o.base == "student_t") {
    base["df"] = o.base_df > 0 ? o.base_df : kDefaultBaseDf;
    base["learn_df"] = o.base_learn_df;
    return base;
  }
  if (o.base == "gaussian_mixture") {
    base["components"] = o.base_components > 0 ? o.base_components : kDefaultBaseComponents;
    return base;
  }
  if (o.base == "conditional_diagonal_normal") {
    if (o.context_features == 0) {
      throw ConfigError(
          "the conditional_diagonal_normal base needs a context (its mean and scale are "
          "functions of it): it serves conditional flows only, choose another base");
    }
    base["context_features"] = o.context_features;
    base["conditioner"] = conditioner_spec(o);
    return base;
  }
  if (o.base == "box_uniform") {
    throw ConfigError(
        "box_uniform cannot be the base of these flows: they map onto all of R^D, where a "
        "bounded base gives data outside its box log-likelihood -inf (a bounded domain takes "
        "a box flow spec instead)");
  }
  std::string known;
  for (const auto& [name, description] : base_names()) known += (known.empty() ? "" : ", ") + name;
  throw ConfigError("unknown base distribution '" + o.base + "' (choose " + known + ")");
}

/// ConfigError unless `o.base` is the default (standard_normal): model `name` has a base of
/// its own, which `why` describes.
void require_default_base(const std::string& name, const BuilderOptions& o,
                          const std::string& why =
                              "the base is standard_normal (other bases are for the tabular "
                              "coupling and autoregressive models)") {
  check_base_options(o);
  if (o.base != "standard_normal") throw ConfigError(name + ": " + why + ", got " + o.base);
}

Json finish(int64_t features, Json layers, const BuilderOptions& o) {
  Json base = base_distribution(features, o);
  // The log tails stop a Gaussian base's z²/2 cost far out; a heavy-tailed base has its own
  // tails (cost (ν+1)/2 log(1 + z²/ν) or |z|), which the flow's Lipschitz layers keep (Jaini
  // et al. 2020), and which log tails on top would make heavier than the base says.
  if (o.base != "student_t" && o.base != "laplace") layers.push_back(log_tails());
  Json spec = {{"type", "flow"},
               {"transform", {{"type", "composite"}, {"layers", std::move(layers)}}},
               {"base", std::move(base)}};
  // Without an embedding the layers see the raw context; with one, the caller sets the
  // flow's context_features to the raw size and adds the "embedding".
  if (o.context_features > 0) spec["context_features"] = o.context_features;
  return spec;
}

/// ConfigError naming `what` if `value` is above kMaxSpecSize.
void check_size(const std::string& what, int64_t value) {
  if (value > kMaxSpecSize) {
    throw ConfigError(what + " = " + std::to_string(value) + " is too large (at most " +
                      std::to_string(kMaxSpecSize) + ")");
  }
}

/// Checks, before a spec of `count` repeated units is built, that they fit in memory: `few`
/// is the spec built with `built` units, whose estimate is scaled to `count`.
void check_repeated(const std::string& name, const std::string& unit, int64_t count, int64_t built,
                    const Json& few) {
  const SpecSize size = estimate_spec_size(few);
  const double bytes = size.bytes() / static_cast<double>(built) * static_cast<double>(count);
  const auto budget = static_cast<double>(available_memory_bytes());
  if (bytes > budget) {
    throw ConfigError(name + ": " + std::to_string(count) + " " + unit + " need about " +
                      byte_size_string(bytes) + " for their parameters, more than the " +
                      byte_size_string(budget) + " of memory available (largest size: " +
                      size.largest_field + " = " + std::to_string(size.largest_value) + ")");
  }
}

void check(const std::string& name, int64_t features, const BuilderOptions& o) {
  check_size(name + ": features", features);
  check_size(name + ": layers", o.layers);
  check_size(name + ": hidden", o.hidden);
  check_size(name + ": depth", o.depth);
  check_size(name + ": bins", o.bins);
  check_size(name + ": context features", o.context_features);
  require_positive(name + ": features", features);
  require_positive(name + ": layers", o.layers);
  require_positive(name + ": hidden", o.hidden);
  if (o.depth < 0) throw ConfigError(name + ": depth must be >= 0");
  if (name == "nsf-coupling" || name == "nsf-autoregressive") {
    SplineTransformerOptions().bins(o.bins).tail_bound(o.tail_bound).validate(name);
  }
  if (o.context_features < 0) throw ConfigError(name + ": context features must be >= 0");
  if (o.batch_norm && name != "maf" && name != "realnvp") {
    throw ConfigError(name + ": batch norm is offered for maf and realnvp only");
  }
}

/// Between two layers of maf and realnvp when options.batch_norm: running statistics in
/// evaluation, the batch's in training (transforms/normalization.h).
void push_batch_norm(Json& layers, int64_t features, const BuilderOptions& o, int64_t i) {
  if (o.batch_norm && i + 1 < o.layers) {
    layers.push_back({{"type", "batch_norm"}, {"features", features}});
  }
}

/// nsf-coupling with angle features (BuilderOptions::circular): circular spline couplings
/// on alternating halves over the circular_uniform base. No log tails: the base is uniform on
/// the angles, and the real features' splines have linear tails of their own.
Json circular_flow(const std::string& name, int64_t features, const BuilderOptions& o) {
  if (name != "nsf-coupling") {
    throw ConfigError(name + ": angle features need nsf-coupling (circular spline couplings)");
  }
  if (static_cast<int64_t>(o.circular.size()) != features) {
    throw ConfigError(name + ": " + std::to_string(o.circular.size()) + " circular flags for " +
                      std::to_string(features) + " features");
  }
  if (o.base != "standard_normal") {
    throw ConfigError(name + ": a flow with angle features has the circular_uniform base; --base " +
                      o.base + " does not apply");
  }
  Json layers = Json::array();
  for (int64_t i = 0; i < o.layers; ++i) {
    layers.push_back({{"type", "circular_spline_coupling"},
                      {"mask", half_mask(features, i % 2 == 0)},
                      {"circular", o.circular},
                      {"conditioner", conditioner_spec(o)},
                      {"context_features", o.context_features},
                      {"bins", o.bins},
                      {"tail_bound", o.tail_bound}});
  }
  Json spec = {
      {"type", "flow"},
      {"transform", {{"type", "composite"}, {"layers", std::move(layers)}}},
      {"base", {{"type", "circular_uniform"}, {"shape", {features}}, {"circular", o.circular}}}};
  if (o.context_features > 0) spec["context_features"] = o.context_features;
  return spec;
}

/// A continuous flow over a standard normal: one "cnf" layer with the velocity field and
/// solver of `o` (an MLP for [D], a U-Net for [C, H, W]). No log tails: flow matching draws
/// the path's start from the base itself.
Json continuous_flow(const std::vector<int64_t>& shape, const BuilderOptions& o) {
  const bool images = shape.size() == 3;
  const std::string time =
      !o.time_embedding.empty() ? o.time_embedding : (images ? "sinusoidal" : "linear");
  Json velocity = {{"time_embedding", time}, {"hidden", o.hidden}};
  if (images) {
    velocity["type"] = "unet";
    velocity["levels"] = o.levels > 0 ? o.levels : 2;
  } else {
    velocity["type"] = "mlp";
    velocity["layers"] = o.depth;
    velocity["activation"] = o.activation;
  }
  Json cnf = {{"type", "cnf"},
              {"shape", shape},
              {"velocity", velocity},
              {"solver",
               {{"method", o.solver}, {"steps", o.ode_steps}, {"atol", o.atol}, {"rtol", o.rtol}}},
              {"trace", o.trace.empty() ? (images ? "hutchinson" : "exact") : o.trace}};
  if (o.context_features > 0) cnf["context_features"] = o.context_features;
  Json spec = {{"type", "flow"},
               {"transform", {{"type", "composite"}, {"layers", Json::array({cnf})}}},
               {"base", {{"type", "standard_normal"}, {"shape", shape}}}};
  if (o.context_features > 0) spec["context_features"] = o.context_features;
  return spec;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> builder_names() {
  return {{"realnvp", "RealNVP: affine couplings on alternating halves (Dinh et al. 2017)"},
          {"nice",
           "NICE: additive couplings on alternating halves + diagonal scaling (Dinh et al. 2014)"},
          {"glow",
           "tabular Glow: per step ActNorm, LU linear, affine coupling (Kingma & Dhariwal 2018)"},
          {"maf",
           "MAF: masked affine autoregressive layers, reversed orders (Papamakarios et al. 2017)"},
          {"iaf", "IAF: inverse autoregressive layers, one-pass sampling (Kingma et al. 2016)"},
          {"nsf-coupling",
           "NSF-C: rational-quadratic spline couplings + LU linear (Durkan et al. 2019)"},
          {"nsf-autoregressive",
           "NSF-AR: autoregressive rational-quadratic splines + LU linear (Durkan et al. 2019)"},
          {"cnf",
           "CNF: a neural ODE, trained by flow matching or maximum likelihood (Lipman et al. "
           "2023; Grathwohl et al. 2019)"},
          {"planar",
           "planar flow: layers x = z + u tanh(w.z + b), closed form from noise to data, "
           "for variational inference (Rezende & Mohamed 2015)"},
          {"radial",
           "radial flow: layers that contract or expand around a point, closed form from noise "
           "to data (Rezende & Mohamed 2015)"},
          {"sylvester",
           "Householder Sylvester flow: layers x = z + QR tanh(R~Q^T z + b), closed form from "
           "noise to data (van den Berg et al. 2018)"},
          {"iresnet",
           "residual flow: ActNorm + invertible residual blocks z = x + g(x), Lip(g) < 1, "
           "inverse by fixed-point iteration (Behrmann et al. 2019; Chen et al. 2019)"},
          {"naf",
           "NAF: MADE + deep sigmoidal flows per feature, reversed orders, inverse by "
           "bisection (Huang et al. 2018)"},
          {"bnaf",
           "B-NAF: block neural autoregressive networks with a gated residual, reversed "
           "orders, inverse by bisection (De Cao et al. 2019)"}};
}

std::vector<std::pair<std::string, std::string>> base_names() {
  return {{"standard_normal", "N(0, I)"},
          {"diagonal_normal", "N(mu, diag sigma^2), learned mean and scale"},
          {"student_t",
           "independent Student-t, df fixed or learned (heavy power-law tails; Jaini et al. "
           "2020)"},
          {"laplace", "independent Laplace, exp(-|z|) tails"},
          {"gaussian_mixture", "a learned mixture of diagonal Gaussians (multimodal)"},
          {"conditional_diagonal_normal",
           "N(mu(c), diag sigma(c)^2) from an MLP of the context (conditional flows only)"}};
}

std::string builder_activation(const std::string& name, const BuilderOptions& options) {
  if (!options.activation.empty()) return options.activation;
  return name == "cnf" ? "silu" : "relu";
}

Json build_flow_spec(const std::string& name, int64_t features, const BuilderOptions& options) {
  BuilderOptions o = options;
  if (o.hidden == 0) o.hidden = kDefaultTabularHidden;
  o.activation = builder_activation(name, o);
  if (name == "cnf") {
    check(name, features, o);
    require_default_base(name, o);
    return continuous_flow(std::vector<int64_t>{features}, o);
  }
  check(name, features, o);
  if (o.layers > 2) {
    // Two layers hold one of each alternating kind; the full list is built only if it fits.
    BuilderOptions two = o;
    two.layers = 2;
    check_repeated(name, "layers", o.layers, 2, build_flow_spec(name, features, two));
  }
  Json layers = Json::array();
  if (std::count(o.circular.begin(), o.circular.end(), 1) > 0)
    return circular_flow(name, features, o);
  if (name == "realnvp") {
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back(affine_coupling(features, i % 2 == 0, o));
      push_batch_norm(layers, features, o, i);
    }
  } else if (name == "nice") {
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back({{"type", "additive_coupling"},
                        {"mask", half_mask(features, i % 2 == 0)},
                        {"conditioner", conditioner_spec(o)},
                        {"context_features", o.context_features}});
    }
    // NICE's diagonal scaling layer: the couplings alone preserve volume.
    layers.push_back({{"type", "elementwise_affine"}, {"features", features}});
  } else if (name == "glow") {
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back({{"type", "actnorm"}, {"features", features}});
      layers.push_back(lu_linear(features, o, i));
      layers.push_back(affine_coupling(features, i % 2 == 0, o));
    }
  } else if (name == "maf" || name == "iaf") {
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back(
          {{"type", name == "maf" ? "masked_affine_autoregressive" : "inverse_autoregressive"},
           {"features", features},
           {"made", made_spec(o)},
           {"context_features", o.context_features},
           {"scale_bound", o.scale_bound}});
      push_batch_norm(layers, features, o, i);
      if (i + 1 < o.layers) layers.push_back(reverse_permutation(features));
    }
  } else if (name == "nsf-coupling") {
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back({{"type", "spline_coupling"},
                        {"mask", half_mask(features, i % 2 == 0)},
                        {"conditioner", conditioner_spec(o)},
                        {"context_features", o.context_features},
                        {"bins", o.bins},
                        {"tail_bound", o.tail_bound}});
      layers.push_back(lu_linear(features, o, i));
    }
  } else if (name == "nsf-autoregressive") {
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back({{"type", "masked_spline_autoregressive"},
                        {"features", features},
                        {"made", made_spec(o)},
                        {"context_features", o.context_features},
                        {"bins", o.bins},
                        {"tail_bound", o.tail_bound}});
      layers.push_back(lu_linear(features, o, i));
    }
  } else if (name == "planar" || name == "radial") {
    for (int64_t i = 0; i < o.layers; ++i)
      layers.push_back({{"type", name}, {"features", features}});
  } else if (name == "sylvester") {
    // D reflections reach every orthogonal Q (H-SNF), so no permutations are needed.
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back(
          {{"type", "sylvester"}, {"features", features}, {"num_reflections", features}});
    }
  } else if (name == "iresnet") {
    // Residual Flows (Chen et al. 2019, §5): ActNorm before every residual block.
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back({{"type", "actnorm"}, {"features", features}});
      layers.push_back({{"type", "iresnet"}, {"features", features}, {"hidden", o.hidden}});
    }
  } else if (name == "naf") {
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back({{"type", "neural_autoregressive"},
                        {"features", features},
                        {"made", made_spec(o)},
                        {"context_features", o.context_features}});
      if (i + 1 < o.layers) layers.push_back(reverse_permutation(features));
    }
  } else if (name == "bnaf") {
    // `hidden` is the width of every hidden layer: a = ⌈hidden / D⌉ units per feature.
    const int64_t per_feature = (o.hidden + features - 1) / features;
    for (int64_t i = 0; i < o.layers; ++i) {
      layers.push_back({{"type", "block_neural_autoregressive"},
                        {"features", features},
                        {"hidden_units", per_feature},
                        {"layers", std::max<int64_t>(o.depth, 1)},
                        {"context_features", o.context_features}});
      if (i + 1 < o.layers) layers.push_back(reverse_permutation(features));
    }
  } else {
    std::string known;
    for (const auto& [n, d] : builder_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown model '" + name + "' (choose " + known + ")");
  }
  return finish(features, std::move(layers), o);
}

Json build_box_flow_spec(const std::string& name, int64_t features, const BuilderOptions& options,
                         const std::vector<double>& low, const std::vector<double>& high) {
  if (static_cast<int64_t>(low.size()) != features ||
      static_cast<int64_t>(high.size()) != features) {
    throw ConfigError(name + ": a box needs " + std::to_string(features) +
                      " lower and upper bounds, got " + std::to_string(low.size()) + " and " +
                      std::to_string(high.size()));
  }
  std::vector<double> center, half, width;
  for (size_t i = 0; i < low.size(); ++i) {
    if (!std::isfinite(low[i]) || !std::isfinite(high[i]) || !(low[i] < high[i])) {
      throw ConfigError(name + ": box bounds must be finite with low < high (dimension " +
                        std::to_string(i + 1) + ")");
    }
    center.push_back(0.5 * (low[i] + high[i]));
    half.push_back(0.5 * (high[i] - low[i]));
    width.push_back(high[i] - low[i]);
  }
  const bool splines = name == "nsf-coupling" || name == "nsf-autoregressive";
  if (!splines) {
    // Logit end: (x − low)/(high − low) ∈ (0, 1)^D, then logit onto R^D and the model.
    Json spec = build_flow_spec(name, features, options);
    Json& layers = spec["transform"]["layers"];
    layers.insert(layers.begin(), Json{{"type", "logit"}, {"lower", 0.0}, {"upper", 1.0}});
    layers.insert(layers.begin(), Json{{"type", "standardize"}, {"mean", low}, {"std", width}});
    return spec;
  }
  require_default_base(name, options,
                       "on a bounded domain the spline models have a box_uniform base (other "
                       "bases are for the models behind a logit)");
  BuilderOptions o = options;
  if (o.hidden == 0) o.hidden = kDefaultTabularHidden;
  o.activation = builder_activation(name, o);
  o.tail_bound = 1.0;
  check(name, features, o);
  Json layers = Json::array({{{"type", "standardize"}, {"mean", center}, {"std", half}}});
  for (int64_t i = 0; i < o.layers; ++i) {
    if (name == "nsf-coupling") {
      layers.push_back({{"type", "spline_coupling"},
                        {"mask", half_mask(features, i % 2 == 0)},
                        {"conditioner", conditioner_spec(o)},
                        {"context_features", o.context_features},
                        {"bins", o.bins},
                        {"tail_bound", 1.0}});
    } else {
      layers.push_back({{"type", "masked_spline_autoregressive"},
                        {"features", features},
                        {"made", made_spec(o)},
                        {"context_features", o.context_features},
                        {"bins", o.bins},
                        {"tail_bound", 1.0}});
    }
    // Permutations, not LU layers: they keep the box.
    if (i + 1 < o.layers) layers.push_back(reverse_permutation(features));
  }
  Json spec = {{"type", "flow"},
               {"transform", {{"type", "composite"}, {"layers", std::move(layers)}}},
               {"base",
                {{"type", "box_uniform"},
                 {"low", std::vector<double>(features, -1.0)},
                 {"high", std::vector<double>(features, 1.0)}}}};
  if (o.context_features > 0) spec["context_features"] = o.context_features;
  return spec;
}

// ---- image models -------------------------------------------------------------------------

namespace {

int64_t default_levels(const std::vector<int64_t>& shape) {
  int64_t levels = 0;
  int64_t h = shape[1], w = shape[2];
  while (levels < 3 && h % 2 == 0 && w % 2 == 0) {
    h /= 2;
    w /= 2;
    ++levels;
  }
  return levels;
}

Json conv_coupling(int64_t channels, const std::string& mask, bool flip, const BuilderOptions& o) {
  return {{"type", "conv_coupling"},
          {"channels", channels},
          {"mask", mask},
          {"flip", flip},
          {"hidden", o.hidden},
          {"transformer", o.coupling},
          {"scale_bound", o.scale_bound}};
}

// Glow (Kingma & Dhariwal 2018, Fig. 2): per level a squeeze, then K steps of ActNorm,
// invertible 1×1 convolution and channel-mask coupling.
Json glow_level(int64_t channels, int64_t level, const BuilderOptions& o) {
  const int64_t steps = o.steps_per_level > 0 ? o.steps_per_level : 8;
  const int64_t c = channels * 4;
  Json layers = Json::array({{{"type", "squeeze"}, {"factor", 2}}});
  for (int64_t k = 0; k < steps; ++k) {
    layers.push_back({{"type", "actnorm"}, {"features", c}});
    layers.push_back(lu_linear(c, o, level * 1000 + k));
    layers.push_back(conv_coupling(c, "channel", k % 2 == 1, o));
  }
  return {{"type", "composite"}, {"layers", layers}};
}

// RealNVP (Dinh et al. 2017, §3.6): per scale 3 checkerboard couplings, a squeeze and 3
// channel couplings; the last scale 4 checkerboard couplings. ActNorm before every coupling
// stands in for the paper's batch normalisation.
Json realnvp_level(int64_t channels, bool last, const BuilderOptions& o) {
  const int64_t group = o.steps_per_level > 0 ? o.steps_per_level : 3;
  Json layers = Json::array();
  auto add = [&](int64_t c, const std::string& mask, int64_t count) {
    for (int64_t k = 0; k < count; ++k) {
      layers.push_back({{"type", "actnorm"}, {"features", c}});
      layers.push_back(conv_coupling(c, mask, k % 2 == 1, o));
    }
  };
  if (last) {
    add(channels, "checkerboard", group + 1);
  } else {
    add(channels, "checkerboard", group);
    layers.push_back({{"type", "squeeze"}, {"factor", 2}});
    add(channels * 4, "channel", group);
  }
  return {{"type", "composite"}, {"layers", layers}};
}

// The first layer of every image model: uniform or variational dequantisation.
Json dequantize_layer(const std::vector<int64_t>& shape, const BuilderOptions& o) {
  if (o.dequantize == "variational") {
    return {{"type", "variational_dequantize"}, {"channels", shape[0]}, {"bits", o.bits}};
  }
  return {{"type", "dequantize"}, {"bits", o.bits}};
}

}  // namespace

std::vector<std::pair<std::string, std::string>> image_builder_names() {
  return {{"glow",
           "Glow: per level squeeze, then steps of ActNorm, 1x1 conv, affine coupling; half "
           "the channels factored out after each level (Kingma & Dhariwal 2018)"},
          {"realnvp-image",
           "RealNVP multi-scale: checkerboard and channel-mask affine couplings (Dinh et al. "
           "2017)"},
          {"cnf",
           "CNF: a neural ODE with a U-Net velocity field, trained by flow matching (Lipman "
           "et al. 2023)"}};
}

Json build_image_flow_spec(const std::string& name, const std::vector<int64_t>& shape,
                           const BuilderOptions& options) {
  BuilderOptions o = options;
  // The cnf's U-Net doubles its width at every level: 32 channels at the top.
  if (o.hidden == 0) o.hidden = name == "cnf" ? 32 : kDefaultImageHidden;
  if (shape.size() != 3) {
    throw ConfigError(name + ": image models need an event shape [C, H, W], got " +
                      shape_string(shape));
  }
  int64_t pixels = 1;
  for (auto s : shape) {
    require_positive(name + ": image size", s);
    check_size(name + ": image size", s);
    pixels *= s;  // at most 2^62: both factors are at most 2^31
    check_size(name + ": values per image", pixels);
  }
  require_positive(name + ": hidden channels", o.hidden);
  check_size(name + ": hidden channels", o.hidden);
  if (o.levels < 0) throw ConfigError(name + ": levels must be >= 0");
  // Each level halves height and width: 2^31 values per image allow fewer than 31.
  if (o.levels > 30) throw ConfigError(name + ": levels must be at most 30");
  if (o.steps_per_level < 0) throw ConfigError(name + ": steps per level must be >= 0");
  check_size(name + ": steps per level", o.steps_per_level);
  if (o.coupling != "affine" && o.coupling != "additive") {
    throw ConfigError(name + ": coupling must be 'affine' or 'additive', got '" + o.coupling + "'");
  }
  if (!(o.logit_alpha < 0.5)) throw ConfigError(name + ": logit alpha must be below 0.5");
  if (o.dequantize != "uniform" && o.dequantize != "variational") {
    throw ConfigError(name + ": dequantize must be 'uniform' or 'variational', got '" +
                      o.dequantize + "'");
  }
  if (o.context_features < 0) throw ConfigError(name + ": context features must be >= 0");
  check_size(name + ": context features", o.context_features);
  require_default_base(name, o);
  const bool glow = name == "glow";
  if (name == "cnf") {
    if (o.context_features > 0) {
      throw ConfigError(
          "cnf: a class-conditional image model is a multi-scale one (glow or realnvp-image)");
    }
    // Dequantised pixels through RealNVP's logit (α = 0.05 unless given), then the ODE.
    Json spec = continuous_flow(shape, o);
    Json& layers = spec["transform"]["layers"];
    const double alpha = o.logit_alpha >= 0 ? o.logit_alpha : 0.05;
    if (alpha > 0) {
      const double width = 1.0 / (1.0 - 2.0 * alpha);
      layers.insert(
          layers.begin(),
          Json{{"type", "logit"}, {"lower", -alpha * width}, {"upper", 1.0 + alpha * width}});
    }
    layers.insert(layers.begin(), dequantize_layer(shape, o));
    return spec;
  }
  if (!glow && name != "realnvp-image") {
    std::string known;
    for (const auto& [n, d] : image_builder_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown image model '" + name + "' (choose " + known + ")");
  }
  const int64_t levels = o.levels > 0 ? o.levels : std::max<int64_t>(default_levels(shape), 1);
  // RealNVP's last scale does not squeeze.
  const int64_t squeezes = glow ? levels : levels - 1;
  const int64_t needed = int64_t{1} << squeezes;
  if (shape[1] % needed != 0 || shape[2] % needed != 0) {
    throw ConfigError(name + ": " + std::to_string(levels) + " levels need height and width " +
                      "divisible by " + std::to_string(needed) + ", the images are " +
                      std::to_string(shape[1]) + "x" + std::to_string(shape[2]) +
                      " (choose fewer levels)");
  }

  if (o.steps_per_level > 1) {
    BuilderOptions one = o;
    one.steps_per_level = 1;
    check_repeated(name, "steps per level", o.steps_per_level, 1,
                   build_image_flow_spec(name, shape, one));
  }

  Json levels_spec = Json::array();
  int64_t channels = shape[0];
  for (int64_t i = 0; i < levels; ++i) {
    const bool last = i + 1 == levels;
    if (glow) {
      levels_spec.push_back(glow_level(channels, i, o));
      channels *= 4;
    } else {
      levels_spec.push_back(realnvp_level(channels, last, o));
      if (!last) channels *= 4;
    }
    channels /= 2;  // half factored out (the last level keeps all; unused then)
  }
  Json layers = Json::array({dequantize_layer(shape, o)});
  const double alpha = o.logit_alpha >= 0 ? o.logit_alpha : (glow ? 0.0 : 0.05);
  if (alpha > 0) {
    // logit(α + (1 − 2α) x) = logit((x − lower) / (upper − lower)) with these bounds.
    const double width = 1.0 / (1.0 - 2.0 * alpha);
    layers.push_back(
        {{"type", "logit"}, {"lower", -alpha * width}, {"upper", 1.0 + alpha * width}});
  }
  Json multiscale = {{"type", "multiscale"},
                     {"shape", shape},
                     {"levels", levels_spec},
                     {"scale_bound", o.scale_bound}};
  if (o.context_features > 0) {
    // A class-conditional model: the one-hot class sets the latents' Gaussians (Glow's ycond).
    multiscale["context_features"] = o.context_features;
    multiscale["split_context"] = o.split_context;
  }
  layers.push_back(multiscale);
  layers.push_back(log_tails());
  Json spec = {{"type", "flow"},
               {"transform", {{"type", "composite"}, {"layers", layers}}},
               {"base", {{"type", "standard_normal"}, {"shape", shape}}}};
  if (o.context_features > 0) spec["context_features"] = o.context_features;
  return spec;
}

Json with_standardization(const Json& flow_spec, const std::vector<double>& mean,
                          const std::vector<double>& std) {
  if (!flow_spec.is_object() || !flow_spec.contains("transform")) {
    throw ConfigError("with_standardization needs a flow spec with a 'transform'");
  }
  Json spec = flow_spec;
  Json standardize = {{"type", "standardize"}, {"mean", mean}, {"std", std}};
  Json& transform = spec["transform"];
  if (spec_type(transform) == "composite" && transform.contains("layers") &&
      transform["layers"].is_array()) {
    transform["layers"].insert(transform["layers"].begin(), standardize);
  } else {
    transform = {{"type", "composite"}, {"layers", {standardize, transform}}};
  }
  return spec;
}

}  // namespace zflow
