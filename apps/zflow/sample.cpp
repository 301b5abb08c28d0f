// zflow sample: draws points from a trained model.

#include <iostream>
#include <memory>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "common.h"
#include "zflow/core/error.h"

namespace zflow::cli {

namespace {

struct SampleArgs {
  std::string model;
  int64_t n = 1000;
  std::string out = "-";
  int64_t seed = 0;
  int64_t chunk = 65536;
  bool with_log_prob = false;
  int threads = 1;
};

void run_sample(const SampleArgs& a) {
  apply_threads(a.threads);
  const Model model = load_model(a.model);
  seed_torch(static_cast<uint64_t>(a.seed));
  c10::AutoGradMode no_grad(false);
  std::vector<at::Tensor> parts;
  for (int64_t done = 0; done < a.n; done += a.chunk) {
    const int64_t len = std::min(a.chunk, a.n - done);
    if (a.with_log_prob) {
      auto [x, log_prob] = model.flow->sample_and_log_prob(len);
      parts.push_back(at::cat({x, log_prob.unsqueeze(1)}, 1));
    } else {
      parts.push_back(model.flow->sample(len));
    }
  }
  at::Tensor samples = at::cat(parts);
  std::vector<std::string> header = header_or_none(model.columns);
  if (header.empty()) {
    for (int64_t i = 0; i < model.features; ++i) header.push_back("x" + std::to_string(i + 1));
  }
  if (a.with_log_prob) header.push_back("log_prob");
  const int64_t bad = samples.numel() - at::isfinite(samples).sum().item<int64_t>();
  if (bad > 0) {
    std::cerr << "zflow: warning: " << bad
              << " sampled values are NaN or Inf (the model is numerically unstable there)\n";
  }
  write_result(a.out, samples, header);
}

}  // namespace

void add_sample(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  CLI::App* sub = app.add_subcommand("sample", "Draw points from a trained model");
  set_example(sub, "zflow sample --model model.safetensors -n 1000 --out samples.csv");
  sub->add_option("--model,-m", a->model, "Model file written by 'zflow train'")->required();
  sub->add_option("-n,--n", a->n, "Number of points")->check(positive())->capture_default_str();
  sub->add_option("--out,-o", a->out, "Output .csv or .npy ('-': CSV on stdout)")
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "Random seed")->check(non_negative())->capture_default_str();
  sub->add_flag("--log-prob", a->with_log_prob, "Add a last column with log p(x) of each point");
  sub->add_option("--chunk", a->chunk, "Points drawn at a time")
      ->check(positive())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_sample(*a); });
}

}  // namespace zflow::cli
