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
