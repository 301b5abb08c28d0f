// Specs and model files from untrusted sources: integer fields take only integers in range,
// sizes are checked before anything is allocated, tensors must have the model's dtype.

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "support/expect_error.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/registry.h"
#include "zflow/flows/spec_size.h"
#include "zflow/io/safetensors.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

Json parse(const std::string& text) { return Json::parse(text); }

TEST(SpecIntegers, FloatsAreNotIntegers) {
  const Json spec = parse(R"({"type": "actnorm", "features": 2.7})");
  expect_error<ConfigError>([&] { make_transform(spec); },
                            {"actnorm", "'features'", "must be an integer", "2.7"});
  expect_error<ConfigError>([&] { spec_required<int64_t>(spec, "features"); },
                            {"'features'", "must be an integer"});
  // 2.0 is a float in JSON: refused as well, so that "2.7" and "2.0" behave alike.
  expect_error<ConfigError>(
      [&] { make_transform(parse(R"({"type": "actnorm", "features": 2.0})")); },
      {"must be an integer"});
}

TEST(SpecIntegers, HugeFloatsAreErrorsNotUndefinedBehaviour) {
  expect_error<ConfigError>(
      [&] { make_transform(parse(R"({"type": "squeeze", "factor": 1e20})")); },
      {"squeeze", "'factor'", "must be an integer", "1e+20"});
  expect_error<ConfigError>(
      [&] { make_transform(parse(R"({"type": "actnorm", "features": 1e20})")); },
      {"'features'", "must be an integer"});
}

TEST(SpecIntegers, RangeOfTheTargetType) {
  const Json big = parse(R"({"type": "t", "n": 18446744073709551615, "m": -1, "k": 4294967296})");
  expect_error<ConfigError>([&] { spec_required<int64_t>(big, "n"); }, {"'n'", "out of range"});
  expect_error<ConfigError>([&] { spec_required<uint64_t>(big, "m"); }, {"'m'", "out of range"});
  expect_error<ConfigError>([&] { spec_required<int32_t>(big, "k"); }, {"'k'", "out of range"});
  EXPECT_EQ(spec_required<uint64_t>(big, "n"), 18446744073709551615ULL);
  EXPECT_EQ(spec_required<int64_t>(big, "m"), -1);
  EXPECT_EQ(spec_required<int64_t>(big, "k"), 4294967296LL);
  EXPECT_EQ(spec_optional<int64_t>(big, "absent", 7), 7);
}

TEST(SpecIntegers, ArraysOfIntegers) {
  const Json spec = parse(R"({"type": "t", "a": [1, 2.5], "b": [1, 2], "c": 3})");
  expect_error<ConfigError>([&] { spec_required<std::vector<int64_t>>(spec, "a"); },
                            {"'a'", "array of integers"});
  expect_error<ConfigError>([&] { spec_required<std::vector<int64_t>>(spec, "c"); },
                            {"'c'", "array of integers"});
  EXPECT_EQ(spec_required<std::vector<int64_t>>(spec, "b"), (std::vector<int64_t>{1, 2}));
  // Floats and strings keep their own types.
  EXPECT_EQ(spec_required<double>(spec, "c"), 3.0);
  expect_error<ConfigError>([&] { spec_required<std::string>(spec, "c"); }, {"wrong type"});
}

TEST(SpecIntegers, ATypeThatIsNotAStringIsAConfigError) {
  expect_error<ConfigError>([&] { make_flow(parse(R"({"type": 5})")); }, {"flow spec"});
  expect_error<ConfigError>([&] { spec_required<int64_t>(parse(R"({"type": 5, "n": 1.5})"), "n"); },
                            {"spec of type '?'"});
}

TEST(SpecSize, EachSizeFieldIsBounded) {
  expect_error<ConfigError>(
      [&] {
        make_flow(parse(R"({"type": "flow", "transform": {"type": "composite", "layers": []},
                            "base": {"type": "standard_normal", "shape": [1000000000000]}})"));
      },
      {"'base.shape[0]'", "1000000000000", "too large"});
  expect_error<ConfigError>(
      [&] {
        make_transform(parse(R"({"type": "affine_coupling", "mask": [0, 1],
                                 "conditioner": {"hidden": 1000000000000}})"));
      },
      {"'conditioner.hidden'", "too large"});
  // The product of a shape too.
  expect_error<ConfigError>(
      [&] { make_distribution(parse(R"({"type": "diagonal_normal", "shape": [65536, 65536]})")); },
      {"'shape'", "elements"});
}

TEST(SpecSize, TheEstimateIsCheckedAgainstMemory) {
  // 10^9 hidden units: within the field bound, far beyond any memory.
  const Json wide = parse(R"({"type": "affine_coupling", "mask": [0, 1, 0, 1],
                              "conditioner": {"hidden": 1000000000, "layers": 3}})");
  expect_error<ConfigError>([&] { make_transform(wide); }, {"needs about", "memory available",
                                                            "'conditioner.hidden' = 1000000000"});
  expect_error<ConfigError>(
      [&] {
        check_spec_size(parse(R"({"type": "lu_linear",
                                                             "features": 100000})"),
                        1 << 30);
      },
      {"needs about 80 GB", "1.07 GB", "'features' = 100000"});
  // A small spec passes and its estimate is of the right order.
  const Json small = parse(R"({"type": "lu_linear", "features": 10})");
  EXPECT_NO_THROW(check_spec_size(small, 1 << 20));
  EXPECT_NEAR(estimate_spec_size(small).elements, 220, 1);
}

TEST(SpecSize, EstimatesCoverTheBuiltParameters) {
  // The estimate is an upper bound of what is built, within a small factor.
  BuilderOptions o;
  o.layers = 4;
  o.hidden = 32;
  for (const auto& [name, description] : builder_names()) {
    SCOPED_TRACE(name);
    const Json spec = build_flow_spec(name, 6, o);
    auto flow = make_flow(spec);
    double built = 0;
    for (const auto& [key, tensor] : named_state(*flow))
      built += static_cast<double>(tensor.numel());
    const double estimated = estimate_spec_size(spec).elements;
    EXPECT_GE(estimated, built);
    EXPECT_LE(estimated, 3 * built + 100);
  }
}

TEST(SpecSize, InvertibleResidualEstimateCountsWeightsAndBuffers) {
  for (int layers : {1, 3}) {
    const Json spec = {{"type", "iresnet"}, {"features", 5}, {"hidden", 12}, {"layers", layers}};
    auto t = make_transform(spec);
    double built = 0;
    for (const auto& p : t->named_parameters()) built += static_cast<double>(p.value().numel());
    for (const auto& b : t->named_buffers()) built += static_cast<double>(b.value().numel());
    EXPECT_EQ(estimate_spec_size(spec).elements, built) << layers;
  }
}

TEST(SpecSize, BuildersRefuseSizesBeforeBuilding) {
  BuilderOptions o;
  o.hidden = 1000000000000;
  expect_error<ConfigError>([&] { build_flow_spec("realnvp", 2, o); },
                            {"realnvp: hidden", "too large"});
  o = {};
  expect_error<ConfigError>([&] { build_flow_spec("maf", 1000000000000, o); },
                            {"maf: features", "too large"});
  // 10^9 layers: refused from the estimate of two, before the list is built.
  o = {};
  o.layers = 1000000000;
  expect_error<ConfigError>([&] { build_flow_spec("realnvp", 2, o); },
                            {"realnvp: 1000000000 layers need about", "memory available"});
  o = {};
  o.steps_per_level = 1000000000;
  expect_error<ConfigError>(
      [&] {
        build_image_flow_spec("glow", {1, 8, 8}, o);
      },
      {"glow: 1000000000 steps per level need about"});
  o = {};
  o.levels = 64;
  expect_error<ConfigError>(
      [&] {
        build_image_flow_spec("glow", {1, 8, 8}, o);
      },
      {"levels must be at most 30"});
}

class CheckpointDtypeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BuilderOptions o;
    o.layers = 2;
    o.hidden = 8;
    flow = make_flow(build_flow_spec("realnvp", 2, o));
    path = (std::filesystem::temp_directory_path() / "zflow_dtype_test.safetensors").string();
    save_checkpoint(path, *flow);
  }
  void TearDown() override { std::filesystem::remove(path); }
  FlowPtr flow;
  std::string path;
};

TEST_F(CheckpointDtypeTest, TheMetadataRecordsTheDtype) {
  EXPECT_EQ(io::load_safetensors(path).metadata.at("dtype"), "float32");
  flow->to(at::kDouble);
  save_checkpoint(path, *flow);
  EXPECT_EQ(io::load_safetensors(path).metadata.at("dtype"), "float64");
  EXPECT_EQ(load_checkpoint(path).flow->parameters()[0].scalar_type(), at::kDouble);
}

TEST_F(CheckpointDtypeTest, OneTensorOfAnotherDtypeIsAnError) {
  for (const auto dtype : {at::kDouble, at::kBFloat16, at::kHalf}) {
    auto file = io::load_safetensors(path);
    file.tensors.back().second = file.tensors.back().second.to(dtype);
    io::save_safetensors(path, file);
    expect_error<IOError>(
        [&] { load_checkpoint(path); },
        {path, "'" + file.tensors.back().first + "'", "is stored as", "the model is float32"});
    // Without the recorded dtype (older files), the first tensor's dtype is the model's.
    file.metadata.erase("dtype");
    io::save_safetensors(path, file);
    expect_error<IOError>([&] { load_checkpoint(path); }, {path, "is stored as"});
    save_checkpoint(path, *flow);
  }
}

TEST_F(CheckpointDtypeTest, AnUnknownRecordedDtypeIsAnError) {
  auto file = io::load_safetensors(path);
  file.metadata["dtype"] = "float8";
  io::save_safetensors(path, file);
  expect_error<IOError>([&] { load_checkpoint(path); }, {path, "unknown model dtype \"float8\""});
}

TEST_F(CheckpointDtypeTest, AHugeSpecInAModelFileFailsBeforeAllocating) {
  auto file = io::load_safetensors(path);
  file.metadata["spec"] =
      R"({"type": "flow", "transform": {"type": "composite", "layers": []},
          "base": {"type": "standard_normal", "shape": [1000000000000]}})";
  io::save_safetensors(path, file);
  expect_error<IOError>([&] { load_checkpoint(path); }, {path, "cannot be built", "too large"});
}

}  // namespace
