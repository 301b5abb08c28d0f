// Spec assembly (flows/assembly.h): the fitted standardisation goes first, a conditional
// recipe gets its context size, context standardisation and embedding, contradictions are
// ConfigErrors; check_trainable names constant and overflowing columns; spec files that are
// not flow specs are ConfigErrors naming the file.

#include "zflow/flows/assembly.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <string>
#include <vector>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"
#include "zflow/transforms/elementwise.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

BuilderOptions small() {
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 8;
  return o;
}

// [200, 2] rows with means about (3, −1) and spreads about (2, 0.5).
at::Tensor rows(int64_t n = 200, int64_t seed = 1) {
  torch::manual_seed(seed);
  return at::randn({n, 2}, at::kDouble) * at::tensor({2.0, 0.5}, at::kDouble) +
         at::tensor({3.0, -1.0}, at::kDouble);
}

std::vector<double> values(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

TEST(Assembly, ABuilderGetsTheFittedStandardisationFirst) {
  FlowRecipe recipe;
  recipe.model = "realnvp";
  recipe.builder = small();
  recipe.event_shape = {2};
  const at::Tensor train = rows();
  const AssembledSpec a = assemble_flow_spec(recipe, train);

  const auto fitted = StandardizeImpl::fit(train);
  const Json first = a.spec["transform"]["layers"][0];
  EXPECT_EQ(first["type"], "standardize");
  EXPECT_EQ(first["mean"].get<std::vector<double>>(), fitted->mean_values());
  EXPECT_EQ(first["std"].get<std::vector<double>>(), fitted->std_values());
  EXPECT_EQ(a.standardization["mean"].get<std::vector<double>>(), fitted->mean_values());
  EXPECT_EQ(a.standardization["std"].get<std::vector<double>>(), fitted->std_values());
  // The fit is the rows' mean and (population) spread.
  const std::vector<double> mean = values(train.mean(0));
  const std::vector<double> std = values(train.std(0, /*unbiased=*/false));
  for (size_t j = 0; j < 2; ++j) {
    EXPECT_NEAR(fitted->mean_values()[j], mean[j], 1e-12);
    EXPECT_NEAR(fitted->std_values()[j], std[j], 1e-12);
  }
  // The rest is the builder's flow, unconditional.
  EXPECT_EQ(a.spec, with_standardization(build_flow_spec("realnvp", 2, small()),
                                         fitted->mean_values(), fitted->std_values()));
  EXPECT_FALSE(a.spec.contains("context_features") && a.spec["context_features"] != 0);
  EXPECT_TRUE(a.context_standardization.is_null());
  auto flow = make_flow(a.spec);
  EXPECT_EQ(flow->log_prob(train.to(at::kFloat)).size(0), 200);

  recipe.standardize = false;
  const AssembledSpec plain = assemble_flow_spec(recipe, train);
  EXPECT_EQ(plain.spec, build_flow_spec("realnvp", 2, small()));
  EXPECT_TRUE(plain.standardization.is_null());
}

TEST(Assembly, AnImageModelIsNotStandardised) {
  FlowRecipe recipe;
  recipe.model = "glow";
  recipe.builder = small();
  recipe.builder.levels = 1;
  recipe.event_shape = {1, 4, 4};
  const at::Tensor images = at::randint(0, 256, {10, 1, 4, 4}, at::kDouble);
  const AssembledSpec a = assemble_flow_spec(recipe, images);
  EXPECT_TRUE(a.standardization.is_null());
  EXPECT_EQ(a.spec, build_image_flow_spec("glow", {1, 4, 4}, recipe.builder));
}

TEST(Assembly, AConditionalRecipeGetsItsContext) {
  FlowRecipe recipe;
  recipe.model = "realnvp";
  recipe.builder = small();
  recipe.event_shape = {2};
  recipe.context_features = 3;
  const at::Tensor train = rows();
  torch::manual_seed(5);
  const at::Tensor context =
      at::randn({200, 3}, at::kDouble) * 4 + at::tensor({1.0, 2.0, -7.0}, at::kDouble);
  const AssembledSpec a = assemble_flow_spec(recipe, train, context);

  const auto fitted = StandardizeImpl::fit(context);
  EXPECT_EQ(a.spec["context_features"], 3);
  EXPECT_EQ(a.spec["context_standardize"]["type"], "standardize");
  EXPECT_EQ(a.spec["context_standardize"]["mean"].get<std::vector<double>>(),
            fitted->mean_values());
  EXPECT_EQ(a.spec["context_standardize"]["std"].get<std::vector<double>>(), fitted->std_values());
  EXPECT_EQ(a.context_standardization["mean"].get<std::vector<double>>(), fitted->mean_values());
  EXPECT_EQ(a.context_standardization["std"].get<std::vector<double>>(), fitted->std_values());
  EXPECT_FALSE(a.spec.contains("embedding"));
  // Without an embedding the layers see the raw context: the builder's conditional flow.
  BuilderOptions conditional = small();
  conditional.context_features = 3;
  const Json built = build_flow_spec("realnvp", 2, conditional);
  EXPECT_EQ(a.spec["transform"]["layers"].size(), built["transform"]["layers"].size() + 1);
  EXPECT_EQ(a.spec["transform"]["layers"][1], built["transform"]["layers"][0]);
  auto flow = make_flow(a.spec);
  EXPECT_EQ(flow->context_features(), 3);
  const at::Tensor lp = flow->log_prob(train.to(at::kFloat), context.to(at::kFloat));
  EXPECT_TRUE(at::isfinite(lp).all().item<bool>());

  // With an embedding: the flow takes the raw 3 features, the layers see the embedding's 4.
  recipe.embedding = 4;
  const AssembledSpec e = assemble_flow_spec(recipe, train, context);
  EXPECT_EQ(e.spec["context_features"], 3);
  EXPECT_EQ(e.spec["embedding"]["type"], "mlp");
  EXPECT_EQ(e.spec["embedding"]["features"], 4);
  EXPECT_EQ(e.spec["embedding"]["hidden"], 8);
  conditional.context_features = 4;
  EXPECT_EQ(e.spec["transform"]["layers"][1],
            build_flow_spec("realnvp", 2, conditional)["transform"]["layers"][0]);
  auto embedded = make_flow(e.spec);
  EXPECT_EQ(embedded->context_features(), 3);
  EXPECT_TRUE(at::isfinite(embedded->log_prob(train.to(at::kFloat), context.to(at::kFloat)))
                  .all()
                  .item<bool>());

  // Unstandardised: no context standardisation either.
  recipe.standardize = false;
  recipe.embedding = 0;
  const AssembledSpec raw = assemble_flow_spec(recipe, train, context);
  EXPECT_FALSE(raw.spec.contains("context_standardize"));
  EXPECT_TRUE(raw.context_standardization.is_null());
  EXPECT_EQ(raw.spec["context_features"], 3);
}

// A hand-written conditional spec (what read_flow_spec_file returns for one).
Json conditional_spec(int64_t k) {
  BuilderOptions o = small();
  o.context_features = k;
  return build_flow_spec("realnvp", 2, o);
}

TEST(Assembly, ContradictionsBetweenSpecAndRecipeAreConfigErrors) {
  const at::Tensor train = rows();
  const at::Tensor context = at::randn({200, 2}, at::kDouble);
  FlowRecipe recipe;
  recipe.spec = conditional_spec(2);
  recipe.spec_source = "cond.json";
  recipe.event_shape = {2};
  // A conditional spec without context columns.
  expect_error<ConfigError>([&] { assemble_flow_spec(recipe, train); },
                            {"cond.json", "conditional", "2", "--context-columns"});
  // A context of another size than the spec's.
  recipe.spec = conditional_spec(3);
  recipe.context_features = 2;
  expect_error<ConfigError>([&] { assemble_flow_spec(recipe, train, context); },
                            {"cond.json", "\"context_features\": 3", "chose 2"});
  // An embedding in the spec and one asked for.
  recipe.spec = conditional_spec(2);
  recipe.spec["embedding"] = {
      {"type", "mlp"}, {"features", 2}, {"hidden", 8}, {"layers", 1}, {"activation", "relu"}};
  recipe.embedding = 4;
  expect_error<ConfigError>([&] { assemble_flow_spec(recipe, train, context); },
                            {"cond.json", "embedding already"});
  // The same spec without the embedding option is fine and keeps its own.
  recipe.embedding = 0;
  const AssembledSpec a = assemble_flow_spec(recipe, train, context);
  EXPECT_EQ(a.spec["embedding"]["features"], 2);
  EXPECT_EQ(a.spec["context_features"], 2);
  EXPECT_EQ(a.spec["transform"]["layers"][0]["type"], "standardize");
}

TEST(Assembly, ConstantColumnsAreNamed) {
  at::Tensor train = at::randn({50, 3}, at::kDouble);
  train.select(1, 2).fill_(4.0);
  expect_error<DataError>(
      [&] {
        check_trainable("runs.csv", {"a", "b", "temp"}, train, train, true, at::kFloat);
      },
      {"runs.csv", "temp is constant", "--columns"});
  train.select(1, 0).fill_(-1.0);
  expect_error<DataError>(
      [&] {
        check_trainable("runs.csv", {"a", "b", "temp"}, train, train, true, at::kFloat);
      },
      {"a, temp are constant"});
  // Without labels: by number, 1-based.
  expect_error<DataError>([&] { check_trainable("data.npy", {}, train, train, false, at::kFloat); },
                          {"data.npy", "column 1, column 3 are constant"});
  // Constant among the training rows is what counts.
  at::Tensor all = at::randn({60, 2}, at::kDouble);
  all.narrow(0, 0, 50).select(1, 1).fill_(2.0);
  expect_error<DataError>(
      [&] {
        check_trainable("f.csv", {"u", "v"}, all, all.narrow(0, 0, 50), true, at::kDouble);
      },
      {"v is constant"});
  EXPECT_NO_THROW(check_trainable("f.csv", {"u", "v"}, all, all, true, at::kDouble));
  // The same with the training rows given as indices into the whole table.
  expect_error<DataError>(
      [&] {
        check_trainable("f.csv", {"u", "v"}, all, all, true, at::kDouble,
                        at::arange(50, at::kLong).flip(0));
      },
      {"v is constant"});
}

// Training rows given as indices (a split that copies nothing) fit the standardisation a
// materialised copy of those rows fits.
TEST(Assembly, TrainingRowsAsIndicesStandardiseLikeACopy) {
  at::manual_seed(8);
  const at::Tensor table = at::randn({400, 3}, at::kDouble) * 2 + 5;
  const at::Tensor context = at::randn({400, 2}, at::kDouble);
  const at::Tensor rows = at::randperm(400, at::kLong).narrow(0, 40, 360);
  FlowRecipe recipe;
  recipe.model = "realnvp";
  recipe.event_shape = {3};
  recipe.context_features = 2;
  const AssembledSpec copied =
      assemble_flow_spec(recipe, table.index_select(0, rows), context.index_select(0, rows));
  const AssembledSpec indexed = assemble_flow_spec(recipe, table, context, rows);
  EXPECT_EQ(copied.standardization, indexed.standardization);
  EXPECT_EQ(copied.context_standardization, indexed.context_standardization);
  const AssembledSpec whole = assemble_flow_spec(recipe, table, context);
  EXPECT_NE(whole.standardization, indexed.standardization);
}

TEST(Assembly, OverflowingColumnsAreNamed) {
  // ±1e308 in column "big": its spread overflows; the other columns are ordinary.
  at::Tensor values = at::randn({20, 3}, at::kDouble);
  values[4][1] = 1e308;
  values[9][1] = -1e308;
  expect_error<DataError>(
      [&] {
        check_trainable("runs.csv", {"a", "big", "c"}, values, values, true, at::kFloat);
      },
      {"runs.csv", "row 5", "big", "1e+308", "overflows"});
  // Unstandardised, a value beyond float32 overflows in the model's dtype.
  at::Tensor large = at::randn({20, 2}, at::kDouble);
  large[7][1] = 1e300;
  expect_error<DataError>(
      [&] {
        check_trainable("x.csv", {"p", "q"}, large, large, false, at::kFloat);
      },
      {"x.csv", "row 8", "q", "1e+300", "Float"});
  EXPECT_NO_THROW(check_trainable("x.csv", {"p", "q"}, large, large, false, at::kDouble));
  EXPECT_NO_THROW(check_trainable("x.csv", {"p", "q"}, rows(), rows(), true, at::kFloat));
}

class SpecFileTest : public zflow::testing::TempDirTest {
 protected:
  SpecFileTest() : TempDirTest("zflow_test_assembly") {}
};

TEST_F(SpecFileTest, ReadsAFlowSpecAndRejectsOthers) {
  const std::string bad = write_text("bad.json", "{\"type\": \"flow\", ");
  expect_error<ConfigError>([&] { read_flow_spec_file(bad); }, {bad, "not valid JSON"});
  const std::string array = write_text("array.json", "[1, 2]");
  expect_error<ConfigError>([&] { read_flow_spec_file(array); }, {array, "\"type\": \"flow\""});
  const std::string transform =
      write_text("transform.json", R"({"type": "affine_coupling", "mask": [1, 0]})");
  expect_error<ConfigError>([&] { read_flow_spec_file(transform); },
                            {transform, "\"type\": \"flow\""});
  const std::string partial = write_text("partial.json", R"({"type": "flow", "base": {}})");
  expect_error<ConfigError>([&] { read_flow_spec_file(partial); }, {partial, "\"transform\""});
  expect_error<IOError>([&] { read_flow_spec_file(path("missing.json")); }, {"missing.json"});

  // A single transform is wrapped in a composite, so a standardisation can go in front.
  Json spec = build_flow_spec("realnvp", 2, small());
  const Json single = spec["transform"]["layers"][0];
  spec["transform"] = single;
  const std::string one = write_text("one.json", spec.dump());
  const Json read = read_flow_spec_file(one);
  EXPECT_EQ(read["transform"]["type"], "composite");
  EXPECT_EQ(read["transform"]["layers"], Json::array({single}));
  EXPECT_EQ(read["base"], spec["base"]);
  // A composite stays as it is.
  const Json whole = build_flow_spec("realnvp", 2, small());
  EXPECT_EQ(read_flow_spec_file(write_text("whole.json", whole.dump())), whole);
  // And the recipe of a read spec gets its standardisation first.
  FlowRecipe recipe;
  recipe.spec = read;
  recipe.spec_source = one;
  recipe.event_shape = {2};
  const AssembledSpec a = assemble_flow_spec(recipe, rows());
  EXPECT_EQ(a.spec["transform"]["layers"][0]["type"], "standardize");
  EXPECT_EQ(a.spec["transform"]["layers"][1], single);
}

}  // namespace
