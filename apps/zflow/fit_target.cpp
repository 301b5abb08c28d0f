// zflow fit-target: fits a flow to an unnormalised target density (no data) by variational
// inference or importance-sampling objectives, and writes a model file.

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "common.h"
#include "figures.h"
#include "outputs.h"
#include "report.h"
#include "signals.h"
#include "target_options.h"
#include "training_options.h"
#include "zflow/core/error.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/model_card.h"
#include "zflow/flows/registry.h"
#include "zflow/io/atomic_file.h"
#include "zflow/train/trainer.h"
#include "zflow/variational/objectives.h"

namespace zflow::cli {

namespace {

struct FitTargetArgs {
  TargetArgs target;
  std::string model = kDefaultTabularModel;
  BuilderOptions builder;
  VariationalOptions variational;
  train::TrainOptions train;
  bool no_cosine = false;
  bool no_standardize = false;
  int64_t seed = 0;
  int threads = 0;
  std::string dtype = "float32";
  int64_t final_samples = 100000;
  std::string metrics;
  std::string report;
  std::string out = "model.safetensors";
  std::string state;
  bool quiet = false;
};

/// The flow for `target`: a box-supported model for a bounded domain; otherwise the model
/// on R^D behind a fixed affine map that brings the target's plot box onto [−2, 2]^D, so
/// that the base's scale meets the target's (gmm40 spans ±40).
FlowPtr build_flow(const FitTargetArgs& a, const Target& target, at::ScalarType dtype) {
  Json spec;
  BuilderOptions builder = a.builder;
  builder.seed = static_cast<uint64_t>(a.seed);
  const Domain domain = target.domain();
  if (domain.bounded()) {
    spec = build_box_flow_spec(a.model, target.dim(), builder, domain.low, domain.high);
  } else {
    spec = build_flow_spec(a.model, target.dim(), builder);
    if (!a.no_standardize) {
      const BoxScale scale = box_scale(target.plot_box());
      spec = with_standardization(spec, scale.center, scale.quarter);
    }
  }
  seed_torch(static_cast<uint64_t>(a.seed));
  FlowPtr flow = make_flow(spec);
  flow->to(dtype);
  return flow;
}

/// Trains with progress, metrics, the resumable state and SIGINT/SIGTERM.
train::TrainResult fit(const FitTargetArgs& a, FlowImpl& flow,
                       std::shared_ptr<VariationalObjective> objective,
                       const std::function<void(const Json&)>& metrics) {
  train::TrainOptions options = a.train;
  options.state_path = "";
  options.seed = static_cast<uint64_t>(a.seed);
  options.cosine = !a.no_cosine;
  train::Trainer trainer(flow, options);
  trainer.set_objective(std::move(objective));
  if (!a.quiet) {
    trainer.add_callback(std::make_shared<train::ProgressCallback>(
        train::ProgressOptions{&std::cerr, train::stderr_is_terminal(),
                               std::max<int64_t>(options.steps / 20, 1), "step"}));
  }
  trainer.add_callback(std::make_shared<train::MetricsCallback>(metrics, options.log_every));
  trainer.add_callback(std::make_shared<train::CheckpointCallback>(a.state));
  trainer.add_callback(
      std::make_shared<train::StopCallback>([] { return StopSignals::received() != 0; }));
  if (a.train.resume) trainer.resume_from(a.state);
  return trainer.fit({});
}

Json options_json(const FitTargetArgs& a) {
  const VariationalOptions& v = a.variational;
  return {{"objective", v.objective},
          {"alpha", v.alpha},
          {"anneal_from", v.anneal_from},
          {"anneal_steps", v.anneal_steps},
          {"buffer", v.buffer_capacity},
          {"refresh_every", v.refresh_every},
          {"validation_samples", v.validation_samples},
          {"steps", a.train.steps},
          {"batch_size", a.train.batch_size},
          {"lr", a.train.lr},
          {"seed", a.seed},
          {"dtype", a.dtype},
          {"layers", a.builder.layers},
          {"hidden", a.builder.hidden},
          {"bins", a.builder.bins},
          {"base", a.builder.base}};
}

void print_summary(const FitTargetArgs& a, const Target& target,
                   const VariationalObjective& objective, int64_t params,
                   const train::TrainResult& result, const ImportanceSummary* estimate) {
  std::cerr << "fitted " << a.model << " (" << params << " params) to " << target.name() << " by "
            << objective.name() << " for " << result.steps_done << " steps in "
            << fmt(result.seconds, 3) << " s: best validation " << objective.validation_measure()
            << " " << fmt(result.best_val_nll) << " at step " << result.best_step;
  if (result.skipped_steps > 0) std::cerr << " (" << result.skipped_steps << " steps skipped)";
  std::cerr << "; wrote " << a.out << "\n";
  if (estimate) {
    std::cerr << "importance sampling with " << estimate->samples << " samples of the flow:\n";
    print_summary(std::cerr, *estimate, target.domain().bounded(), target.log_normalizer());
  }
}

/// Writes the model with its card: the options, the target, what training did and the
/// final estimate.
void save_model(const FitTargetArgs& a, const Target& target, const std::string& measure,
                FlowImpl& flow, const train::TrainResult& result,
                const ImportanceSummary* estimate) {
  ModelCard card;
  card.dataset = "target " + target.name();
  card.model = a.model;
  card.features = target.dim();
  // A TorchScript file by its absolute path, so that later commands find it from elsewhere.
  std::error_code ec;
  std::string source = a.target.target;
  if (std::filesystem::is_regular_file(source, ec)) {
    source = std::filesystem::absolute(source, ec).string();
  }
  card.train = {{"options", options_json(a)},
                {"target", target_json(target, source)},
                {"result",
                 {{"steps", result.steps_done},
                  {"best_step", result.best_step},
                  {"best_val_loss", result.best_val_nll},
                  {"validation", measure + " on fresh samples of the flow"},
                  {"skipped_steps", result.skipped_steps},
                  {"interrupted", result.interrupted},
                  {"seconds", result.seconds}}}};
  if (estimate) card.train["estimate"] = to_json(*estimate);
  if (!a.metrics.empty()) card.metrics_file = std::filesystem::absolute(a.metrics, ec).string();
  save_checkpoint(a.out, flow, card.to_metadata());
}

void run_fit_target(FitTargetArgs& a) {
  if (a.state.empty()) a.state = a.out + ".state";
  if (a.state == a.out) throw ConfigError("--state and --out must be different files");
  check_outputs(
      {{"--out", a.out}, {"--state", a.state}, {"--metrics", a.metrics}, {"--report", a.report}},
      {{"--target", a.target.target}});
  std::error_code ec;
  if (a.train.resume && !std::filesystem::exists(a.state, ec)) {
    throw IOError(a.state + ": no training state to resume from (no such file)");
  }
  const TargetPtr target = load_target(a.target, nullptr);
  // Far from the target, weights span hundreds of orders of magnitude and the gradients of
  // the samples that carry none are subnormal floats, which the CPU computes on about a
  // hundred times slower (camel, D = 8: 1 step/s instead of 10). They count for nothing:
  // flush them to zero.
  at::globalContext().setFlushDenormal(true);
  auto objective = make_variational_objective(target, a.variational);
  a.threads = apply_threads(a.threads, Workload::tabular);
  const at::ScalarType dtype = a.dtype == "float64" ? at::kDouble : at::kFloat;
  FlowPtr flow = build_flow(a, *target, dtype);
  const int64_t params = count_parameters(*flow);
  if (!a.quiet) {
    std::cerr << "zflow: fitting " << a.model << " (" << params << " params, " << a.dtype << ") to "
              << target->name() << " (D = " << target->dim()
              << (target->domain().bounded() ? ", bounded" : "") << ") by " << objective->name()
              << ", batches of " << a.train.batch_size << ", " << a.threads << " thread"
              << (a.threads == 1 ? "" : "s")
              << (a.train.resume ? ", resuming from " + a.state : std::string()) << "\n";
  }
  // Metrics go to the file as they arrive and are kept for the report.
  std::unique_ptr<io::LineAppender> metrics_file;
  if (!a.metrics.empty()) {
    metrics_file = std::make_unique<io::LineAppender>(a.metrics, a.train.resume);
  }
  std::vector<Json> records;
  if (a.train.resume && !a.report.empty() && !a.metrics.empty()) records = read_metrics(a.metrics);
  StopSignals signals;
  const train::TrainResult result = fit(a, *flow, objective, [&](const Json& record) {
    if (metrics_file) metrics_file->write_line(record.dump());
    if (!a.report.empty()) records.push_back(record);
  });
  if (result.already_finished) {
    std::cerr << "zflow: the run in " << a.state << " already reached step " << result.steps_done
              << "; nothing to do, " << a.out << " is unchanged (raise --steps to train further)\n";
    return;
  }
  std::optional<ImportanceSummary> estimate;
  if (!result.interrupted && a.final_samples > 0) {
    ImportanceOptions io;
    io.samples = a.final_samples;
    estimate = importance_sample_with_progress(flow_proposal(*flow), *target, io, a.quiet);
  }
  save_model(a, *target, objective->validation_measure(), *flow, result,
             estimate ? &*estimate : nullptr);
  if (result.interrupted) {
    const int signal = StopSignals::received();
    throw Interrupted(signal, "interrupted by " + signal_name(signal) + " at step " +
                                  std::to_string(result.steps_done) + ": saved the state to " +
                                  a.state + " and the best model so far to " + a.out +
                                  "; continue with --resume");
  }
  if (!a.report.empty()) {
    ReportOptions report;
    report.metrics = std::move(records);
    report.seed = static_cast<uint64_t>(a.seed);
    write_report(a.report, load_model(a.out), report);
  }
  if (!a.quiet) {
    print_summary(a, *target, *objective, params, result, estimate ? &*estimate : nullptr);
  }
}

void add_objective_options(CLI::App* sub, VariationalOptions& v) {
  std::vector<std::string> names;
  std::string help = "What to minimise:";
  for (const auto& [name, line] : variational_objective_names()) {
    names.push_back(name);
    help += " " + name + " (" + line + ");";
  }
  help.pop_back();
  sub->add_option("--objective", v.objective, help)
      ->check(CLI::IsMember(names))
      ->capture_default_str();
  sub->add_option(
         "--alpha", v.alpha,
         "alpha of Renyi's bound, in [0, 1): near 1 reverse KL, 0 the importance-weighted bound")
      ->capture_default_str();
  sub->add_option("--anneal-from", v.anneal_from,
                  "Temper the target as p^beta, beta rising geometrically from this value in "
                  "(0, 1] to 1 over --anneal-steps")
      ->capture_default_str();
  sub->add_option("--anneal-steps", v.anneal_steps, "Steps of the annealing (0: none)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--buffer", v.buffer_capacity,
                  "fkl, variance: samples kept in the buffer (0: 10 batches)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--refresh-every", v.refresh_every,
                  "fkl, variance: draw a fresh batch into the buffer every this many steps")
      ->check(positive())
      ->capture_default_str();
  sub->add_option(
         "--val-samples", v.validation_samples,
         "Samples of each validation (the objective's score on them selects the best model)")
      ->check(positive())
      ->capture_default_str();
}

}  // namespace

void add_fit_target(CLI::App& app) {
  auto a = std::make_shared<FitTargetArgs>();
  a->train.steps = 3000;
  a->train.batch_size = 1024;
  a->train.lr = 1e-3;
  CLI::App* sub = app.add_subcommand(
      "fit-target",
      "Fit a flow to an unnormalised density (no data) by reverse KL, Renyi's bound or "
      "buffered importance-sampling losses, and write a model file");
  set_example(
      sub,
      "zflow fit-target --target u1 --steps 2000 --out u1.safetensors\n"
      "  zflow fit-target --target camel --dim 8 --objective variance --out camel.safetensors\n"
      "  zflow fit-target --target posterior.pt --dim 5 --objective stl --out post.safetensors");
  add_target_options(sub, a->target, true);
  sub->add_option("--out,-o", a->out, "Model file to write (safetensors)")->capture_default_str();
  std::vector<std::string> models;
  for (const auto& [name, description] : builder_names()) models.push_back(name);
  sub->add_option("--model", a->model,
                  "Architecture (on a bounded domain, the spline models act on the box itself, "
                  "the others behind a logit). planar, radial, sylvester: the flows of Rezende "
                  "& Mohamed and van den Berg et al., closed form in the sampling direction; "
                  "they want many layers and an annealed target, e.g. --layers 32 --lr 0.01 "
                  "--anneal-from 0.01 --anneal-steps 1000")
      ->check(CLI::IsMember(models))
      ->capture_default_str();
  add_builder_options(sub, a->builder);
  add_dtype_option(sub, a->dtype);
  sub->add_flag("--no-standardize", a->no_standardize,
                "Do not map the target's plot box onto [-2, 2]^D before the flow (unbounded "
                "targets)");
  add_objective_options(sub, a->variational);
  add_optimiser_options(sub, a->train, a->no_cosine, a->seed);
  sub->add_option("--final-samples", a->final_samples,
                  "Importance samples for the estimate of log Z after training (0: none)")
      ->check(non_negative())
      ->capture_default_str();
  add_run_options(sub, a->threads, a->metrics, a->report, a->train, a->state, a->quiet);
  auto group = [sub](const char* name, std::initializer_list<const char*> options) {
    for (const char* o : options) sub->get_option(o)->group(name);
  };
  group("Model",
        {"--model", "--layers", "--hidden", "--depth", "--activation", "--conditioner",
         "--scale-bound", "--bins", "--tail-bound", "--base", "--dtype", "--no-standardize"});
  group("Objective", {"--objective", "--alpha", "--anneal-from", "--anneal-steps", "--buffer",
                      "--refresh-every", "--val-samples"});
  group("Optimisation",
        {"--steps", "--batch-size", "--lr", "--optimizer", "--weight-decay", "--no-cosine",
         "--warmup", "--clip", "--eval-every", "--patience", "--max-nonfinite", "--seed"});
  group("Run", {"--threads", "--final-samples", "--metrics", "--report", "--log-every", "--state",
                "--resume", "--quiet"});
  sub->callback([a] { run_fit_target(*a); });
}

}  // namespace zflow::cli
