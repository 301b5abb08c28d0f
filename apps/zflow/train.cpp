// zflow train: fits a flow to data by maximum likelihood and writes a model file.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include "common.h"
#include "distributed.h"
#include "figures.h"
#include "ode_options.h"
#include "outputs.h"
#include "report.h"
#include "signals.h"
#include "training_options.h"
#include "zflow/core/error.h"
#include "zflow/data/images.h"
#include "zflow/distributed/launch.h"
#include "zflow/flows/assembly.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/model_card.h"
#include "zflow/flows/registry.h"
#include "zflow/io/atomic_file.h"
#include "zflow/io/table.h"
#include "zflow/train/flow_matching.h"
#include "zflow/train/trainer.h"
#include "zflow/transforms/elementwise.h"

namespace zflow::cli {

namespace {

struct TrainArgs {
  std::string data;
  std::string columns;
  std::string context_columns;
  std::string circular_columns;
  // Images: condition on the class, the labels' one-hot vectors as the context.
  bool class_conditional = false;
  int64_t embedding = 0;
  std::string header = "auto";
  // Points drawn from a built-in dataset (docs/benchmarks.md, "Defaults of zflow train").
  int64_t n = 50000;
  // Whether --n was given (image data: all images unless it was).
  bool n_given = false;
  // Whether --warmup was given (image models warm up by default).
  bool warmup_given = false;
  // Empty: kDefaultTabularModel (nsf-coupling) for tabular data, glow for images.
  std::string model;
  std::string spec_file;
  // --init: start from this model file's flow and weights (fine-tuning) instead of a new one.
  std::string init;
  std::shared_ptr<Model> init_model;
  bool dtype_given = false;
  BuilderOptions builder;
  train::TrainOptions train;
  bool no_cosine = false;
  double val_fraction = 0.1;
  int64_t seed = 0;
  int threads = 1;
  std::string dtype = "float32";
  std::string device = "cpu";
  bool no_standardize = false;
  std::string metrics;
  std::string report;
  std::string out = "model.safetensors";
  std::string state;
  bool quiet = false;
  bool threads_given = false;
  DistributedArgs dist;
  // Empty: flow-matching for a cnf model, likelihood for every other.
  std::string objective;
  train::FlowMatchingOptions flow_matching;
  SolverArgs solver;
};

bool uses_flow_matching(const TrainArgs& a) { return a.objective == "flow-matching"; }

/// Fills in the default model and rejects a tabular model for images or the converse.
void check_model_choice(TrainArgs& a, bool images) {
  auto names = [](const std::vector<std::pair<std::string, std::string>>& list) {
    std::string out;
    for (const auto& [name, description] : list) out += (out.empty() ? "" : ", ") + name;
    return out;
  };
  if (!a.spec_file.empty() || !a.init.empty()) return;
  if (a.model.empty()) a.model = images ? kDefaultImageModel : kDefaultTabularModel;
  bool image_model = false;
  for (const auto& [name, description] : image_builder_names()) image_model |= name == a.model;
  bool tabular_model = false;
  for (const auto& [name, description] : builder_names()) tabular_model |= name == a.model;
  if (images && !image_model) {
    throw ConfigError("--model " + a.model + " is for tabular data; for images choose " +
                      names(image_builder_names()));
  }
  if (!images && !tabular_model) {
    throw ConfigError("--model " + a.model + " is for images; for tabular data choose " +
                      names(builder_names()));
  }
  if (images && (!a.columns.empty() || !a.context_columns.empty())) {
    throw ConfigError("--columns and --context-columns are for tabular data, not images");
  }
  if (a.builder.dequantize != "uniform" && !images) {
    throw ConfigError("--dequantize is for images (8-bit pixels), not tabular data");
  }
  if (a.class_conditional && !images) {
    throw ConfigError(
        "--class-conditional is for labelled images; tabular data take --context-columns");
  }
  if (a.class_conditional && a.model == "cnf") {
    throw ConfigError("--class-conditional needs a multi-scale model (glow or realnvp-image)");
  }
}

void validate(const TrainArgs& a) {
  if (!(a.train.lr > 0) || !std::isfinite(a.train.lr)) {
    throw ConfigError("--lr must be a positive number (got " + fmt(a.train.lr) + ")");
  }
  if (!(a.val_fraction >= 0 && a.val_fraction < 1)) {
    throw ConfigError("--val-fraction must be in [0, 1) (got " + fmt(a.val_fraction) + ")");
  }
  if (!(a.builder.scale_bound > 0) || !std::isfinite(a.builder.scale_bound)) {
    throw ConfigError("--scale-bound must be a positive number (got " + fmt(a.builder.scale_bound) +
                      ")");
  }
  if (!(a.builder.tail_bound > 0) || !std::isfinite(a.builder.tail_bound)) {
    throw ConfigError("--tail-bound must be a positive number (got " + fmt(a.builder.tail_bound) +
                      ")");
  }
  if (a.embedding > 0 && a.context_columns.empty()) {
    throw ConfigError("--embedding needs --context-columns (it embeds the context)");
  }
  if (a.out == "-") throw ConfigError("--out must be a file (a model cannot go to stdout)");
  if (!a.report.empty()) require_extension(a.report, ".html", "--report");
  check_device(a.device);
}

Json options_json(const TrainArgs& a, const Data& data) {
  Json o = {{"model", a.spec_file.empty() ? a.model : "spec:" + a.spec_file},
            {"init", a.init.empty() ? Json(nullptr) : Json(a.init)},
            {"steps", a.train.steps},
            {"batch_size", a.train.batch_size},
            {"lr", a.train.lr},
            {"optimizer", a.train.optimizer},
            {"weight_decay", a.train.weight_decay},
            {"cosine", a.train.cosine},
            {"warmup", a.train.warmup},
            {"clip", a.train.clip_grad_norm},
            {"val_fraction", a.val_fraction},
            {"eval_every", a.train.eval_every},
            {"patience", a.train.patience},
            {"max_nonfinite", a.train.max_nonfinite},
            {"seed", a.seed},
            {"dtype", a.dtype},
            {"device", a.device},
            {"standardize", !a.no_standardize},
            {"resume", a.train.resume},
            {"processes", std::max(a.dist.nproc, 1)},
            {"objective", a.objective}};
  if (uses_flow_matching(a)) {
    o["coupling"] = a.flow_matching.coupling;
    o["sigma_min"] = a.flow_matching.sigma_min;
  }
  if (a.spec_file.empty() && a.init.empty()) {
    o["layers"] = a.builder.layers;
    o["hidden"] = a.builder.hidden;
    o["depth"] = a.builder.depth;
    o["activation"] = a.builder.activation;
    o["conditioner"] = a.builder.conditioner;
    o["scale_bound"] = a.builder.scale_bound;
    o["bins"] = a.builder.bins;
    o["tail_bound"] = a.builder.tail_bound;
    o["base"] = a.builder.base;
    if (a.builder.base == "student_t") {
      o["base_df"] = a.builder.base_df > 0 ? a.builder.base_df : kDefaultBaseDf;
      o["base_learn_df"] = a.builder.base_learn_df;
    }
    if (a.builder.base == "gaussian_mixture") {
      o["base_components"] =
          a.builder.base_components > 0 ? a.builder.base_components : kDefaultBaseComponents;
    }
    o["levels"] = a.builder.levels;
    o["steps_per_level"] = a.builder.steps_per_level;
    o["coupling"] = a.builder.coupling;
    o["logit_alpha"] = a.builder.logit_alpha;
    o["dequantize"] = a.builder.dequantize;
    if (a.builder.batch_norm) o["batch_norm"] = true;
  }
  if (!a.circular_columns.empty()) o["circular_columns"] = a.circular_columns;
  if (!a.context_columns.empty()) {
    o["context_columns"] = a.context_columns;
    o["embedding"] = a.embedding;
  }
  if (a.class_conditional) o["class_conditional"] = true;
  if (data.toy) o["n"] = a.n;
  return o;
}

/// "'price' (column 3)" or "column 3" for every column of `data` (1-based as people count,
/// the file's own numbering), for messages.
std::vector<std::string> column_labels(const Data& data) {
  std::vector<std::string> labels;
  for (size_t j = 0; j < data.columns.size() || j < data.indices.size(); ++j) {
    const int64_t file_index = j < data.indices.size() ? data.indices[j] : static_cast<int64_t>(j);
    const std::string number = "column " + std::to_string(file_index + 1);
    const bool named = j < data.columns.size() && !data.columns[j].empty();
    labels.push_back(named ? "'" + data.columns[j] + "' (" + number + ")" : number);
  }
  return labels;
}

/// The data of a run, split, with what the rest needs to know of them.
struct RunData {
  ModelData loaded;
  data::Split split;
  bool images = false;
  bool conditional = false;
  std::vector<int64_t> event_shape;
  int64_t features = 0;
  int64_t context_features = 0;
  // A class-conditional image model: the names of its classes (the context is one-hot).
  std::vector<std::string> class_names;
};

RunData load_run_data(const TrainArgs& a, at::ScalarType dtype) {
  RunData d;
  d.images = data::is_image_source(a.data);
  const int64_t limit = a.n_given ? a.n : 0;
  if (d.images && a.class_conditional) {
    ClassData classes = load_class_data(a.data, "train", limit);
    d.loaded = std::move(classes.data);
    d.class_names = std::move(classes.class_names);
  } else {
    d.loaded = d.images ? ModelData{load_image_data(a.data, "train", limit), Data()}
                        : data::load_training_table(a.data, a.columns, a.context_columns, a.header,
                                                    a.n, static_cast<uint64_t>(a.seed));
  }
  const Data& x = d.loaded.x;
  d.conditional = d.loaded.context.values.defined();
  d.event_shape.assign(x.values.sizes().begin() + 1, x.values.sizes().end());
  d.features = x.values[0].numel();
  d.context_features = d.conditional ? d.loaded.context.values.size(1) : 0;
  d.split = data::split_table(d.loaded, a.val_fraction, a.n, a.columns, a.header,
                              static_cast<uint64_t>(a.seed));
  if (!d.images) {
    check_trainable(x.source, column_labels(x), x.values, d.split.train, !a.no_standardize, dtype,
                    d.split.train_rows);
  }
  return d;
}

/// ConfigError unless a flow for events of `shape` fits the data (`source`: the spec or
/// model file the flow came from, or empty for a ready-made model).
void check_event_shape(const std::vector<int64_t>& shape, const RunData& d,
                       const std::string& source) {
  if (shape == d.event_shape) return;
  std::ostringstream s;
  s << "the model spec is for events of shape " << c10::IntArrayRef(shape) << ", the data have ";
  if (d.images) {
    s << "images of shape " << c10::IntArrayRef(d.event_shape);
  } else {
    s << d.features << " column" << (d.features == 1 ? "" : "s");
  }
  throw ConfigError((source.empty() ? "" : source + ": ") + s.str());
}

/// --init: the flow of the model file, weights and standardisation included, to train on.
FlowPtr initial_flow(const TrainArgs& a, const RunData& d, at::ScalarType dtype,
                     AssembledSpec& assembled) {
  const Model& m = *a.init_model;
  check_event_shape(m.flow->event_shape(), d, "--init " + a.init);
  if (m.context_features != d.context_features) {
    throw ConfigError("--init " + a.init + ": the model takes " +
                      std::to_string(m.context_features) + " context column" +
                      (m.context_features == 1 ? "" : "s") + ", the data give " +
                      std::to_string(d.context_features));
  }
  assembled.standardization = m.card.standardization;
  assembled.context_standardization = m.card.context_standardization;
  m.flow->to(dtype);
  return m.flow;
}

/// The --circular-columns of the data columns as flags (1: an angle), in the model's
/// feature order; empty without the option. Columns are named as --columns names them (file
/// indices or names); ConfigError for one that is not among the data columns.
std::vector<int64_t> circular_flags(const TrainArgs& a, const RunData& d) {
  if (a.circular_columns.empty()) return {};
  if (d.images) throw ConfigError("--circular-columns is for tabular data, not images");
  const Data& x = d.loaded.x;
  // The file's column names at their indices, so that "3" means file column 3 as in --columns.
  std::vector<std::string> file_columns;
  for (size_t j = 0; j < x.indices.size(); ++j) {
    const auto index = static_cast<size_t>(x.indices[j]);
    if (file_columns.size() <= index) file_columns.resize(index + 1);
    file_columns[index] = j < x.columns.size() ? x.columns[j] : std::to_string(index);
  }
  std::vector<int64_t> flags(static_cast<size_t>(d.features), 0);
  for (int64_t index : io::parse_column_spec(a.circular_columns, file_columns)) {
    const auto at = std::find(x.indices.begin(), x.indices.end(), index);
    if (at == x.indices.end()) {
      throw ConfigError("--circular-columns: column " + std::to_string(index) +
                        " is not among the data columns");
    }
    flags[static_cast<size_t>(at - x.indices.begin())] = 1;
  }
  return flags;
}

/// The flow to train, its spec assembled from the model choice and the training split.
FlowPtr build_flow(const TrainArgs& a, const RunData& d, at::ScalarType dtype,
                   AssembledSpec& assembled) {
  if (a.init_model) return initial_flow(a, d, dtype, assembled);
  FlowRecipe recipe;
  recipe.model = a.model;
  if (!a.spec_file.empty()) recipe.spec = read_flow_spec_file(a.spec_file);
  recipe.spec_source = a.spec_file;
  recipe.builder = a.builder;
  recipe.builder.seed = static_cast<uint64_t>(a.seed);
  recipe.builder.circular = circular_flags(a, d);
  recipe.event_shape = d.event_shape;
  recipe.standardize = !a.no_standardize;
  recipe.context_features = d.context_features;
  recipe.embedding = a.embedding;
  assembled = assemble_flow_spec(recipe, d.split.train, d.split.train_context, d.split.train_rows);
  seed_torch(static_cast<uint64_t>(a.seed));
  FlowPtr flow = make_flow(assembled.spec);
  check_event_shape(flow->event_shape(), d, a.spec_file);
  flow->to(dtype);
  if (!a.spec_file.empty()) {
    // A hand-written spec can be inconsistent in ways only running it shows (a mask of
    // the wrong length): try a few rows, so that it is reported as a spec problem.
    try {
      c10::AutoGradMode no_grad(false);
      const int64_t rows = std::min<int64_t>(d.split.train.size(0), 2);
      flow->log_prob(
          d.split.train.narrow(0, 0, rows).to(dtype),
          d.conditional ? d.split.train_context.narrow(0, 0, rows).to(dtype) : at::Tensor());
    } catch (const c10::Error& e) {
      throw ConfigError(a.spec_file +
                        ": the spec does not fit the data: " + e.what_without_backtrace());
    }
  }
  return flow;
}

std::string model_name(const TrainArgs& a) {
  return a.spec_file.empty() ? a.model : "spec " + a.spec_file;
}

/// "zflow: training realnvp (1234 params, float32) on 18000 points of moons (...)".
void announce(const TrainArgs& a, const RunData& d, int64_t params) {
  const std::string what =
      d.images
          ? " images of " + d.loaded.x.source + " (" + shape_string(d.event_shape) +
                (d.class_names.empty()
                     ? std::string()
                     : ", conditional on " + std::to_string(d.class_names.size()) + " classes")
          : " points of " + d.loaded.x.source + " (" + std::to_string(d.features) + " columns" +
                (d.conditional ? " given " + std::to_string(d.context_features) +
                                     " context column" + (d.context_features == 1 ? "" : "s")
                               : std::string());
  std::cerr << "zflow: training " << model_name(a) << " (" << params << " params, " << a.dtype
            << ") on " << d.split.train_size() << what
            << (d.split.val.defined()
                    ? ", " + std::to_string(d.split.val.size(0)) + " for validation"
                    : std::string(", no validation set"))
            << "), " << a.threads << " thread" << (a.threads == 1 ? "" : "s")
            << (a.dist.nproc > 1 ? " in each of " + std::to_string(a.dist.nproc) + " processes"
                                 : std::string())
            << (a.init.empty() ? std::string() : ", starting from " + a.init)
            << (a.train.resume ? ", resuming from " + a.state : std::string()) << "\n";
}

/// Metrics as JSON lines as they arrive (appended when resuming), kept for the report.
class MetricsSink {
 public:
  /// Only the leading process (rank 0) keeps and writes the metrics.
  MetricsSink(const TrainArgs& a, bool leader) : keep_(leader && !a.report.empty()) {
    if (!leader) return;
    if (a.train.resume && keep_ && !a.metrics.empty()) records = read_metrics(a.metrics);
    if (!a.metrics.empty()) file_ = std::make_unique<io::LineAppender>(a.metrics, a.train.resume);
  }
  void operator()(const Json& record) {
    if (keep_) records.push_back(record);
    if (file_) file_->write_line(record.dump());
  }
  std::vector<Json> records;

 private:
  bool keep_;
  std::unique_ptr<io::LineAppender> file_;
};

/// Trains with the CLI's callbacks: progress on stderr, metrics, the training state, and
/// SIGINT/SIGTERM, which stop at the next step (the state and the best model so far are
/// then saved; the exit code says which signal it was).
train::TrainResult fit(const TrainArgs& a, const RunData& d, FlowImpl& flow, at::ScalarType dtype,
                       MetricsSink& metrics, const DistributedRun& run) {
  train::TrainOptions options = a.train;
  // Deep image flows at full learning rate from the first step can throw a batch's loss up
  // by orders of magnitude (seen with Glow on Fashion-MNIST); a short warm-up avoids it.
  if (d.images && !a.warmup_given) options.warmup = std::min<int64_t>(500, options.steps / 10);
  options.state_path = "";  // the checkpoint callback below writes it
  options.seed = static_cast<uint64_t>(a.seed);
  train::Trainer trainer(flow, options);
  if (uses_flow_matching(a)) {
    trainer.set_objective(std::make_shared<train::FlowMatching>(a.flow_matching));
  }
  if (run.sync) trainer.set_gradient_sync(run.sync);
  // Bits/dim only for a likelihood: a flow-matching loss is not one.
  const int64_t bpd_dims = d.images && !uses_flow_matching(a) ? d.features : 0;
  // Rank 0 alone prints and writes; every process stops on a signal to any of them.
  if (!a.quiet && run.leader()) {
    trainer.add_callback(std::make_shared<train::ProgressCallback>(
        train::ProgressOptions{&std::cerr, train::stderr_is_terminal(),
                               std::max<int64_t>(options.steps / 20, 1), "step"},
        bpd_dims));
  }
  if (run.leader()) {
    trainer.add_callback(std::make_shared<train::MetricsCallback>(
        [&metrics](const Json& record) { metrics(record); }, options.log_every, bpd_dims));
    trainer.add_callback(std::make_shared<train::CheckpointCallback>(a.state));
  }
  trainer.add_callback(
      std::make_shared<train::StopCallback>([] { return StopSignals::received() != 0; }));
  // On a CUDA GPU the model and the whole data set go to the device once and batches are
  // taken there (with several processes, each uses the GPU of its local rank). On the CPU
  // the training data stay as read (a memory-mapped .npy file is not copied) and each
  // minibatch is gathered and converted.
  const at::Device device =
      a.device == "cuda" && run.sync
          ? at::Device(at::kCUDA,
                       static_cast<int8_t>(distributed::cuda_device_for(run.launch.local_rank)))
          : at::Device(a.device);
  flow.to(device);
  auto on_device = [dtype, device](const at::Tensor& t) {
    return t.defined() ? t.to(device, dtype).contiguous() : at::Tensor();
  };
  auto train_rows = [&](const at::Tensor& t) { return device.is_cpu() ? t : on_device(t); };
  // Resuming reads the state from the same file the checkpoint callback writes (every
  // process reads it: it must be on a file system they share).
  if (a.train.resume) trainer.resume_from(a.state);
  trainer.set_train_rows(d.split.train_rows);
  return trainer.fit(train_rows(d.split.train), on_device(d.split.val),
                     train_rows(d.split.train_context), on_device(d.split.val_context));
}

/// fit, and when a distributed run fails midway (a process died), rank 0 saves the best
/// model so far with `save` and says so in the error.
template <typename Save>
train::TrainResult fit_or_keep_best(const TrainArgs& a, const RunData& d, FlowImpl& flow,
                                    at::ScalarType dtype, MetricsSink& metrics,
                                    const DistributedRun& run, Save&& save) {
  try {
    return fit(a, d, flow, dtype, metrics, run);
  } catch (const train::TrainingAborted& e) {
    if (!run.sync || !run.leader() || e.result().best_step == 0) throw;
    save(e.result());
    throw Error(std::string(e.what()) + " at step " + std::to_string(e.result().steps_done + 1) +
                "; saved the best model so far (step " + std::to_string(e.result().best_step) +
                ") to " + a.out + "; the training state is in " + a.state +
                ": continue with --resume");
  }
}

/// The model card: what later commands (and people) need to know of the run.
ModelCard model_card(const TrainArgs& a, const RunData& d, const AssembledSpec& assembled,
                     const train::TrainResult& result) {
  ModelCard card;
  card.dataset = d.loaded.x.source;
  card.model = model_name(a);
  card.features = d.features;
  card.columns = d.loaded.x.columns;
  card.column_indices = d.loaded.x.indices;
  card.context_features = d.context_features;
  card.context_columns = d.loaded.context.columns;
  card.context_column_indices = d.loaded.context.indices;
  if (d.images) card.image_shape = d.event_shape;
  card.class_names = d.class_names;
  card.standardization = assembled.standardization;
  card.context_standardization = assembled.context_standardization;
  card.train = {{"options", options_json(a, d.loaded.x)},
                {"result",
                 {{"steps", result.steps_done},
                  {"best_step", result.best_step},
                  {uses_flow_matching(a) ? "best_val_loss" : "best_val_nll", result.best_val_nll},
                  {"validation", d.split.val.defined() ? "held-out" : "training subset"},
                  {"final_train_nll", result.final_train_nll},
                  {"skipped_steps", result.skipped_steps},
                  {"stopped_early", result.stopped_early},
                  {"interrupted", result.interrupted},
                  {"seconds", result.seconds},
                  {"processes", std::max(a.dist.nproc, 1)},
                  {"step_seconds", result.step_seconds},
                  {"sync_seconds", result.sync_seconds},
                  {"timed_steps", result.timed_steps}}}};
  if (!a.metrics.empty()) {
    std::error_code ec;
    const auto absolute = std::filesystem::absolute(a.metrics, ec);
    card.metrics_file = ec ? a.metrics : absolute.string();
  }
  return card;
}

void print_summary(const TrainArgs& a, const RunData& d, int64_t params,
                   const train::TrainResult& result) {
  std::cerr << "trained " << model_name(a) << " (" << params << " params) for " << result.steps_done
            << " steps in " << fmt(result.seconds, 3) << " s: best "
            << (d.split.val.defined() ? "validation" : "training-subset")
            << (uses_flow_matching(a) ? " flow-matching loss " : " NLL ")
            << fmt(result.best_val_nll);
  if (d.images && !uses_flow_matching(a)) {
    std::cerr << " (" << fmt(train::bits_per_dim(result.best_val_nll, d.features)) << " bits/dim)";
  }
  std::cerr << " at step " << result.best_step;
  if (result.skipped_steps > 0) std::cerr << " (" << result.skipped_steps << " steps skipped)";
  if (result.stopped_early) std::cerr << " (stopped early)";
  if (a.dist.nproc > 1 && result.timed_steps > 0) {
    // The share of a step spent in the gradient all-reduce (docs/distributed.md).
    const double step_ms = 1000.0 * result.step_seconds / static_cast<double>(result.timed_steps);
    const double sync_ms = 1000.0 * result.sync_seconds / static_cast<double>(result.timed_steps);
    std::cerr << "; " << a.dist.nproc << " processes: " << fmt(step_ms, 3)
              << " ms per step, of which all-reduce " << fmt(sync_ms, 3) << " ms ("
              << fmt(100.0 * sync_ms / step_ms, 2) << "%)";
  } else if (result.timed_steps > 0) {
    std::cerr << "; "
              << fmt(1000.0 * result.step_seconds / static_cast<double>(result.timed_steps), 3)
              << " ms per step";
  }
  std::cerr << "; wrote " << a.out << (a.report.empty() ? "" : " and " + a.report) << "\n";
  if (uses_flow_matching(a)) {
    std::cerr << "zflow: flow matching fits the velocity, not the likelihood: 'zflow eval --model "
              << a.out << "' gives the test NLL (by the ODE solver, with the NFE it took)\n";
  }
}

/// --init: loads the model file; the run then trains its flow, in its dtype unless --dtype
/// is given, with the solver options given applied to its continuous layers.
void take_initial_model(TrainArgs& a, bool images) {
  a.init_model = std::make_shared<Model>(load_model(a.init));
  const Model& m = *a.init_model;
  if (m.image() != images) {
    throw ConfigError("--init " + a.init + ": the model is for " +
                      (m.image() ? "images" : "tabular data") + ", --data " + a.data + " is " +
                      (images ? "images" : "tabular data"));
  }
  a.model = m.card.model.empty() ? "the model of " + a.init : m.card.model;
  // A class-conditional model goes on training on the labels.
  a.class_conditional = m.class_conditional();
  if (!a.dtype_given) a.dtype = dtype_name(m.dtype);
  apply_solver_options(m, a.solver);
}

void validate_objective(const TrainArgs& a) {
  // A spec or an --init model is checked by the objective itself (it needs a cnf layer).
  if (uses_flow_matching(a) && a.model != "cnf" && a.spec_file.empty() && a.init.empty()) {
    throw ConfigError(
        "--objective flow-matching trains continuous flows: use --model cnf (or a "
        "--spec with a cnf layer)");
  }
  train::check_flow_matching_options(a.flow_matching);
  if (a.flow_matching.coupling == "ot" && !a.context_columns.empty()) {
    throw ConfigError(
        "--fm-coupling ot pairs noise and data regardless of the context, which "
        "biases a conditional flow; use --fm-coupling independent");
  }
}

/// Checks what can be checked before reading any data, and fills in the derived options.
/// `leader`: this process speaks for the run; `local_processes`: the processes that share
/// this machine's CPUs.
void prepare(TrainArgs& a, bool leader, int local_processes) {
  validate(a);
  if (a.state.empty()) a.state = a.out + ".state";
  if (a.state == a.out) throw ConfigError("--state and --out must be different files");
  check_outputs(
      {{"--out", a.out}, {"--state", a.state}, {"--metrics", a.metrics}, {"--report", a.report}},
      {{"--data", a.data}, {"--spec", a.spec_file}, {"--init", a.init}});
  a.train.cosine = !a.no_cosine;
  const std::string blas = active_blas();
  if (leader && is_reference_blas(blas)) {
    std::cerr << "zflow: warning: the slow " << blas
              << " is active; install OpenBLAS (libopenblas0-pthread) for much faster training\n";
  }
  std::error_code ec;
  if (a.train.resume && !std::filesystem::exists(a.state, ec)) {
    throw IOError(a.state + ": no training state to resume from (no such file)");
  }
  const bool images = data::is_image_source(a.data);
  if (!a.init.empty()) take_initial_model(a, images);
  check_model_choice(a, images);
  if (a.objective.empty()) a.objective = a.model == "cnf" ? "flow-matching" : "likelihood";
  validate_objective(a);
  apply_solver_options(a.builder, a.solver);
  // Processes on one machine share its CPUs: by default each takes its part of them.
  if (!a.threads_given && local_processes > 1) {
    a.threads = std::max(1, train::available_cpus() / local_processes);
  }
  a.threads = apply_threads(a.threads, images ? Workload::other : Workload::tabular);
}

/// Every process of a distributed run reads the data itself: a stream (stdin, a FIFO) would
/// give each of them a different part.
void check_readable_by_every_process(const std::string& data) {
  std::error_code ec;
  const auto status = std::filesystem::status(data, ec);
  if (data == "-" || (!ec && (status.type() == std::filesystem::file_type::fifo ||
                              status.type() == std::filesystem::file_type::character))) {
    throw ConfigError("--data " + data +
                      ": every process of a distributed run reads the data, and a stream "
                      "cannot be read twice; write it to a file first");
  }
}

void run_train(TrainArgs& a) {
  if (should_launch_workers(a.dist)) {
    if (a.dist.nproc > 1) check_readable_by_every_process(a.data);
    prepare(a, true, a.dist.nproc);  // a usage error is reported once, not by every worker
    const int code = run_local_workers(a.dist);
    if (code != 0) throw WorkersFailed(code);
    return;
  }
  const distributed::LaunchInfo launch =
      distributed::detect_launch(distributed::process_environment(), a.dist.master);
  const bool leader = launch.rank == 0;
  prepare(a, leader, launch.local_world_size);
  if (launch.distributed()) check_readable_by_every_process(a.data);
  const DistributedRun run = join_distributed_run(a.dist, launch, a.device);
  if (a.dist.nproc == 0) a.dist.nproc = run.launch.world_size;
  if (!leader) a.quiet = true;
  const at::ScalarType dtype = a.dtype == "float64" ? at::kDouble : at::kFloat;
  const RunData d = load_run_data(a, dtype);
  AssembledSpec assembled;
  FlowPtr flow = build_flow(a, d, dtype, assembled);
  const int64_t params = count_parameters(*flow);
  MetricsSink metrics(a, leader);
  if (!a.quiet) announce(a, d, params);
  StopSignals signals(leader);
  const train::TrainResult result =
      fit_or_keep_best(a, d, *flow, dtype, metrics, run, [&](const train::TrainResult& partial) {
        save_checkpoint(a.out, *flow, model_card(a, d, assembled, partial).to_metadata());
      });
  // Rank 0 alone writes the model, the report and the summary.
  if (!leader) return;
  if (result.already_finished) {
    std::cerr << "zflow: the run in " << a.state << " already reached step " << result.steps_done
              << " of " << a.train.steps << "; nothing to do, " << a.out
              << " is unchanged (raise --steps to train further)\n";
    return;
  }
  save_checkpoint(a.out, *flow, model_card(a, d, assembled, result).to_metadata());
  if (result.interrupted) {
    const int signal = StopSignals::received();
    throw Interrupted(signal, "interrupted by " + signal_name(signal) + " at step " +
                                  std::to_string(result.steps_done) + ": saved the state to " +
                                  a.state + " and the best model so far (step " +
                                  std::to_string(result.best_step) + ") to " + a.out +
                                  "; continue with --resume");
  }
  if (!a.report.empty()) {
    ReportOptions report;
    report.metrics = metrics.records;
    report.data = a.data;
    report.seed = static_cast<uint64_t>(a.seed);
    write_report(a.report, load_model(a.out), report);
  }
  if (!a.quiet) print_summary(a, d, params, result);
}

void add_train_data_options(CLI::App* sub, TrainArgs* a) {
  sub->add_option("--data", a->data,
                  "A built-in dataset (see 'zflow datasets'), a .csv/.npy file, or images: "
                  "fashion-mnist, an IDX file, a CIFAR-10/100 folder or a folder of PNGs")
      ->required();
  sub->add_option(
      "--columns", a->columns,
      "Columns to use: indices, ranges a-b or names, e.g. '0,2-4,price' (default: all)");
  sub->add_option("--context-columns", a->context_columns,
                  "Columns of the same file used as the context c of a conditional flow "
                  "(the data are then --columns, default: all the others)");
  sub->add_option("--circular-columns", a->circular_columns,
                  "Data columns that are angles in radians, as --columns names them: modelled "
                  "on the circle (nsf-coupling: circular spline couplings, uniform base on "
                  "the circle; sampled angles come out in [-pi, pi])");
  sub->add_option("--header", a->header, "Whether the CSV has a header row")
      ->check(CLI::IsMember({"auto", "yes", "no"}))
      ->capture_default_str();
  sub->add_option("-n,--n", a->n, "Points drawn for a built-in dataset (images: use the first n)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--out,-o", a->out, "Model file to write (safetensors)")->capture_default_str();
}

void add_model_options(CLI::App* sub, TrainArgs* a) {
  std::vector<std::string> models;
  for (const auto& [name, description] : builder_names()) models.push_back(name);
  models.push_back("realnvp-image");

  sub->add_option("--model", a->model,
                  "Architecture (default: nsf-coupling for tabular data, glow for images)")
      ->check(CLI::IsMember(models));
  sub->add_option("--spec", a->spec_file, "A JSON flow spec to train instead of a ready-made model")
      ->check(CLI::ExistingFile);
  sub->add_option("--init", a->init,
                  "Start from this model file's flow and weights instead of a new flow (to "
                  "fine-tune, e.g. a flow-matching cnf by likelihood); its architecture, "
                  "standardisation and dtype are kept");
  add_builder_options(sub, a->builder);
  sub->add_flag("--batch-norm", a->builder.batch_norm,
                "maf, realnvp: a batch_norm layer between every two layers (batch statistics in "
                "training, running averages in evaluation and sampling)");
  sub->add_flag("--class-conditional", a->class_conditional,
                "Images: model p(x | class), the images' labels (one-hot) as the context: a "
                "learned class prior on the latents (Glow's); needs labelled images");
  sub->add_option("--embedding", a->embedding,
                  "Embed the context by an MLP (width --hidden, 1 layer) into this many features "
                  "(0: none)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--levels", a->builder.levels,
                  "Images: scales of the multi-scale model (0: as many as the size allows, "
                  "at most 3)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--steps-per-level", a->builder.steps_per_level,
                  "Images: flow steps per level (0: glow 8, realnvp-image 3 per group)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--coupling", a->builder.coupling, "Images: coupling transformer")
      ->check(CLI::IsMember({"affine", "additive"}))
      ->capture_default_str();
  sub->add_option("--dequantize", a->builder.dequantize,
                  "Images: noise that makes the 8-bit pixels continuous: uniform, or variational "
                  "(a learned q(u|x) trained with the flow, Flow++'s; docs/conventions.md)")
      ->check(CLI::IsMember({"uniform", "variational"}))
      ->capture_default_str();
  sub->add_option("--logit-alpha", a->builder.logit_alpha,
                  "Images: logit preprocessing logit(a + (1-2a)x) with this a (0: none; "
                  "default: glow none, realnvp-image 0.05)");
  add_dtype_option(sub, a->dtype);
  sub->add_option("--device", a->device,
                  "Where to train: cpu, or cuda (a CUDA GPU, with a CUDA-enabled LibTorch); the "
                  "model file is written for the CPU either way")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub->add_flag("--no-standardize", a->no_standardize,
                "Do not insert a standardisation fitted on the training split");
}

void add_continuous_options(CLI::App* sub, TrainArgs* a) {
  const std::string group = "Continuous flows (docs/continuous.md)";
  sub->add_option("--objective", a->objective,
                  "What training minimises: likelihood (maximum likelihood; for cnf through the "
                  "ODE solver, FFJORD) or flow-matching (regression on a velocity, cnf only; "
                  "default for cnf)")
      ->check(CLI::IsMember({"likelihood", "flow-matching"}))
      ->group("Optimisation");
  sub->add_option("--fm-coupling", a->flow_matching.coupling,
                  "Flow matching: pair noise and data independently, or by the exact optimal "
                  "assignment within each minibatch (ot: straighter paths, fewer solver steps)")
      ->check(CLI::IsMember({"independent", "ot"}))
      ->capture_default_str()
      ->group(group);
  sub->add_option("--sigma-min", a->flow_matching.sigma_min,
                  "Flow matching: width of the path's Gaussian at the data")
      ->capture_default_str()
      ->group(group);
  sub->add_option("--time-embedding", a->builder.time_embedding,
                  "cnf: time features of the velocity field, linear (t as an input) or "
                  "sinusoidal (default: linear for tabular data, sinusoidal for images)")
      ->check(CLI::IsMember({"linear", "sinusoidal"}))
      ->group(group);
  add_solver_options(sub, a->solver);
}

void add_optimisation_options(CLI::App* sub, TrainArgs* a) {
  add_optimiser_options(sub, a->train, a->no_cosine, a->seed);
  sub->add_option("--val-fraction", a->val_fraction,
                  "Held-out fraction for validation (toy data: a fresh draw of n*fraction)")
      ->capture_default_str();
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* sub = app.add_subcommand(
      "train", "Fit a flow to data by maximum likelihood and write a model file");
  set_example(
      sub,
      "zflow train --data 8gaussians --model realnvp --steps 2000 --out model.safetensors\n"
      "  zflow train --data moons --model cnf --objective flow-matching --out cnf.safetensors\n"
      "  zflow train --data measurements.csv --columns 0-3 --out model.safetensors\n"
      "  zflow train --data runs.csv --context-columns temp --model maf --out cond.safetensors\n"
      "  zflow train --data fashion-mnist --model glow --hidden 64 --steps 3000 --out "
      "glow.safetensors\n"
      "  zflow train --data fashion-mnist --model glow --class-conditional --out "
      "cglow.safetensors");

  add_train_data_options(sub, a.get());
  add_model_options(sub, a.get());
  add_optimisation_options(sub, a.get());
  add_continuous_options(sub, a.get());
  add_run_options(sub, a->threads, a->metrics, a->report, a->train, a->state, a->quiet);
  add_distributed_options(sub, &a->dist);
  auto group = [sub](const char* name, std::initializer_list<const char*> options) {
    for (const char* o : options) sub->get_option(o)->group(name);
  };
  group(
      "Model",
      {"--model",       "--spec",       "--init",        "--layers",          "--hidden",
       "--depth",       "--activation", "--conditioner", "--scale-bound",     "--bins",
       "--tail-bound",  "--embedding",  "--levels",      "--steps-per-level", "--coupling",
       "--logit-alpha", "--base",       "--dtype",       "--device",          "--no-standardize"});
  group("Model", {"--class-conditional", "--dequantize", "--batch-norm"});
  group("Optimisation", {"--steps", "--batch-size", "--lr", "--optimizer", "--weight-decay",
                         "--no-cosine", "--warmup", "--clip", "--val-fraction", "--eval-every",
                         "--patience", "--max-nonfinite", "--seed"});
  group("Run",
        {"--threads", "--metrics", "--report", "--log-every", "--state", "--resume", "--quiet"});
  // --init takes the architecture from its model file: the options that describe a new
  // one would be silently ignored, so they are refused beside it.
  for (const char* o : {"--model",
                        "--spec",
                        "--layers",
                        "--hidden",
                        "--depth",
                        "--activation",
                        "--conditioner",
                        "--scale-bound",
                        "--bins",
                        "--tail-bound",
                        "--base",
                        "--base-df",
                        "--base-learn-df",
                        "--base-components",
                        "--embedding",
                        "--levels",
                        "--steps-per-level",
                        "--coupling",
                        "--logit-alpha",
                        "--no-standardize",
                        "--time-embedding",
                        "--class-conditional",
                        "--dequantize",
                        "--batch-norm",
                        "--circular-columns"}) {
    sub->get_option("--init")->excludes(o);
  }
  group("Distributed (docs/distributed.md)",
        {"--nproc", "--master", "--dist-backend", "--dist-timeout", "--dist-buckets"});

  sub->callback([a, sub] {
    a->n_given = sub->get_option("--n")->count() > 0;
    a->warmup_given = sub->get_option("--warmup")->count() > 0;
    a->threads_given = sub->get_option("--threads")->count() > 0;
    a->dtype_given = sub->get_option("--dtype")->count() > 0;
    run_train(*a);
  });
}

}  // namespace zflow::cli
