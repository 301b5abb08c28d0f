// Maximum-likelihood training end to end: quality on a toy problem, normalisation of the
// learned density, the NaN guard, early stopping and resumable state.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/utils.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "zflow/core/threads.h"
#include "zflow/data/toy.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/registry.h"
#include "zflow/train/trainer.h"

using namespace zflow;

namespace {

FlowPtr small_realnvp(int64_t layers = 6, int64_t hidden = 64) {
  BuilderOptions o;
  o.layers = layers;
  o.hidden = hidden;
  return make_flow(build_flow_spec("realnvp", 2, o));
}

train::TrainOptions quick(int64_t steps) {
  train::TrainOptions o;
  o.steps = steps;
  o.batch_size = 256;
  o.lr = 3e-3;
  o.eval_every = 100;
  o.seed = 1;
  return o;
}

// Trained once and shared: the RealNVP on 8gaussians used by several checks.
class TrainedOn8Gaussians : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    zflow::set_threads(2);
    flow_ = small_realnvp();
    const Tensor train = data::sample_toy("8gaussians", 20000, 1).to(at::kFloat);
    const Tensor val = data::sample_toy("8gaussians", 2000, 2).to(at::kFloat);
    result_ = train::train_flow(*flow_, train, val, quick(600));
  }
  static void TearDownTestSuite() { flow_.reset(); }
  static FlowPtr flow_;
  static train::TrainResult result_;
};
FlowPtr TrainedOn8Gaussians::flow_;
train::TrainResult TrainedOn8Gaussians::result_;

TEST_F(TrainedOn8Gaussians, TestNllFallsBelow3Point3) {
  const Tensor test = data::sample_toy("8gaussians", 20000, 3).to(at::kFloat);
  const double nll = train::mean_nll(*flow_, test);
  std::cout << "8gaussians test NLL " << nll << " (entropy 2.832), " << result_.seconds << " s\n";
  EXPECT_LT(nll, 3.3);
  EXPECT_EQ(result_.steps_done, 600);
  EXPECT_EQ(result_.skipped_steps, 0);
}

// ∫ p(x) dx = 1: a Riemann sum of exp(log p) over a grid covering the data.
TEST_F(TrainedOn8Gaussians, DensityIntegratesToOne) {
  const int64_t n = 320;
  const double lo = -5.5, hi = 5.5, cell = (hi - lo) / n;
  Tensor axis = at::linspace(lo + cell / 2, hi - cell / 2, n, at::kDouble);
  auto grid = at::meshgrid({axis, axis}, "ij");
  Tensor points = at::stack({grid[0].flatten(), grid[1].flatten()}, 1);
  const Tensor log_p = train::log_prob_batched(*flow_, points.to(at::kFloat)).to(at::kDouble);
  const double mass = log_p.exp().sum().item<double>() * cell * cell;
  EXPECT_NEAR(mass, 1.0, 0.01);
}

TEST(Trainer, NonFiniteLossesAreSkippedAndTheModelSurvives) {
  auto flow = small_realnvp(2, 16);
  Tensor data = data::sample_toy("moons", 2000, 1).to(at::kFloat);
  data.narrow(0, 0, 3).fill_(NAN);  // a few poisoned rows hit some minibatches
  auto o = quick(60);
  o.batch_size = 512;
  o.max_nonfinite = 1000;
  std::vector<Json> events;
  o.on_metrics = [&](const Json& j) {
    if (j.contains("event")) events.push_back(j);
  };
  auto result = train::train_flow(*flow, data, data.narrow(0, 3, 500), o);
  EXPECT_GT(result.skipped_steps, 0);
  EXPECT_EQ(static_cast<int64_t>(events.size()), result.skipped_steps);
  EXPECT_EQ(events.front()["reason"], "non-finite loss");
  for (const auto& p : flow->parameters()) EXPECT_TRUE(at::isfinite(p).all().item<bool>());
}

TEST(Trainer, GivesUpAfterTooManyBadStepsKeepingFiniteWeights) {
  auto flow = small_realnvp(2, 16);
  Tensor data = at::full({100, 2}, NAN);
  auto o = quick(100);
  o.max_nonfinite = 5;
  try {
    train::train_flow(*flow, data, Tensor(), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("5 steps in a row"), std::string::npos) << e.what();
  }
  for (const auto& p : flow->parameters()) EXPECT_TRUE(at::isfinite(p).all().item<bool>());
}

// Validation data where the training data are not: fitting the one makes the other worse,
// so early stopping must fire and keep the model from the first evaluation.
TEST(Trainer, EarlyStoppingKeepsTheBestModel) {
  auto flow = small_realnvp(2, 32);
  Tensor train_data = data::sample_toy("8gaussians", 4000, 1).to(at::kFloat);
  Tensor val = at::zeros({200, 2});
  auto o = quick(2000);
  o.eval_every = 20;
  o.patience = 3;
  std::vector<double> vals;
  o.on_metrics = [&](const Json& j) {
    if (j.contains("val_nll")) vals.push_back(j["val_nll"]);
  };
  auto result = train::train_flow(*flow, train_data, val, o);
  EXPECT_TRUE(result.stopped_early);
  EXPECT_LT(result.steps_done, 2000);
  const double best = *std::min_element(vals.begin(), vals.end());
  EXPECT_DOUBLE_EQ(result.best_val_nll, best);
  EXPECT_NEAR(train::mean_nll(*flow, val), best, 1e-4);
}

TEST(Trainer, ResumedRunMatchesAnUninterruptedOne) {
  zflow::set_threads(1);
  const Tensor data = data::sample_toy("rings", 3000, 5).to(at::kFloat);
  const Tensor val = data::sample_toy("rings", 500, 6).to(at::kFloat);
  const auto state = (std::filesystem::temp_directory_path() / "zflow_resume_test.state").string();

  auto straight = small_realnvp(2, 16);
  auto o = quick(80);
  o.eval_every = 20;
  train::train_flow(*straight, data, val, o);

  // A run killed after step 50 (here: an exception from the metrics callback) leaves the
  // state of its last evaluation (step 40) behind; a resumed run continues from there.
  auto killed = small_realnvp(2, 16);
  o.state_path = state;
  auto interrupted = o;
  interrupted.on_metrics = [](const Json& j) {
    if (j.contains("step") && j["step"] == 50) throw std::runtime_error("killed");
  };
  interrupted.log_every = 10;
  EXPECT_THROW(train::train_flow(*killed, data, val, interrupted), std::runtime_error);
  auto fresh = small_realnvp(2, 16);
  o.resume = true;
  auto result = train::train_flow(*fresh, data, val, o);
  EXPECT_EQ(result.steps_done, 80);
  auto a = named_state(*straight), b = named_state(*fresh);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::allclose(a[i].second, b[i].second, 1e-5, 1e-6)) << a[i].first;
  }
  std::filesystem::remove(state);
}

TEST(Trainer, RejectsBadOptions) {
  auto flow = small_realnvp(2, 8);
  Tensor data = at::randn({10, 2});
  auto o = quick(0);
  EXPECT_THROW(train::train_flow(*flow, data, Tensor(), o), ConfigError);
  o = quick(10);
  o.optimizer = "sgd";
  EXPECT_THROW(train::train_flow(*flow, data, Tensor(), o), ConfigError);
}

}  // namespace

namespace {

// A run whose every validation is NaN has no model worth keeping: train_flow says so
// instead of handing back weights with a NaN "best" NLL.
TEST(TrainGuards, NoFiniteValidationIsAnError) {
  FlowPtr flow = small_realnvp(2, 8);
  const Tensor train_data = data::sample_toy("moons", 500, 1).to(at::kFloat);
  Tensor val = data::sample_toy("moons", 50, 2).to(at::kFloat);
  val[3][0] = std::numeric_limits<float>::quiet_NaN();
  train::TrainOptions o = quick(20);
  o.eval_every = 10;
  try {
    train::train_flow(*flow, train_data, val, o);
    FAIL() << "expected zflow::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no finite validation NLL"), std::string::npos)
        << e.what();
  }
}

// stop_requested ends the loop at the next step with the state saved there, and the flow
// holds the best parameters so far; resuming finishes at exactly the uninterrupted result.
TEST(TrainGuards, StopRequestSavesStateAndResumesExactly) {
  const Tensor train_data = data::sample_toy("moons", 500, 1).to(at::kFloat);
  const Tensor val = data::sample_toy("moons", 100, 2).to(at::kFloat);
  const auto state = std::filesystem::temp_directory_path() /
                     ("zflow_stop_" + std::to_string(::getpid()) + ".state");
  train::TrainOptions o = quick(60);
  o.eval_every = 20;
  o.state_path = state.string();
  int polls = 0;
  o.stop_requested = [&polls] { return ++polls > 30; };  // stop before step 31
  // The same initial weights for the interrupted and the reference run.
  auto seeded_flow = [] {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_current_seed(7);
    return small_realnvp(2, 8);
  };
  FlowPtr flow = seeded_flow();
  const train::TrainResult stopped = train::train_flow(*flow, train_data, val, o);
  EXPECT_TRUE(stopped.interrupted);
  EXPECT_EQ(stopped.steps_done, 30);
  EXPECT_EQ(stopped.best_step, 20);

  o.stop_requested = nullptr;
  o.resume = true;
  FlowPtr resumed = small_realnvp(2, 8);
  const train::TrainResult finished = train::train_flow(*resumed, train_data, val, o);
  EXPECT_FALSE(finished.interrupted);
  EXPECT_EQ(finished.steps_done, 60);

  // Resuming a finished run changes nothing and says so.
  FlowPtr again = small_realnvp(2, 8);
  const train::TrainResult done = train::train_flow(*again, train_data, val, o);
  EXPECT_TRUE(done.already_finished);
  EXPECT_EQ(done.best_val_nll, finished.best_val_nll);

  o.resume = false;
  o.state_path.clear();
  FlowPtr reference = seeded_flow();
  const train::TrainResult whole = train::train_flow(*reference, train_data, val, o);
  EXPECT_EQ(whole.best_val_nll, finished.best_val_nll);
  EXPECT_TRUE(at::equal(resumed->log_prob(val), reference->log_prob(val)));
  std::filesystem::remove(state);
}

}  // namespace
