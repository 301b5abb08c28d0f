// zflow log-prob: log p(x) of every row of a data file under a trained model.

#include <iostream>
#include <memory>

#include "common.h"
#include "ode_options.h"
#include "outputs.h"

namespace zflow::cli {

namespace {

struct LogProbArgs {
  std::string model;
  DataArgs input;
  std::string out = "-";
  int64_t batch_size = 4096;
  int threads = 1;
  std::string device = "cpu";
  SolverArgs solver;
};

void run_log_prob(const LogProbArgs& a) {
  check_outputs({{"--out", a.out}}, {{"--model", a.model}, {"--data", a.input.data}});
  Model model = load_model(a.model);
  use_device(model, a.device);
  apply_threads(a.threads, workload_of(model));
  apply_solver_options(model, a.solver);
  const ModelData data = load_model_data(model, a.input);
  const at::Tensor log_prob = log_prob_of(model, data, a.batch_size);
  warn_non_finite(log_prob, a.out,
                  "the model cannot score these rows in " + dtype_name(model.dtype) +
                      "; check them for values far outside the training data");
  write_result(a.out, log_prob.unsqueeze(1), {"log_prob"});
  print_nfe(model);
}

}  // namespace

void add_log_prob(CLI::App& app) {
  auto a = std::make_shared<LogProbArgs>();
  CLI::App* sub = app.add_subcommand(
      "log-prob",
      "Write log p(x) (nats; log p(x | c) for a conditional model) of every row, one per line");
  set_example(sub, "zflow log-prob --model model.safetensors --data test.csv --out logp.csv");
  sub->add_option("--model,-m", a->model, "Model file written by 'zflow train'")->required();
  add_data_options(sub, a->input);
  sub->add_option("--out,-o", a->out, "Output .csv or .npy ('-': CSV on stdout)")
      ->capture_default_str();
  sub->add_option("--batch-size", a->batch_size, "Rows evaluated at a time")
      ->check(positive())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  add_device_option(sub, a->device);
  add_solver_options(sub, a->solver);
  sub->callback([a] { run_log_prob(*a); });
}

}  // namespace zflow::cli
