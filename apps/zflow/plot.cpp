// zflow plot: pictures of what a flow does (steps, density, latent, curves; for a model
// fitted to a target, its density beside the target's and the weights; for image models
// samples, reconstructions and interpolations).

#include <iostream>
#include <memory>
#include <sstream>

#include "common.h"
#include "figures.h"
#include "outputs.h"
#include "target_options.h"
#include "zflow/core/error.h"
#include "zflow/data/images.h"
#include "zflow/io/atomic_file.h"
#include "zflow/io/image.h"

namespace zflow::cli {

namespace {

struct PlotArgs {
  std::string kind;
  std::string model;
  std::string data;
  std::string metrics;
  std::string out;
  std::string range;
  TargetArgs target;
  /// 0: 20000 data points, or for weights 100000 samples of the flow.
  int64_t n = 0;
  FigureOptions figure;
  std::string grid = "8x8";
  double temperature = 0.7;
  int64_t pairs = 4;
  int64_t interpolation_steps = 9;
  int64_t scale = 2;
  int threads = 1;
};

const std::vector<std::string>& kinds() {
  static const std::vector<std::string> k = {"steps",   "density", "latent",      "curves",
                                             "weights", "samples", "reconstruct", "interpolate"};
  return k;
}

/// "x0,x1,y0,y1" → the figure's fixed ranges.
void parse_range(const std::string& text, FigureOptions& o) {
  std::vector<double> v;
  std::stringstream s(text);
  std::string field;
  while (std::getline(s, field, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stod(field, &used));
      if (used != field.size()) throw std::invalid_argument(field);
    } catch (const std::exception&) {
      v.clear();
      break;
    }
  }
  if (v.size() != 4 || !(v[1] > v[0]) || !(v[3] > v[2])) {
    throw ConfigError("--range must be 'xmin,xmax,ymin,ymax' with min < max, got '" + text + "'");
  }
  o.x = {v[0], v[1]};
  o.y = {v[2], v[3]};
}

void write_text_file(const std::string& path, const std::string& text) {
  io::write_atomically(path, [&](std::ostream& out) { out << text; });
}

void plot_curves(const PlotArgs& a) {
  std::string metrics = a.metrics;
  std::string title = "Training curves";
  if (!a.model.empty()) {
    const Model model = load_model(a.model);
    const Json stored = metadata_json(model, "metrics_file");
    if (metrics.empty() && stored.is_string()) metrics = stored.get<std::string>();
    title += " of " + model.path;
  }
  if (metrics.empty()) {
    throw ConfigError(
        "curves needs --metrics FILE (written by zflow train --metrics or zflow fit-target "
        "--metrics)");
  }
  require_extension(a.out, ".svg", "--out");
  check_outputs({{"--out", a.out}}, {{"--model", a.model}, {"--metrics", metrics}});
  write_text_file(a.out, curves_figure(read_metrics(metrics), title));
  std::cerr << "wrote the curves of " << metrics << " to " << a.out << "\n";
}

void plot_image_grid(const PlotArgs& a, const Model& model) {
  require_extension(a.out, ".png", "--out");
  if (!model.image()) {
    throw ConfigError(a.kind + " pictures are for image models; " + a.model +
                      " is tabular (try: steps, density, latent)");
  }
  const std::string data = a.data.empty() ? "fashion-mnist" : a.data;
  const uint64_t seed = a.figure.seed;
  const auto [rows, cols] = data::parse_grid(a.grid);
  if (a.kind == "interpolate") {
    check_picture_size(a.pairs, a.interpolation_steps, model.image_shape, a.scale);
  } else {
    check_picture_size(a.kind == "samples" ? sample_grid_rows(model, rows) : rows,
                       a.kind == "reconstruct" ? 2 * cols : cols, model.image_shape, a.scale);
  }
  if (a.kind == "samples") {
    io::write_png(a.out, sample_grid(model, rows, cols, a.temperature, a.scale, seed));
  } else if (a.kind == "reconstruct") {
    const PickedImages x = pick_images(model, data, rows * cols, seed);
    io::write_png(a.out, reconstruction_grid(model, x, rows, cols, a.scale));
  } else {
    const PickedImages x = pick_images(model, data, 2 * a.pairs, seed);
    io::write_png(a.out, interpolation_grid(model, x, a.pairs, a.interpolation_steps, a.scale));
  }
  std::cerr << "wrote " << a.out << "\n";
}

/// weights, and density and latent of a model fitted to a target when no --data is given
/// (the target stands in for the data). Returns whether it drew the picture.
bool plot_target(const PlotArgs& a, const Model& model) {
  const bool png = has_extension(a.out, ".png");
  if (a.kind == "weights") {
    require_extension(a.out, ".svg", "--out");
    const TargetPtr target = load_target(a.target, &model);
    WeightsOptions o;
    o.samples = a.n > 0 ? a.n : 100000;
    o.bins = a.figure.bins;
    o.seed = a.figure.seed;
    write_text_file(a.out, weights_figure(model, *target, o));
    return true;
  }
  if (!a.data.empty() || (!fitted_to_target(model) && a.target.target.empty())) return false;
  if (a.kind == "latent") {
    throw ConfigError("latent pushes data into the latent space, and " + a.model +
                      " was fitted to a target without data: give --data (try: plot density, "
                      "plot weights)");
  }
  if (a.kind != "density") return false;  // steps draws its sampling row without data
  if (!png) require_extension(a.out, ".svg", "--out");
  const TargetPtr target = load_target(a.target, &model);
  if (png) {
    io::write_png(a.out,
                  density_raster(model, at::Tensor(), target_axes(model, *target, a.figure)));
  } else {
    write_text_file(a.out, target_density_figure(model, *target, a.figure));
  }
  return true;
}

/// steps, density, latent of a 2-D model with data.
void plot_2d(const PlotArgs& a, const Model& model) {
  const bool png = has_extension(a.out, ".png");
  if (!(a.kind == "density" && png)) require_extension(a.out, ".svg", "--out");
  at::Tensor data;
  const bool may_have_data =
      !a.data.empty() || (!metadata_json(model, "dataset").is_null() && !fitted_to_target(model));
  if (a.kind != "steps" || may_have_data) {
    try {
      data = figure_data(model, a.data, a.n > 0 ? a.n : 20000, a.figure.seed + 1000000);
    } catch (const ConfigError&) {
      if (a.kind != "steps") throw;  // steps draws the sampling row alone without data
    }
  }
  if (a.kind == "steps") {
    write_text_file(a.out, steps_figure(model, data, a.figure));
  } else if (a.kind == "density" && png) {
    io::write_png(a.out, density_raster(model, data, a.figure));
  } else if (a.kind == "density") {
    write_text_file(a.out, density_figure(model, data, a.figure));
  } else {
    write_text_file(a.out, latent_figure(model, data, a.figure));
  }
}

void run_plot(PlotArgs& a) {
  apply_threads(a.threads, Workload::other);
  if (!a.range.empty()) parse_range(a.range, a.figure);
  const bool raster_kind =
      a.kind == "samples" || a.kind == "reconstruct" || a.kind == "interpolate";
  if (a.out.empty()) a.out = a.kind + (raster_kind ? ".png" : ".svg");
  if (a.kind == "curves") {
    plot_curves(a);
    return;
  }
  if (a.model.empty()) throw ConfigError(a.kind + " needs --model");
  check_outputs({{"--out", a.out}},
                {{"--model", a.model}, {"--data", a.data}, {"--target", a.target.target}});
  const Model model = load_model(a.model);
  if (raster_kind) {
    plot_image_grid(a, model);
    return;
  }
  if (!plot_target(a, model)) plot_2d(a, model);
  std::cerr << "wrote the " << a.kind << " picture of " << a.model << " to " << a.out << "\n";
}

/// The options of `plot steps` alone.
void add_steps_options(CLI::App* sub, PlotArgs* a) {
  sub->add_option("--groups", a->figure.groups,
                  "steps: panels for groups of consecutive layers (default: one per layer, "
                  "grouped evenly beyond --max-panels)")
      ->check(non_negative());
  sub->add_option("--max-panels", a->figure.max_panels, "steps: panels per row at most")
      ->check(CLI::Range(int64_t{2}, int64_t{64}))
      ->capture_default_str();
  sub->add_option("--times", a->figure.times,
                  "steps: a continuous flow (cnf) at this many evenly spaced times")
      ->check(CLI::Range(int64_t{1}, int64_t{64}))
      ->capture_default_str();
  sub->add_flag("--density", a->figure.density,
                "steps: each stage's exact density with samples as dots over it, instead of a "
                "histogram of samples");
}

}  // namespace

void add_plot(CLI::App& app) {
  auto a = std::make_shared<PlotArgs>();
  CLI::App* sub =
      app.add_subcommand("plot", "Pictures of what a flow does (SVG charts, PNG grids)");
  set_example(sub,
              "zflow plot steps --model model.safetensors --out steps.svg\n"
              "  zflow plot density --model model.safetensors --data moons --out density.svg\n"
              "  zflow plot latent --model model.safetensors --data data.csv --out latent.svg\n"
              "  zflow plot curves --metrics metrics.jsonl --out curves.svg\n"
              "  zflow plot density --model u1.safetensors --out u1.svg   (fitted by fit-target)\n"
              "  zflow plot weights --model u1.safetensors -n 100000 --out weights.svg\n"
              "  zflow plot samples --model glow.safetensors --grid 8x8 --out samples.png");
  sub->add_option("kind", a->kind,
                  "steps (each layer's effect), density (model beside data, or beside the "
                  "target of a model written by fit-target), latent (data in the latent space), "
                  "curves (training curves), weights (importance weights of the flow for its "
                  "target); image models: samples, reconstruct, interpolate")
      ->required()
      ->check(CLI::IsMember(kinds()));
  sub->add_option("--model,-m", a->model,
                  "Model file written by 'zflow train' or 'zflow fit-target'");
  sub->add_option("--data", a->data,
                  "Data to draw: a built-in dataset or a .csv/.npy file (default: the model's "
                  "built-in training dataset; for a model fitted to a target, the target); "
                  "image models: images (default fashion-mnist)");
  add_target_options(sub, a->target, false);
  sub->add_option("--out,-o", a->out,
                  "The picture to write: .svg for charts (density also .png: "
                  "the heat map alone), .png for image grids (default: KIND.svg/.png)");
  sub->add_option("--metrics", a->metrics,
                  "curves: the metrics file of 'zflow train --metrics' or 'zflow fit-target "
                  "--metrics' (default: the one recorded in the model)");
  // Bounds that keep a picture a picture: beyond them memory, not the figure, grows.
  sub->add_option("-n,--n", a->n,
                  "Data points drawn (default 20000); weights: samples of the flow (default "
                  "100000)")
      ->check(CLI::Range(int64_t{1}, int64_t{10000000}));
  sub->add_option("--samples", a->figure.samples, "steps: samples per histogram")
      ->check(CLI::Range(int64_t{1}, int64_t{10000000}))
      ->capture_default_str();
  sub->add_option("--bins", a->figure.bins,
                  "Histogram bins and density cells per axis (weights: histogram bins)")
      ->check(CLI::Range(int64_t{1}, int64_t{2000}))
      ->capture_default_str();
  sub->add_option("--panel", a->figure.panel, "Panel size in px")
      ->check(CLI::Range(60.0, 2000.0))
      ->capture_default_str();
  sub->add_option("--range", a->range,
                  "Fixed axes 'xmin,xmax,ymin,ymax' (default: cover the data, the same within a "
                  "row; for a target, its plot box)");
  add_steps_options(sub, a.get());
  sub->add_option("--grid", a->grid, "samples, reconstruct: ROWSxCOLS images")
      ->capture_default_str();
  sub->add_option("--temperature,-t", a->temperature, "samples: z ~ N(0, T^2 I)")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--pairs", a->pairs, "interpolate: rows")
      ->check(positive())
      ->capture_default_str();
  sub->add_option("--steps", a->interpolation_steps, "interpolate: images per row")
      ->check(CLI::Range(int64_t{2}, int64_t{100}))
      ->capture_default_str();
  add_scale_option(sub, a->scale);
  sub->add_option("--seed", a->figure.seed, "Seed of the samples and of the choice of data")
      ->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_plot(*a); });
}

}  // namespace zflow::cli
