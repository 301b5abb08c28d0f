// FlatAdam against LibTorch's Adam and AdamW: the same trajectory to rounding, the same
// gradient clipping rule, gradients that someone else reset, and its saved state.

#include <gtest/gtest.h>

#include <sstream>

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include "zflow/core/error.h"
#include "zflow/train/flat_adam.h"

using namespace zflow;

namespace {

// Two copies of a small network with identical weights.
struct Twins {
  torch::nn::Sequential a, b;
};

Twins make_twins(at::ScalarType dtype) {
  torch::manual_seed(0);
  torch::nn::Sequential a(torch::nn::Linear(3, 7), torch::nn::Tanh(), torch::nn::Linear(7, 2));
  a->to(dtype);
  torch::nn::Sequential b(torch::nn::Linear(3, 7), torch::nn::Tanh(), torch::nn::Linear(7, 2));
  b->to(dtype);
  torch::NoGradGuard no_grad;
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
  return {a, b};
}

at::Tensor loss_of(torch::nn::Sequential& net, const at::Tensor& x) {
  return net->forward(x).pow(2).sum() + net->forward(x).sum();
}

double max_difference(torch::nn::Sequential& a, torch::nn::Sequential& b) {
  double worst = 0;
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  }
  return worst;
}

struct AdamCase {
  at::ScalarType dtype;
  bool decoupled;
  double weight_decay;
};

class FlatAdamMatchesTorch : public ::testing::TestWithParam<AdamCase> {};

TEST_P(FlatAdamMatchesTorch, TwentySteps) {
  const auto [dtype, decoupled, weight_decay] = GetParam();
  Twins t = make_twins(dtype);
  train::FlatAdamOptions o;
  o.lr = 0.01;
  o.weight_decay = weight_decay;
  o.decoupled = decoupled;
  train::FlatAdam flat(t.a->parameters(), o);
  std::unique_ptr<torch::optim::Optimizer> reference;
  if (decoupled) {
    reference = std::make_unique<torch::optim::AdamW>(
        t.b->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(weight_decay));
  } else {
    reference = std::make_unique<torch::optim::Adam>(
        t.b->parameters(), torch::optim::AdamOptions(o.lr).weight_decay(weight_decay));
  }
  for (int step = 0; step < 20; ++step) {
    const at::Tensor x = at::randn({16, 3}, at::TensorOptions(dtype));
    flat.zero_grad();
    loss_of(t.a, x).backward();
    flat.step();
    reference->zero_grad();
    loss_of(t.b, x).backward();
    reference->step();
  }
  EXPECT_EQ(flat.steps_taken(), 20);
  // The weights moved (so the comparison means something) and moved alike.
  EXPECT_LT(max_difference(t.a, t.b), dtype == at::kDouble ? 1e-12 : 1e-5);
  Twins fresh = make_twins(dtype);
  EXPECT_GT(max_difference(t.a, fresh.a), 0.05);
}

INSTANTIATE_TEST_SUITE_P(Variants, FlatAdamMatchesTorch,
                         ::testing::Values(AdamCase{at::kDouble, false, 0.0},
                                           AdamCase{at::kFloat, false, 0.0},
                                           AdamCase{at::kDouble, false, 0.1},
                                           AdamCase{at::kDouble, true, 0.1},
                                           AdamCase{at::kFloat, true, 0.01}),
                         [](const auto& info) {
                           return std::string(info.param.dtype == at::kDouble ? "f64" : "f32") +
                                  (info.param.decoupled ? "_adamw" : "_adam") +
                                  (info.param.weight_decay > 0 ? "_decay" : "");
                         });

TEST(FlatAdam, ParametersAndGradientsShareOneBuffer) {
  Twins t = make_twins(at::kFloat);
  train::FlatAdam flat(t.a->parameters(), {});
  int64_t total = 0;
  for (const auto& p : t.a->parameters()) total += p.numel();
  EXPECT_EQ(flat.numel(), total);
  const auto params = t.a->parameters();
  // Consecutive parameters are consecutive slices of one allocation.
  for (size_t i = 1; i < params.size(); ++i) {
    EXPECT_EQ(static_cast<const float*>(params[i].data_ptr()),
              static_cast<const float*>(params[i - 1].data_ptr()) + params[i - 1].numel());
    EXPECT_EQ(static_cast<const float*>(params[i].grad().data_ptr()),
              static_cast<const float*>(params[i - 1].grad().data_ptr()) + params[i - 1].numel());
  }
}

// LibTorch 1.13's Optimizer::zero_grad detaches every gradient in place: FlatAdam's
// gradients must allow that (no autograd views), through the base class as well.
TEST(FlatAdam, BaseClassZeroGradWorks) {
  Twins t = make_twins(at::kFloat);
  train::FlatAdam flat(t.a->parameters(), {});
  loss_of(t.a, at::randn({4, 3})).backward();
  torch::optim::Optimizer& base = flat;
  base.zero_grad();
  for (const auto& p : t.a->parameters()) {
    if (p.grad().defined()) {
      EXPECT_EQ(p.grad().abs().max().item<double>(), 0.0);
    }
  }
  loss_of(t.a, at::randn({4, 3})).backward();
  base.step();
  EXPECT_EQ(flat.steps_taken(), 1);
}

TEST(FlatAdam, GradientsResetByTheModuleAreReattached) {
  Twins t = make_twins(at::kDouble);
  train::FlatAdam flat(t.a->parameters(), {});
  torch::optim::Adam reference(t.b->parameters(), torch::optim::AdamOptions(1e-3));
  const at::Tensor x = at::randn({5, 3}, at::kDouble);
  t.a->zero_grad(/*set_to_none=*/true);  // the gradients no longer alias the flat buffer
  loss_of(t.a, x).backward();
  flat.step();
  reference.zero_grad();
  loss_of(t.b, x).backward();
  reference.step();
  EXPECT_LT(max_difference(t.a, t.b), 1e-12);
  Twins fresh = make_twins(at::kDouble);
  EXPECT_GT(max_difference(t.a, fresh.a), 1e-4);
}

TEST(FlatAdam, ClipsLikeTorch) {
  Twins t = make_twins(at::kDouble);
  train::FlatAdam flat(t.a->parameters(), {});
  const at::Tensor x = at::randn({9, 3}, at::kDouble) * 10;
  loss_of(t.a, x).backward();
  loss_of(t.b, x).backward();
  const double norm = flat.clip_grad_norm(0.5);
  const double expected = torch::nn::utils::clip_grad_norm_(t.b->parameters(), 0.5);
  EXPECT_NEAR(norm, expected, 1e-12 * expected);
  ASSERT_GT(norm, 0.5);  // the clipping happened
  auto pa = t.a->parameters(), pb = t.b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_LT((pa[i].grad() - pb[i].grad()).abs().max().item<double>(), 1e-14);
  }
}

TEST(FlatAdam, SavedStateResumesTheSameTrajectory) {
  Twins t = make_twins(at::kDouble);
  train::FlatAdam first(t.a->parameters(), {});
  const at::Tensor x = at::randn({6, 3}, at::kDouble);
  for (int i = 0; i < 3; ++i) {
    first.zero_grad();
    loss_of(t.a, x).backward();
    first.step();
  }
  torch::serialize::OutputArchive out;
  first.save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  {
    torch::NoGradGuard no_grad;
    auto pa = t.a->parameters(), pb = t.b->parameters();
    for (size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
  }
  train::FlatAdam second(t.b->parameters(), {});
  torch::serialize::InputArchive in;
  const std::string data = bytes.str();
  in.load_from(data.data(), data.size());
  second.load(in);
  EXPECT_EQ(second.steps_taken(), 3);
  for (auto* pair : {&first, &second}) {
    auto& net = pair == &first ? t.a : t.b;
    pair->zero_grad();
    loss_of(net, x).backward();
    pair->step();
  }
  EXPECT_LT(max_difference(t.a, t.b), 1e-15);

  // A state of another size is refused with a clear error.
  torch::nn::Linear other(2, 2);
  other->to(at::kDouble);
  train::FlatAdam mismatch(other->parameters(), {});
  torch::serialize::InputArchive again;
  again.load_from(data.data(), data.size());
  EXPECT_THROW(mismatch.load(again), IOError);
}

TEST(FlatAdam, RejectsBadOptions) {
  Twins t = make_twins(at::kFloat);
  train::FlatAdamOptions o;
  o.lr = 0;
  EXPECT_THROW(train::FlatAdam(t.a->parameters(), o), ConfigError);
  o.lr = 1e-3;
  o.weight_decay = -1;
  EXPECT_THROW(train::FlatAdam(t.a->parameters(), o), ConfigError);
}

}  // namespace
