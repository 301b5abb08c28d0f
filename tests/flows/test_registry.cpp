// The registry (flows/registry.h): the built-in types, types added by an application, specs
// of nested transforms, and the errors for specs that cannot be built.

#include "zflow/flows/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "support/expect_error.h"
#include "zflow/core/error.h"
#include "zflow/transforms/permutation.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(Registry, ListsTheBuiltInTypesSorted) {
  const auto transforms = registered_transforms();
  EXPECT_TRUE(std::is_sorted(transforms.begin(), transforms.end()));
  for (const char* type : {"composite", "inverse", "affine_coupling", "spline_coupling",
                           "permutation", "lu_linear", "actnorm", "squeeze", "multiscale"}) {
    EXPECT_TRUE(has(transforms, type)) << type;
  }
  const auto distributions = registered_distributions();
  EXPECT_TRUE(std::is_sorted(distributions.begin(), distributions.end()));
  EXPECT_TRUE(has(distributions, "standard_normal"));
  for (const char* type : {"diagonal_normal", "student_t", "laplace", "gaussian_mixture",
                           "box_uniform", "conditional_diagonal_normal"}) {
    EXPECT_TRUE(has(distributions, type)) << type;
  }
}

TEST(Registry, AnApplicationAddsAndReplacesTypes) {
  int built = 0;
  register_transform("test_registry_reverse", [&](const Json& spec) -> TransformPtr {
    ++built;
    return PermutationImpl::reverse(spec_required<int64_t>(spec, "features"));
  });
  EXPECT_TRUE(has(registered_transforms(), "test_registry_reverse"));
  auto t = make_transform({{"type", "test_registry_reverse"}, {"features", 3}});
  EXPECT_EQ(built, 1);
  EXPECT_EQ(t->spec()["indices"], Json({2, 1, 0}));
  // Inside a composite, through the same factory.
  make_transform(
      {{"type", "composite"}, {"layers", {{{"type", "test_registry_reverse"}, {"features", 2}}}}});
  EXPECT_EQ(built, 2);
  // Registering the name again replaces the factory.
  register_transform("test_registry_reverse", [](const Json&) -> TransformPtr {
    return std::make_shared<PermutationImpl>(std::vector<int64_t>{0, 1});
  });
  EXPECT_EQ(make_transform({{"type", "test_registry_reverse"}})->spec()["indices"], Json({0, 1}));
  EXPECT_EQ(built, 2);
}

TEST(Registry, NestedSpecsComposeAndInvert) {
  const Json a = {{"type", "permutation"}, {"indices", {1, 2, 0}}};
  const Json b = {{"type", "permutation"}, {"indices", {2, 1, 0}}};
  auto composite = make_transform({{"type", "composite"}, {"layers", {a, b}}});
  const at::Tensor x = at::randn({4, 3});
  const at::Tensor expected =
      make_transform(b)->forward(make_transform(a)->forward(x).outputs).outputs;
  EXPECT_TRUE(at::equal(composite->forward(x).outputs, expected));
  auto inverse = make_transform({{"type", "inverse"}, {"transform", a}});
  EXPECT_TRUE(at::equal(inverse->forward(x).outputs, make_transform(a)->inverse(x).outputs));
  EXPECT_EQ(make_transform(composite->spec())->spec(), composite->spec());
}

TEST(Registry, SpecsThatCannotBeBuiltAreConfigErrors) {
  expect_error<ConfigError>([] { make_transform({{"type", "warp"}}); }, {"warp"});
  expect_error<ConfigError>([] { make_distribution({{"type", "cauchy"}}); }, {"cauchy"});
  expect_error<ConfigError>([] { make_transform({{"features", 2}}); }, {});
  expect_error<ConfigError>(
      [] {
        make_transform({{"type", "composite"}, {"layers", 3}});
      },
      {"layers"});
  expect_error<ConfigError>([] { make_flow({{"type", "composite"}}); }, {"flow"});
  expect_error<ConfigError>(
      [] {
        make_flow({{"type", "flow"}, {"base", {{"type", "standard_normal"}, {"shape", {2}}}}});
      },
      {"transform"});
  expect_error<ConfigError>(
      [] {
        make_flow({{"type", "flow"},
                   {"transform", {{"type", "permutation"}, {"indices", {1, 0}}}},
                   {"base", {{"type", "standard_normal"}, {"shape", {2}}}},
                   {"extra", 1}});
      },
      {"extra"});
}

}  // namespace
