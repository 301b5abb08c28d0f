// MADE's autoregressive property, and conditional flows' shapes.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"
#include "zflow/nn/made.h"

using namespace zflow;

namespace {

void randomize(torch::nn::Module& module, double scale = 0.5) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.add_(at::randn_like(p) * scale);
}

struct MadeCase {
  std::string ordering;
  bool residual;
  int64_t context;
};

class MadeProperty : public ::testing::TestWithParam<MadeCase> {};

// ∂ output_i / ∂ input_j must be exactly 0 whenever j does not come before i in the
// ordering, and (with random weights) non-zero for every j that does.
TEST_P(MadeProperty, JacobianIsZeroExactlyWhereTheOrderingSays) {
  torch::manual_seed(3);
  const int64_t d = 5, p = 3;
  nn::MADE made(nn::MADEOptions(d, p)
                    .hidden({32, 32, 32})
                    .ordering(GetParam().ordering)
                    .seed(11)
                    .residual(GetParam().residual)
                    .context_features(GetParam().context));
  made->to(at::kDouble);
  randomize(*made);
  Tensor x = at::randn({4, d}, at::kDouble).requires_grad_(true);
  Tensor ctx = GetParam().context ? at::randn({4, GetParam().context}, at::kDouble) : Tensor();
  Tensor out = made->forward(x, ctx);
  ASSERT_EQ(out.sizes(), at::IntArrayRef({4, d, p}));
  const auto& degree = made->input_degrees();
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t q = 0; q < p; ++q) {
      Tensor grad = torch::autograd::grad({out.select(1, i).select(1, q).sum()}, {x}, {}, true,
                                          false, true)[0];
      if (!grad.defined()) grad = at::zeros_like(x);
      for (int64_t j = 0; j < d; ++j) {
        const double g = grad.select(1, j).abs().max().item<double>();
        if (degree[j] >= degree[i]) {
          EXPECT_EQ(g, 0.0) << "output " << i << " depends on input " << j;
        } else {
          EXPECT_GT(g, 0.0) << "output " << i << " ignores earlier input " << j;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Orderings, MadeProperty,
    ::testing::Values(MadeCase{"natural", false, 0}, MadeCase{"reversed", false, 0},
                      MadeCase{"random", false, 0}, MadeCase{"random", true, 0},
                      MadeCase{"natural", false, 2}, MadeCase{"reversed", true, 3}),
    [](const auto& info) {
      return info.param.ordering + (info.param.residual ? "_residual" : "") +
             (info.param.context ? "_context" : "");
    });

TEST(Made, MasksAreBuffersSavedWithTheModel) {
  nn::MADE made(nn::MADEOptions(3, 2).hidden({8}));
  int masks = 0;
  for (const auto& b : made->named_buffers()) masks += b.key().find("mask") != std::string::npos;
  EXPECT_EQ(masks, 2);
  EXPECT_THROW(nn::MADE(nn::MADEOptions(3, 2).ordering("sideways")), ConfigError);
  EXPECT_THROW(nn::MADE(nn::MADEOptions(3, 2).hidden({8, 16}).residual(true)), ConfigError);
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
