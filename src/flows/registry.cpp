#include "zflow/flows/registry.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "zflow/core/error.h"
#include "zflow/distributions/conditional.h"
#include "zflow/distributions/heavy_tailed.h"
#include "zflow/distributions/mixture.h"
#include "zflow/distributions/normal.h"
#include "zflow/distributions/uniform.h"
#include "zflow/flows/spec_size.h"
#include "zflow/transforms/autoregressive.h"
#include "zflow/transforms/circular.h"
#include "zflow/transforms/continuous.h"
#include "zflow/transforms/coupling.h"
#include "zflow/transforms/elementwise.h"
#include "zflow/transforms/image.h"
#include "zflow/transforms/iresnet.h"
#include "zflow/transforms/linear.h"
#include "zflow/transforms/multiscale.h"
#include "zflow/transforms/neural_autoregressive.h"
#include "zflow/transforms/normalization.h"
#include "zflow/transforms/orthogonal.h"
#include "zflow/transforms/permutation.h"
#include "zflow/transforms/residual.h"
#include "zflow/transforms/spline_coupling.h"
#include "zflow/transforms/variational_dequantize.h"

namespace zflow {

namespace {

template <typename Factory>
struct Table {
  std::mutex mutex;
  std::map<std::string, Factory> factories;
};

std::vector<int64_t> required_shape(const Json& spec) {
  auto shape = spec_required<std::vector<int64_t>>(spec, "shape");
  if (shape.empty()) throw ConfigError(spec_type(spec) + ": shape must not be empty");
  return shape;
}

Table<TransformFactory>& transform_table() {
  static Table<TransformFactory> table;
  static std::once_flag once;
  std::call_once(once, [] {
    auto& f = table.factories;
    f["composite"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"layers"});
      auto composite = std::make_shared<CompositeTransformImpl>();
      const Json layers = spec_required<Json>(s, "layers");
      if (!layers.is_array()) throw ConfigError("composite: 'layers' must be an array");
      for (const auto& layer : layers) composite->push_back(make_transform(layer));
      return composite;
    };
    f["inverse"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"transform"});
      return std::make_shared<InverseTransformImpl>(
          make_transform(spec_required<Json>(s, "transform")));
    };
    // Every default below comes from the transform's Options struct.
    auto coupling_conditioner = [](const Json& s) {
      return nn::mlp_conditioner_from_spec(spec_optional<Json>(s, "conditioner", Json()));
    };
    f["affine_coupling"] = [=](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"mask", "conditioner", "context_features", "scale_bound"});
      AffineCouplingOptions o(spec_required<std::vector<int64_t>>(s, "mask"));
      o.conditioner(coupling_conditioner(s))
          .context_features(spec_optional(s, "context_features", o.context_features()))
          .scale_bound(spec_optional(s, "scale_bound", o.scale_bound()));
      return std::make_shared<AffineCouplingImpl>(o);
    };
    f["spline_coupling"] = [=](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"mask", "conditioner", "context_features", "bins", "tail_bound"});
      SplineCouplingOptions o(spec_required<std::vector<int64_t>>(s, "mask"));
      o.conditioner(coupling_conditioner(s))
          .context_features(spec_optional(s, "context_features", o.context_features()))
          .bins(spec_optional(s, "bins", o.bins()))
          .tail_bound(spec_optional(s, "tail_bound", o.tail_bound()));
      return std::make_shared<SplineCouplingImpl>(o);
    };
    f["circular_spline_coupling"] = [=](const Json& s) -> TransformPtr {
      reject_unknown_fields(
          s, {"mask", "circular", "conditioner", "context_features", "bins", "tail_bound"});
      CircularSplineCouplingOptions o(spec_required<std::vector<int64_t>>(s, "mask"));
      o.circular(spec_optional(s, "circular", o.circular()))
          .conditioner(coupling_conditioner(s))
          .context_features(spec_optional(s, "context_features", o.context_features()))
          .bins(spec_optional(s, "bins", o.bins()))
          .tail_bound(spec_optional(s, "tail_bound", o.tail_bound()));
      return std::make_shared<CircularSplineCouplingImpl>(o);
    };
    f["additive_coupling"] = [=](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"mask", "conditioner", "context_features"});
      AdditiveCouplingOptions o(spec_required<std::vector<int64_t>>(s, "mask"));
      o.conditioner(coupling_conditioner(s))
          .context_features(spec_optional(s, "context_features", o.context_features()));
      return std::make_shared<AdditiveCouplingImpl>(o);
    };
    const std::vector<std::string> autoregressive_fields = {"features", "made", "context_features",
                                                            "inverse_autoregressive"};
    auto with = [](std::vector<std::string> v, std::initializer_list<std::string> more) {
      v.insert(v.end(), more);
      return v;
    };
    // The fields every autoregressive layer shares.
    auto autoregressive = [](auto options, const Json& s, bool always_inverse) {
      options.conditioner(nn::made_conditioner_from_spec(spec_optional<Json>(s, "made", Json())))
          .context_features(spec_optional(s, "context_features", options.context_features()))
          .inverse_autoregressive(
              always_inverse ||
              spec_optional(s, "inverse_autoregressive", options.inverse_autoregressive()));
      return options;
    };
    // MAF reads the direction from the spec; IAF is the same map with its fast direction
    // on the sampling side, so its type fixes inverse_autoregressive = true.
    auto affine_autoregressive = [=](bool always_inverse) {
      return [=](const Json& s) -> TransformPtr {
        reject_unknown_fields(s, with(autoregressive_fields, {"scale_bound"}));
        auto o =
            autoregressive(MaskedAffineAutoregressiveOptions(spec_required<int64_t>(s, "features")),
                           s, always_inverse);
        o.scale_bound(spec_optional(s, "scale_bound", o.scale_bound()));
        return std::make_shared<MaskedAffineAutoregressiveImpl>(o);
      };
    };
    f["masked_affine_autoregressive"] = affine_autoregressive(false);
    f["inverse_autoregressive"] = affine_autoregressive(true);
    f["masked_spline_autoregressive"] = [=](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, with(autoregressive_fields, {"bins", "tail_bound"}));
      auto o = autoregressive(
          MaskedSplineAutoregressiveOptions(spec_required<int64_t>(s, "features")), s, false);
      o.bins(spec_optional(s, "bins", o.bins()))
          .tail_bound(spec_optional(s, "tail_bound", o.tail_bound()));
      return std::make_shared<MaskedSplineAutoregressiveImpl>(o);
    };
    f["neural_autoregressive"] = [=](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, with(autoregressive_fields, {"units", "max_iterations"}));
      auto o = autoregressive(NeuralAutoregressiveOptions(spec_required<int64_t>(s, "features")), s,
                              false);
      o.units(spec_optional(s, "units", o.units()))
          .max_iterations(spec_optional(s, "max_iterations", o.max_iterations()));
      return std::make_shared<NeuralAutoregressiveImpl>(o);
    };
    f["block_neural_autoregressive"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(
          s, {"features", "hidden_units", "layers", "context_features", "max_iterations"});
      BlockNeuralAutoregressiveOptions o(spec_required<int64_t>(s, "features"));
      o.hidden_units(spec_optional(s, "hidden_units", o.hidden_units()))
          .layers(spec_optional(s, "layers", o.layers()))
          .context_features(spec_optional(s, "context_features", o.context_features()))
          .max_iterations(spec_optional(s, "max_iterations", o.max_iterations()));
      return std::make_shared<BlockNeuralAutoregressiveImpl>(o);
    };
    f["permutation"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"indices", "features", "kind", "seed"});
      if (s.contains("indices")) {
        return std::make_shared<PermutationImpl>(spec_required<std::vector<int64_t>>(s, "indices"));
      }
      PermutationOptions o(spec_required<int64_t>(s, "features"));
      o.kind(spec_optional(s, "kind", o.kind())).seed(spec_optional(s, "seed", o.seed()));
      return std::make_shared<PermutationImpl>(o);
    };
    f["actnorm"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features"});
      return std::make_shared<ActNormImpl>(spec_required<int64_t>(s, "features"));
    };
    f["batch_norm"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features", "momentum", "eps"});
      BatchNormOptions o(spec_required<int64_t>(s, "features"));
      o.momentum(spec_optional(s, "momentum", o.momentum())).eps(spec_optional(s, "eps", o.eps()));
      return std::make_shared<BatchNormImpl>(o);
    };
    f["householder"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features", "reflections"});
      HouseholderLinearOptions o(spec_required<int64_t>(s, "features"));
      o.reflections(spec_optional(s, "reflections", o.reflections()));
      return std::make_shared<HouseholderLinearImpl>(o);
    };
    f["iresnet"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(
          s, {"features", "hidden", "layers", "lipschitz", "activation", "max_iterations",
              "exact_max_features", "power_iterations", "series_terms", "series_p"});
      InvertibleResidualOptions o(spec_required<int64_t>(s, "features"));
      o.hidden(spec_optional(s, "hidden", o.hidden()))
          .layers(spec_optional(s, "layers", o.layers()))
          .lipschitz(spec_optional(s, "lipschitz", o.lipschitz()))
          .activation(spec_optional(s, "activation", o.activation()))
          .max_iterations(spec_optional(s, "max_iterations", o.max_iterations()))
          .exact_max_features(spec_optional(s, "exact_max_features", o.exact_max_features()))
          .power_iterations(spec_optional(s, "power_iterations", o.power_iterations()))
          .series_terms(spec_optional(s, "series_terms", o.series_terms()))
          .series_p(spec_optional(s, "series_p", o.series_p()));
      return std::make_shared<InvertibleResidualImpl>(o);
    };
    f["orthogonal_linear"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features", "map"});
      OrthogonalLinearOptions o(spec_required<int64_t>(s, "features"));
      o.map(spec_optional(s, "map", o.map()));
      return std::make_shared<OrthogonalLinearImpl>(o);
    };
    f["lu_linear"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features", "diagonal", "seed"});
      LULinearOptions o(spec_required<int64_t>(s, "features"));
      o.diagonal(spec_optional(s, "diagonal", o.diagonal()))
          .seed(spec_optional(s, "seed", o.seed()));
      return std::make_shared<LULinearImpl>(o);
    };
    f["planar"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features", "max_iterations"});
      PlanarOptions o(spec_required<int64_t>(s, "features"));
      o.max_iterations(spec_optional(s, "max_iterations", o.max_iterations()));
      return std::make_shared<PlanarImpl>(o);
    };
    f["radial"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features"});
      return std::make_shared<RadialImpl>(spec_required<int64_t>(s, "features"));
    };
    f["sylvester"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features", "num_reflections", "max_iterations"});
      SylvesterOptions o(spec_required<int64_t>(s, "features"));
      o.num_reflections(spec_optional(s, "num_reflections", o.num_reflections()))
          .max_iterations(spec_optional(s, "max_iterations", o.max_iterations()));
      return std::make_shared<SylvesterImpl>(o);
    };
    f["elementwise_affine"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"features"});
      return std::make_shared<ElementwiseAffineImpl>(spec_required<int64_t>(s, "features"));
    };
    f["standardize"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"mean", "std"});
      return std::make_shared<StandardizeImpl>(
          StandardizeOptions(spec_required<std::vector<double>>(s, "mean"),
                             spec_required<std::vector<double>>(s, "std")));
    };
    f["log_tails"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"bound"});
      return std::make_shared<LogTailsImpl>(spec_optional(s, "bound", LogTailsOptions().bound()));
    };
    f["sigmoid"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"lower", "upper"});
      SigmoidOptions o;
      o.lower(spec_optional(s, "lower", o.lower())).upper(spec_optional(s, "upper", o.upper()));
      return std::make_shared<SigmoidImpl>(o);
    };
    f["squeeze"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"factor"});
      return std::make_shared<SqueezeImpl>(spec_optional(s, "factor", SqueezeOptions().factor()));
    };
    f["conv_coupling"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s,
                            {"channels", "mask", "flip", "hidden", "transformer", "scale_bound"});
      ConvCouplingOptions o(spec_required<int64_t>(s, "channels"));
      o.mask(spec_optional(s, "mask", o.mask()))
          .flip(spec_optional(s, "flip", o.flip()))
          .conditioner(nn::conv_conditioner_from_spec(s))
          .transformer(spec_optional(s, "transformer", o.transformer()))
          .scale_bound(spec_optional(s, "scale_bound", o.scale_bound()));
      return std::make_shared<ConvCouplingImpl>(o);
    };
    f["dequantize"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"bits"});
      return std::make_shared<DequantizeImpl>(spec_optional(s, "bits", DequantizeOptions().bits()));
    };
    f["variational_dequantize"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"channels", "bits", "hidden", "steps", "scale_bound"});
      VariationalDequantizeOptions o(spec_required<int64_t>(s, "channels"));
      o.bits(spec_optional(s, "bits", o.bits()))
          .hidden(spec_optional(s, "hidden", o.hidden()))
          .steps(spec_optional(s, "steps", o.steps()))
          .scale_bound(spec_optional(s, "scale_bound", o.scale_bound()));
      return std::make_shared<VariationalDequantizeImpl>(o);
    };
    f["multiscale"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(
          s, {"shape", "levels", "scale_bound", "context_features", "split_context"});
      const Json levels = spec_required<Json>(s, "levels");
      if (!levels.is_array()) throw ConfigError("multiscale: 'levels' must be an array");
      std::vector<TransformPtr> built;
      for (const auto& level : levels) built.push_back(make_transform(level));
      MultiscaleOptions o(spec_required<std::vector<int64_t>>(s, "shape"), std::move(built));
      o.scale_bound(spec_optional(s, "scale_bound", o.scale_bound()))
          .context_features(spec_optional(s, "context_features", o.context_features()))
          .split_context(spec_optional(s, "split_context", o.split_context()));
      return std::make_shared<MultiscaleImpl>(o);
    };
    f["cnf"] = [](const Json& s) -> TransformPtr {
      return std::make_shared<ContinuousFlowImpl>(s);
    };
    f["logit"] = [](const Json& s) -> TransformPtr {
      reject_unknown_fields(s, {"lower", "upper", "eps"});
      LogitOptions o;
      o.lower(spec_optional(s, "lower", o.lower()))
          .upper(spec_optional(s, "upper", o.upper()))
          .eps(spec_optional(s, "eps", o.eps()));
      return std::make_shared<LogitImpl>(o);
    };
  });
  return table;
}

Table<DistributionFactory>& distribution_table() {
  static Table<DistributionFactory> table;
  static std::once_flag once;
  std::call_once(once, [] {
    table.factories["standard_normal"] = [](const Json& s) -> DistributionPtr {
      reject_unknown_fields(s, {"shape"});
      return std::make_shared<StandardNormalImpl>(required_shape(s));
    };
    table.factories["diagonal_normal"] = [](const Json& s) -> DistributionPtr {
      reject_unknown_fields(s, {"shape"});
      return std::make_shared<DiagonalNormalImpl>(required_shape(s));
    };
    table.factories["student_t"] = [](const Json& s) -> DistributionPtr {
      reject_unknown_fields(s, {"shape", "df", "learn_df", "learn_loc_scale"});
      StudentTOptions o(required_shape(s));
      o.df(spec_optional(s, "df", o.df()))
          .learn_df(spec_optional(s, "learn_df", o.learn_df()))
          .learn_loc_scale(spec_optional(s, "learn_loc_scale", o.learn_loc_scale()));
      return std::make_shared<StudentTImpl>(o);
    };
    table.factories["laplace"] = [](const Json& s) -> DistributionPtr {
      reject_unknown_fields(s, {"shape", "learn_loc_scale"});
      return std::make_shared<LaplaceImpl>(required_shape(s),
                                           spec_optional(s, "learn_loc_scale", false));
    };
    table.factories["gaussian_mixture"] = [](const Json& s) -> DistributionPtr {
      reject_unknown_fields(s, {"shape", "components"});
      return std::make_shared<GaussianMixtureImpl>(required_shape(s),
                                                   spec_required<int64_t>(s, "components"));
    };
    table.factories["box_uniform"] = [](const Json& s) -> DistributionPtr {
      reject_unknown_fields(s, {"low", "high"});
      return std::make_shared<BoxUniformImpl>(spec_required<std::vector<double>>(s, "low"),
                                              spec_required<std::vector<double>>(s, "high"));
    };
    table.factories["circular_uniform"] = [](const Json& s) -> DistributionPtr {
      reject_unknown_fields(s, {"shape", "circular"});
      return std::make_shared<CircularUniformImpl>(
          required_shape(s), spec_optional(s, "circular", std::vector<int64_t>{}));
    };
    table.factories["conditional_diagonal_normal"] = [](const Json& s) -> DistributionPtr {
      reject_unknown_fields(s, {"shape", "context_features", "conditioner"});
      return std::make_shared<ConditionalDiagonalNormalImpl>(
          required_shape(s), spec_required<int64_t>(s, "context_features"),
          spec_optional<Json>(s, "conditioner", Json()));
    };
  });
  return table;
}

template <typename Factory>
Factory find_factory(Table<Factory>& table, const Json& spec, const std::string& what) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    throw ConfigError(what + " spec must be an object with a string 'type', got " + spec.dump());
  }
  const auto type = spec["type"].get<std::string>();
  std::lock_guard<std::mutex> lock(table.mutex);
  auto it = table.factories.find(type);
  if (it == table.factories.end()) {
    std::string known;
    for (const auto& entry : table.factories) known += (known.empty() ? "" : ", ") + entry.first;
    throw ConfigError("unknown " + what + " type '" + type + "' (known: " + known + ")");
  }
  return it->second;
}

template <typename Factory>
std::vector<std::string> names(Table<Factory>& table) {
  std::lock_guard<std::mutex> lock(table.mutex);
  std::vector<std::string> out;
  for (const auto& entry : table.factories) out.push_back(entry.first);
  return out;
}

/// Nesting of make_* calls on this thread: only the outermost checks the sizes of the whole
/// spec (a composite builds its layers through make_transform).
thread_local int build_depth = 0;

/// Runs check_spec_size on the outermost spec before anything is allocated.
class SizeCheck {
 public:
  explicit SizeCheck(const Json& spec) {
    if (build_depth == 0) check_spec_size(spec);
    ++build_depth;
  }
  SizeCheck(const SizeCheck&) = delete;
  SizeCheck& operator=(const SizeCheck&) = delete;
  ~SizeCheck() { --build_depth; }
};

}  // namespace

TransformPtr make_transform(const Json& spec) {
  SizeCheck check(spec);
  return find_factory(transform_table(), spec, "transform")(spec);
}

DistributionPtr make_distribution(const Json& spec) {
  SizeCheck check(spec);
  return find_factory(distribution_table(), spec, "distribution")(spec);
}

FlowPtr make_flow(const Json& spec) {
  if (!spec.is_object() || spec_type(spec) != "flow") {
    throw ConfigError("a flow spec must be an object with \"type\": \"flow\"");
  }
  SizeCheck check(spec);
  reject_unknown_fields(
      spec, {"transform", "base", "context_features", "context_standardize", "embedding"});
  const auto context_features = spec_optional<int64_t>(spec, "context_features", 0);
  std::shared_ptr<TransformImpl> standardize;
  if (spec.contains("context_standardize"))
    standardize = make_transform(spec["context_standardize"]);
  std::shared_ptr<nn::MLPImpl> embedding;
  if (spec.contains("embedding")) {
    Json net = spec["embedding"];
    const auto features = spec_required<int64_t>(net, "features");
    net.erase("features");
    auto options =
        nn::mlp_options_from_spec(net, context_features, features, 0).zero_init_last(false);
    embedding = std::make_shared<nn::MLPImpl>(options);
  }
  return std::make_shared<FlowImpl>(make_transform(spec_required<Json>(spec, "transform")),
                                    make_distribution(spec_required<Json>(spec, "base")),
                                    context_features, standardize, embedding);
}

void register_transform(const std::string& type, TransformFactory factory) {
  auto& table = transform_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  table.factories[type] = std::move(factory);
}

void register_distribution(const std::string& type, DistributionFactory factory) {
  auto& table = distribution_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  table.factories[type] = std::move(factory);
}

std::vector<std::string> registered_transforms() { return names(transform_table()); }
std::vector<std::string> registered_distributions() { return names(distribution_table()); }

}  // namespace zflow
