#include "zflow/train/trainer.h"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <mutex>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "train_state.h"
#include "zflow/core/batch_shard.h"
#include "zflow/core/error.h"
#include "zflow/core/generator.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/train/batch_order.h"
#include "zflow/train/flat_adam.h"

namespace zflow::train {

namespace {

std::unique_ptr<FlatAdam> make_optimizer(FlowImpl& flow, const TrainOptions& o) {
  if (o.optimizer != "adam" && o.optimizer != "adamw") {
    throw ConfigError("unknown optimizer '" + o.optimizer + "' (choose adam or adamw)");
  }
  FlatAdamOptions options;
  options.lr = o.lr;
  options.weight_decay = o.weight_decay;
  options.decoupled = o.optimizer == "adamw";
  return std::make_unique<FlatAdam>(flow.parameters(), options);
}

// Linear warm-up, then cosine decay from lr to lr·min_lr_ratio (Loshchilov & Hutter 2017).
double learning_rate(const TrainOptions& o, int64_t step) {
  if (o.warmup > 0 && step < o.warmup)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  if (!o.cosine) return o.lr;
  const double span = static_cast<double>(std::max<int64_t>(o.steps - o.warmup, 1));
  const double t = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  const double floor = o.lr * o.min_lr_ratio;
  return floor + (o.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * t));
}

void check_options(const TrainOptions& o) {
  require_positive("steps", o.steps);
  require_positive("batch size", o.batch_size);
  require_positive("eval every", o.eval_every);
  if (!(o.lr > 0) || !std::isfinite(o.lr)) throw ConfigError("learning rate must be positive");
  if (o.weight_decay < 0) throw ConfigError("weight decay must be >= 0");
  if (o.patience < 0) throw ConfigError("patience must be >= 0");
  if (o.max_nonfinite < 1) throw ConfigError("max non-finite steps must be >= 1");
  if (o.min_lr_ratio < 0 || o.min_lr_ratio > 1) throw ConfigError("min lr ratio must be in [0, 1]");
}

/// A number for a message: %.4g ("nan", "inf", "1e+300"), never 300 digits.
std::string format_number(double value) {
  std::ostringstream s;
  s << std::setprecision(4) << value;
  return s.str();
}

/// Rows `rows` of `source` (undefined stays undefined), as `like`'s dtype and device: the
/// training data may stay where they are (a memory-mapped file) and in their own dtype,
/// and only each minibatch is gathered and converted.
Tensor take_rows(const Tensor& source, const Tensor& rows, const at::TensorOptions& like) {
  if (!source.defined()) return {};
  return source.index_select(0, rows.to(source.device())).to(like.device(), like.dtype());
}

/// Whether a layer still waits for its data-dependent initialisation (ActNorm's
/// "initialized" buffer is 0 until its first training batch).
bool has_pending_initialization(FlowImpl& flow) {
  for (const auto& item : flow.named_buffers()) {
    const std::string& name = item.key();
    const std::string suffix = "initialized";
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        item.value().numel() == 1 && item.value().item<double>() == 0.0) {
      return true;
    }
  }
  return false;
}

}  // namespace

Tensor log_prob_batched(FlowImpl& flow, const Tensor& data, const Tensor& context,
                        int64_t batch_size) {
  torch::NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < data.size(0); start += batch_size) {
    const int64_t len = std::min(batch_size, data.size(0) - start);
    Tensor ctx = context.defined() ? context.narrow(0, start, len) : Tensor();
    parts.push_back(flow.log_prob(data.narrow(0, start, len), ctx));
  }
  if (parts.empty()) return at::empty({0}, data.options());
  return at::cat(parts);
}

double mean_nll(FlowImpl& flow, const Tensor& data, const Tensor& context, int64_t batch_size) {
  return -log_prob_batched(flow, data, context, batch_size).to(at::kDouble).mean().item<double>();
}

// The state of one fit: the optimizer, the counters, and what the callbacks are told.
struct Trainer::Loop {
  std::unique_ptr<FlatAdam> optimizer;
  LoopState s;
  /// Steps done at the moment (what save_state records).
  int64_t done = 0;
};

Trainer::Trainer(FlowImpl& flow, TrainOptions options)
    : flow_(flow),
      options_(std::move(options)),
      objective_(std::make_shared<MaximumLikelihood>()),
      sync_(std::make_shared<LocalGradientSync>()) {
  check_options(options_);
  if (options_.progress.stream) {
    callbacks_.push_back(
        std::make_shared<ProgressCallback>(options_.progress, options_.bits_per_dim_dims));
  }
  if (options_.on_metrics) {
    callbacks_.push_back(std::make_shared<MetricsCallback>(options_.on_metrics, options_.log_every,
                                                           options_.bits_per_dim_dims));
  }
  if (!options_.state_path.empty()) {
    callbacks_.push_back(std::make_shared<CheckpointCallback>(options_.state_path));
  }
  if (options_.stop_requested) {
    callbacks_.push_back(std::make_shared<StopCallback>(options_.stop_requested));
  }
}

Trainer::~Trainer() = default;

Trainer& Trainer::set_objective(std::shared_ptr<Objective> objective) {
  TORCH_CHECK(objective, "Trainer: the objective must not be null");
  objective_ = std::move(objective);
  return *this;
}

Trainer& Trainer::set_gradient_sync(std::shared_ptr<GradientSync> sync) {
  TORCH_CHECK(sync, "Trainer: the gradient sync must not be null");
  sync_ = std::move(sync);
  return *this;
}

Trainer& Trainer::set_train_rows(Tensor rows) {
  TORCH_CHECK(!rows.defined() || (rows.dim() == 1 && rows.scalar_type() == at::kLong),
              "Trainer::set_train_rows: rows must be int64 [n]");
  train_rows_ = rows.defined() ? rows.cpu() : rows;
  return *this;
}

Trainer& Trainer::add_callback(std::shared_ptr<Callback> callback) {
  TORCH_CHECK(callback, "Trainer: a callback must not be null");
  callbacks_.push_back(std::move(callback));
  return *this;
}

Trainer& Trainer::resume_from(std::string path) {
  if (path.empty()) throw ConfigError("resume needs a training-state path");
  resume_path_ = std::move(path);
  return *this;
}

void Trainer::save_state(const std::string& path) {
  TORCH_CHECK(loop_, "Trainer::save_state: only during fit");
  LoopState snapshot = loop_->s;
  snapshot.step = loop_->done;
  train::save_state(path, flow_, *loop_->optimizer, snapshot);
}

TrainResult Trainer::fit(const Tensor& train_data, const Tensor& val_data,
                         const Tensor& train_context, const Tensor& val_context) {
  const TrainOptions& o = options_;
  const bool uses_data = objective_->uses_data();
  if (uses_data) {
    TORCH_CHECK(train_data.defined() && train_data.dim() >= 2 && train_data.size(0) > 0,
                "train: training data must be [N, ...] with N > 0");
  }
  if (train_context.defined() && train_data.defined()) {
    TORCH_CHECK(train_context.size(0) == train_data.size(0), "train: context rows (",
                train_context.size(0), ") differ from data rows (", train_data.size(0), ")");
  }
  const auto start_time = std::chrono::steady_clock::now();
  auto seconds = [&start_time] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  };
  loop_ = std::make_unique<Loop>();
  struct Reset {  // save_state is for the duration of fit only
    std::unique_ptr<Loop>& loop;
    ~Reset() { loop.reset(); }
  } reset{loop_};
  loop_->optimizer = make_optimizer(flow_, o);
  FlatAdam& optimizer = *loop_->optimizer;
  LoopState& s = loop_->s;

  // Without a validation set, a fixed subset of the training data selects the best model.
  const bool has_val = val_data.defined() && val_data.size(0) > 0;
  const at::TensorOptions param_options =
      flow_.parameters().empty()
          ? (train_data.defined() ? train_data.options() : at::TensorOptions(at::kFloat))
          : flow_.parameters()[0].options();
  const int64_t subset =
      train_data.defined()
          ? std::min<int64_t>(train_rows_.defined() ? train_rows_.numel() : train_data.size(0),
                              10000)
          : 0;
  const Tensor subset_rows =
      train_rows_.defined() ? train_rows_.narrow(0, 0, subset) : at::arange(subset, at::kLong);
  const Tensor select_data =
      has_val
          ? val_data
          : (train_data.defined() ? take_rows(train_data, subset_rows, param_options) : Tensor());
  const Tensor select_context =
      has_val ? val_context
              : (train_context.defined() ? take_rows(train_context, subset_rows, param_options)
                                         : Tensor());
  const int rank = sync_->rank();
  const int world = sync_->world_size();
  // Validation is sharded: each process scores a contiguous share, weighted so that the
  // mean over processes is the mean over all rows. Its random draws (dequantization noise)
  // come from a generator seeded by the step and the rank and leave the training stream
  // untouched, so that validating does not change the training.
  auto validate = [&](int64_t step) {
    return with_generator_seed(
        o.seed ^ (0x5851F42D4C957F2DULL * static_cast<uint64_t>(step + 1)) ^
            static_cast<uint64_t>(rank) << 48,
        [&] {
          if (!select_data.defined()) {
            return sync_->mean(objective_->validation_loss(flow_, Tensor(), Tensor()));
          }
          const int64_t rows = select_data.size(0);
          const auto [offset, count] = shard(rows, rank, world);
          double part = 0.0;
          if (count > 0) {
            const Tensor ctx =
                select_context.defined() ? select_context.narrow(0, offset, count) : Tensor();
            part = objective_->validation_loss(flow_, select_data.narrow(0, offset, count), ctx) *
                   static_cast<double>(count) * world / static_cast<double>(rows);
          }
          return sync_->mean(part);
        });
  };

  if (o.resume && resume_path_.empty()) {
    if (o.state_path.empty()) throw ConfigError("resume needs a training-state path");
    resume_path_ = o.state_path;
  }
  if (!resume_path_.empty()) {
    s = load_state(resume_path_, flow_, optimizer);
    if (s.step >= o.steps) {
      // Nothing to train: the caller learns so and the state stays as it is.
      if (!s.best.empty()) load_named_state(flow_, s.best, "best model");
      flow_.eval();
      TrainResult done;
      done.already_finished = true;
      done.steps_done = s.step;
      done.best_step = s.best_step;
      done.best_val_nll = s.best_val;
      done.final_train_nll = std::numeric_limits<double>::quiet_NaN();
      done.skipped_steps = s.skipped;
      return done;
    }
  } else {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_current_seed(o.seed);
  }
  if (!resume_path_.empty() &&
      sync_->mean(static_cast<double>(s.step)) != static_cast<double>(s.step)) {
    throw ConfigError(
        "the processes resumed from training states at different steps: every "
        "process must read the same state file");
  }
  const int64_t n = !uses_data              ? o.batch_size
                    : train_rows_.defined() ? train_rows_.numel()
                                            : train_data.size(0);
  if (uses_data && train_rows_.defined() && n > 0) {
    const int64_t lo = train_rows_.min().item<int64_t>();
    const int64_t hi = train_rows_.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < train_data.size(0), "train: training rows ", lo, "..", hi,
                " outside the data's ", train_data.size(0), " rows");
  }
  // Positions in the batch order -> rows of the training data.
  auto data_rows = [this](const Tensor& positions) {
    return train_rows_.defined() ? train_rows_.index_select(0, positions) : positions;
  };
  if (o.batch_size < world) {
    throw ConfigError("the batch size (" + std::to_string(o.batch_size) +
                      ") must be at least the number of processes (" + std::to_string(world) +
                      "): each process takes a share of every batch");
  }
  BatchOrder order(std::max<int64_t>(n, 1), o.batch_size, o.seed);
  flow_.train();
  if (resume_path_.empty() && uses_data && has_pending_initialization(flow_)) {
    // Data-dependent initialisation (ActNorm) on the whole first global batch, in every
    // process alike: a process initialising on its own share would start from different
    // parameters than one process training alone.
    torch::NoGradGuard no_grad;
    const Tensor rows = data_rows(order.rows(0));
    BatchShardScope whole({rows.size(0), 0});
    flow_.log_prob(take_rows(train_data, rows, param_options),
                   take_rows(train_context, rows, param_options));
  }
  sync_->broadcast_parameters(flow_);
  sync_->attach(flow_, true);
  struct Detach {  // the sync's hooks live as long as this fit
    GradientSync& sync;
    FlowImpl& flow;
    ~Detach() { sync.attach(flow, false); }
  } detach{*sync_, flow_};
  loop_->done = s.step;

  for (auto& c : callbacks_) c->on_train_begin(*this);
  double train_nll_avg = std::numeric_limits<double>::quiet_NaN();
  double last_val = std::numeric_limits<double>::quiet_NaN();
  int64_t consecutive_bad = 0;
  bool stopped_early = false;
  bool interrupted = false;

  TrainResult timing;  // the step and sync times, as they add up
  try {
    for (; s.step < o.steps; ++s.step) {
      loop_->done = s.step;
      bool stop = false;
      for (auto& c : callbacks_) stop = c->stop_requested(*this) || stop;
      if (sync_->any(stop)) {
        interrupted = true;
        break;
      }
      const auto step_start = std::chrono::steady_clock::now();
      const double lr = learning_rate(o, s.step);
      optimizer.set_lr(lr);
      // This process's share of the global batch (all of it in one process).
      const int64_t global_rows = order.batch_size();
      const auto [offset, count] = shard(global_rows, rank, world);
      Batch batch;
      batch.size = count;
      batch.step = s.step;
      if (uses_data) {
        const Tensor rows = data_rows(order.rows(s.step).narrow(0, offset, count));
        batch.data = take_rows(train_data, rows, param_options);
        batch.context = take_rows(train_context, rows, param_options);
      }

      optimizer.zero_grad();
      Tensor loss;
      {
        BatchShardScope share({global_rows, offset});
        loss = objective_->loss(flow_, batch);
      }
      // The loss is a mean over this process's rows; weighted by its share of the batch,
      // the mean over processes (what the gradient sync takes) is the global batch's mean.
      const double weight = static_cast<double>(count) * world / static_cast<double>(global_rows);
      if (weight != 1.0) loss = loss * weight;
      double loss_value = loss.item<double>();
      StepRecord record;
      record.step = s.step + 1;
      record.lr = lr;
      record.grad_norm = std::numeric_limits<double>::quiet_NaN();
      if (sync_->any(!std::isfinite(loss_value))) {
        record.fault = "non-finite loss";
      } else {
        loss.backward();
        const Tensor flat = optimizer.flat_gradients();
        Tensor gradients = flat;
        const auto sync_start = std::chrono::steady_clock::now();
        sync_->synchronize_gradients(gradients);
        timing.sync_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - sync_start).count();
        // A sync may hand back another tensor (flat = all_reduce(flat) / world) instead of
        // writing into the buffer: the update uses what it hands back.
        if (!gradients.is_same(flat)) {
          TORCH_CHECK(gradients.defined() && gradients.numel() == flat.numel(),
                      "train: the gradient sync handed back ",
                      gradients.defined() ? gradients.numel() : 0, " gradients for ", flat.numel(),
                      " parameters");
          torch::NoGradGuard no_grad;
          flat.copy_(gradients.reshape_as(flat));
        }
        loss_value = sync_->mean(loss_value);
        record.grad_norm = optimizer.clip_grad_norm(
            o.clip_grad_norm > 0 ? o.clip_grad_norm : std::numeric_limits<double>::infinity());
        if (!std::isfinite(record.grad_norm)) record.fault = "non-finite gradient";
      }
      record.loss = loss_value;
      if (!record.fault.empty()) {
        // The guard: skip the update so one bad batch cannot destroy the weights.
        optimizer.zero_grad();
        ++s.skipped;
        ++consecutive_bad;
        record.skipped = true;
        record.smoothed_loss = train_nll_avg;
        record.last_val = last_val;
        for (auto& c : callbacks_) c->on_step_end(*this, record);
        if (consecutive_bad >= o.max_nonfinite) {
          load_named_state(flow_, s.best.empty() ? clone_state(flow_) : s.best, "best model");
          flow_.eval();
          throw Error("training diverged: " + std::to_string(consecutive_bad) +
                      " steps in a row had a " + record.fault + " (at step " +
                      std::to_string(s.step + 1) +
                      "); try a lower learning rate or a smaller scale bound");
        }
      } else {
        optimizer.step();
        consecutive_bad = 0;
        train_nll_avg =
            std::isnan(train_nll_avg) ? loss_value : 0.95 * train_nll_avg + 0.05 * loss_value;
        record.smoothed_loss = train_nll_avg;
        record.last_val = last_val;
      }
      const int64_t done = s.step + 1;
      loop_->done = done;
      timing.step_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
      ++timing.timed_steps;
      if (!record.skipped) {
        for (auto& c : callbacks_) c->on_step_end(*this, record);
      }

      // A skipped step is still a step: the validation schedule holds (the last step
      // validates even when its batch was skipped).
      if (validates_after(done)) {
        flow_.eval();
        last_val = validate(done);
        flow_.train();
        ValidationRecord v;
        // A NaN or infinite validation never becomes the best model.
        v.improved = std::isfinite(last_val) && (last_val < s.best_val || s.best.empty());
        if (v.improved) {
          s.best_val = last_val;
          s.best_step = done;
          s.best = clone_state(flow_);
          s.evals_without_improvement = 0;
        } else {
          ++s.evals_without_improvement;
        }
        v.step = done;
        v.train_loss = train_nll_avg;
        v.val_loss = last_val;
        v.best_val = s.best_val;
        v.held_out = has_val || !uses_data;  // without data: fresh samples
        v.lr = lr;
        v.grad_norm = record.grad_norm;
        v.seconds = seconds();
        for (auto& c : callbacks_) c->on_validation(*this, v);
        if (o.patience > 0 && s.evals_without_improvement >= o.patience) {
          stopped_early = true;
          s.step = done;
          break;
        }
      }
    }
  } catch (const std::exception& e) {
    // The flow keeps the best parameters so far, for the caller to save.
    TrainResult partial;
    partial.steps_done = s.step;
    partial.best_step = s.best.empty() ? 0 : s.best_step;
    partial.best_val_nll = s.best_val;
    partial.final_train_nll = train_nll_avg;
    partial.skipped_steps = s.skipped;
    partial.seconds = seconds();
    partial.step_seconds = timing.step_seconds;
    partial.sync_seconds = timing.sync_seconds;
    partial.timed_steps = timing.timed_steps;
    if (!s.best.empty()) load_named_state(flow_, s.best, "best model");
    flow_.eval();
    const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
    throw TrainingAborted(c10_error ? c10_error->what_without_backtrace() : e.what(), partial);
  }
  loop_->done = s.step;
  if (stopped_early || interrupted) {
    for (auto& c : callbacks_) c->on_stop(*this);
  }
  if (interrupted && s.best.empty()) {
    // Stopped before the first validation: the weights as they are are the best so far
    // (the saved state is unchanged by this; resuming goes on as if uninterrupted).
    flow_.eval();
    const double val = validate(s.step);
    if (std::isfinite(val)) {
      s.best_val = val;
      s.best_step = s.step;
      s.best = clone_state(flow_);
    }
  }
  TrainResult result;
  result.steps_done = s.step;
  result.best_step = s.best_step;
  result.best_val_nll = s.best_val;
  result.final_train_nll = train_nll_avg;
  result.skipped_steps = s.skipped;
  result.stopped_early = stopped_early;
  result.interrupted = interrupted;
  result.seconds = seconds();
  result.step_seconds = timing.step_seconds;
  result.sync_seconds = timing.sync_seconds;
  result.timed_steps = timing.timed_steps;
  for (auto& c : callbacks_) c->on_train_end(*this, result);
  if (s.best.empty()) {
    flow_.eval();
    throw Error("training gave no finite validation NLL (last: " + format_number(last_val) +
                "): the model diverged or cannot fit these data; try a lower learning rate, "
                "fewer layers or a smaller scale bound");
  }
  load_named_state(flow_, s.best, "best model");
  flow_.eval();
  return result;
}

TrainResult train_flow(FlowImpl& flow, const Tensor& train_data, const Tensor& val_data,
                       const TrainOptions& options, const Tensor& train_context,
                       const Tensor& val_context) {
  Trainer trainer(flow, options);
  return trainer.fit(train_data, val_data, train_context, val_context);
}
double bits_per_dim(double mean_nll, int64_t dims) {
  TORCH_CHECK(dims > 0, "bits_per_dim: dims must be positive, got ", dims);
  return mean_nll / (static_cast<double>(dims) * std::log(2.0));
}

}  // namespace zflow::train
