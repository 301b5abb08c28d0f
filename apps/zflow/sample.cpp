// zflow sample: draws points from a trained model (given contexts for a conditional one).

#include <algorithm>
#include <iostream>
#include <memory>
#include <tuple>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "common.h"
#include "zflow/core/error.h"
#include "zflow/data/images.h"

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
  double temperature = 1.0;
  std::string grid;
  int64_t scale = 1;
  bool n_given = false;
};

/// Samples at the chosen temperature (the plain sampler at T = 1).
at::Tensor sample_batch(FlowImpl& flow, int64_t n, double temperature,
                        const at::Tensor& context = {}) {
  return temperature == 1.0 ? flow.sample(n, context)
                            : flow.sample_at_temperature(n, temperature, context);
}

/// n points (with their log-probability as a last column when asked): [n, D(+1)].
at::Tensor draw(FlowImpl& flow, int64_t n, int64_t chunk, bool with_log_prob, double temperature) {
  std::vector<at::Tensor> parts;
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t len = std::min(chunk, n - done);
    if (with_log_prob) {
      auto [x, log_prob] = flow.sample_and_log_prob(len);
      parts.push_back(at::cat({x, log_prob.unsqueeze(1)}, 1));
    } else {
      parts.push_back(sample_batch(flow, len, temperature));
    }
  }
  return at::cat(parts);
}

/// n points for each of the C contexts [C, K], context-major: [C·n, K + D(+1)], every row
/// starting with its context. At most about `chunk` points are drawn at a time.
at::Tensor draw_conditional(FlowImpl& flow, const at::Tensor& contexts, int64_t n, int64_t chunk,
                            bool with_log_prob, double temperature) {
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
        pieces.push_back(sample_batch(flow, len, temperature, c));
      }
    }
    const at::Tensor x = at::cat(pieces, 1);  // [g, n, D(+1)]
    const at::Tensor repeated = c.unsqueeze(1).expand({g, n, c.size(1)});
    rows.push_back(at::cat({repeated, x}, 2).reshape({g * n, -1}));
  }
  return at::cat(rows);
}

/// Image models: n images as a PNG grid (or their raw pixel values as rows of C·H·W).
void sample_images(const Model& model, SampleArgs a) {
  if (!a.context.empty() || !a.context_file.empty()) {
    throw ConfigError(a.model + " is an unconditional image model: it takes no context");
  }
  if (a.with_log_prob && has_extension(a.out, ".png")) {
    throw ConfigError("--log-prob needs a .csv/.npy output, not a picture");
  }
  int64_t rows = 0, cols = 0;
  if (!a.grid.empty()) {
    std::tie(rows, cols) = data::parse_grid(a.grid);
    if (a.n_given && a.n != rows * cols) {
      throw ConfigError("-n " + std::to_string(a.n) + " does not fill the grid " + a.grid +
                        " (drop -n, or make it " + std::to_string(rows * cols) + ")");
    }
    a.n = rows * cols;
  } else if (has_extension(a.out, ".png")) {
    if (!a.n_given) a.n = 64;
    std::tie(rows, cols) = squarest_grid(a.n);
  }
  if (a.out == "-" && rows > 0) throw ConfigError("a sample grid needs --out FILE.png");
  const at::Tensor images = draw(*model.flow, a.n, a.chunk, a.with_log_prob, a.temperature);
  if (has_extension(a.out, ".png")) {
    write_image_grid(a.out, images, rows, cols, a.scale);
    std::cerr << "wrote " << a.n << " samples (temperature " << fmt(a.temperature) << ") as a "
              << rows << "x" << cols << " grid to " << a.out << "\n";
    return;
  }
  if (rows > 0) throw ConfigError("--grid needs --out FILE.png");
  std::vector<std::string> header;
  for (int64_t i = 0; i < model.features; ++i) header.push_back("p" + std::to_string(i));
  if (a.with_log_prob) header.push_back("log_prob");
  write_result(a.out, images.reshape({a.n, -1}), header);
}

void run_sample(const SampleArgs& a) {
  const Model model = load_model(a.model);
  apply_threads(a.threads, workload_of(model));
  if (a.with_log_prob && a.temperature != 1.0) {
    throw ConfigError(
        "--log-prob gives log p(x) of the model; with --temperature score the "
        "samples with 'zflow log-prob' instead");
  }
  seed_torch(static_cast<uint64_t>(a.seed));
  // Inference only: no autograd recording and no version-counter or view bookkeeping.
  c10::InferenceMode inference;
  if (model.image()) {
    sample_images(model, a);
    return;
  }
  if (!a.grid.empty() || has_extension(a.out, ".png")) {
    throw ConfigError("--grid and .png output are for image models; " + a.model +
                      " is a tabular model (write .csv or .npy)");
  }
  const at::Tensor contexts = load_context(model, a.context, a.context_file);
  std::vector<std::string> header;
  at::Tensor samples;
  if (contexts.defined()) {
    samples = draw_conditional(*model.flow, to_model_dtype(contexts, model), a.n, a.chunk,
                               a.with_log_prob, a.temperature);
    header = model.context_header();
  } else {
    samples = draw(*model.flow, a.n, a.chunk, a.with_log_prob, a.temperature);
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
  CLI::App* sub =
      app.add_subcommand("sample", "Draw points (or images, as a PNG grid) from a trained model");
  set_example(
      sub,
      "zflow sample --model model.safetensors -n 1000 --out samples.csv\n"
      "  zflow sample --model cond.safetensors -n 100 --context 0.5,1.2 --out s.csv\n"
      "  zflow sample --model cond.safetensors -n 100 --context-file contexts.csv\n"
      "  zflow sample --model glow.safetensors --grid 8x8 --temperature 0.7 -o samples.png");
  sub->add_option("--model,-m", a->model, "Model file written by 'zflow train'")->required();
  sub->add_option("-n,--n", a->n, "Number of points (per context)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--out,-o", a->out,
                  "Output .csv or .npy ('-': CSV on stdout); .png for an image model's grid")
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "Random seed")->check(non_negative())->capture_default_str();
  sub->add_flag("--log-prob", a->with_log_prob, "Add a last column with log p(x) of each point");
  add_context_options(sub, a->context, a->context_file);
  sub->add_option("--temperature,-t", a->temperature,
                  "Sample z ~ N(0, T^2 I): below 1 gives cleaner, less varied samples")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--grid", a->grid,
                  "Image models: ROWSxCOLS samples as one picture (sets -n), e.g. 8x8");
  add_scale_option(sub, a->scale);
  sub->add_option("--chunk", a->chunk, "Points drawn at a time")
      ->check(positive())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a, sub] {
    a->n_given = sub->get_option("-n")->count() > 0;
    run_sample(*a);
  });
}

}  // namespace zflow::cli
