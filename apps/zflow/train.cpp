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
#include "figures.h"
#include "outputs.h"
#include "report.h"
#include "signals.h"
#include "zflow/core/error.h"
#include "zflow/data/images.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/registry.h"
#include "zflow/io/atomic_file.h"
#include "zflow/train/trainer.h"
#include "zflow/transforms/elementwise.h"

namespace zflow::cli {

namespace {

struct TrainArgs {
  std::string data;
  std::string columns;
  std::string context_columns;
  int64_t embedding = 0;
  std::string header = "auto";
  int64_t n = 20000;
  // Whether --n was given (image data: all images unless it was).
  bool n_given = false;
  // Whether --warmup was given (image models warm up by default).
  bool warmup_given = false;
  // Empty: realnvp for tabular data, glow for images.
  std::string model;
  std::string spec_file;
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
};

struct Split {
  at::Tensor train;
  at::Tensor val;  // undefined when there is no validation set
  // Contexts of the same rows; undefined for an unconditional model.
  at::Tensor train_context;
  at::Tensor val_context;
};

Split split_data(const Data& data, const at::Tensor& context, const TrainArgs& a) {
  Split split;
  if (data.toy) {
    split.train = data.values;
    const auto n_val =
        static_cast<int64_t>(std::llround(static_cast<double>(a.n) * a.val_fraction));
    if (n_val > 0) {
      split.val =
          load_data(data.source, a.columns, a.header, n_val, static_cast<uint64_t>(a.seed) + 1)
              .values;
    }
    return split;
  }
  const int64_t rows = data.values.size(0);
  const auto n_val = static_cast<int64_t>(std::floor(static_cast<double>(rows) * a.val_fraction));
  if (n_val == 0) {
    split.train = data.values;
    split.train_context = context;
    return split;
  }
  if (rows - n_val < 1) {
    throw DataError(data.source + ": " + std::to_string(rows) +
                    " rows leave none for training after the validation split");
  }
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(a.seed));
  const at::Tensor order = at::randperm(rows, generator, at::TensorOptions(at::kLong));
  split.val = data.values.index_select(0, order.narrow(0, 0, n_val)).contiguous();
  split.train = data.values.index_select(0, order.narrow(0, n_val, rows - n_val)).contiguous();
  if (context.defined()) {
    split.val_context = context.index_select(0, order.narrow(0, 0, n_val)).contiguous();
    split.train_context =
        context.index_select(0, order.narrow(0, n_val, rows - n_val)).contiguous();
  }
  return split;
}

Json read_spec_file(const std::string& path) {
  const std::string text = io::read_file(path);
  Json spec;
  try {
    spec = Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!spec.is_object() || spec.value("type", std::string()) != "flow") {
    throw ConfigError(path + ": a flow spec must be a JSON object with \"type\": \"flow\"");
  }
  if (!spec.contains("transform") || !spec.contains("base")) {
    throw ConfigError(path + ": a flow spec needs \"transform\" and \"base\"");
  }
  // with_standardization inserts a first layer into a composite transform.
  if (!spec["transform"].is_object() ||
      spec["transform"].value("type", std::string()) != "composite") {
    spec["transform"] = Json{{"type", "composite"}, {"layers", Json::array({spec["transform"]})}};
  }
  return spec;
}

/// Fills in the default model and rejects a tabular model for images or the converse.
void check_model_choice(TrainArgs& a, bool images) {
  auto names = [](const std::vector<std::pair<std::string, std::string>>& list) {
    std::string out;
    for (const auto& [name, description] : list) out += (out.empty() ? "" : ", ") + name;
    return out;
  };
  if (!a.spec_file.empty()) return;
  if (a.model.empty()) a.model = images ? "glow" : "realnvp";
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
  if (a.builder.bins < 2) {
    throw ConfigError("--bins must be at least 2 (got " + std::to_string(a.builder.bins) + ")");
  }
  if (a.embedding > 0 && a.context_columns.empty()) {
    throw ConfigError("--embedding needs --context-columns (it embeds the context)");
  }
  if (a.out == "-") throw ConfigError("--out must be a file (a model cannot go to stdout)");
  if (!a.report.empty()) require_extension(a.report, ".html", "--report");
  if (a.device == "cuda" && !at::hasCUDA()) {
    throw ConfigError(
        "--device cuda: this zflow is built against a LibTorch without CUDA, or no "
        "CUDA GPU is visible");
  }
}

/// Makes `spec` conditional on `k` context features: the flow's context size, the context
/// standardisation (`context_mean`/`context_std`, skipped when empty) and the embedding.
Json with_context(Json spec, int64_t k, const std::vector<double>& context_mean,
                  const std::vector<double>& context_std, const TrainArgs& a) {
  const std::string where = a.spec_file.empty() ? "" : a.spec_file + ": ";
  // A builder's spec says the layers' context size, which differs with an embedding; a
  // hand-written spec must agree with the chosen columns.
  if (!a.spec_file.empty() && spec.contains("context_features") &&
      spec["context_features"] != Json(k)) {
    throw ConfigError(where +
                      "the spec has \"context_features\": " + spec["context_features"].dump() +
                      ", --context-columns chose " + std::to_string(k));
  }
  spec["context_features"] = k;
  if (!context_mean.empty() && !spec.contains("context_standardize")) {
    spec["context_standardize"] = {
        {"type", "standardize"}, {"mean", context_mean}, {"std", context_std}};
  }
  if (a.embedding > 0) {
    if (spec.contains("embedding")) {
      throw ConfigError(where + "the spec has an embedding already; drop --embedding");
    }
    spec["embedding"] = {{"type", "mlp"},
                         {"features", a.embedding},
                         {"hidden", a.builder.hidden},
                         {"layers", 1},
                         {"activation", a.builder.activation}};
  }
  return spec;
}

Json options_json(const TrainArgs& a, const Data& data) {
  Json o = {{"model", a.spec_file.empty() ? a.model : "spec:" + a.spec_file},
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
            {"resume", a.train.resume}};
  if (a.spec_file.empty()) {
    o["layers"] = a.builder.layers;
    o["hidden"] = a.builder.hidden;
    o["depth"] = a.builder.depth;
    o["activation"] = a.builder.activation;
    o["conditioner"] = a.builder.conditioner;
    o["scale_bound"] = a.builder.scale_bound;
    o["bins"] = a.builder.bins;
    o["tail_bound"] = a.builder.tail_bound;
    o["base"] = a.builder.base;
    o["levels"] = a.builder.levels;
    o["steps_per_level"] = a.builder.steps_per_level;
    o["coupling"] = a.builder.coupling;
    o["logit_alpha"] = a.builder.logit_alpha;
  }
  if (!a.context_columns.empty()) {
    o["context_columns"] = a.context_columns;
    o["embedding"] = a.embedding;
  }
  if (data.toy) o["n"] = a.n;
  return o;
}

/// Name of column `j` of `data` for messages: "'price' (column 3)" or "column 3" (1-based
/// as people count, the file's own numbering).
std::string column_label(const Data& data, int64_t j) {
  const int64_t file_index =
      j < static_cast<int64_t>(data.indices.size()) ? data.indices[static_cast<size_t>(j)] : j;
  const std::string number = "column " + std::to_string(file_index + 1);
  if (j < static_cast<int64_t>(data.columns.size()) &&
      !data.columns[static_cast<size_t>(j)].empty()) {
    return "'" + data.columns[static_cast<size_t>(j)] + "' (" + number + ")";
  }
  return number;
}

/// DataError for tabular data a flow cannot fit: constant columns (a point mass has no
/// density, and the NLL runs to -inf or NaN), and values whose standardisation overflows
/// (1e308 beside -1e308) — named by column and row before any training.
void check_trainable(const Data& data, const at::Tensor& train, bool standardize,
                     at::ScalarType dtype) {
  const at::Tensor lo = std::get<0>(train.min(0));
  const at::Tensor hi = std::get<0>(train.max(0));
  std::vector<std::string> constant;
  for (int64_t j = 0; j < train.size(1); ++j) {
    if (lo[j].item<double>() == hi[j].item<double>()) constant.push_back(column_label(data, j));
  }
  if (!constant.empty()) {
    std::string names;
    for (const auto& c : constant) names += (names.empty() ? "" : ", ") + c;
    throw DataError(data.source + ": " + names + (constant.size() == 1 ? " is" : " are") +
                    " constant in the training rows; a flow cannot model a fixed value: "
                    "leave it out with --columns");
  }
  const at::Tensor values = data.values.to(at::kDouble);
  at::Tensor mean = at::zeros({values.size(1)}, at::kDouble);
  at::Tensor std = at::ones({values.size(1)}, at::kDouble);
  if (standardize) {
    const auto fitted = StandardizeImpl::fit(train);
    mean = at::tensor(fitted->mean_values(), at::kDouble);
    std = at::tensor(fitted->std_values(), at::kDouble);
  }
  // What the model's first layer sees, in the model's dtype (1e308 is no float32).
  const at::Tensor z = ((values - mean) / std).to(dtype);
  // A mean or spread that overflowed makes every row look fine (x / inf = 0): blame the
  // column's largest value then.
  const at::Tensor broken = (~(at::isfinite(mean) & at::isfinite(std))).nonzero();
  int64_t row = -1, col = -1;
  if (broken.size(0) > 0) {
    col = broken[0][0].item<int64_t>();
    row = values.select(1, col).abs().argmax().item<int64_t>();
  } else if (const at::Tensor bad = (~at::isfinite(z)).nonzero(); bad.size(0) > 0) {
    row = bad[0][0].item<int64_t>();
    col = bad[0][1].item<int64_t>();
  }
  if (row >= 0) {
    throw DataError(
        data.source + ": row " + std::to_string(row + 1) + ", " + column_label(data, col) +
        ": the value " + fmt(data.values[row][col].item<double>()) +
        " overflows after standardisation (the column's mean or spread, or the "
        "standardised value in " +
        dtype_name(dtype) + ", is not a finite number); rescale the column or remove extreme rows");
  }
}

void run_train(TrainArgs& a) {
  validate(a);
  if (a.state.empty()) a.state = a.out + ".state";
  if (a.state == a.out) throw ConfigError("--state and --out must be different files");
  check_outputs(
      {{"--out", a.out}, {"--state", a.state}, {"--metrics", a.metrics}, {"--report", a.report}},
      {{"--data", a.data}, {"--spec", a.spec_file}});
  a.train.state_path = a.state;
  a.train.cosine = !a.no_cosine;
  a.train.seed = static_cast<uint64_t>(a.seed);
  a.builder.seed = static_cast<uint64_t>(a.seed);

  const std::string blas = active_blas();
  if (is_reference_blas(blas)) {
    std::cerr << "zflow: warning: the slow " << blas
              << " is active; install OpenBLAS (libopenblas0-pthread) for much faster training\n";
  }
  if (a.train.resume) {
    std::error_code ec;
    if (!std::filesystem::exists(a.state, ec)) {
      throw IOError(a.state + ": no training state to resume from (no such file)");
    }
  }

  // Data, and the context columns of the same rows.
  const bool images = data::is_image_source(a.data);
  check_model_choice(a, images);
  a.threads = apply_threads(a.threads, images ? Workload::other : Workload::tabular);
  const ModelData loaded =
      images ? ModelData{load_image_data(a.data, "train", a.n_given ? a.n : 0), Data()}
             : load_training_data(a.data, a.columns, a.context_columns, a.header, a.n,
                                  static_cast<uint64_t>(a.seed));
  const Data& data = loaded.x;
  const bool conditional = loaded.context.values.defined();
  const std::vector<int64_t> event_shape(data.values.sizes().begin() + 1,
                                         data.values.sizes().end());
  const int64_t features = data.values[0].numel();
  const int64_t context_features = conditional ? loaded.context.values.size(1) : 0;
  const Split split = split_data(data, loaded.context.values, a);
  const at::ScalarType dtype = a.dtype == "float64" ? at::kDouble : at::kFloat;
  if (!images) check_trainable(data, split.train, !a.no_standardize, dtype);

  // Model spec: a builder or a file, then the standardisation fitted on the training split.
  // The transforms see the embedded context (width --embedding) or the raw one.
  Json spec;
  if (!a.spec_file.empty()) {
    spec = read_spec_file(a.spec_file);
    if (!conditional && spec.value("context_features", int64_t{0}) > 0) {
      throw ConfigError(a.spec_file + ": the spec is conditional on a context of " +
                        spec["context_features"].dump() +
                        " features; choose its columns with --context-columns");
    }
  } else if (images) {
    spec = build_image_flow_spec(a.model, event_shape, a.builder);
  } else {
    a.builder.context_features = a.embedding > 0 ? a.embedding : context_features;
    spec = build_flow_spec(a.model, features, a.builder);
  }
  // Image models carry their own preprocessing (dequantisation, logit).
  Json standardization = nullptr;
  if (!a.no_standardize && !images) {
    const auto fitted = StandardizeImpl::fit(split.train);
    spec = with_standardization(spec, fitted->mean_values(), fitted->std_values());
    standardization = {{"mean", fitted->mean_values()}, {"std", fitted->std_values()}};
  }
  Json context_standardization = nullptr;
  if (conditional) {
    std::vector<double> mean;
    std::vector<double> std;
    if (!a.no_standardize) {
      const auto fitted = StandardizeImpl::fit(split.train_context);
      mean = fitted->mean_values();
      std = fitted->std_values();
      context_standardization = {{"mean", mean}, {"std", std}};
    }
    spec = with_context(spec, context_features, mean, std, a);
  }
  seed_torch(static_cast<uint64_t>(a.seed));
  FlowPtr flow = make_flow(spec);
  const auto shape = flow->event_shape();
  if (shape != event_shape) {
    std::ostringstream s;
    s << "the model spec is for events of shape " << c10::IntArrayRef(shape) << ", the data have ";
    if (images) {
      s << "images of shape " << c10::IntArrayRef(event_shape);
    } else {
      s << features << " column" << (features == 1 ? "" : "s");
    }
    throw ConfigError((a.spec_file.empty() ? "" : a.spec_file + ": ") + s.str());
  }
  flow->to(dtype);
  if (!a.spec_file.empty()) {
    // A hand-written spec can be inconsistent in ways only running it shows (a mask of
    // the wrong length): try a few rows, so that it is reported as a spec problem.
    try {
      c10::AutoGradMode no_grad(false);
      const int64_t rows = std::min<int64_t>(split.train.size(0), 2);
      flow->log_prob(split.train.narrow(0, 0, rows).to(dtype),
                     conditional ? split.train_context.narrow(0, 0, rows).to(dtype) : at::Tensor());
    } catch (const c10::Error& e) {
      throw ConfigError(a.spec_file +
                        ": the spec does not fit the data: " + e.what_without_backtrace());
    }
  }
  const int64_t params = count_parameters(*flow);
  const std::string model_name = a.spec_file.empty() ? a.model : "spec " + a.spec_file;

  // Metrics: JSON lines as they arrive (appended when resuming), and kept for the report.
  std::vector<Json> records;
  if (a.train.resume && !a.report.empty() && !a.metrics.empty()) {
    records = read_metrics(a.metrics);  // the curves of the run so far
  }
  std::unique_ptr<io::LineAppender> metrics;
  if (!a.metrics.empty()) {
    metrics = std::make_unique<io::LineAppender>(a.metrics, a.train.resume);
  }
  a.train.on_metrics = [&metrics, &records, &a](const Json& record) {
    if (!a.report.empty()) records.push_back(record);
    if (metrics) metrics->write_line(record.dump());
  };
  if (images) a.train.bits_per_dim_dims = features;
  // Deep image flows at full learning rate from the first step can throw a batch's loss up
  // by orders of magnitude (seen with Glow on Fashion-MNIST); a short warm-up avoids it.
  if (images && !a.warmup_given) a.train.warmup = std::min<int64_t>(500, a.train.steps / 10);
  if (!a.quiet) {
    a.train.progress = {&std::cerr, train::stderr_is_terminal(),
                        std::max<int64_t>(a.train.steps / 20, 1), "step"};
    const std::string what =
        images ? " images of " + data.source + " (" + shape_string(event_shape)
               : " points of " + data.source + " (" + std::to_string(features) + " columns" +
                     (conditional ? " given " + std::to_string(context_features) +
                                        " context column" + (context_features == 1 ? "" : "s")
                                  : std::string());
    std::cerr << "zflow: training " << model_name << " (" << params << " params, " << a.dtype
              << ") on " << split.train.size(0) << what
              << (split.val.defined() ? ", " + std::to_string(split.val.size(0)) + " for validation"
                                      : std::string(", no validation set"))
              << "), " << a.threads << " thread" << (a.threads == 1 ? "" : "s")
              << (a.train.resume ? ", resuming from " + a.state : std::string()) << "\n";
  }

  // The model and the whole data set go to the device once; batches are taken there.
  const at::Device device(a.device);
  flow->to(device);
  auto in_dtype = [dtype, device](const at::Tensor& t) {
    return t.defined() ? t.to(device, dtype).contiguous() : at::Tensor();
  };
  const at::Tensor train_data = in_dtype(split.train);
  const at::Tensor val_data = in_dtype(split.val);
  // SIGINT/SIGTERM stop the loop at the next step; the state and the best model so far
  // are then saved below, and the exit code says which signal it was.
  StopSignals signals;
  a.train.stop_requested = [] { return StopSignals::received() != 0; };
  const train::TrainResult result =
      train::train_flow(*flow, train_data, val_data, a.train, in_dtype(split.train_context),
                        in_dtype(split.val_context));
  if (result.already_finished) {
    std::cerr << "zflow: the run in " << a.state << " already reached step " << result.steps_done
              << " of " << a.train.steps << "; nothing to do, " << a.out
              << " is unchanged (raise --steps to train further)\n";
    return;
  }

  // The model file, with what later commands (and people) need to know.
  Json columns = Json::array();
  for (const auto& c : data.columns) columns.push_back(c);
  Json context_columns = Json::array();
  for (const auto& c : loaded.context.columns) context_columns.push_back(c);
  const Json train_json = {{"options", options_json(a, data)},
                           {"result",
                            {{"steps", result.steps_done},
                             {"best_step", result.best_step},
                             {"best_val_nll", result.best_val_nll},
                             {"validation", split.val.defined() ? "held-out" : "training subset"},
                             {"final_train_nll", result.final_train_nll},
                             {"skipped_steps", result.skipped_steps},
                             {"stopped_early", result.stopped_early},
                             {"interrupted", result.interrupted},
                             {"seconds", result.seconds}}}};
  std::map<std::string, std::string> metadata = {
      {"dataset", data.source},
      {"columns", columns.dump()},
      {"features", std::to_string(features)},
      {"model", model_name},
      {"train", train_json.dump()},
      {"standardization", standardization.dump()},
      {"data_column_indices", Json(data.indices).dump()},
      {"context_columns", context_columns.dump()},
      {"context_features", std::to_string(context_features)},
      {"context_standardization", context_standardization.dump()}};
  if (conditional) {
    metadata["context_column_indices"] = Json(loaded.context.indices).dump();
  }
  if (images) metadata["image_shape"] = Json(event_shape).dump();
  if (!a.metrics.empty()) {
    std::error_code ec;
    const auto absolute = std::filesystem::absolute(a.metrics, ec);
    metadata["metrics_file"] = Json(ec ? a.metrics : absolute.string()).dump();
  }
  save_checkpoint(a.out, *flow, metadata);
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
    report.metrics = records;
    report.data = a.data;
    report.seed = static_cast<uint64_t>(a.seed);
    write_report(a.report, load_model(a.out), report);
  }

  if (!a.quiet) {
    std::cerr << "trained " << model_name << " (" << params << " params) for " << result.steps_done
              << " steps in " << fmt(result.seconds, 3) << " s: best "
              << (split.val.defined() ? "validation" : "training-subset") << " NLL "
              << fmt(result.best_val_nll);
    if (images)
      std::cerr << " (" << fmt(train::bits_per_dim(result.best_val_nll, features)) << " bits/dim)";
    std::cerr << " at step " << result.best_step;
    if (result.skipped_steps > 0) std::cerr << " (" << result.skipped_steps << " steps skipped)";
    if (result.stopped_early) std::cerr << " (stopped early)";
    std::cerr << "; wrote " << a.out << (a.report.empty() ? "" : " and " + a.report) << "\n";
  }
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* sub = app.add_subcommand(
      "train", "Fit a flow to data by maximum likelihood and write a model file");
  set_example(
      sub,
      "zflow train --data 8gaussians --model realnvp --steps 2000 --out model.safetensors\n"
      "  zflow train --data measurements.csv --columns 0-3 --out model.safetensors\n"
      "  zflow train --data runs.csv --context-columns temp --model maf --out cond.safetensors\n"
      "  zflow train --data fashion-mnist --model glow --hidden 64 --steps 3000 --out "
      "glow.safetensors");

  std::vector<std::string> models;
  for (const auto& [name, description] : builder_names()) models.push_back(name);
  models.push_back("realnvp-image");

  sub->add_option("--data", a->data,
                  "A built-in dataset (see 'zflow datasets'), a .csv/.npy file, or images: "
                  "fashion-mnist, an IDX file or a folder of PNGs")
      ->required();
  sub->add_option(
      "--columns", a->columns,
      "Columns to use: indices, ranges a-b or names, e.g. '0,2-4,price' (default: all)");
  sub->add_option("--context-columns", a->context_columns,
                  "Columns of the same file used as the context c of a conditional flow "
                  "(the data are then --columns, default: all the others)");
  sub->add_option("--header", a->header, "Whether the CSV has a header row")
      ->check(CLI::IsMember({"auto", "yes", "no"}))
      ->capture_default_str();
  sub->add_option("--n", a->n, "Points drawn for a built-in dataset (images: use the first n)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--out,-o", a->out, "Model file to write (safetensors)")->capture_default_str();

  sub->add_option("--model", a->model,
                  "Architecture (default: realnvp for tabular data, glow for images)")
      ->check(CLI::IsMember(models));
  sub->add_option("--spec", a->spec_file, "A JSON flow spec to train instead of a ready-made model")
      ->check(CLI::ExistingFile);
  sub->add_option("--layers", a->builder.layers, "Coupling or autoregressive layers (glow: steps)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--hidden", a->builder.hidden,
                  "Hidden width of the conditioners (images: hidden channels)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--depth", a->builder.depth, "Hidden layers per conditioner")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--activation", a->builder.activation, "Conditioner activation")
      ->capture_default_str();
  sub->add_option("--conditioner", a->builder.conditioner, "Conditioner network")
      ->check(CLI::IsMember({"mlp", "resmlp"}))
      ->capture_default_str();
  sub->add_option("--scale-bound", a->builder.scale_bound,
                  "Bound of the affine couplings' soft-clamped log-scale")
      ->capture_default_str();
  sub->add_option("--bins", a->builder.bins, "Spline bins (nsf-coupling, nsf-autoregressive)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--tail-bound", a->builder.tail_bound,
                  "Splines act on [-B, B] (standardised units), identity outside")
      ->capture_default_str();
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
  sub->add_option("--logit-alpha", a->builder.logit_alpha,
                  "Images: logit preprocessing logit(a + (1-2a)x) with this a (0: none; "
                  "default: glow none, realnvp-image 0.05)");
  sub->add_option("--base", a->builder.base, "Base distribution")
      ->check(CLI::IsMember({"standard_normal", "diagonal_normal"}))
      ->capture_default_str();
  sub->add_option("--dtype", a->dtype, "Floating-point type of the model")
      ->check(CLI::IsMember({"float32", "float64"}))
      ->capture_default_str();
  sub->add_option("--device", a->device,
                  "Where to train: cpu, or cuda (a CUDA GPU, with a CUDA-enabled LibTorch); the "
                  "model file is written for the CPU either way")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub->add_flag("--no-standardize", a->no_standardize,
                "Do not insert a standardisation fitted on the training split");

  sub->add_option("--steps", a->train.steps,
                  "Optimizer steps in all (a resumed run continues to this)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--batch-size", a->train.batch_size, "Minibatch size")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--lr", a->train.lr, "Peak learning rate")->capture_default_str();
  sub->add_option("--optimizer", a->train.optimizer, "Optimizer")
      ->check(CLI::IsMember({"adam", "adamw"}))
      ->capture_default_str();
  sub->add_option("--weight-decay", a->train.weight_decay, "Weight decay")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_flag("--no-cosine", a->no_cosine, "Keep the learning rate constant (no cosine decay)");
  sub->add_option("--warmup", a->train.warmup,
                  "Linear learning-rate warm-up steps (image models: min(500, steps/10) unless "
                  "given)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--clip", a->train.clip_grad_norm, "Clip the gradient norm (<= 0: no clipping)")
      ->capture_default_str();
  sub->add_option("--val-fraction", a->val_fraction,
                  "Held-out fraction for validation (toy data: a fresh draw of n*fraction)")
      ->capture_default_str();
  sub->add_option("--eval-every", a->train.eval_every, "Validate every this many steps")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--patience", a->train.patience,
                  "Stop after this many validations without improvement (0: never)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--max-nonfinite", a->train.max_nonfinite,
                  "Give up after this many non-finite steps in a row")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "Seed of the split, the initialisation and the minibatches")
      ->check(non_negative())
      ->capture_default_str();

  add_threads_option(sub, a->threads);
  sub->add_option("--metrics", a->metrics, "Write metrics as JSON lines to this file");
  sub->add_option("--report", a->report,
                  "Also write an HTML report of the run (configuration, curves, pictures)");
  sub->add_option("--log-every", a->train.log_every,
                  "Also write a metrics record every this many steps (0: only at validations)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--state", a->state, "Resumable training state (default: OUT.state)");
  sub->add_flag("--resume", a->train.resume, "Continue from the training state");
  sub->add_flag("--quiet,-q", a->quiet, "No progress or summary on stderr");

  auto group = [sub](const char* name, std::initializer_list<const char*> options) {
    for (const char* o : options) sub->get_option(o)->group(name);
  };
  group("Model",
        {"--model", "--spec", "--layers", "--hidden", "--depth", "--activation", "--conditioner",
         "--scale-bound", "--bins", "--tail-bound", "--embedding", "--levels", "--steps-per-level",
         "--coupling", "--logit-alpha", "--base", "--dtype", "--device", "--no-standardize"});
  group("Optimisation", {"--steps", "--batch-size", "--lr", "--optimizer", "--weight-decay",
                         "--no-cosine", "--warmup", "--clip", "--val-fraction", "--eval-every",
                         "--patience", "--max-nonfinite", "--seed"});
  group("Run",
        {"--threads", "--metrics", "--report", "--log-every", "--state", "--resume", "--quiet"});

  sub->callback([a, sub] {
    a->n_given = sub->get_option("--n")->count() > 0;
    a->warmup_given = sub->get_option("--warmup")->count() > 0;
    run_train(*a);
  });
}

}  // namespace zflow::cli
