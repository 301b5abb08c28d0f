// A conditional flow learns a known conditional density: x | c ~ N(μ(c), diag σ(c)²).

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cmath>

#include "zflow/core/threads.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"
#include "zflow/train/trainer.h"

using namespace zflow;

namespace {

// μ(c) = (c, sin 2c), σ(c) = (0.3 + 0.2c², 0.4·exp(c/2)), c ~ U[−2, 2].
struct Truth {
  Tensor mean, std;
  explicit Truth(const Tensor& c) {
    mean = at::cat({c, at::sin(2 * c)}, 1);
    std = at::cat({0.3 + 0.2 * c * c, 0.4 * at::exp(0.5 * c)}, 1);
  }
  Tensor log_prob(const Tensor& x) const {
    Tensor u = (x - mean) / std;
    return (-0.5 * u * u - at::log(std) - 0.5 * std::log(2 * M_PI)).sum(1);
  }
};

std::pair<Tensor, Tensor> draw(int64_t n) {
  Tensor c = at::rand({n, 1}, at::kDouble) * 4 - 2;
  Truth t(c);
  return {t.mean + t.std * at::randn({n, 2}, at::kDouble), c};
}

TEST(ConditionalTraining, LearnsAKnownConditionalDensityWithin005Nats) {
  set_threads(2);
  torch::manual_seed(7);
  auto [x, c] = draw(20000);
  auto [x_val, c_val] = draw(2000);
  auto [x_test, c_test] = draw(20000);

  BuilderOptions o;
  o.layers = 3;
  o.hidden = 64;
  o.context_features = 1;
  auto flow = make_flow(build_flow_spec("maf", 2, o));
  train::TrainOptions t;
  t.steps = 2500;
  t.batch_size = 512;
  t.lr = 3e-3;
  t.eval_every = 250;
  t.seed = 7;
  train::train_flow(*flow, x.to(at::kFloat), x_val.to(at::kFloat), t, c.to(at::kFloat),
                    c_val.to(at::kFloat));

  Tensor model =
      train::log_prob_batched(*flow, x_test.to(at::kFloat), c_test.to(at::kFloat)).to(at::kDouble);
  Tensor truth = Truth(c_test).log_prob(x_test);
  const double kl = (truth - model).mean().item<double>();  // ≥ 0 up to sampling noise
  const double mean_abs = (truth - model).abs().mean().item<double>();
  std::cout << "conditional: E[log p − log q] = " << kl << ", E|log p − log q| = " << mean_abs
            << "\n";
  // On average the model's log-density is within 0.05 nats of the truth (this average is
  // the KL divergence from the truth to the model); pointwise errors stay small too.
  EXPECT_LT(std::abs(kl), 0.05);
  EXPECT_LT(mean_abs, 0.1);
}

}  // namespace
