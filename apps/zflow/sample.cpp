// zflow sample: draws points from a trained model (given contexts for a conditional one).

#include <algorithm>
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
  std::string context;
  std::string context_file;
  int threads = 1;
};

/// n points (with their log-probability as a last column when asked): [n, D(+1)].
at::Tensor draw(FlowImpl& flow, int64_t n, int64_t chunk, bool with_log_prob) {
  std::vector<at::Tensor> parts;
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t len = std::min(chunk, n - done);
    if (with_log_prob) {
      auto [x, log_prob] = flow.sample_and_log_prob(len);
      parts.push_back(at::cat({x, log_prob.unsqueeze(1)}, 1));
    } else {
      parts.push_back(flow.sample(len));
    }
  }
  return at::cat(parts);
}

/// n points for each of the C contexts [C, K], context-major: [C·n, K + D(+1)], every row
/// starting with its context. At most about `chunk` points are drawn at a time.
at::Tensor draw_conditional(FlowImpl& flow, const at::Tensor& contexts, int64_t n, int64_t chunk,
                            bool with_log_prob) {
  const int64_t count = contexts.size(0);
  const int64_t group = std::max<int64_t>(1, chunk / n);  // contexts per call
  const int64_t per_call = std::min(n, chunk);            // points per context per call
  std::vector<at::Tensor> rows;
  for (int64_t first = 0; first < count; first += group) {
    const int64_t g = std::min(group, count - first);
    const at::Tensor c = contexts.narrow(0, first, g);
    std::vector<at::Tensor> pieces;  // [g, len, D(+1)]
    for (int64_t done = 0; done < n; done += per_call) {
      const int64_t len = std::min(per_call, n - done);
      if (with_log_prob) {
        auto [x, log_prob] = flow.sample_and_log_prob(len, c);
        pieces.push_back(at::cat({x, log_prob.unsqueeze(2)}, 2));
      } else {
        pieces.push_back(flow.sample(len, c));
      }
    }
    const at::Tensor x = at::cat(pieces, 1);  // [g, n, D(+1)]
    const at::Tensor repeated = c.unsqueeze(1).expand({g, n, c.size(1)});
    rows.push_back(at::cat({repeated, x}, 2).reshape({g * n, -1}));
  }
  return at::cat(rows);
}

void run_sample(const SampleArgs& a) {
  apply_threads(a.threads);
  const Model model = load_model(a.model);
  const at::Tensor contexts = load_context(model, a.context, a.context_file);
  seed_torch(static_cast<uint64_t>(a.seed));
  c10::AutoGradMode no_grad(false);
  std::vector<std::string> header;
  at::Tensor samples;
  if (contexts.defined()) {
    samples = draw_conditional(*model.flow, to_model_dtype(contexts, model), a.n, a.chunk,
                               a.with_log_prob);
    header = model.context_header();
  } else {
    samples = draw(*model.flow, a.n, a.chunk, a.with_log_prob);
  }
  for (const auto& name : model.data_header()) header.push_back(name);
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
  set_example(sub,
              "zflow sample --model model.safetensors -n 1000 --out samples.csv\n"
              "  zflow sample --model cond.safetensors -n 100 --context 0.5,1.2 --out s.csv\n"
              "  zflow sample --model cond.safetensors -n 100 --context-file contexts.csv");
  sub->add_option("--model,-m", a->model, "Model file written by 'zflow train'")->required();
  sub->add_option("-n,--n", a->n, "Number of points (per context)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--out,-o", a->out, "Output .csv or .npy ('-': CSV on stdout)")
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "Random seed")->check(non_negative())->capture_default_str();
  sub->add_flag("--log-prob", a->with_log_prob, "Add a last column with log p(x) of each point");
  add_context_options(sub, a->context, a->context_file);
  sub->add_option("--chunk", a->chunk, "Points drawn at a time")
      ->check(positive())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_sample(*a); });
}

}  // namespace zflow::cli
