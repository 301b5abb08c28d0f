// The ready-made architectures (flows/builders.h): the options reach the spec, the
// spec is deterministic, standardisation is inserted first, and bad options are errors.

#include "zflow/flows/builders.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "zflow/core/error.h"
#include "zflow/flows/registry.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

// Every value of `key` anywhere in the spec.
std::vector<Json> values_of(const Json& spec, const std::string& key) {
  std::vector<Json> out;
  std::function<void(const Json&)> visit = [&](const Json& j) {
    if (j.is_object()) {
      for (const auto& item : j.items()) {
        if (item.key() == key) out.push_back(item.value());
        visit(item.value());
      }
    } else if (j.is_array()) {
      for (const auto& item : j) visit(item);
    }
  };
  visit(spec);
  return out;
}

TEST(Builders, TheNamedModelsExist) {
  std::vector<std::string> names;
  for (const auto& [name, description] : builder_names()) names.push_back(name);
  for (const char* name : {"realnvp", "nice", "glow", "maf"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
  expect_error<ConfigError>([] { build_flow_spec("nope", 2, {}); }, {"'nope'", "realnvp"});
}

TEST(Builders, OptionsReachTheSpec) {
  BuilderOptions o;
  o.layers = 3;
  o.hidden = 17;
  o.activation = "tanh";
  o.base = "diagonal_normal";
  const Json spec = build_flow_spec("realnvp", 4, o);
  EXPECT_EQ(spec["type"], "flow");
  EXPECT_EQ(spec["base"]["type"], "diagonal_normal");
  const auto couplings = values_of(spec, "conditioner");
  EXPECT_EQ(couplings.size(), 3u);
  for (const auto& c : couplings) {
    EXPECT_EQ(c["hidden"], 17) << c;
    EXPECT_EQ(c["activation"], "tanh") << c;
  }
  // The flow built from it has the features and the base it says.
  auto flow = make_flow(spec);
  EXPECT_EQ(flow->log_prob(at::randn({5, 4})).sizes(), at::IntArrayRef({5}));
  o.base = "cauchy";
  expect_error<ConfigError>([&] { build_flow_spec("realnvp", 4, o); }, {"'cauchy'"});
}

TEST(Builders, EveryBaseNameBuildsAFlow) {
  for (const auto& [name, description] : base_names()) {
    BuilderOptions o;
    o.layers = 2;
    o.hidden = 8;
    o.base = name;
    if (name == "conditional_diagonal_normal") o.context_features = 2;
    const Json spec = build_flow_spec("realnvp", 3, o);
    EXPECT_EQ(spec["base"]["type"], name);
    // Heavy-tailed bases keep their own tails: no log_tails layer in front of them.
    const bool heavy = name == "student_t" || name == "laplace";
    const Json& layers = spec["transform"]["layers"];
    EXPECT_EQ(layers.back()["type"] == "log_tails", !heavy) << name;
    auto flow = make_flow(spec);
    const at::Tensor context = o.context_features > 0 ? at::randn({5, 2}) : at::Tensor();
    const at::Tensor lp = flow->log_prob(at::randn({5, 3}), context);
    EXPECT_EQ(lp.sizes(), at::IntArrayRef({5})) << name;
    EXPECT_TRUE(at::isfinite(lp).all().item<bool>()) << name;
    EXPECT_EQ(make_flow(flow->spec())->spec(), flow->spec()) << name;
  }
}

TEST(Builders, BaseOptionsReachTheBaseSpec) {
  BuilderOptions o;
  o.layers = 2;
  o.base = "student_t";
  EXPECT_EQ(build_flow_spec("maf", 2, o)["base"],
            Json({{"type", "student_t"}, {"shape", {2}}, {"df", 5.0}, {"learn_df", false}}));
  o.base_df = 2.5;
  o.base_learn_df = true;
  EXPECT_EQ(build_flow_spec("maf", 2, o)["base"],
            Json({{"type", "student_t"}, {"shape", {2}}, {"df", 2.5}, {"learn_df", true}}));
  o = BuilderOptions();
  o.base = "gaussian_mixture";
  EXPECT_EQ(build_flow_spec("maf", 2, o)["base"]["components"], kDefaultBaseComponents);
  o.base_components = 3;
  EXPECT_EQ(build_flow_spec("maf", 2, o)["base"]["components"], 3);
  o = BuilderOptions();
  o.base = "conditional_diagonal_normal";
  o.context_features = 4;
  o.hidden = 16;
  o.depth = 1;
  const Json base = build_flow_spec("maf", 2, o)["base"];
  EXPECT_EQ(base["context_features"], 4);
  EXPECT_EQ(base["conditioner"]["hidden"], 16);
  EXPECT_EQ(base["conditioner"]["layers"], 1);
}

TEST(Builders, BasesThatCannotServeAreConfigErrors) {
  auto error = [](BuilderOptions o, const std::string& model, std::vector<std::string> parts) {
    expect_error<ConfigError>([&] { build_flow_spec(model, 2, o); }, parts);
  };
  BuilderOptions o;
  o.base = "box_uniform";
  error(o, "realnvp", {"box_uniform", "R^D"});
  o.base = "conditional_diagonal_normal";
  error(o, "realnvp", {"needs a context"});
  o.base = "laplace";
  error(o, "cnf", {"cnf", "standard_normal"});
  o.base_df = 3;
  error(o, "realnvp", {"student_t", "laplace"});
  o = BuilderOptions();
  o.base_learn_df = true;
  error(o, "realnvp", {"student_t"});
  o = BuilderOptions();
  o.base_components = 2;
  error(o, "realnvp", {"gaussian_mixture"});
  o = BuilderOptions();
  o.base = "student_t";
  o.base_df = -1;
  error(o, "realnvp", {"df", "positive"});
  o.base_df = 0.005;
  o.base_learn_df = true;
  // The builder writes the spec; the distribution refuses it when the flow is made.
  expect_error<ConfigError>([&] { make_flow(build_flow_spec("realnvp", 2, o)); }, {"floor"});
  o = BuilderOptions();
  o.base = "laplace";
  expect_error<ConfigError>(
      [&] {
        build_image_flow_spec("glow", {1, 4, 4}, o);
      },
      {"glow", "standard_normal"});
  expect_error<ConfigError>(
      [&] {
        build_box_flow_spec("nsf-coupling", 2, o, {0.0, 0.0}, {1.0, 1.0});
      },
      {"box_uniform"});
  // Options of a base the model does not have are refused there too.
  o = BuilderOptions();
  o.base_df = 3;
  expect_error<ConfigError>([&] { build_image_flow_spec("glow", {1, 4, 4}, o); }, {"student_t"});
  expect_error<ConfigError>(
      [&] {
        build_box_flow_spec("nsf-coupling", 2, o, {0.0, 0.0}, {1.0, 1.0});
      },
      {"student_t"});
  o.base_df = 0;
  o.base = "laplace";
  // Behind a logit, a box flow takes the base.
  EXPECT_EQ(build_box_flow_spec("realnvp", 2, o, {0.0, 0.0}, {1.0, 1.0})["base"]["type"],
            "laplace");
}

TEST(Builders, TheSpecDependsOnlyOnTheOptions) {
  BuilderOptions o;
  o.layers = 2;
  o.seed = 5;
  EXPECT_EQ(build_flow_spec("glow", 3, o), build_flow_spec("glow", 3, o));
  BuilderOptions other = o;
  other.seed = 6;
  // Glow's LU layers take their permutations from the seed.
  const auto seeds = values_of(build_flow_spec("glow", 3, o), "seed");
  ASSERT_FALSE(seeds.empty());
  EXPECT_NE(build_flow_spec("glow", 3, o), build_flow_spec("glow", 3, other));
}

TEST(Builders, ContextFeaturesMakeAConditionalFlow) {
  BuilderOptions o;
  o.layers = 2;
  o.context_features = 3;
  auto flow = make_flow(build_flow_spec("maf", 2, o));
  EXPECT_EQ(flow->context_features(), 3);
  EXPECT_EQ(flow->log_prob(at::randn({4, 2}), at::randn({4, 3})).sizes(), at::IntArrayRef({4}));
}

// A standardised flow is the same flow on (x − mean) / std, plus −Σ log std.
TEST(Builders, StandardizationComesFirst) {
  torch::manual_seed(8);
  BuilderOptions o;
  o.layers = 2;
  const Json plain = build_flow_spec("realnvp", 2, o);
  const Json standardized = with_standardization(plain, {1.0, -2.0}, {2.0, 3.0});
  EXPECT_EQ(standardized["transform"]["layers"][0]["type"], "standardize");
  auto a = make_flow(plain);
  auto b = make_flow(standardized);
  b->to(at::kDouble);
  a->to(at::kDouble);
  const at::Tensor x = at::randn({6, 2}, at::kDouble);
  const at::Tensor mean = at::tensor({1.0, -2.0}, at::kDouble);
  const at::Tensor scale = at::tensor({2.0, 3.0}, at::kDouble);
  torch::NoGradGuard no_grad;
  const at::Tensor expected = a->log_prob((x - mean) / scale) - std::log(2.0 * 3.0);
  EXPECT_LT((b->log_prob(x) - expected).abs().max().item<double>(), 1e-12);
  expect_error<ConfigError>(
      [] {
        with_standardization(Json{{"type", "flow"}}, {0.0}, {1.0});
      },
      {"transform"});
}

TEST(Builders, ImageModelsNeedDivisibleSizes) {
  BuilderOptions o;
  o.levels = 2;
  o.steps_per_level = 1;
  o.hidden = 8;
  const Json spec = build_image_flow_spec("glow", {1, 8, 8}, o);
  EXPECT_EQ(spec["base"]["shape"], Json({1, 8, 8}));
  EXPECT_EQ(values_of(spec, "levels").front().size(), 2u);
  EXPECT_THROW(build_image_flow_spec("glow", {1, 6, 6}, o), ConfigError);
  EXPECT_THROW(build_image_flow_spec("glow", {8, 8}, o), ConfigError);
  EXPECT_THROW(build_image_flow_spec("pixelcnn", {1, 8, 8}, o), ConfigError);
}

}  // namespace

namespace {

// A box-supported flow: its samples stay in the box, its density vanishes outside and
// integrates to 1 over the box (midpoint rule on a fine grid of the 2-D box).
void expect_density_on_box(const std::string& model, const std::vector<double>& low,
                           const std::vector<double>& high) {
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 16;
  torch::manual_seed(3);
  FlowPtr flow = make_flow(build_box_flow_spec(model, 2, o, low, high));
  flow->to(at::kDouble);
  // Random conditioner outputs: the flow is far from the identity.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : flow->parameters()) p.add_(at::randn_like(p) * 0.3);
  }
  torch::NoGradGuard no_grad;
  const at::Tensor x = flow->sample(20000);
  for (int i = 0; i < 2; ++i) {
    EXPECT_GE(x.select(1, i).min().item<double>(), low[i]) << model;
    EXPECT_LE(x.select(1, i).max().item<double>(), high[i]) << model;
  }
  const int64_t n = 400;
  const at::Tensor u = (at::arange(n, at::kDouble) + 0.5) / n;
  const at::Tensor gx = low[0] + (high[0] - low[0]) * u;
  const at::Tensor gy = low[1] + (high[1] - low[1]) * u;
  const auto grid = at::meshgrid({gx, gy}, "ij");
  const at::Tensor points = at::stack({grid[0].flatten(), grid[1].flatten()}, 1);
  const double cell = (high[0] - low[0]) * (high[1] - low[1]) / (n * n);
  const double mass = (flow->log_prob(points).exp().sum() * cell).item<double>();
  EXPECT_NEAR(mass, 1.0, 0.01) << model;
  const at::Tensor outside = at::tensor({low[0] - 0.5, 0.5 * (low[1] + high[1])}, at::kDouble);
  if (model == "nsf-coupling") {
    EXPECT_EQ(flow->log_prob(outside.unsqueeze(0)).item<double>(),
              -std::numeric_limits<double>::infinity());
  }
}

}  // namespace

TEST(Builders, BoxFlowsLiveOnTheirBox) {
  expect_density_on_box("nsf-coupling", {0.0, 0.0}, {1.0, 1.0});
  expect_density_on_box("nsf-coupling", {-2.0, 1.0}, {3.0, 1.5});
  expect_density_on_box("realnvp", {0.0, 0.0}, {1.0, 1.0});
}

TEST(Builders, BoxFlowsCheckTheirBounds) {
  BuilderOptions o;
  expect_error<ConfigError>([&] { build_box_flow_spec("nsf-coupling", 2, o, {0.0}, {1.0}); },
                            {"lower and upper bounds"});
  expect_error<ConfigError>(
      [&] {
        build_box_flow_spec("nsf-coupling", 2, o, {0.0, 1.0}, {1.0, 1.0});
      },
      {"low < high"});
  expect_error<ConfigError>([&] { build_box_flow_spec("maf", 1, o, {0.0}, {INFINITY}); },
                            {"finite"});
}
