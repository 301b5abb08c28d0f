// zflow log-prob: log p(x) of every row of a data file under a trained model.

#include <memory>

#include "common.h"

namespace zflow::cli {

namespace {

struct LogProbArgs {
  std::string model;
  std::string data;
  std::string columns;
  std::string context_columns;
  std::string header = "auto";
  int64_t n = 100000;
  int64_t seed = 1000000;
  std::string out = "-";
  int64_t batch_size = 4096;
  int threads = 1;
};

void run_log_prob(const LogProbArgs& a) {
  apply_threads(a.threads);
  const Model model = load_model(a.model);
  const ModelData data = load_model_data(model, a.data, a.columns, a.context_columns, a.header, a.n,
                                         static_cast<uint64_t>(a.seed));
  const at::Tensor log_prob = log_prob_of(model, data, a.batch_size);
  write_result(a.out, log_prob.unsqueeze(1), {"log_prob"});
}

}  // namespace

void add_log_prob(CLI::App& app) {
  auto a = std::make_shared<LogProbArgs>();
  CLI::App* sub = app.add_subcommand(
      "log-prob",
      "Write log p(x) (nats; log p(x | c) for a conditional model) of every row, one per line");
  set_example(sub, "zflow log-prob --model model.safetensors --data test.csv --out logp.csv");
  sub->add_option("--model,-m", a->model, "Model file written by 'zflow train'")->required();
  sub->add_option("--data", a->data, "A .csv/.npy file, or a built-in dataset name")->required();
  sub->add_option("--columns", a->columns, "Columns to use (default: all)");
  add_context_columns_option(sub, a->context_columns);
  sub->add_option("--header", a->header, "Whether the CSV has a header row")
      ->check(CLI::IsMember({"auto", "yes", "no"}))
      ->capture_default_str();
  sub->add_option("--n", a->n, "Points drawn for a built-in dataset")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "Seed for a built-in dataset (distinct from training seeds)")
      ->check(non_negative())
      ->capture_default_str();
  sub->add_option("--out,-o", a->out, "Output .csv or .npy ('-': CSV on stdout)")
      ->capture_default_str();
  sub->add_option("--batch-size", a->batch_size, "Rows evaluated at a time")
      ->check(positive())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_log_prob(*a); });
}

}  // namespace zflow::cli
