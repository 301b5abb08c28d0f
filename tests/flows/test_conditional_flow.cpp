// Conditional flows: sample shapes per context, sample_and_log_prob against log_prob, the
// context required exactly when the flow is conditional, and the embedding in the spec.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"

using namespace zflow;

namespace {

void randomize(torch::nn::Module& module, double scale = 0.5) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.add_(at::randn_like(p) * scale);
}

FlowPtr conditional_maf(int64_t features, int64_t context) {
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 16;
  o.context_features = 4;  // the embedding's output size
  Json spec = build_flow_spec("maf", features, o);
  spec["context_features"] = context;
  spec["embedding"] = {{"type", "mlp"}, {"features", 4}, {"hidden", 8}, {"layers", 1}};
  auto flow = make_flow(spec);
  flow->to(at::kDouble);
  randomize(*flow, 0.3);
  flow->eval();
  return flow;
}

TEST(ConditionalFlow, SampleShapesPerContext) {
  auto flow = conditional_maf(3, 2);
  torch::NoGradGuard no_grad;
  EXPECT_EQ(flow->sample(5, at::randn({2}, at::kDouble)).sizes(), at::IntArrayRef({5, 3}));
  EXPECT_EQ(flow->sample(5, at::randn({4, 2}, at::kDouble)).sizes(), at::IntArrayRef({4, 5, 3}));
  EXPECT_EQ(flow->sample(5, at::randn({1, 2}, at::kDouble)).sizes(), at::IntArrayRef({1, 5, 3}));
  auto [x, logp] = flow->sample_and_log_prob(6, at::randn({3, 2}, at::kDouble));
  EXPECT_EQ(x.sizes(), at::IntArrayRef({3, 6, 3}));
  EXPECT_EQ(logp.sizes(), at::IntArrayRef({3, 6}));
}

TEST(ConditionalFlow, SampleAndLogProbMatchesLogProbOfEachContext) {
  auto flow = conditional_maf(2, 3);
  torch::NoGradGuard no_grad;
  Tensor contexts = at::randn({4, 3}, at::kDouble);
  auto [x, logp] = flow->sample_and_log_prob(7, contexts);
  Tensor repeated = contexts.repeat_interleave(7, 0);
  Tensor expected = flow->log_prob(x.reshape({28, 2}), repeated).reshape({4, 7});
  EXPECT_LT((expected - logp).abs().max().item<double>(), 1e-9);
  // The samples of different contexts differ: the context reaches the transform.
  EXPECT_GT((x[0].mean(0) - x[1].mean(0)).abs().max().item<double>(), 1e-6);
}

TEST(ConditionalFlow, ContextIsRequiredExactlyWhenConditional) {
  auto flow = conditional_maf(2, 3);
  EXPECT_THROW(flow->log_prob(at::randn({2, 2}, at::kDouble)), c10::Error);
  EXPECT_THROW(flow->log_prob(at::randn({2, 2}, at::kDouble), at::randn({2, 5}, at::kDouble)),
               c10::Error);
  auto plain = make_flow(build_flow_spec("maf", 2, {}));
  EXPECT_THROW(plain->log_prob(at::randn({2, 2}), at::randn({2, 3})), c10::Error);
}

TEST(ConditionalFlow, SpecRoundTripKeepsEmbedding) {
  auto flow = conditional_maf(2, 3);
  auto rebuilt = make_flow(flow->spec());
  EXPECT_EQ(rebuilt->spec(), flow->spec());
  EXPECT_EQ(rebuilt->context_features(), 3);
}

}  // namespace
