// zflow eval: the mean negative log-likelihood of data under a trained model.

#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include <ATen/ATen.h>

#include "common.h"
#include "zflow/data/toy.h"

namespace zflow::cli {

namespace {

struct EvalArgs {
  std::string model;
  DataArgs input;
  int64_t batch_size = 4096;
  bool json = false;
  int threads = 1;
};

void run_eval(const EvalArgs& a) {
  const Model model = load_model(a.model);
  apply_threads(a.threads, workload_of(model));
  const ModelData loaded = load_model_data(model, a.input);
  const Data& data = loaded.x;
  const at::Tensor nll = -log_prob_of(model, loaded, a.batch_size).to(at::kDouble);
  const int64_t points = nll.size(0);
  const int64_t features = model.features;
  const int64_t non_finite = points - at::isfinite(nll).sum().item<int64_t>();
  const double mean = nll.mean().item<double>();
  const double std_error = points > 1 ? nll.std(/*unbiased=*/true).item<double>() /
                                            std::sqrt(static_cast<double>(points))
                                      : std::nan("");
  const double bits_per_dim = mean / (static_cast<double>(features) * std::log(2.0));

  double entropy = std::nan("");
  if (data.toy) {
    for (const auto& d : data::toy_datasets()) {
      if (d.name == data.source) entropy = d.entropy;
    }
  }

  if (a.json) {
    Json out = {{"model", a.model},
                {"data", data.source},
                {"points", points},
                {"features", features},
                {"context_features", model.context_features},
                {"nll", mean},
                {"nll_stderr", std_error},
                {"bits_per_dim", bits_per_dim},
                {"non_finite", non_finite}};
    if (data.toy) {
      out["seed"] = a.input.seed;
      out["entropy"] = entropy;
      out["gap"] = mean - entropy;
    }
    std::cout << out.dump() << std::endl;
  } else {
    auto fixed = [](const char* format, double value) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), format, value);
      return std::string(buf);
    };
    const std::string error = std::isnan(std_error) ? "n/a"
                              : std_error >= 0.001  ? fixed("%.3f", std_error)
                                                    : fixed("%.1g", std_error);
    std::cout << "test NLL " << fixed("%.3f", mean) << " ± " << error << " nats ("
              << fixed("%.3f", bits_per_dim) << " bits/dim) on " << points << " points";
    if (data.toy) {
      std::cout << "; entropy of " << data.source << " " << fixed("%.3f", entropy) << " (gap "
                << fixed("%+.3f", mean - entropy) << ")";
    }
    std::cout << std::endl;
  }
  if (non_finite > 0) {
    std::cerr << "zflow: warning: " << non_finite << " of " << points
              << " points have a non-finite log-likelihood\n";
  }
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand(
      "eval", "Mean test NLL (nats), its standard error and bits/dim of data under a model");
  set_example(sub,
              "zflow eval --model model.safetensors --data 8gaussians\n"
              "  zflow eval --model model.safetensors --data test.csv --json");
  sub->add_option("--model,-m", a->model, "Model file written by 'zflow train'")->required();
  add_data_options(sub, a->input);
  sub->add_option("--batch-size", a->batch_size, "Rows evaluated at a time")
      ->check(positive())
      ->capture_default_str();
  sub->add_flag("--json", a->json, "Print one JSON object instead of text");
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_eval(*a); });
}

}  // namespace zflow::cli
