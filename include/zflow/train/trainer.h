#pragma once
/// \file
/// Training: minimise an objective (by default the mean negative log-likelihood of
/// minibatches; train/objective.h) with Adam or AdamW (Kingma & Ba 2015,
/// https://arxiv.org/abs/1412.6980), a linear warm-up then a cosine learning-rate decay
/// (Loshchilov & Hutter 2017, https://arxiv.org/abs/1608.03983), a cosine learning-rate decay,
/// gradient-norm clipping, a validation split with early stopping that keeps the best model, and a
/// guard that skips steps with a non-finite loss or gradient (and gives up after too many in a
/// row).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "zflow/core/error.h"
#include "zflow/flows/flow.h"
#include "zflow/train/callbacks.h"
#include "zflow/train/gradient_sync.h"
#include "zflow/train/objective.h"
#include "zflow/train/progress.h"

namespace zflow::train {

/// Options of the training loop (Trainer, train_flow): the single home of their defaults.
/// Steps, batch size and learning rate were chosen with the builders' defaults by
/// measurement (docs/benchmarks.md, "Defaults of zflow train").
struct TrainOptions {
  /// Optimizer steps in all (a resumed run continues up to this number).
  int64_t steps = 5000;
  /// Minibatch size (with several processes: the global batch, split over them).
  int64_t batch_size = 512;
  /// Peak learning rate.
  double lr = 2e-3;
  /// "adam" or "adamw".
  std::string optimizer = "adam";
  /// Weight decay (decoupled for AdamW, L2 for Adam).
  double weight_decay = 0.0;
  /// Cosine decay of the learning rate from lr to lr·min_lr_ratio over `steps`.
  bool cosine = true;
  double min_lr_ratio = 0.0;
  /// Learning-rate warm-up steps (linear from 0).
  int64_t warmup = 0;
  /// Clip the global gradient norm at this value (≤ 0: no clipping).
  double clip_grad_norm = 5.0;
  /// Evaluate the validation NLL every this many steps (and at the end).
  int64_t eval_every = 100;
  /// Stop after this many evaluations without improvement (0: never stop early).
  int64_t patience = 0;
  /// Give up after this many consecutive steps with a non-finite loss or gradient.
  int64_t max_nonfinite = 20;
  /// Seed of the minibatch order (train/batch_order.h); torch's generator is also seeded
  /// with it, for what the objective and the layers draw.
  uint64_t seed = 0;
  /// Write a metrics record every this many steps (0: only at evaluations).
  int64_t log_every = 0;
  /// Called with one JSON object per metrics record (train_flow does not print).
  std::function<void(const Json&)> on_metrics;
  /// Progress reporting (stream = nullptr: silent).
  ProgressOptions progress;
  /// Dimensions of one example for bits/dim (images: C·H·W). When > 0 the progress line
  /// shows bits/dim instead of nats and metrics records add train_bpd and val_bpd.
  int64_t bits_per_dim_dims = 0;
  /// If non-empty, the resumable training state is written here at every evaluation and at
  /// the end, and read from here when `resume` is set.
  std::string state_path;
  /// Continue from `state_path`.
  bool resume = false;
  /// Polled before every step (may be empty): when it returns true, training stops there,
  /// saves the state (when `state_path` is set) and leaves the flow with the best
  /// parameters so far; the result says `interrupted`. The CLI sets it from SIGINT/SIGTERM.
  std::function<bool()> stop_requested;
};

/// What happened.
struct TrainResult {
  int64_t steps_done = 0;
  int64_t best_step = 0;
  double best_val_nll = 0;
  double final_train_nll = 0;
  int64_t skipped_steps = 0;
  bool stopped_early = false;
  /// Stopped by `stop_requested` (or a callback) before `steps`.
  bool interrupted = false;
  /// A resumed run whose state had already reached `steps`: nothing was trained and the
  /// flow holds the state's best parameters.
  bool already_finished = false;
  double seconds = 0;
  /// Wall-clock seconds in the optimizer steps of this fit (validation excluded), the part
  /// of them spent in GradientSync::synchronize_gradients (with several processes: the
  /// all-reduce, including waiting for the slowest process), and how many steps that was.
  double step_seconds = 0;
  double sync_seconds = 0;
  int64_t timed_steps = 0;
};

/// Training stopped by a failure during the loop (a collective that lost a process, a
/// divergence beyond the guard's patience): the message says why, `result` what was done,
/// and the flow holds the best parameters so far (those of `result.best_step`; none when
/// it is 0), so that a caller can still save them.
class TrainingAborted : public Error {
 public:
  TrainingAborted(const std::string& message, TrainResult result)
      : Error(message), result_(result) {}
  const TrainResult& result() const { return result_; }

 private:
  TrainResult result_;
};

/// The training loop, with its seams: the Objective (what is minimised), the GradientSync
/// (what happens between the backward pass and the update when several processes train
/// one model) and the callbacks (progress, metrics, the training state, stopping). Every
/// step: take the step's minibatch (epochs of a seeded permutation, train/batch_order.h;
/// with several processes, this process's slice of it), loss = objective.loss, backward,
/// synchronise the gradients, clip their norm, guard against a non-finite loss or
/// gradient, one Adam step at the scheduled learning rate; every `eval_every` steps: score
/// the validation data (sharded over the processes), keep the best parameters, maybe stop
/// early. At the end the flow holds the best parameters and is in eval mode. Before the
/// first step, layers with a data-dependent initialisation (ActNorm) are initialised on
/// the first global batch. The training data may have another dtype or device than the
/// flow (a memory-mapped .npy file): each minibatch is gathered and converted.
///
/// Example:
///
///     zflow::train::TrainOptions options;
///     options.steps = 2000;
///     zflow::train::Trainer trainer(*flow, options);
///     trainer.set_objective(std::make_shared<zflow::train::MaximumLikelihood>());
///     trainer.add_callback(std::make_shared<zflow::train::ProgressCallback>(
///         zflow::train::ProgressOptions{&std::cerr, false, 100, "step"}));
///     zflow::train::TrainResult result = trainer.fit(train_data, val_data);
class Trainer {
 public:
  /// The options' `progress`, `on_metrics`, `state_path` and `stop_requested` install the
  /// matching built-in callbacks (ProgressCallback, MetricsCallback, CheckpointCallback,
  /// StopCallback); ConfigError for invalid options.
  Trainer(FlowImpl& flow, TrainOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Replaces the objective (default: MaximumLikelihood).
  Trainer& set_objective(std::shared_ptr<Objective> objective);
  /// Replaces the gradient synchronisation (default: LocalGradientSync, one process).
  Trainer& set_gradient_sync(std::shared_ptr<GradientSync> sync);
  /// Trains on these rows (int64 [n], indices into the training data and its context)
  /// only: the data can then be a whole table, memory-mapped, of which a validation split
  /// took other rows, and nothing is copied but each minibatch (undefined: every row).
  Trainer& set_train_rows(Tensor rows);
  /// Adds a callback, called after those added before it.
  Trainer& add_callback(std::shared_ptr<Callback> callback);
  /// The next fit continues from the training state in `path` (as `resume` with
  /// `state_path` does), whoever writes the state.
  Trainer& resume_from(std::string path);

  /// Trains on data [N, ...] (validation data may be undefined: a fixed subset of the
  /// training data then selects the best model); contexts [N, K] or undefined. Resumes
  /// from `state_path` when `resume` is set. Throws zflow::Error when training diverges
  /// beyond the guard's patience (the flow keeps the best parameters) and when no
  /// validation gave a finite score; TrainingAborted (the flow holding the best parameters
  /// so far) when a step fails, e.g. a gradient sync that lost a process.
  TrainResult fit(const Tensor& train_data, const Tensor& val_data = {},
                  const Tensor& train_context = {}, const Tensor& val_context = {});

  /// Writes the resumable state (weights, best weights, optimizer, generator, counters)
  /// to `path` as a safetensors file; callable from callbacks during fit.
  void save_state(const std::string& path);

  /// Whether the loop validates once `steps_done` steps are done (every `eval_every`
  /// steps and after the last).
  bool validates_after(int64_t steps_done) const {
    return steps_done % options_.eval_every == 0 || steps_done == options_.steps;
  }

  FlowImpl& flow() { return flow_; }
  const TrainOptions& options() const { return options_; }
  Objective& objective() { return *objective_; }
  GradientSync& gradient_sync() { return *sync_; }

 private:
  struct Loop;
  FlowImpl& flow_;
  TrainOptions options_;
  std::shared_ptr<Objective> objective_;
  std::shared_ptr<GradientSync> sync_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::string resume_path_;
  Tensor train_rows_;
  std::unique_ptr<Loop> loop_;
};

/// Trainer(flow, options).fit(...): maximum likelihood with the options' callbacks.
TrainResult train_flow(FlowImpl& flow, const Tensor& train_data, const Tensor& val_data,
                       const TrainOptions& options, const Tensor& train_context = {},
                       const Tensor& val_context = {});

/// Mean NLL (nats per example) of `data` under `flow`, in batches, without autograd.
double mean_nll(FlowImpl& flow, const Tensor& data, const Tensor& context = {},
                int64_t batch_size = 4096);

/// Bits per dimension from a mean NLL in nats per example over `dims` dimensions:
/// NLL / (dims · ln 2). For a flow whose first layer is `dequantize`, the NLL is that of
/// the discrete data, so this is the discrete bits/dim of the literature
/// (docs/conventions.md).
double bits_per_dim(double mean_nll, int64_t dims);

/// log p(x) per example [N] in batches, without autograd.
Tensor log_prob_batched(FlowImpl& flow, const Tensor& data, const Tensor& context = {},
                        int64_t batch_size = 4096);

}  // namespace zflow::train
