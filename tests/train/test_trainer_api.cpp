// The Trainer as a library API (train/trainer.h): the Objective is what gets minimised, the
// GradientSync sees the flat gradient buffer of every step and its changes reach the update,
// callbacks are called in order with the right records and can stop training, the training
// state written by CheckpointCallback resumes bit for bit, and train_flow is the Trainer.

#include "zflow/train/trainer.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"
#include "zflow/data/toy.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/registry.h"
#include "zflow/train/callbacks.h"
#include "zflow/train/gradient_sync.h"
#include "zflow/train/objective.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

// A small flow whose initial weights are fixed by `seed`.
FlowPtr small_flow(uint64_t seed = 7) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_current_seed(seed);
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 8;
  return make_flow(build_flow_spec("realnvp", 2, o));
}

train::TrainOptions quick(int64_t steps) {
  train::TrainOptions o;
  o.steps = steps;
  o.batch_size = 64;
  o.lr = 3e-3;
  o.eval_every = 10;
  o.seed = 3;
  return o;
}

Tensor moons(int64_t n, uint64_t seed) { return data::sample_toy("moons", n, seed).to(at::kFloat); }

int64_t trainable_numel(FlowImpl& flow) {
  int64_t n = 0;
  for (const auto& p : flow.parameters()) {
    if (p.requires_grad()) n += p.numel();
  }
  return n;
}

// Every parameter and buffer of `a` equals `b`'s exactly.
void expect_same_state(FlowImpl& a, FlowImpl& b) {
  auto sa = named_state(a), sb = named_state(b);
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(at::equal(sa[i].second, sb[i].second)) << sa[i].first;
  }
}

// L(θ) = mean over all trainable parameters of (θ − 1)²: minimised by θ = 1, whatever the
// data. Records the batches it is given; its validation score is the same function.
struct DistanceToOne : train::Objective {
  std::string name() const override { return "distance-to-one"; }
  static Tensor value(FlowImpl& flow) {
    std::vector<Tensor> flat;
    for (const auto& p : flow.parameters()) {
      if (p.requires_grad()) flat.push_back(p.flatten());
    }
    return (at::cat(flat) - 1).pow(2).mean();
  }
  Tensor loss(FlowImpl& flow, const train::Batch& batch) override {
    batches.push_back(batch);
    Tensor l = value(flow);
    losses.push_back(l.item<double>());
    return l;
  }
  double validation_loss(FlowImpl& flow, const Tensor&, const Tensor&) override {
    ++validations;
    return value(flow).to(at::kDouble).item<double>();
  }
  std::vector<train::Batch> batches;
  std::vector<double> losses;
  int validations = 0;
};

// The same function without data: the trainer hands it batches with only size and step.
struct DataFree : DistanceToOne {
  bool uses_data() const override { return false; }
};

TEST(TrainerApi, MinimisesTheCustomObjectiveOnBatchesOfTheTrainingRows) {
  const int64_t n = 300;
  // Row i is (i, i/2) and its context 2i: a batch's rows and contexts can be traced back.
  const Tensor index = at::arange(n, at::kFloat);
  const Tensor rows = at::stack({index, index * 0.5}, 1);
  const Tensor context = (index * 2).unsqueeze(1);
  auto flow = small_flow();
  const double before = DistanceToOne::value(*flow).item<double>();

  auto objective = std::make_shared<DistanceToOne>();
  train::TrainOptions o = quick(150);
  o.lr = 0.05;
  o.cosine = false;
  o.batch_size = 32;
  o.eval_every = 50;
  train::Trainer trainer(*flow, o);
  trainer.set_objective(objective);
  EXPECT_EQ(&trainer.objective(), objective.get());
  const train::TrainResult result = trainer.fit(rows, Tensor(), context);

  ASSERT_EQ(objective->batches.size(), 150u);
  for (size_t s = 0; s < objective->batches.size(); ++s) {
    const train::Batch& b = objective->batches[s];
    EXPECT_EQ(b.step, static_cast<int64_t>(s));
    EXPECT_EQ(b.size, 32);
    ASSERT_TRUE(b.data.defined());
    ASSERT_EQ(b.data.sizes(), (std::vector<int64_t>{32, 2}));
    const Tensor i = b.data.select(1, 0);
    EXPECT_TRUE(at::equal(i, i.round()));
    EXPECT_TRUE((i >= 0).all().item<bool>() && (i < n).all().item<bool>());
    EXPECT_TRUE(at::equal(b.data.select(1, 1), i * 0.5));
    ASSERT_TRUE(b.context.defined());
    EXPECT_TRUE(at::equal(b.context.select(1, 0), i * 2)) << "context rows follow data rows";
  }
  // Validations at 50, 100 and 150, scored by the objective.
  EXPECT_EQ(objective->validations, 3);
  EXPECT_EQ(result.steps_done, 150);
  // The minimum is θ = 1: the loss fell by far and the flow holds the best parameters.
  const double after = DistanceToOne::value(*flow).to(at::kDouble).item<double>();
  EXPECT_GT(before, 0.5);
  EXPECT_LT(after, 0.01 * before);
  EXPECT_DOUBLE_EQ(result.best_val_nll, after);
  EXPECT_LT(objective->losses.back(), objective->losses.front());
  for (const auto& p : flow->parameters()) EXPECT_LT((p - 1).abs().max().item<double>(), 0.25);
}

TEST(TrainerApi, AnObjectiveWithoutDataTrainsWithoutData) {
  auto flow = small_flow();
  auto objective = std::make_shared<DataFree>();
  train::TrainOptions o = quick(20);
  o.batch_size = 17;
  o.lr = 0.05;
  train::Trainer trainer(*flow, o);
  trainer.set_objective(objective);
  const train::TrainResult result = trainer.fit(Tensor());
  EXPECT_EQ(result.steps_done, 20);
  ASSERT_EQ(objective->batches.size(), 20u);
  for (size_t s = 0; s < objective->batches.size(); ++s) {
    EXPECT_FALSE(objective->batches[s].data.defined());
    EXPECT_EQ(objective->batches[s].size, 17);
    EXPECT_EQ(objective->batches[s].step, static_cast<int64_t>(s));
  }
  EXPECT_LT(objective->losses.back(), objective->losses.front());
}

// Counts the calls and checks the buffer; `mode` changes the gradients it is handed.
struct CountingSync : train::GradientSync {
  enum Mode { kKeep, kZeroInPlace, kReplaceByZeros, kNegate };
  explicit CountingSync(Mode m = kKeep) : mode(m) {}
  void broadcast_parameters(FlowImpl& flow) override {
    ++broadcasts;
    broadcast_before_first_sync = syncs == 0;
  }
  void synchronize_gradients(Tensor& flat) override {
    ++syncs;
    numels.push_back(flat.numel());
    flat_is_1d = flat_is_1d && flat.dim() == 1;
    // The buffer holds this step's gradients: its norm is theirs.
    double sq = 0;
    for (const auto& p : flow->parameters()) {
      if (p.requires_grad() && p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
    }
    norms.emplace_back(flat.norm().item<double>(), std::sqrt(sq));
    if (mode == kZeroInPlace) flat.zero_();
    if (mode == kReplaceByZeros) flat = at::zeros_like(flat);
    if (mode == kNegate) flat = -flat;
  }
  Mode mode;
  FlowImpl* flow = nullptr;
  int broadcasts = 0;
  int syncs = 0;
  bool broadcast_before_first_sync = false;
  bool flat_is_1d = true;
  std::vector<int64_t> numels;
  std::vector<std::pair<double, double>> norms;
};

TEST(TrainerApi, GradientSyncSeesTheFlatGradientsOncePerStep) {
  auto flow = small_flow();
  auto sync = std::make_shared<CountingSync>();
  sync->flow = flow.get();
  train::Trainer trainer(*flow, quick(12));
  trainer.set_gradient_sync(sync);
  EXPECT_EQ(&trainer.gradient_sync(), sync.get());
  trainer.fit(moons(400, 1), moons(100, 2));
  EXPECT_EQ(sync->broadcasts, 1);
  EXPECT_TRUE(sync->broadcast_before_first_sync);
  EXPECT_EQ(sync->syncs, 12);
  EXPECT_TRUE(sync->flat_is_1d);
  const int64_t expected = trainable_numel(*flow);
  EXPECT_GT(expected, 0);
  for (int64_t numel : sync->numels) EXPECT_EQ(numel, expected);
  for (const auto& [flat, grads] : sync->norms) {
    EXPECT_GT(flat, 0);
    EXPECT_NEAR(flat, grads, 1e-5 * (1 + grads));
  }
}

// Zero gradients make Adam's update zero: whatever the sync does to the buffer (in place or
// by handing back another tensor) is what the optimizer applies.
TEST(TrainerApi, GradientsZeroedByTheSyncLeaveTheParametersUnchanged) {
  for (auto mode : {CountingSync::kZeroInPlace, CountingSync::kReplaceByZeros}) {
    SCOPED_TRACE(mode == CountingSync::kZeroInPlace ? "in place" : "replaced");
    auto flow = small_flow();
    auto initial = small_flow();
    auto sync = std::make_shared<CountingSync>(mode);
    sync->flow = flow.get();
    train::Trainer trainer(*flow, quick(10));
    trainer.set_gradient_sync(sync);
    trainer.fit(moons(400, 1), moons(100, 2));
    EXPECT_EQ(sync->syncs, 10);
    expect_same_state(*flow, *initial);
  }
  // Without the sync's change the same run moves the parameters.
  auto flow = small_flow();
  auto initial = small_flow();
  train::train_flow(*flow, moons(400, 1), moons(100, 2), quick(10));
  bool moved = false;
  auto a = named_state(*flow), b = named_state(*initial);
  for (size_t i = 0; i < a.size(); ++i) moved = moved || !at::equal(a[i].second, b[i].second);
  EXPECT_TRUE(moved);
}

// Negated gradients give Adam's first step exactly reversed.
TEST(TrainerApi, NegatedGradientsReverseTheFirstUpdate) {
  auto initial = small_flow();
  auto forward = small_flow();
  auto backward = small_flow();
  train::train_flow(*forward, moons(400, 1), moons(100, 2), quick(1));
  auto sync = std::make_shared<CountingSync>(CountingSync::kNegate);
  sync->flow = backward.get();
  train::Trainer trainer(*backward, quick(1));
  trainer.set_gradient_sync(sync);
  trainer.fit(moons(400, 1), moons(100, 2));
  auto p0 = named_state(*initial), pf = named_state(*forward), pb = named_state(*backward);
  double largest = 0;
  for (size_t i = 0; i < p0.size(); ++i) {
    if (p0[i].second.numel() == 0) continue;
    const Tensor up = pf[i].second - p0[i].second;
    const Tensor down = pb[i].second - p0[i].second;
    largest = std::max(largest, up.abs().max().item<double>());
    EXPECT_TRUE(at::allclose(up, -down, 1e-4, 1e-7)) << p0[i].first;
  }
  EXPECT_GT(largest, 1e-4);
}

// Logs every hook into a shared list as "<tag>:<hook>:<step>" and keeps the records.
struct Recorder : train::Callback {
  Recorder(std::string t, std::vector<std::string>* l) : tag(std::move(t)), log(l) {}
  void on_train_begin(train::Trainer& trainer) override {
    log->push_back(tag + ":begin");
    begin_trainer = &trainer;
  }
  void on_step_end(train::Trainer&, const train::StepRecord& s) override {
    log->push_back(tag + ":step:" + std::to_string(s.step));
    steps.push_back(s);
  }
  void on_validation(train::Trainer&, const train::ValidationRecord& v) override {
    log->push_back(tag + ":validation:" + std::to_string(v.step));
    validations.push_back(v);
  }
  void on_stop(train::Trainer&) override { log->push_back(tag + ":stop"); }
  void on_train_end(train::Trainer&, const train::TrainResult& r) override {
    log->push_back(tag + ":end");
    result = r;
  }
  bool stop_requested(train::Trainer&) override {
    ++polls;
    return stop_after > 0 && static_cast<int64_t>(steps.size()) >= stop_after;
  }
  std::string tag;
  std::vector<std::string>* log;
  train::Trainer* begin_trainer = nullptr;
  std::vector<train::StepRecord> steps;
  std::vector<train::ValidationRecord> validations;
  train::TrainResult result;
  int polls = 0;
  int64_t stop_after = 0;
};

// The losses the objective returned, to compare with the step records.
struct LoggedLikelihood : train::MaximumLikelihood {
  Tensor loss(FlowImpl& flow, const train::Batch& batch) override {
    Tensor l = train::MaximumLikelihood::loss(flow, batch);
    losses.push_back(l.item<double>());
    return l;
  }
  std::vector<double> losses;
};

TEST(TrainerApi, CallbacksAreCalledInOrderWithTheirRecords) {
  std::vector<std::string> log;
  auto first = std::make_shared<Recorder>("a", &log);
  auto second = std::make_shared<Recorder>("b", &log);
  auto objective = std::make_shared<LoggedLikelihood>();
  auto flow = small_flow();
  train::TrainOptions o = quick(10);
  o.eval_every = 4;
  o.cosine = false;
  train::Trainer trainer(*flow, o);
  trainer.set_objective(objective).add_callback(first).add_callback(second);
  const Tensor val = moons(100, 2);
  const train::TrainResult result = trainer.fit(moons(400, 1), val);

  std::vector<std::string> expected;
  auto both = [&expected](const std::string& event) {
    expected.push_back("a:" + event);
    expected.push_back("b:" + event);
  };
  both("begin");
  for (int step = 1; step <= 10; ++step) {
    both("step:" + std::to_string(step));
    if (step % 4 == 0 || step == 10) both("validation:" + std::to_string(step));
  }
  both("end");
  EXPECT_EQ(log, expected);
  EXPECT_EQ(first->begin_trainer, &trainer);
  EXPECT_EQ(first->polls, 10);

  // Step records: the objective's loss, the learning rate, its moving average, the last
  // validation score.
  ASSERT_EQ(first->steps.size(), 10u);
  ASSERT_EQ(objective->losses.size(), 10u);
  double smoothed = objective->losses[0];
  for (size_t i = 0; i < 10; ++i) {
    const train::StepRecord& s = first->steps[i];
    EXPECT_EQ(s.step, static_cast<int64_t>(i) + 1);
    EXPECT_DOUBLE_EQ(s.loss, objective->losses[i]);
    EXPECT_DOUBLE_EQ(s.lr, o.lr);
    EXPECT_FALSE(s.skipped);
    EXPECT_TRUE(s.fault.empty());
    EXPECT_TRUE(std::isfinite(s.grad_norm) && s.grad_norm > 0);
    if (i > 0) smoothed = 0.95 * smoothed + 0.05 * objective->losses[i];
    EXPECT_NEAR(s.smoothed_loss, smoothed, 1e-9);
  }
  EXPECT_TRUE(std::isnan(first->steps[3].last_val));  // step 4: before its validation
  ASSERT_EQ(first->validations.size(), 3u);
  EXPECT_DOUBLE_EQ(first->steps[4].last_val, first->validations[0].val_loss);
  EXPECT_DOUBLE_EQ(first->steps[9].last_val, first->validations[1].val_loss);

  // Validation records: the steps, the running best, held-out data.
  const std::vector<int64_t> at_steps = {4, 8, 10};
  double best = INFINITY;
  for (size_t i = 0; i < 3; ++i) {
    const train::ValidationRecord& v = first->validations[i];
    EXPECT_EQ(v.step, at_steps[i]);
    EXPECT_TRUE(v.held_out);
    EXPECT_TRUE(std::isfinite(v.val_loss));
    EXPECT_EQ(v.improved, v.val_loss < best);
    best = std::min(best, v.val_loss);
    EXPECT_DOUBLE_EQ(v.best_val, best);
    EXPECT_DOUBLE_EQ(v.train_loss, first->steps[static_cast<size_t>(v.step - 1)].smoothed_loss);
    EXPECT_DOUBLE_EQ(v.lr, o.lr);
    EXPECT_DOUBLE_EQ(v.grad_norm, first->steps[static_cast<size_t>(v.step - 1)].grad_norm);
  }
  // The flow holds the best model: its mean NLL of the validation data is the best score.
  EXPECT_NEAR(train::mean_nll(*flow, val), best, 1e-5);
  EXPECT_EQ(first->result.steps_done, 10);
  EXPECT_DOUBLE_EQ(first->result.best_val_nll, result.best_val_nll);
  EXPECT_DOUBLE_EQ(result.best_val_nll, best);
  EXPECT_FALSE(first->result.interrupted);

  // Without validation data a subset of the training data is scored.
  auto unheld = std::make_shared<Recorder>("c", &log);
  auto other = small_flow();
  train::Trainer plain(*other, o);
  plain.add_callback(unheld);
  plain.fit(moons(400, 1));
  ASSERT_EQ(unheld->validations.size(), 3u);
  for (const auto& v : unheld->validations) EXPECT_FALSE(v.held_out);
}

TEST(TrainerApi, ACallbacksStopRequestInterruptsTraining) {
  std::vector<std::string> log;
  auto stopper = std::make_shared<Recorder>("s", &log);
  stopper->stop_after = 7;
  auto flow = small_flow();
  train::TrainOptions o = quick(40);
  o.eval_every = 5;
  train::Trainer trainer(*flow, o);
  trainer.add_callback(stopper);
  const train::TrainResult result = trainer.fit(moons(400, 1), moons(100, 2));
  EXPECT_TRUE(result.interrupted);
  EXPECT_FALSE(result.stopped_early);
  EXPECT_EQ(result.steps_done, 7);
  EXPECT_EQ(result.best_step, 5);
  EXPECT_EQ(stopper->steps.size(), 7u);
  ASSERT_GE(log.size(), 3u);
  EXPECT_EQ(log[log.size() - 3], "s:step:7");
  EXPECT_EQ(log[log.size() - 2], "s:stop");
  EXPECT_EQ(log.back(), "s:end");
  EXPECT_TRUE(stopper->result.interrupted);
}

class TrainerStateTest : public zflow::testing::TempDirTest {
 protected:
  TrainerStateTest() : TempDirTest("zflow_test_trainer_api") {}
};

// Mirrors TrainGuards.StopRequestSavesStateAndResumesExactly (test_trainer.cpp) through the
// API: CheckpointCallback writes the state, resume_from continues it, and the result is
// the uninterrupted run's, bit for bit.
TEST_F(TrainerStateTest, CheckpointCallbackAndResumeFromContinueExactly) {
  const Tensor train_data = moons(500, 1);
  const Tensor val = moons(100, 2);
  const std::string state = path("run.state");
  train::TrainOptions o = quick(60);
  o.eval_every = 20;

  std::vector<std::string> log;
  auto stopper = std::make_shared<Recorder>("s", &log);
  stopper->stop_after = 30;
  FlowPtr flow = small_flow();
  train::Trainer first(*flow, o);
  first.add_callback(std::make_shared<train::CheckpointCallback>(state));
  first.add_callback(stopper);
  const train::TrainResult stopped = first.fit(train_data, val);
  EXPECT_TRUE(stopped.interrupted);
  EXPECT_EQ(stopped.steps_done, 30);
  EXPECT_EQ(stopped.best_step, 20);
  ASSERT_TRUE(std::filesystem::exists(state));

  // Another model's weights to start from: resuming replaces them.
  FlowPtr resumed = small_flow(99);
  train::Trainer second(*resumed, o);
  second.resume_from(state);
  const train::TrainResult finished = second.fit(train_data, val);
  EXPECT_FALSE(finished.interrupted);
  EXPECT_FALSE(finished.already_finished);
  EXPECT_EQ(finished.steps_done, 60);

  FlowPtr reference = small_flow();
  const train::TrainResult whole = train::train_flow(*reference, train_data, val, o);
  EXPECT_EQ(whole.best_val_nll, finished.best_val_nll);
  EXPECT_EQ(whole.best_step, finished.best_step);
  EXPECT_TRUE(at::equal(resumed->log_prob(val), reference->log_prob(val)));
  expect_same_state(*resumed, *reference);

  EXPECT_THROW(second.resume_from(""), ConfigError);
}

TEST_F(TrainerStateTest, SaveStateOnlyDuringFit) {
  FlowPtr flow = small_flow();
  train::Trainer trainer(*flow, quick(5));
  EXPECT_THROW(trainer.save_state(path("before.state")), std::exception);
  EXPECT_FALSE(std::filesystem::exists(path("before.state")));
  trainer.fit(moons(200, 1));
  EXPECT_THROW(trainer.save_state(path("after.state")), std::exception);
  EXPECT_FALSE(std::filesystem::exists(path("after.state")));
}

TEST(TrainerApi, TrainFlowIsTheTrainersFit) {
  const Tensor train_data = moons(400, 1);
  const Tensor val = moons(100, 2);
  train::TrainOptions o = quick(25);
  FlowPtr a = small_flow();
  FlowPtr b = small_flow();
  const train::TrainResult ra = train::train_flow(*a, train_data, val, o);
  train::Trainer trainer(*b, o);
  const train::TrainResult rb = trainer.fit(train_data, val);
  expect_same_state(*a, *b);
  EXPECT_EQ(ra.best_val_nll, rb.best_val_nll);
  EXPECT_EQ(ra.best_step, rb.best_step);
  EXPECT_EQ(ra.final_train_nll, rb.final_train_nll);
  // The options' metrics sink is a callback of the Trainer too.
  int records = 0;
  o.on_metrics = [&records](const Json& j) { records += j.contains("val_nll") ? 1 : 0; };
  FlowPtr c = small_flow();
  train::Trainer with_metrics(*c, o);
  with_metrics.fit(train_data, val);
  EXPECT_EQ(records, 3);  // steps 10, 20, 25
  expect_same_state(*a, *c);
}

// Training rows given as indices into a larger table (float64 data for a float32 flow)
// train exactly as a float32 copy of those rows does; the timings add up.
TEST(TrainerApi, TrainRowsOfAWholeTableTrainLikeACopyOfThem) {
  const Tensor table = data::sample_toy("moons", 600, 1);  // float64
  const Tensor rows = at::randperm(600, at::kLong).narrow(0, 100, 500);
  const Tensor val = moons(100, 2);
  const train::TrainOptions o = quick(25);
  FlowPtr a = small_flow();
  FlowPtr b = small_flow();
  const train::TrainResult ra =
      train::train_flow(*a, table.index_select(0, rows).to(at::kFloat), val, o);
  train::Trainer trainer(*b, o);
  trainer.set_train_rows(rows);
  const train::TrainResult rb = trainer.fit(table, val);
  expect_same_state(*a, *b);
  EXPECT_EQ(ra.best_val_nll, rb.best_val_nll);
  EXPECT_EQ(rb.timed_steps, 25);
  EXPECT_GT(rb.step_seconds, 0.0);
  EXPECT_GE(rb.sync_seconds, 0.0);
  EXPECT_LE(rb.sync_seconds, rb.step_seconds);
  // Rows outside the table are an error, not a crash.
  FlowPtr c = small_flow();
  train::Trainer bad(*c, o);
  bad.set_train_rows(at::tensor({0, 600}, at::kLong));
  EXPECT_THROW(bad.fit(table, val), c10::Error);
}

TEST(TrainerApi, MakeObjectiveKnowsLikelihood) {
  const auto objective = train::make_objective("likelihood");
  ASSERT_TRUE(objective);
  EXPECT_EQ(objective->name(), "likelihood");
  EXPECT_TRUE(objective->uses_data());
  FlowPtr flow = small_flow();
  const Tensor x = moons(50, 4);
  train::Batch batch;
  batch.data = x;
  batch.size = 50;
  const Tensor loss = objective->loss(*flow, batch);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_TRUE(loss.requires_grad());
  EXPECT_NEAR(loss.item<double>(), -flow->log_prob(x).mean().item<double>(), 1e-6);
  EXPECT_NEAR(objective->validation_loss(*flow, x, Tensor()), train::mean_nll(*flow, x), 1e-9);
  expect_error<ConfigError>([] { train::make_objective("reverse-kl"); },
                            {"reverse-kl", "likelihood"});
}

}  // namespace
