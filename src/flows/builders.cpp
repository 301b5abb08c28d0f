#include "zflow/flows/builders.h"

#include "zflow/core/error.h"
#include "zflow/transforms/coupling.h"

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

Json finish(int64_t features, Json layers, const BuilderOptions& o) {
  if (o.base != "standard_normal" && o.base != "diagonal_normal") {
    throw ConfigError("unknown base distribution '" + o.base +
                      "' (choose standard_normal or diagonal_normal)");
  }
  Json spec = {{"type", "flow"},
               {"transform", {{"type", "composite"}, {"layers", std::move(layers)}}},
               {"base", {{"type", o.base}, {"shape", {features}}}}};
  // Without an embedding the layers see the raw context; with one, the caller sets the
  // flow's context_features to the raw size and adds the "embedding".
  if (o.context_features > 0) spec["context_features"] = o.context_features;
  return spec;
}

void check(const std::string& name, int64_t features, const BuilderOptions& o) {
  require_positive(name + ": features", features);
  require_positive(name + ": layers", o.layers);
  require_positive(name + ": hidden", o.hidden);
  if (o.depth < 0) throw ConfigError(name + ": depth must be >= 0");
  if (o.bins < 1) throw ConfigError(name + ": bins must be >= 1");
  if (!(o.tail_bound > 0)) throw ConfigError(name + ": tail bound must be positive");
  if (o.context_features < 0) throw ConfigError(name + ": context features must be >= 0");
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
           "NSF-AR: autoregressive rational-quadratic splines + LU linear (Durkan et al. 2019)"}};
}

Json build_flow_spec(const std::string& name, int64_t features, const BuilderOptions& o) {
  check(name, features, o);
  Json layers = Json::array();
  if (name == "realnvp") {
    for (int64_t i = 0; i < o.layers; ++i)
      layers.push_back(affine_coupling(features, i % 2 == 0, o));
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
  } else {
    std::string known;
    for (const auto& [n, d] : builder_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown model '" + name + "' (choose " + known + ")");
  }
  return finish(features, std::move(layers), o);
}

Json with_standardization(const Json& flow_spec, const std::vector<double>& mean,
                          const std::vector<double>& std) {
  if (!flow_spec.is_object() || !flow_spec.contains("transform")) {
    throw ConfigError("with_standardization needs a flow spec with a 'transform'");
  }
  Json spec = flow_spec;
  Json standardize = {{"type", "standardize"}, {"mean", mean}, {"std", std}};
  Json& transform = spec["transform"];
  if (transform.value("type", std::string()) == "composite" && transform.contains("layers")) {
    transform["layers"].insert(transform["layers"].begin(), standardize);
  } else {
    transform = {{"type", "composite"}, {"layers", {standardize, transform}}};
  }
  return spec;
}

}  // namespace zflow
