// zflow integrate: importance sampling of a target with a fitted flow (or a plain uniform
// or Gaussian proposal): log Z or the integral with its standard error, the effective
// sample size, the unweighting efficiency, weighted samples and unweighted events.

#include <iostream>
#include <memory>

#include <ATen/ATen.h>

#include "common.h"
#include "outputs.h"
#include "target_options.h"
#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"
#include "zflow/io/table.h"
#include "zflow/train/progress.h"

namespace zflow::cli {

namespace {

struct IntegrateArgs {
  std::string model;
  std::string proposal;
  TargetArgs target;
  int64_t n = 1000000;
  int64_t batch = 65536;
  int64_t replicas = 100;
  int64_t seed = 0;
  std::string out;
  int64_t unweighted = 0;
  std::string events = "events.csv";
  bool json = false;
  bool quiet = false;
  int threads = 0;
};

/// The columns of a row: the target's variables x1..xD, then `last`.
std::vector<std::string> header(int64_t dim, const std::string& last) {
  std::vector<std::string> names;
  for (int64_t i = 1; i <= dim; ++i) names.push_back("x" + std::to_string(i));
  names.push_back(last);
  return names;
}

/// A plain Monte Carlo proposal: uniform on the domain (or plot box), or a Gaussian with
/// the plot box's centre and a quarter of its width as standard deviation.
Proposal plain_proposal(const std::string& kind, const Target& target) {
  const Domain box = target.domain().bounded() ? target.domain() : target.plot_box();
  if (kind == "uniform") return uniform_proposal(box);
  const BoxScale scale = box_scale(box);
  return normal_proposal(scale.center, scale.quarter);
}

/// Accept-reject on fresh samples until `a.unweighted` events are kept, streamed to
/// `a.events` with their weight (1, or w/w_max > 1 for an over-weight event).
void write_unweighted(const IntegrateArgs& a, const Proposal& proposal, const Target& target,
                      const ImportanceSummary& s) {
  // The replica-robust w_max, unless it is below the mean weight (no robust maximum at
  // this N): then the largest weight seen.
  const bool robust = s.unweighting_efficiency <= 1;
  const double efficiency = robust ? s.unweighting_efficiency : s.unweighting_efficiency_plain_max;
  const double log_w_max = robust ? s.log_w_max : s.log_w_largest;
  if (!(efficiency > 0)) throw Error("cannot unweight: the unweighting efficiency is 0");
  const int64_t limit = static_cast<int64_t>(
      std::min(9.0e18, 100.0 * static_cast<double>(a.unweighted) / efficiency));
  train::Progress progress("unweight", a.unweighted,
                           {a.quiet ? nullptr : &std::cerr, train::stderr_is_terminal(),
                            std::max<int64_t>(a.unweighted / 10, 1), "event"});
  int64_t kept = 0, drawn = 0, over = 0;
  io::write_atomically(a.events, [&](std::ostream& out) {
    io::TableStream table(out, io::is_npy_path(a.events), a.unweighted, target.dim() + 1,
                          at::kDouble, header(target.dim(), "weight"));
    while (kept < a.unweighted) {
      if (drawn >= limit) {
        throw Error("unweighting kept " + std::to_string(kept) + " events of " +
                    std::to_string(drawn) + " samples, far fewer than the efficiency promised");
      }
      const auto [x, log_w] = weighted_batch(proposal, target, a.batch, drawn);
      auto [rows, weights] = unweight(log_w, log_w_max, at::rand({x.size(0)}, at::kDouble));
      const int64_t take = std::min(rows.size(0), a.unweighted - kept);
      const at::Tensor picked = rows.narrow(0, 0, take);
      const at::Tensor w = weights.narrow(0, 0, take);
      over += (w > 1.0).sum().item<int64_t>();
      table.write(at::cat({x.to(at::kDouble).index_select(0, picked), w.unsqueeze(1)}, 1));
      kept += take;
      drawn += x.size(0);
      progress.update(kept);
    }
    table.finish();
  });
  progress.finish();
  if (!a.quiet) {
    std::cerr << "wrote " << kept << " unweighted events to " << a.events << " from " << drawn
              << " samples (" << over << " over-weight, kept with weight w/w_max)\n";
  }
}

void run_integrate(IntegrateArgs& a) {
  if (a.model.empty() == a.proposal.empty()) {
    throw ConfigError("give either --model (a fitted flow) or --proposal uniform|normal");
  }
  std::vector<PathArg> outputs;
  if (!a.out.empty()) outputs.push_back({"--out", a.out});
  if (a.unweighted > 0) outputs.push_back({"--events", a.events});
  check_outputs(outputs, {{"--model", a.model}});
  std::unique_ptr<Model> model;
  if (!a.model.empty()) model = std::make_unique<Model>(load_model(a.model));
  const TargetPtr target = load_target(a.target, model.get());
  if (model && (model->features != target->dim() || model->context_features > 0)) {
    throw ConfigError(a.model + " models " + std::to_string(model->features) +
                      (model->context_features > 0 ? " features given a context" : " features") +
                      ", the target " + target->name() +
                      " has D = " + std::to_string(target->dim()));
  }
  a.threads = apply_threads(a.threads, model ? workload_of(*model) : Workload::tabular);
  seed_torch(static_cast<uint64_t>(a.seed));
  const Proposal proposal =
      model ? flow_proposal(*model->flow) : plain_proposal(a.proposal, *target);
  ImportanceOptions options;
  options.samples = a.n;
  options.batch = a.batch;
  options.replicas = a.replicas;
  ImportanceSummary summary;
  if (a.out.empty()) {
    summary = importance_sample_with_progress(proposal, *target, options, a.quiet);
  } else {
    io::write_atomically(a.out, [&](std::ostream& out) {
      io::TableStream table(out, io::is_npy_path(a.out), a.n, target->dim() + 1, at::kDouble,
                            header(target->dim(), "log_weight"));
      options.on_batch = [&table](const at::Tensor& x, const at::Tensor& log_w, int64_t) {
        table.write(at::cat({x.to(at::kDouble), log_w.unsqueeze(1)}, 1));
      };
      summary = importance_sample_with_progress(proposal, *target, options, a.quiet);
      table.finish();
    });
  }
  const bool integral = target->domain().bounded();
  if (a.json) {
    Json j = to_json(summary);
    j["target"] = target->name();
    j["proposal"] = model ? a.model : a.proposal;
    if (target->log_normalizer()) j["exact_log_z"] = *target->log_normalizer();
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "target " << target->name() << " (D = " << target->dim() << "), proposal "
              << (model ? a.model : a.proposal) << ", " << summary.samples << " samples\n";
    print_summary(std::cout, summary, integral, target->log_normalizer());
  }
  if (a.unweighted > 0) write_unweighted(a, proposal, *target, summary);
}

}  // namespace

void add_integrate(CLI::App& app) {
  auto a = std::make_shared<IntegrateArgs>();
  CLI::App* sub = app.add_subcommand(
      "integrate",
      "Importance sampling of a target with a fitted flow: log Z (or the integral) with its "
      "standard error, ESS and unweighting efficiency; weighted samples and unweighted events");
  set_example(sub,
              "zflow integrate --model u1.safetensors -n 1000000\n"
              "  zflow integrate --model camel.safetensors -n 100000000 --json\n"
              "  zflow integrate --model camel.safetensors --unweighted 10000 --events events.csv\n"
              "  zflow integrate --target camel --proposal uniform -n 1000000");
  sub->add_option("--model", a->model, "The fitted flow (the proposal)")->check(CLI::ExistingFile);
  sub->add_option("--proposal", a->proposal,
                  "Plain Monte Carlo instead of a model: uniform on the target's domain (or "
                  "plot box), or normal around it")
      ->check(CLI::IsMember({"uniform", "normal"}));
  add_target_options(sub, a->target, false);
  sub->add_option("-n,--n", a->n, "Samples (streamed in batches: memory does not grow with n)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--batch", a->batch, "Samples per batch")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--replicas", a->replicas,
                  "Replicas for the robust maximum weight of the unweighting efficiency")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "Seed of the draws")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--out,-o", a->out,
                  "Write the weighted samples (x1..xD, log_weight) to this CSV or .npy file");
  sub->add_option("--unweighted", a->unweighted,
                  "Also draw this many unweighted events by accept-reject (written to --events)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--events", a->events, "Where the unweighted events go (CSV or .npy)")
      ->capture_default_str();
  sub->add_flag("--json", a->json, "Print the estimates as JSON");
  add_threads_option(sub, a->threads);
  sub->add_flag("--quiet,-q", a->quiet, "No progress on stderr");
  sub->callback([a] { run_integrate(*a); });
}

}  // namespace zflow::cli
