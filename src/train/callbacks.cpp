#include "zflow/train/callbacks.h"

#include <cmath>
#include <sstream>
#include <utility>

#include "zflow/train/trainer.h"

namespace zflow::train {

ProgressCallback::ProgressCallback(ProgressOptions options, int64_t bits_per_dim_dims)
    : options_(std::move(options)), bits_per_dim_dims_(bits_per_dim_dims) {}

void ProgressCallback::on_train_begin(Trainer& trainer) {
  progress_.emplace("train", trainer.options().steps, options_);
  score_name_ = trainer.objective().score_name();
  smoothed_ = last_val_ = std::nan("");
}

void ProgressCallback::on_step_end(Trainer& trainer, const StepRecord& step) {
  if (step.skipped || !progress_) return;
  smoothed_ = step.smoothed_loss;
  last_val_ = step.last_val;
  objective_status_ = trainer.objective().progress_status();
  // A validation step is drawn after its validation, with the new score.
  if (trainer.validates_after(step.step)) return;
  progress_->update(step.step, status());
}

void ProgressCallback::on_validation(Trainer& trainer, const ValidationRecord& validation) {
  if (!progress_) return;
  smoothed_ = validation.train_loss;
  last_val_ = validation.val_loss;
  objective_status_ = trainer.objective().progress_status();
  progress_->update(validation.step, status());
}

void ProgressCallback::on_train_end(Trainer& trainer, const TrainResult& result) {
  if (progress_) progress_->finish(status());
}

std::string ProgressCallback::status() const {
  std::ostringstream s;
  s.precision(4);
  if (bits_per_dim_dims_ > 0) {
    s << "bits/dim " << bits_per_dim(smoothed_, bits_per_dim_dims_);
    if (std::isfinite(last_val_)) s << "  val " << bits_per_dim(last_val_, bits_per_dim_dims_);
    return s.str();
  }
  s << score_name_ << ' ' << smoothed_;
  if (std::isfinite(last_val_)) s << "  val " << last_val_;
  if (!objective_status_.empty()) s << "  " << objective_status_;
  return s.str();
}

MetricsCallback::MetricsCallback(std::function<void(const Json&)> sink, int64_t log_every,
                                 int64_t bits_per_dim_dims)
    : sink_(std::move(sink)), log_every_(log_every), bits_per_dim_dims_(bits_per_dim_dims) {}

void MetricsCallback::on_step_end(Trainer& trainer, const StepRecord& step) {
  if (step.skipped) {
    sink_({{"event", "skipped_step"}, {"step", step.step}, {"reason", step.fault}});
  } else if (log_every_ > 0 && step.step % log_every_ == 0) {
    Json record = {
        {"step", step.step}, {"loss", step.loss}, {"lr", step.lr}, {"grad_norm", step.grad_norm}};
    record.update(trainer.objective().progress_metrics());
    sink_(record);
  }
}

void MetricsCallback::on_validation(Trainer& trainer, const ValidationRecord& v) {
  const std::string score = trainer.objective().score_name();
  Json record = {{"step", v.step},
                 {"train_" + score, v.train_loss},
                 {(v.held_out ? "val_" : "train_subset_") + score, v.val_loss},
                 {"best_val_" + score, v.best_val},
                 {"lr", v.lr},
                 {"grad_norm", v.grad_norm},
                 {"seconds", v.seconds}};
  if (bits_per_dim_dims_ > 0) {
    record["train_bpd"] = bits_per_dim(v.train_loss, bits_per_dim_dims_);
    record[v.held_out ? "val_bpd" : "train_subset_bpd"] =
        bits_per_dim(v.val_loss, bits_per_dim_dims_);
  }
  record.update(trainer.objective().progress_metrics());
  sink_(record);
}

CheckpointCallback::CheckpointCallback(std::string path) : path_(std::move(path)) {}

void CheckpointCallback::on_validation(Trainer& trainer, const ValidationRecord& validation) {
  trainer.save_state(path_);
}

void CheckpointCallback::on_stop(Trainer& trainer) { trainer.save_state(path_); }

StopCallback::StopCallback(std::function<bool()> predicate) : predicate_(std::move(predicate)) {}

bool StopCallback::stop_requested(Trainer& trainer) { return predicate_ && predicate_(); }

}  // namespace zflow::train
