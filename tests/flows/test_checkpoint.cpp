// Checkpoints (flows/checkpoint.h): the state by module path, loading it into a fresh model,
// the metadata a file carries, and the errors of a state that does not fit.

#include "zflow/flows/checkpoint.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <set>
#include <string>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

class CheckpointFileTest : public zflow::testing::TempDirTest {
 protected:
  CheckpointFileTest() : TempDirTest("zflow_test_checkpoint") {}
};

Json small_spec() {
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 8;
  return build_flow_spec("realnvp", 3, o);
}

FlowPtr random_flow() {
  auto flow = make_flow(small_spec());
  torch::NoGradGuard no_grad;
  for (auto& p : flow->parameters()) p.add_(at::randn_like(p) * 0.3);
  return flow;
}

TEST(NamedState, EveryParameterAndBufferByItsPath) {
  auto flow = random_flow();
  const auto state = named_state(*flow);
  std::set<std::string> names;
  for (const auto& [name, tensor] : state) names.insert(name);
  EXPECT_EQ(names.size(), state.size());  // no name twice
  EXPECT_EQ(state.size(), flow->named_parameters().size() + flow->named_buffers().size());
  for (const auto& item : flow->named_parameters()) EXPECT_EQ(names.count(item.key()), 1u);
}

TEST(NamedState, LoadsIntoAFreshModelAndChecksNamesAndShapes) {
  torch::manual_seed(2);
  auto trained = random_flow();
  auto fresh = make_flow(small_spec());
  const at::Tensor x = at::randn({5, 3});
  EXPECT_FALSE(at::equal(fresh->log_prob(x), trained->log_prob(x)));
  load_named_state(*fresh, named_state(*trained), "memory");
  EXPECT_TRUE(at::equal(fresh->log_prob(x), trained->log_prob(x)));

  auto state = named_state(*trained);
  const std::string first = state.front().first;
  state.front().second = at::zeros({1});
  expect_error<IOError>([&] { load_named_state(*fresh, state, "memory"); }, {"memory", first});
  state.erase(state.begin());
  expect_error<IOError>([&] { load_named_state(*fresh, state, "memory"); },
                        {"memory", first, "missing"});
  state = named_state(*trained);
  state.emplace_back("nowhere.weight", at::zeros({2}));
  expect_error<IOError>([&] { load_named_state(*fresh, state, "memory"); }, {"nowhere.weight"});
}

TEST_F(CheckpointFileTest, MetadataAndModelComeBackInEvalMode) {
  torch::manual_seed(3);
  auto flow = random_flow();
  flow->train();
  const std::string file = path("model.safetensors");
  save_checkpoint(file, *flow, {{"dataset", "moons"}, {"note", "ünïcode"}});
  auto loaded = load_checkpoint(file);
  EXPECT_EQ(loaded.metadata.at("dataset"), "moons");
  EXPECT_EQ(loaded.metadata.at("note"), "ünïcode");
  EXPECT_EQ(loaded.metadata.at("dtype"), "float32");
  EXPECT_EQ(Json::parse(loaded.metadata.at("spec")), flow->spec());
  EXPECT_FALSE(loaded.flow->is_training());
  flow->eval();
  const at::Tensor x = at::randn({4, 3});
  EXPECT_TRUE(at::equal(loaded.flow->log_prob(x), flow->log_prob(x)));
  // The reserved entries are the model's own, whatever the caller passes.
  save_checkpoint(file, *flow, {{"spec", "{}"}, {"format", "other"}});
  EXPECT_EQ(Json::parse(load_checkpoint(file).metadata.at("spec")), flow->spec());
}

TEST_F(CheckpointFileTest, AFileThatIsNotAModelIsAnIOErrorNamingIt) {
  const std::string file = write_bytes("junk.safetensors", "not a safetensors file at all");
  expect_error<IOError>([&] { load_checkpoint(file); }, {file});
}

}  // namespace
