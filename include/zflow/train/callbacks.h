#pragma once
/// \file
/// Callbacks: what happens around the training loop without being the loop. The trainer
/// calls every callback at the start, after every step, after every validation and at the
/// end, and asks them before every step whether to stop. Progress lines, metrics records,
/// the resumable training state and stopping on a signal are callbacks; a user's own (a
/// custom log, a picture every 1000 steps, a stop on a wall-clock budget) plugs in the
/// same way with Trainer::add_callback.
///
/// Example:
///
///     struct PrintBest : zflow::train::Callback {
///       void on_validation(zflow::train::Trainer&, const zflow::train::ValidationRecord& v)
///       override {
///         if (v.improved) std::cout << "step " << v.step << ": " << v.val_loss << "\n";
///       }
///     };
///     trainer.add_callback(std::make_shared<PrintBest>());

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "zflow/core/spec.h"
#include "zflow/train/progress.h"

namespace zflow::train {

class Trainer;
struct TrainResult;

/// After every optimizer step (taken or skipped by the non-finite guard).
struct StepRecord {
  /// Steps done, counting this one (1-based).
  int64_t step = 0;
  /// The minibatch loss, the learning rate and the gradient norm before clipping.
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  /// The guard skipped the update; `fault` says why ("non-finite loss").
  bool skipped = false;
  std::string fault;
  /// Exponential moving average of the loss (weight 0.05) and the last validation score.
  double smoothed_loss = 0;
  double last_val = 0;
};

/// After every validation.
struct ValidationRecord {
  int64_t step = 0;
  /// The smoothed training loss, the validation score and the best one so far.
  double train_loss = 0;
  double val_loss = 0;
  double best_val = 0;
  /// This validation gave the best model so far.
  bool improved = false;
  /// Scored on held-out data (false: on a fixed subset of the training data).
  bool held_out = true;
  double lr = 0;
  double grad_norm = 0;
  /// Seconds since training started.
  double seconds = 0;
};

/// Base class: every hook does nothing.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(Trainer& trainer) {}
  virtual void on_step_end(Trainer& trainer, const StepRecord& step) {}
  virtual void on_validation(Trainer& trainer, const ValidationRecord& validation) {}
  /// Training stopped early (patience) or was interrupted: the last chance to save.
  virtual void on_stop(Trainer& trainer) {}
  virtual void on_train_end(Trainer& trainer, const TrainResult& result) {}
  /// Asked before every step; true stops training there (the result says `interrupted`).
  virtual bool stop_requested(Trainer& trainer) { return false; }
};

/// The progress line on a stream (Progress): loss and validation in nats, or in bits per
/// dimension when `bits_per_dim_dims` > 0.
class ProgressCallback : public Callback {
 public:
  ProgressCallback(ProgressOptions options, int64_t bits_per_dim_dims = 0);
  void on_train_begin(Trainer& trainer) override;
  void on_step_end(Trainer& trainer, const StepRecord& step) override;
  void on_validation(Trainer& trainer, const ValidationRecord& validation) override;
  void on_train_end(Trainer& trainer, const TrainResult& result) override;

 private:
  std::string status() const;
  ProgressOptions options_;
  int64_t bits_per_dim_dims_;
  std::optional<Progress> progress_;
  double smoothed_ = 0, last_val_ = 0;
  std::string score_name_ = "nll";
  std::string objective_status_;
};

/// Metrics as JSON records handed to `sink`: {"step", "train_nll", "val_nll" (or
/// "train_subset_nll"), "best_val_nll", "lr", "grad_norm", "seconds"} at every validation
/// (with "train_bpd"/"val_bpd" when `bits_per_dim_dims` > 0), {"step", "loss", "lr",
/// "grad_norm"} every `log_every` steps (0: never), and {"event": "skipped_step", "step",
/// "reason"} for every step the guard skipped.
class MetricsCallback : public Callback {
 public:
  MetricsCallback(std::function<void(const Json&)> sink, int64_t log_every = 0,
                  int64_t bits_per_dim_dims = 0);
  void on_step_end(Trainer& trainer, const StepRecord& step) override;
  void on_validation(Trainer& trainer, const ValidationRecord& validation) override;

 private:
  std::function<void(const Json&)> sink_;
  int64_t log_every_;
  int64_t bits_per_dim_dims_;
};

/// The resumable training state written to `path` at every validation and when training
/// stops early or is interrupted (Trainer::save_state); `--resume` reads it back.
class CheckpointCallback : public Callback {
 public:
  explicit CheckpointCallback(std::string path);
  void on_validation(Trainer& trainer, const ValidationRecord& validation) override;
  void on_stop(Trainer& trainer) override;

 private:
  std::string path_;
};

/// Stops training when `predicate` returns true (the CLI's SIGINT/SIGTERM flag).
class StopCallback : public Callback {
 public:
  explicit StopCallback(std::function<bool()> predicate);
  bool stop_requested(Trainer& trainer) override;

 private:
  std::function<bool()> predicate_;
};

}  // namespace zflow::train
