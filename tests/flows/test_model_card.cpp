// The model card (flows/model_card.h): every field survives to_metadata/from_metadata, files
// from before the card read as version 0, names and indices that disagree with the model
// are dropped, damaged entries read as unknown, and the card travels in a real checkpoint.

#include "zflow/flows/model_card.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "support/temp_dir.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/registry.h"

using namespace zflow;

namespace {

ModelCard full_card() {
  ModelCard card;
  card.dataset = "runs.csv";
  card.model = "spec my flow.json";
  card.features = 3;
  card.columns = {"price", "weight", "x \"quoted\""};
  card.column_indices = {4, 0, 2};
  card.context_features = 2;
  card.context_columns = {"temp", "day"};
  card.context_column_indices = {1, 3};
  card.image_shape = {};
  card.standardization = {{"mean", {1.5, -2.0, 0.25}}, {"std", {2.0, 3.0, 0.5}}};
  card.context_standardization = {{"mean", {10.0, 3.0}}, {"std", {4.0, 2.0}}};
  card.train = {{"options", {{"steps", 100}, {"lr", 0.001}}},
                {"result", {{"best_step", 80}, {"interrupted", false}}}};
  card.metrics_file = "/tmp/some dir/metrics.jsonl";
  return card;
}

void expect_same(const ModelCard& a, const ModelCard& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.dataset, b.dataset);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.features, b.features);
  EXPECT_EQ(a.columns, b.columns);
  EXPECT_EQ(a.column_indices, b.column_indices);
  EXPECT_EQ(a.context_features, b.context_features);
  EXPECT_EQ(a.context_columns, b.context_columns);
  EXPECT_EQ(a.context_column_indices, b.context_column_indices);
  EXPECT_EQ(a.image_shape, b.image_shape);
  EXPECT_EQ(a.standardization, b.standardization);
  EXPECT_EQ(a.context_standardization, b.context_standardization);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.metrics_file, b.metrics_file);
}

TEST(ModelCard, EveryFieldSurvivesTheMetadata) {
  const ModelCard card = full_card();
  const auto metadata = card.to_metadata();
  EXPECT_EQ(metadata.at("model_card"), std::to_string(ModelCard::kVersion));
  const ModelCard back = ModelCard::from_metadata(metadata, 3, 2);
  EXPECT_EQ(back.version, ModelCard::kVersion);
  expect_same(back, card);
}

TEST(ModelCard, AnImageCardSurvivesTheMetadata) {
  ModelCard card;
  card.dataset = "digits.idx";
  card.model = "glow";
  card.features = 3 * 4 * 5;
  card.image_shape = {3, 4, 5};
  const auto metadata = card.to_metadata();
  EXPECT_EQ(metadata.count("context_column_indices"), 0u);
  EXPECT_EQ(metadata.count("metrics_file"), 0u);
  const ModelCard back = ModelCard::from_metadata(metadata, 60, 0);
  expect_same(back, card);
  EXPECT_TRUE(back.standardization.is_null());
  EXPECT_TRUE(back.train.is_null());
}

TEST(ModelCard, AClassConditionalCardKeepsItsClassNames) {
  ModelCard card;
  card.model = "glow";
  card.features = 1 * 8 * 8;
  card.image_shape = {1, 8, 8};
  card.context_features = 3;
  card.class_names = {"dark", "mid", "bright"};
  const auto metadata = card.to_metadata();
  EXPECT_EQ(ModelCard::from_metadata(metadata, 64, 3).class_names, card.class_names);
  // Names that do not match the model's number of classes are dropped.
  EXPECT_TRUE(ModelCard::from_metadata(metadata, 64, 2).class_names.empty());
  EXPECT_EQ(card.to_metadata().count("class_names"), 1u);
  card.class_names.clear();
  EXPECT_EQ(card.to_metadata().count("class_names"), 0u);
}

// A file written before the model card: a few plain entries, no "model_card".
TEST(ModelCard, AFileWithoutTheCardReadsAsVersionZero) {
  const std::map<std::string, std::string> old = {
      {"format", "zflow/1"},        {"spec", "{}"},
      {"dataset", "moons"},         {"model", "realnvp"},
      {"columns", R"(["x", "y"])"}, {"standardization", R"({"mean": [0, 1], "std": [2, 3]})"}};
  const ModelCard card = ModelCard::from_metadata(old, 2, 0);
  EXPECT_EQ(card.version, 0);
  EXPECT_EQ(card.dataset, "moons");
  EXPECT_EQ(card.model, "realnvp");
  EXPECT_EQ(card.features, 2);
  EXPECT_EQ(card.columns, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(card.column_indices.empty());
  EXPECT_EQ(card.context_features, 0);
  EXPECT_TRUE(card.context_columns.empty());
  EXPECT_TRUE(card.image_shape.empty());
  EXPECT_EQ(card.standardization["std"], Json({2, 3}));
  EXPECT_TRUE(card.context_standardization.is_null());
  EXPECT_TRUE(card.train.is_null());
  EXPECT_EQ(card.metrics_file, "");

  const ModelCard empty = ModelCard::from_metadata({}, 4, 1);
  EXPECT_EQ(empty.version, 0);
  EXPECT_EQ(empty.dataset, "");
  EXPECT_EQ(empty.features, 4);
  EXPECT_EQ(empty.context_features, 1);
  EXPECT_TRUE(empty.columns.empty());
  EXPECT_TRUE(empty.context_column_indices.empty());
}

TEST(ModelCard, NamesAndIndicesThatDisagreeWithTheModelAreDropped) {
  const auto metadata = full_card().to_metadata();  // 3 data, 2 context columns
  // The model has other widths than the card says: its names and indices do not apply.
  const ModelCard card = ModelCard::from_metadata(metadata, 2, 1);
  EXPECT_EQ(card.features, 2);
  EXPECT_EQ(card.context_features, 1);
  EXPECT_TRUE(card.columns.empty());
  EXPECT_TRUE(card.column_indices.empty());
  EXPECT_TRUE(card.context_columns.empty());
  EXPECT_TRUE(card.context_column_indices.empty());
  // The rest of the card stays.
  EXPECT_EQ(card.dataset, "runs.csv");
  EXPECT_EQ(card.train, full_card().train);

  // An unconditional reading drops the context's names.
  const ModelCard plain = ModelCard::from_metadata(metadata, 3, 0);
  EXPECT_EQ(plain.columns, full_card().columns);
  EXPECT_TRUE(plain.context_columns.empty());
  EXPECT_TRUE(plain.context_column_indices.empty());

  // A negative or fractional index drops all of them; a non-string name reads as "".
  auto odd = metadata;
  odd["data_column_indices"] = "[0, -1, 2]";
  odd["context_column_indices"] = "[1, 2.5]";
  odd["columns"] = R"(["a", 7, "c"])";
  const ModelCard read = ModelCard::from_metadata(odd, 3, 2);
  EXPECT_TRUE(read.column_indices.empty());
  EXPECT_TRUE(read.context_column_indices.empty());
  EXPECT_EQ(read.columns, (std::vector<std::string>{"a", "", "c"}));
}

TEST(ModelCard, DamagedEntriesReadAsUnknown) {
  auto metadata = full_card().to_metadata();
  metadata["columns"] = "[\"price\", \"weight\"";  // cut short
  metadata["data_column_indices"] = "not json";
  metadata["context_columns"] = "{\"temp\": 1}";
  metadata["context_column_indices"] = "";
  metadata["standardization"] = "{mean: [1]}";
  metadata["context_standardization"] = "[1, 2";
  metadata["train"] = "{";
  metadata["metrics_file"] = "/not/quoted.jsonl";
  metadata["image_shape"] = "[1, 2]";
  const ModelCard card = ModelCard::from_metadata(metadata, 3, 2);
  EXPECT_EQ(card.version, ModelCard::kVersion);
  EXPECT_EQ(card.dataset, "runs.csv");
  EXPECT_TRUE(card.columns.empty());
  EXPECT_TRUE(card.column_indices.empty());
  EXPECT_TRUE(card.context_columns.empty());
  EXPECT_TRUE(card.context_column_indices.empty());
  EXPECT_TRUE(card.standardization.is_null());
  EXPECT_TRUE(card.context_standardization.is_null());
  EXPECT_TRUE(card.train.is_null());
  EXPECT_EQ(card.metrics_file, "");
  EXPECT_TRUE(card.image_shape.empty());

  // A damaged version reads as a file from before the card.
  metadata["model_card"] = "one";
  EXPECT_EQ(ModelCard::from_metadata(metadata, 3, 2).version, 0);
}

class ModelCardFileTest : public zflow::testing::TempDirTest {
 protected:
  ModelCardFileTest() : TempDirTest("zflow_test_model_card") {}
};

TEST_F(ModelCardFileTest, TravelsInACheckpoint) {
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 8;
  o.context_features = 2;
  auto flow = make_flow(build_flow_spec("realnvp", 3, o));
  const ModelCard card = full_card();
  const std::string file = path("model.safetensors");
  save_checkpoint(file, *flow, card.to_metadata());
  const Checkpoint loaded = load_checkpoint(file);
  // The checkpoint's own entries are there besides the card's.
  EXPECT_EQ(loaded.metadata.count("spec"), 1u);
  EXPECT_EQ(loaded.metadata.at("dataset"), "runs.csv");
  const ModelCard back = ModelCard::from_metadata(loaded.metadata, 3, 2);
  expect_same(back, card);
  EXPECT_EQ(loaded.flow->context_features(), 2);
}

}  // namespace
