// zflow sample: draws points from a trained model (given contexts for a conditional one).

#include <algorithm>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <tuple>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "common.h"
#include "ode_options.h"
#include "outputs.h"
#include "zflow/core/error.h"
#include "zflow/data/images.h"
#include "zflow/io/atomic_file.h"
#include "zflow/io/table.h"
#include "zflow/train/progress.h"

namespace zflow::cli {

namespace {

const char* const kUnstable = "the model is numerically unstable there";

struct SampleArgs {
  std::string model;
  int64_t n = 1000;
  std::string out = "-";
  int64_t seed = 0;
  int64_t chunk = 65536;
  bool with_log_prob = false;
  std::string context;
  std::string context_file;
  // A class-conditional image model: the class to draw (a name or a number).
  std::string class_name;
  int threads = 1;
  double temperature = 1.0;
  std::string grid;
  int64_t scale = 1;
  bool n_given = false;
  std::string device = "cpu";
  SolverArgs solver;
};

/// Samples at the chosen temperature (the plain sampler at T = 1).
at::Tensor sample_batch(FlowImpl& flow, int64_t n, double temperature,
                        const at::Tensor& context = {}) {
  return temperature == 1.0 ? flow.sample(n, context)
                            : flow.sample_at_temperature(n, temperature, context);
}

/// n points (with their log-probability as a last column when asked): [n, D(+1)], or
/// images [n, C, H, W]; drawn on the model's device, returned on the CPU.
at::Tensor draw(const Model& model, int64_t n, bool with_log_prob, double temperature,
                const at::Tensor& cpu_context = {}) {
  FlowImpl& flow = *model.flow;
  const at::Tensor context = cpu_context.defined() ? cpu_context.to(model.device) : cpu_context;
  if (!with_log_prob) return sample_batch(flow, n, temperature, context).cpu();
  auto [x, log_prob] = flow.sample_and_log_prob(n, context);
  const bool per_context = context.defined() && context.dim() == 2;
  return at::cat({x.flatten(per_context ? 2 : 1), log_prob.unsqueeze(-1)}, -1).cpu();
}

/// Writes `total` rows of `cols` values to `path` (CSV or .npy) as `next(first, count)`
/// produces them, at most `chunk` at a time, so that memory stays flat however many rows
/// there are; shows progress on stderr for large outputs and warns about non-finite rows.
void stream_rows(const std::string& path, const std::vector<std::string>& header, int64_t total,
                 int64_t cols, at::ScalarType dtype, int64_t chunk,
                 const std::function<at::Tensor(int64_t, int64_t)>& next) {
  // A small output is done before anyone would look at a progress line.
  const bool show = total >= 1000000 || (train::stderr_is_terminal() && total >= 100000);
  train::Progress progress("sample", total,
                           {show ? &std::cerr : nullptr, train::stderr_is_terminal(),
                            std::max<int64_t>(total / 10, 1), "point"});
  NonFinite bad;
  io::write_atomically(path, [&](std::ostream& out) {
    io::TableStream table(out, io::is_npy_path(path), total, cols, dtype, header);
    for (int64_t first = 0; first < total;) {
      const at::Tensor rows = next(first, std::min(chunk, total - first));
      bad.add(rows);
      table.write(rows);
      first += rows.size(0);
      progress.update(first);
    }
    table.finish();
  });
  progress.finish();
  warn_non_finite(bad, path, kUnstable, "row");
}

/// n points for each of the C contexts [C, K], context-major: C·n rows of K + D(+1)
/// values, every row starting with its context, streamed to `path`.
void stream_conditional(const std::string& path, const std::vector<std::string>& header,
                        const Model& model, const at::Tensor& contexts, int64_t n, int64_t chunk,
                        bool with_log_prob, double temperature) {
  const int64_t count = contexts.size(0);
  const int64_t k = contexts.size(1);
  const int64_t cols = static_cast<int64_t>(header.size());
  if (n > std::numeric_limits<int64_t>::max() / count) {
    throw ConfigError("-n " + std::to_string(n) + " for " + std::to_string(count) +
                      " contexts is more rows than a file can count");
  }
  // Rows first..first+len of the context-major order: a run of one context's points, or
  // whole groups of contexts when n is small, never more than about `chunk` rows.
  auto next = [&](int64_t first, int64_t len) {
    const int64_t c = first / n;
    const int64_t offset = first % n;
    if (offset != 0 || len < n) {
      const int64_t take = std::min(len, n - offset);
      const at::Tensor ctx = contexts.narrow(0, c, 1);
      const at::Tensor x = draw(model, take, with_log_prob, temperature, ctx)[0];
      return at::cat({ctx.expand({take, k}), x.reshape({take, -1})}, 1);
    }
    const int64_t g = std::min(len / n, count - c);
    const at::Tensor ctx = contexts.narrow(0, c, g);
    const at::Tensor x = draw(model, n, with_log_prob, temperature, ctx);  // [g, n, D(+1)]
    return at::cat({ctx.unsqueeze(1).expand({g, n, k}), x.reshape({g, n, -1})}, 2)
        .reshape({g * n, -1});
  };
  // Whole groups of contexts per piece when n is small, so a piece never splits a group.
  stream_rows(path, header, count * n, cols, contexts.scalar_type(),
              n <= chunk ? chunk / n * n : chunk, next);
}

/// A class-conditional model without --class: a grid of one row per class, `cols` images
/// each (the columns of --grid, else -n, else 8).
void sample_class_rows(const Model& model, SampleArgs a) {
  if (!has_extension(a.out, ".png")) {
    throw ConfigError(a.model + " is class-conditional: give --class (a class name or number) " +
                      "for a .csv/.npy output, or write a .png grid of every class");
  }
  const auto classes = static_cast<int64_t>(model.class_names.size());
  int64_t cols = a.n_given ? a.n : 8;
  if (!a.grid.empty()) cols = data::parse_grid(a.grid).second;
  check_picture_size(classes, cols, model.image_shape, a.scale);
  const at::Tensor contexts = at::eye(classes, at::TensorOptions(model.dtype));
  const at::Tensor images =
      draw(model, cols, false, a.temperature, contexts).flatten(0, 1);  // [K·cols, ...]
  warn_non_finite(images, a.out, kUnstable);
  write_image_grid(a.out, images, classes, cols, a.scale);
  std::cerr << "wrote " << cols << " samples of each of the " << classes << " classes (temperature "
            << fmt(a.temperature) << "), one row per class, to " << a.out << "\n";
}

/// Image models: n images as a PNG grid (or their raw pixel values as rows of C·H·W); for a
/// class-conditional model, of the class `context` ([K], one-hot).
void sample_images(const Model& model, SampleArgs a, const at::Tensor& context) {
  if (!a.context.empty() || !a.context_file.empty()) {
    throw ConfigError(a.model + (model.class_conditional()
                                     ? " is class-conditional: choose the class with --class"
                                     : " is an unconditional image model: it takes no context"));
  }
  if (a.with_log_prob && has_extension(a.out, ".png")) {
    throw ConfigError("--log-prob needs a .csv/.npy output, not a picture");
  }
  if (model.class_conditional() && !context.defined()) return sample_class_rows(model, a);
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
  if (has_extension(a.out, ".png")) {
    check_picture_size(rows, cols, model.image_shape, a.scale);
    std::vector<at::Tensor> parts;
    for (int64_t done = 0; done < a.n; done += a.chunk) {
      parts.push_back(draw(model, std::min(a.chunk, a.n - done), false, a.temperature, context));
    }
    const at::Tensor images = at::cat(parts);
    warn_non_finite(images, a.out, kUnstable);
    write_image_grid(a.out, images, rows, cols, a.scale);
    std::cerr << "wrote " << a.n << " samples (temperature " << fmt(a.temperature)
              << (context.defined() ? ", class " + a.class_name : std::string()) << ") as a "
              << rows << "x" << cols << " grid to " << a.out << "\n";
    return;
  }
  if (rows > 0) throw ConfigError("--grid needs --out FILE.png");
  std::vector<std::string> header;
  for (int64_t i = 0; i < model.features; ++i) header.push_back("p" + std::to_string(i));
  if (a.with_log_prob) header.push_back("log_prob");
  stream_rows(a.out, header, a.n, static_cast<int64_t>(header.size()), model.dtype, a.chunk,
              [&](int64_t, int64_t len) {
                return draw(model, len, a.with_log_prob, a.temperature, context).reshape({len, -1});
              });
}

void draw_samples(const Model& model, const SampleArgs& a) {
  if (a.with_log_prob && a.temperature != 1.0) {
    throw ConfigError(
        "--log-prob gives log p(x) of the model; with --temperature score the "
        "samples with 'zflow log-prob' instead");
  }
  seed_torch(static_cast<uint64_t>(a.seed));
  // Inference only: no autograd recording and no version-counter or view bookkeeping.
  c10::InferenceMode inference;
  // --class: the one-hot context [K] of a class-conditional model (an error for any other).
  const at::Tensor class_one_hot =
      a.class_name.empty() ? at::Tensor()
                           : to_model_dtype(class_context(model, a.class_name)[0], model);
  if (model.image()) {
    sample_images(model, a, class_one_hot);
    return;
  }
  if (!a.grid.empty() || has_extension(a.out, ".png")) {
    throw ConfigError("--grid and .png output are for image models; " + a.model +
                      " is a tabular model (write .csv or .npy)");
  }
  const at::Tensor contexts = load_context(model, a.context, a.context_file);
  std::vector<std::string> header =
      contexts.defined() ? model.context_header() : std::vector<std::string>();
  for (const auto& name : model.data_header()) header.push_back(name);
  if (a.with_log_prob) header.push_back("log_prob");
  if (contexts.defined()) {
    stream_conditional(a.out, header, model, to_model_dtype(contexts, model), a.n, a.chunk,
                       a.with_log_prob, a.temperature);
    return;
  }
  stream_rows(
      a.out, header, a.n, static_cast<int64_t>(header.size()), model.dtype, a.chunk,
      [&](int64_t, int64_t len) { return draw(model, len, a.with_log_prob, a.temperature); });
}

void run_sample(const SampleArgs& a) {
  check_outputs({{"--out", a.out}}, {{"--model", a.model}, {"--context-file", a.context_file}});
  Model model = load_model(a.model);
  use_device(model, a.device);
  apply_threads(a.threads, workload_of(model));
  apply_solver_options(model, a.solver);
  draw_samples(model, a);
  print_nfe(model);
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
      "  zflow sample --model glow.safetensors --grid 8x8 --temperature 0.7 -o samples.png\n"
      "  zflow sample --model cglow.safetensors --class 3 --grid 4x8 -o class3.png");
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
  sub->add_option("--class", a->class_name,
                  "Class-conditional image models: draw images of this class (its name or "
                  "number 0..K-1; without it a .png grid has one row per class)");
  sub->add_option("--temperature,-t", a->temperature,
                  "Sample z ~ N(0, T^2 I): below 1 gives cleaner, less varied samples")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--grid", a->grid,
                  "Image models: ROWSxCOLS samples as one picture (sets -n), e.g. 8x8");
  add_scale_option(sub, a->scale);
  sub->add_option("--chunk", a->chunk, "Points drawn at a time")
      ->check(positive())
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  add_device_option(sub, a->device);
  add_solver_options(sub, a->solver);
  sub->callback([a, sub] {
    a->n_given = sub->get_option("-n")->count() > 0;
    run_sample(*a);
  });
}

}  // namespace zflow::cli
