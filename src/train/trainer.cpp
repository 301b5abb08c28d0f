#include "zflow/train/trainer.h"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize/archive.h>

#include "zflow/core/error.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/io/safetensors.h"
#include "zflow/train/flat_adam.h"

namespace zflow::train {

namespace {

// Format 2: the optimizer state is FlatAdam's (format 1 held torch::optim::Adam's).
constexpr const char* kStateFormat = "zflow-train-state/2";

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

std::vector<std::pair<std::string, Tensor>> clone_state(torch::nn::Module& module) {
  std::vector<std::pair<std::string, Tensor>> copy;
  for (auto& [name, tensor] : named_state(module)) copy.emplace_back(name, tensor.detach().clone());
  return copy;
}

// The resumable state: current and best weights, the optimizer (as LibTorch's own archive,
// stored as bytes), torch's RNG, and the counters, in one safetensors file.
struct LoopState {
  int64_t step = 0;
  int64_t best_step = 0;
  double best_val = std::numeric_limits<double>::infinity();
  int64_t skipped = 0;
  int64_t evals_without_improvement = 0;
  std::vector<std::pair<std::string, Tensor>> best;
};

Tensor bytes_tensor(const std::string& bytes) {
  Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

void save_state(const std::string& path, FlowImpl& flow, FlatAdam& optimizer, const LoopState& s) {
  io::TensorFile file;
  for (auto& [name, t] : named_state(flow))
    file.tensors.emplace_back("model/" + name, t.detach().cpu());
  for (auto& [name, t] : s.best) file.tensors.emplace_back("best/" + name, t.cpu());
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  file.tensors.emplace_back("optimizer", bytes_tensor(bytes.str()));
  file.tensors.emplace_back("rng", at::detail::getDefaultCPUGenerator().get_state());
  file.metadata = {{"format", kStateFormat},
                   {"spec", flow.spec().dump()},
                   {"step", std::to_string(s.step)},
                   {"best_step", std::to_string(s.best_step)},
                   {"best_val", Json(s.best_val).dump()},
                   {"skipped", std::to_string(s.skipped)},
                   {"evals_without_improvement", std::to_string(s.evals_without_improvement)}};
  io::save_safetensors(path, file);
}

LoopState load_state(const std::string& path, FlowImpl& flow, FlatAdam& optimizer) {
  io::TensorFile file = io::load_safetensors(path);
  if (file.metadata["format"] == "zflow-train-state/1") {
    throw IOError(path +
                  ": this training state was written by an older zflow and cannot be "
                  "resumed; start the training again");
  }
  if (file.metadata["format"] != kStateFormat) throw IOError(path + ": not a zflow training state");
  if (file.metadata["spec"] != flow.spec().dump()) {
    throw ConfigError(path + ": the training state belongs to a different model (spec differs)");
  }
  std::vector<std::pair<std::string, Tensor>> model, best;
  for (auto& [name, t] : file.tensors) {
    if (name.rfind("model/", 0) == 0) model.emplace_back(name.substr(6), t);
    if (name.rfind("best/", 0) == 0) best.emplace_back(name.substr(5), t);
  }
  load_named_state(flow, model, path);
  LoopState s;
  try {
    s.step = std::stoll(file.metadata.at("step"));
    s.best_step = std::stoll(file.metadata.at("best_step"));
    // JSON has no infinity: a state saved before any finite validation stores null.
    const Json best_val = Json::parse(file.metadata.at("best_val"));
    s.best_val =
        best_val.is_null() ? std::numeric_limits<double>::infinity() : best_val.get<double>();
    s.skipped = std::stoll(file.metadata.at("skipped"));
    s.evals_without_improvement = std::stoll(file.metadata.at("evals_without_improvement"));
  } catch (const std::exception&) {
    throw IOError(path + ": damaged counters in the training state");
  }
  const auto options =
      flow.parameters().empty() ? at::TensorOptions() : flow.parameters()[0].options();
  for (auto& [name, t] : best)
    s.best.emplace_back(name, t.to(options.device()).to(options.dtype()));
  if (s.best.empty()) s.best = clone_state(flow);
  const Tensor& opt_bytes = file.at("optimizer");
  torch::serialize::InputArchive archive;
  archive.load_from(reinterpret_cast<const char*>(opt_bytes.data_ptr<uint8_t>()),
                    static_cast<size_t>(opt_bytes.numel()));
  try {
    optimizer.load(archive);
  } catch (const IOError& e) {
    throw IOError(path + ": " + e.what());
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(file.at("rng"));
  return s;
}

/// A number for a message: %.4g ("nan", "inf", "1e+300"), never 300 digits.
std::string format_number(double value) {
  std::ostringstream s;
  s << std::setprecision(4) << value;
  return s.str();
}

std::string format_status(double train_nll, double val_nll, int64_t bpd_dims) {
  std::ostringstream s;
  s.precision(4);
  if (bpd_dims > 0) {
    s << "bits/dim " << bits_per_dim(train_nll, bpd_dims);
    if (std::isfinite(val_nll)) s << "  val " << bits_per_dim(val_nll, bpd_dims);
    return s.str();
  }
  s << "nll " << train_nll;
  if (std::isfinite(val_nll)) s << "  val " << val_nll;
  return s.str();
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

TrainResult train_flow(FlowImpl& flow, const Tensor& train_data, const Tensor& val_data,
                       const TrainOptions& o, const Tensor& train_context,
                       const Tensor& val_context) {
  check_options(o);
  TORCH_CHECK(train_data.defined() && train_data.dim() >= 2 && train_data.size(0) > 0,
              "train: training data must be [N, ...] with N > 0");
  if (train_context.defined()) {
    TORCH_CHECK(train_context.size(0) == train_data.size(0), "train: context rows (",
                train_context.size(0), ") differ from data rows (", train_data.size(0), ")");
  }
  const auto start_time = std::chrono::steady_clock::now();
  auto optimizer = make_optimizer(flow, o);

  // Without a validation set, a fixed subset of the training data selects the best model.
  const bool has_val = val_data.defined() && val_data.size(0) > 0;
  const Tensor select_data =
      has_val ? val_data : train_data.narrow(0, 0, std::min<int64_t>(train_data.size(0), 10000));
  const Tensor select_context =
      has_val
          ? val_context
          : (train_context.defined() ? train_context.narrow(0, 0, select_data.size(0)) : Tensor());

  LoopState s;
  if (o.resume) {
    if (o.state_path.empty()) throw ConfigError("resume needs a training-state path");
    s = load_state(o.state_path, flow, *optimizer);
    if (s.step >= o.steps) {
      // Nothing to train: the caller learns so and the state stays as it is.
      if (!s.best.empty()) load_named_state(flow, s.best, "best model");
      flow.eval();
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

  Progress progress("train", o.steps, o.progress);
  double train_nll_avg = std::numeric_limits<double>::quiet_NaN();
  double last_val = std::numeric_limits<double>::quiet_NaN();
  int64_t consecutive_bad = 0;
  bool stopped_early = false;
  const int64_t n = train_data.size(0);
  flow.train();

  auto report = [&](Json record) {
    if (o.on_metrics) o.on_metrics(record);
  };

  bool interrupted = false;
  for (; s.step < o.steps; ++s.step) {
    if (o.stop_requested && o.stop_requested()) {
      interrupted = true;
      break;
    }
    const double lr = learning_rate(o, s.step);
    optimizer->set_lr(lr);
    const Tensor index = at::randint(n, {std::min(o.batch_size, std::max<int64_t>(n, 1))},
                                     at::TensorOptions(at::kLong));
    const Tensor batch = train_data.index_select(0, index.to(train_data.device()));
    const Tensor ctx = train_context.defined()
                           ? train_context.index_select(0, index.to(train_context.device()))
                           : Tensor();

    optimizer->zero_grad();
    Tensor loss = -flow.log_prob(batch, ctx).mean();
    const double loss_value = loss.item<double>();
    double grad_norm = std::numeric_limits<double>::quiet_NaN();
    std::string fault;
    if (!std::isfinite(loss_value)) {
      fault = "non-finite loss";
    } else {
      loss.backward();
      grad_norm = optimizer->clip_grad_norm(
          o.clip_grad_norm > 0 ? o.clip_grad_norm : std::numeric_limits<double>::infinity());
      if (!std::isfinite(grad_norm)) fault = "non-finite gradient";
    }
    if (!fault.empty()) {
      // The guard: skip the update so one bad batch cannot destroy the weights.
      optimizer->zero_grad();
      ++s.skipped;
      ++consecutive_bad;
      report({{"event", "skipped_step"}, {"step", s.step + 1}, {"reason", fault}});
      if (consecutive_bad >= o.max_nonfinite) {
        load_named_state(flow, s.best.empty() ? clone_state(flow) : s.best, "best model");
        flow.eval();
        throw Error("training diverged: " + std::to_string(consecutive_bad) +
                    " steps in a row had a " + fault + " (at step " + std::to_string(s.step + 1) +
                    "); try a lower learning rate or a smaller scale bound");
      }
      continue;
    }
    optimizer->step();
    consecutive_bad = 0;
    train_nll_avg =
        std::isnan(train_nll_avg) ? loss_value : 0.95 * train_nll_avg + 0.05 * loss_value;

    const int64_t done = s.step + 1;
    if (o.log_every > 0 && done % o.log_every == 0) {
      report({{"step", done}, {"loss", loss_value}, {"lr", lr}, {"grad_norm", grad_norm}});
    }
    if (done % o.eval_every == 0 || done == o.steps) {
      flow.eval();
      last_val = mean_nll(flow, select_data, select_context);
      flow.train();
      // A NaN or infinite validation never becomes the best model.
      if (std::isfinite(last_val) && (last_val < s.best_val || s.best.empty())) {
        s.best_val = last_val;
        s.best_step = done;
        s.best = clone_state(flow);
        s.evals_without_improvement = 0;
      } else {
        ++s.evals_without_improvement;
      }
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
      Json record = {{"step", done},
                     {"train_nll", train_nll_avg},
                     {has_val ? "val_nll" : "train_subset_nll", last_val},
                     {"best_val_nll", s.best_val},
                     {"lr", lr},
                     {"grad_norm", grad_norm},
                     {"seconds", elapsed}};
      if (o.bits_per_dim_dims > 0) {
        record["train_bpd"] = bits_per_dim(train_nll_avg, o.bits_per_dim_dims);
        record[has_val ? "val_bpd" : "train_subset_bpd"] =
            bits_per_dim(last_val, o.bits_per_dim_dims);
      }
      report(record);
      if (o.patience > 0 && s.evals_without_improvement >= o.patience) {
        stopped_early = true;
        s.step = done;
        break;
      }
      if (!o.state_path.empty()) {
        LoopState snapshot = s;
        snapshot.step = done;
        save_state(o.state_path, flow, *optimizer, snapshot);
      }
    }
    progress.update(done, format_status(train_nll_avg, last_val, o.bits_per_dim_dims));
  }
  progress.finish(format_status(train_nll_avg, last_val, o.bits_per_dim_dims));
  if (!o.state_path.empty() && (stopped_early || interrupted)) {
    save_state(o.state_path, flow, *optimizer, s);
  }
  if (interrupted && s.best.empty()) {
    // Stopped before the first validation: the weights as they are are the best so far
    // (the saved state is unchanged by this; resuming goes on as if uninterrupted).
    flow.eval();
    const double val = mean_nll(flow, select_data, select_context);
    if (std::isfinite(val)) {
      s.best_val = val;
      s.best_step = s.step;
      s.best = clone_state(flow);
    }
  }
  if (s.best.empty()) {
    flow.eval();
    throw Error("training gave no finite validation NLL (last: " + format_number(last_val) +
                "): the model diverged or cannot fit these data; try a lower learning rate, "
                "fewer layers or a smaller scale bound");
  }
  load_named_state(flow, s.best, "best model");
  flow.eval();
  TrainResult result;
  result.steps_done = s.step;
  result.best_step = s.best_step;
  result.best_val_nll = s.best_val;
  result.final_train_nll = train_nll_avg;
  result.skipped_steps = s.skipped;
  result.stopped_early = stopped_early;
  result.interrupted = interrupted;
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  return result;
}

double bits_per_dim(double mean_nll, int64_t dims) {
  TORCH_CHECK(dims > 0, "bits_per_dim: dims must be positive, got ", dims);
  return mean_nll / (static_cast<double>(dims) * std::log(2.0));
}

}  // namespace zflow::train
