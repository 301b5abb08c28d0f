#include "figures.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include "target_options.h"
#include "zflow/core/error.h"
#include "zflow/data/images.h"
#include "zflow/data/toy.h"
#include "zflow/io/atomic_file.h"
#include "zflow/io/metrics.h"
#include "zflow/plot/chart.h"
#include "zflow/plot/color.h"
#include "zflow/plot/svg.h"
#include "zflow/transforms/continuous.h"

namespace zflow::cli {

namespace {

/// A bins × bins grid of densities [bins²] (float64, row-major), non-finite values as 0.
plot::Grid density_grid(const at::Tensor& density, int64_t bins) {
  const at::Tensor d = density.to(at::kDouble).contiguous();
  plot::Grid grid;
  grid.rows = grid.cols = bins;
  grid.values.assign(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  for (auto& v : grid.values) {
    if (!std::isfinite(v)) v = 0.0;
  }
  return grid;
}

// Layout of the 2-D figures, in px.
constexpr double kLeft = 56;        // room for the y tick labels
constexpr double kGap = 24;         // between panels
constexpr double kRowTitle = 26;    // a row's caption
constexpr double kPanelTitle = 22;  // a panel's title
constexpr double kBottom = 38;      // x tick labels

/// The model's top layers; with `times` > 1, a continuous layer becomes that many layers,
/// each over an equal part of its time interval (ContinuousFlowImpl::segments).
std::vector<TransformPtr> layers_of(const Model& model, int64_t times = 1) {
  const TransformPtr t = model.flow->transform();
  std::vector<TransformPtr> top;
  if (auto composite = std::dynamic_pointer_cast<CompositeTransformImpl>(t)) {
    for (size_t i = 0; i < composite->size(); ++i) top.push_back(composite->layer(i));
  } else {
    top.push_back(t);
  }
  std::vector<TransformPtr> layers;
  for (const auto& layer : top) {
    auto* continuous = dynamic_cast<ContinuousFlowImpl*>(layer.get());
    if (continuous && times > 1) {
      for (auto& part : continuous->segments(times)) layers.push_back(part);
    } else {
      layers.push_back(layer);
    }
  }
  return layers;
}

void require_2d(const Model& model, const std::string& kind) {
  if (model.image() || model.features != 2) {
    throw ConfigError(kind + " pictures are for 2-D models; " + model.path + " has " +
                      (model.image() ? "images of " + shape_string(model.image_shape)
                                     : std::to_string(model.features) + " features") +
                      (model.image() ? " (try: samples, reconstruct, interpolate)" : ""));
  }
  if (model.conditional()) {
    throw ConfigError(kind + " pictures are for unconditional models; " + model.path +
                      " is conditional on " + model.describe_context());
  }
}

struct Columns {
  std::vector<double> x, y;
};

Columns columns_of(const at::Tensor& points) {
  const at::Tensor p = points.to(at::kDouble).contiguous();
  const int64_t n = p.size(0);
  Columns c;
  c.x.resize(static_cast<size_t>(n));
  c.y.resize(static_cast<size_t>(n));
  const double* d = p.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    c.x[static_cast<size_t>(i)] = d[2 * i];
    c.y[static_cast<size_t>(i)] = d[2 * i + 1];
  }
  return c;
}

bool fixed(const plot::Range& r) { return r.hi > r.lo; }

/// The range of a coordinate over several point sets, unless fixed by the user.
plot::Range shared_range(const std::vector<const std::vector<double>*>& sets,
                         const plot::Range& given) {
  if (fixed(given)) return given;
  std::vector<double> all;
  for (const auto* s : sets) all.insert(all.end(), s->begin(), s->end());
  return plot::covering_range(std::move(all), 0.002, 0.05);
}

io::Image histogram_image(const Columns& c, plot::Range x, plot::Range y, int64_t bins) {
  const plot::Grid grid = plot::histogram2d(c.x, c.y, x, y, bins, bins);
  plot::HeatmapOptions options;
  options.gamma = 0.5;  // the square root keeps faint mass visible next to dense cores
  options.scale = 2;
  return plot::heatmap(grid, options);
}

/// The centres of a bins × bins grid over x × y as [bins², 2], row by row from the top
/// (largest y), as plot::Grid orders its cells.
at::Tensor grid_points(plot::Range x, plot::Range y, int64_t bins,
                       const at::TensorOptions& options) {
  const at::Tensor xs = x.lo + (at::arange(bins, options) + 0.5) * (x.width() / bins);
  const at::Tensor ys = y.hi - (at::arange(bins, options) + 0.5) * (y.width() / bins);
  const auto mesh = at::meshgrid({ys, xs}, "ij");
  return at::stack({mesh[1].reshape(-1), mesh[0].reshape(-1)}, 1);
}

/// log-density of the variable between layer `first` − 1 and layer `first` (first = 0: the
/// data; first = K: the latent) at the centres of a bins × bins grid, as a Grid.
plot::Grid stage_density(const Model& model, const std::vector<TransformPtr>& layers, size_t first,
                         plot::Range x, plot::Range y, int64_t bins) {
  c10::AutoGradMode no_grad(false);
  const auto options = at::TensorOptions(model.dtype);
  const at::Tensor points = grid_points(x, y, bins, options);
  at::Tensor total = at::zeros({points.size(0)}, options);
  at::Tensor h = points;
  for (size_t k = first; k < layers.size(); ++k) {
    auto out = layers[k]->forward(h);
    h = out.outputs;
    total = total + out.logabsdet;
  }
  const at::Tensor density = at::exp(model.flow->base()->log_prob(h) + total).to(at::kDouble);
  return density_grid(density, bins);
}

/// A density grid painted from 0 up to `hi` (NaN: the grid's largest value).
io::Image density_image(const plot::Grid& grid, double hi = NAN) {
  plot::HeatmapOptions options;
  options.lo = 0.0;
  options.hi = hi;
  options.scale = 2;
  return plot::heatmap(grid, options);
}

/// The stages shown: indices 0 … K of the intermediate results, grouped to fit.
std::vector<size_t> stage_indices(size_t layers, const FigureOptions& o) {
  size_t groups = o.groups > 0 ? static_cast<size_t>(o.groups) : layers;
  if (o.groups <= 0 && static_cast<int64_t>(layers) + 1 > o.max_panels) {
    groups = static_cast<size_t>(std::max<int64_t>(o.max_panels - 1, 1));
  }
  groups = std::min(std::max<size_t>(groups, 1), std::max<size_t>(layers, 1));
  std::vector<size_t> stages;
  for (size_t g = 0; g <= groups; ++g) {
    stages.push_back(static_cast<size_t>(
        std::llround(static_cast<double>(g * layers) / static_cast<double>(groups))));
  }
  stages.erase(std::unique(stages.begin(), stages.end()), stages.end());
  return stages;
}

std::string layer_name(const std::vector<TransformPtr>& layers, size_t index) {
  return std::to_string(index + 1) + ". " + layers[index]->type();
}

/// "3. affine_coupling" for one layer, "2–4: … 4. affine_coupling" for a group; "cnf, t =
/// 0.5" where a part of a continuous layer ends the group (the time its output is at).
std::string group_name(const std::vector<TransformPtr>& layers, size_t from, size_t to,
                       const std::string& suffix) {
  const bool inverse = !suffix.empty();
  if (const auto* part = dynamic_cast<ContinuousFlowImpl*>(layers[inverse ? from : to - 1].get())) {
    if (part->time_begin() != 0.0 || part->time_end() != 1.0) {
      return "cnf, t = " + fmt(inverse ? part->time_end() : part->time_begin(), 3);
    }
  }
  if (to == from + 1) return layer_name(layers, from) + suffix;
  return std::to_string(from + 1) + "–" + std::to_string(to) + ": " + layers[to - 1]->type() +
         suffix;
}

struct Panel {
  std::string title;
  io::Image image;
  /// Samples drawn as dots over the image (empty: none).
  Columns dots;
};

/// At most `count` of the points, evenly spaced (enough to show where samples fall over a
/// density without hiding it).
Columns thinned(const Columns& c, size_t count) {
  if (c.x.size() <= count) return c;
  Columns out;
  const double stride = static_cast<double>(c.x.size()) / static_cast<double>(count);
  for (size_t i = 0; i < count; ++i) {
    const auto j = static_cast<size_t>(static_cast<double>(i) * stride);
    out.x.push_back(c.x[j]);
    out.y.push_back(c.y[j]);
  }
  return out;
}

/// One row of panels with shared axes at vertical offset `top`.
void draw_row(plot::Svg& svg, double top, const std::string& caption,
              const std::vector<Panel>& panels, plot::Range x, plot::Range y, double size) {
  svg.text(kLeft - 40, top + 17, caption, 14, "start", 0, true);
  for (size_t i = 0; i < panels.size(); ++i) {
    const double left = kLeft + static_cast<double>(i) * (size + kGap);
    plot::Axes axes(svg, left, top + kRowTitle + kPanelTitle, size, size, x, y);
    axes.image(panels[i].image);
    if (!panels[i].dots.x.empty()) axes.scatter(panels[i].dots.x, panels[i].dots.y, "#ffffff", 0.7);
    axes.decorate(panels[i].title, "", "", i == 0);
  }
}

double row_height(double size) { return kRowTitle + kPanelTitle + size + kBottom; }

double row_width(size_t panels, double size) {
  return kLeft + static_cast<double>(panels) * (size + kGap);
}

/// The normalised target density p̃(x)/Z at the centres of a bins × bins grid. Z is the
/// target's own when known; otherwise the grid's Riemann sum Σ p̃·(cell area), which is Z
/// up to the mass outside the axes. `exact` tells which. The points are in the model's dtype,
/// the one the target saw while the flow was fitted (a TorchScript target may accept no other).
plot::Grid target_grid(const Target& target, at::ScalarType dtype, plot::Range x, plot::Range y,
                       int64_t bins, bool* exact) {
  c10::AutoGradMode no_grad(false);
  const at::Tensor points = grid_points(x, y, bins, at::TensorOptions(dtype));
  const at::Tensor log_p = checked_log_density(target, points).to(at::kDouble);
  const std::optional<double> known = target.log_normalizer();
  *exact = known.has_value();
  double log_z = 0;
  if (known) {
    log_z = *known;
  } else {
    const double cell = x.width() * y.width() / static_cast<double>(bins * bins);
    log_z = at::logsumexp(log_p, 0).item<double>() + std::log(cell);
    if (!std::isfinite(log_z)) {
      throw DataError("the target " + target.name() +
                      " has no mass on the axes of the picture (p̃ = 0 at every grid point); "
                      "give other axes with --range");
    }
  }
  const at::Tensor density = at::exp(log_p - log_z).contiguous();
  return density_grid(density, bins);
}

double grid_max(const plot::Grid& grid) {
  double hi = 0;
  for (double v : grid.values) hi = std::max(hi, v);
  return hi;
}

/// ConfigError unless the model can be a proposal for the target: tabular, unconditional,
/// of the target's dimension.
void require_target_model(const Model& model, const Target& target) {
  if (model.image() || model.conditional() || model.features != target.dim()) {
    throw ConfigError("the target " + target.name() + " has D = " + std::to_string(target.dim()) +
                      ", but " + model.path + " is " +
                      (model.image() ? "an image model"
                       : model.conditional()
                           ? "conditional on " + model.describe_context()
                           : "a model of " + std::to_string(model.features) + " features"));
  }
}

/// The log weights log p̃(x) − log q(x) of `o.samples` draws of the flow, and their summary.
std::vector<double> flow_log_weights(const Model& model, const Target& target,
                                     const WeightsOptions& o, ImportanceSummary& summary) {
  seed_torch(o.seed);
  std::vector<double> log_w;
  log_w.reserve(static_cast<size_t>(o.samples));
  ImportanceOptions options;
  options.samples = o.samples;
  options.batch = std::min<int64_t>(o.samples, 65536);
  options.on_batch = [&log_w](const at::Tensor&, const at::Tensor& batch, int64_t) {
    const at::Tensor w = batch.to(at::kDouble).contiguous();
    log_w.insert(log_w.end(), w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
  };
  summary = importance_sample(flow_proposal(*model.flow), target, options);
  return log_w;
}

/// The lines under the weights histogram: the estimates, and what the bars leave out.
std::vector<std::string> weights_caption(const ImportanceSummary& s, const Target& target,
                                         int64_t zero, int64_t below, double lo) {
  std::string estimate = "log Ẑ = " + fmt(s.log_z, 5) + " ± " + fmt(s.log_z_stderr, 2);
  if (const auto known = target.log_normalizer()) {
    estimate += " (exact " + fmt(*known, 5) + ", error " + fmt(s.log_z - *known, 3) + ")";
  }
  std::vector<std::string> lines{estimate, "ESS " + fmt(100 * s.ess, 3) +
                                               " %  ·  unweighting efficiency " +
                                               fmt(100 * s.unweighting_efficiency, 3) + " % (" +
                                               fmt(100 * s.unweighting_efficiency_plain_max, 3) +
                                               " % with the largest weight)"};
  std::string hidden;
  if (below > 0) hidden = std::to_string(below) + " samples below " + fmt(lo, 3);
  if (zero > 0) {
    hidden += (hidden.empty() ? "" : ", ") + std::to_string(zero) + " with w = 0 (p̃ = 0)";
  }
  if (!hidden.empty()) lines.push_back("not shown: " + hidden);
  return lines;
}

/// The training and validation loss against the step, and the ESS (in %) of each
/// validation when the records are those of `zflow fit-target`.
struct LossCurves {
  io::MetricsCurves loss;
  bool variational = false;
  std::vector<double> ess_steps, ess;
};

bool finite_number(const Json& record, const char* key, double* value) {
  const auto it = record.find(key);
  if (it == record.end() || !it->is_number()) return false;
  *value = it->get<double>();
  return std::isfinite(*value);
}

LossCurves loss_curves(const std::vector<Json>& records) {
  LossCurves c;
  c.loss = io::metrics_curves(records);  // also checks that every "step" is a number
  if (!c.loss.train.empty() || !c.loss.val.empty()) return c;
  for (const Json& r : records) {
    double step = 0, value = 0;
    if (!r.is_object() || r.contains("event") || !finite_number(r, "step", &step)) continue;
    if (finite_number(r, "train_loss", &value)) {
      c.loss.steps.push_back(step);
      c.loss.train.push_back(value);
    }
    if (finite_number(r, "val_loss", &value) || finite_number(r, "train_subset_loss", &value)) {
      c.loss.val_steps.push_back(step);
      c.loss.val.push_back(value);
    }
    if (finite_number(r, "ess", &value)) {
      c.ess_steps.push_back(step);
      c.ess.push_back(100 * value);
    }
  }
  c.variational = !c.loss.train.empty() || !c.loss.val.empty();
  return c;
}

}  // namespace

at::Tensor figure_data(const Model& model, const std::string& spec, int64_t n, uint64_t seed) {
  std::string source = spec;
  if (source.empty()) {
    const Json dataset = metadata_json(model, "dataset");
    if (dataset.is_string() && data::is_toy_dataset(dataset.get<std::string>())) {
      source = dataset.get<std::string>();
    } else {
      throw ConfigError("give --data: " + model.path +
                        " was not trained on a built-in dataset, so there is no default");
    }
  }
  const Data data = data::load_table(source, "", "auto", n, seed);
  data::check_width(data, model.features);
  at::Tensor values = data.values;
  if (values.size(0) > n) values = values.narrow(0, 0, n);
  return to_model_dtype(values, model);
}

std::string steps_figure(const Model& model, const at::Tensor& data, const FigureOptions& o) {
  require_2d(model, "steps");
  const std::vector<TransformPtr> layers = layers_of(model, o.times);
  const size_t k = layers.size();
  const std::vector<size_t> stages = stage_indices(k, o);
  c10::AutoGradMode no_grad(false);
  seed_torch(o.seed);

  // Sampling: z, then the inverse of the last layer, … up to x. Stage j holds the variable
  // after inverting the last j layers, i.e. the one between layers K − j and K − j + 1.
  std::vector<at::Tensor> sampled{model.flow->base()->sample(o.samples).to(model.dtype)};
  for (size_t j = 1; j <= k; ++j) sampled.push_back(layers[k - j]->inverse(sampled.back()).outputs);
  // Encoding: x, then the forward of each layer, … up to z.
  std::vector<at::Tensor> encoded;
  if (data.defined()) {
    encoded.push_back(data);
    for (size_t i = 0; i < k; ++i) encoded.push_back(layers[i]->forward(encoded.back()).outputs);
  }

  auto row = [&](const std::vector<at::Tensor>& values, bool sampling) {
    std::vector<Columns> cols;
    for (size_t s : stages) cols.push_back(columns_of(values[s]));
    std::vector<const std::vector<double>*> xs, ys;
    for (const auto& c : cols) {
      xs.push_back(&c.x);
      ys.push_back(&c.y);
    }
    const plot::Range xr = shared_range(xs, o.x), yr = shared_range(ys, o.y);
    std::vector<Panel> panels;
    for (size_t p = 0; p < stages.size(); ++p) {
      const size_t s = stages[p];
      std::string title;
      if (sampling) {
        title = s == 0 ? "z ~ " + model.flow->base()->type()
                       : group_name(layers, k - s, k - stages[p - 1], " inverse");
      } else {
        title = s == 0 ? "x (data)" : group_name(layers, stages[p - 1], s, "");
      }
      // The density of a stage: the layers between it and the latent, then the base.
      const size_t first = sampling ? k - s : s;
      // With --density: the stage's exact density, with some of its samples over it.
      if (o.density) {
        panels.push_back({title, density_image(stage_density(model, layers, first, xr, yr, o.bins)),
                          thinned(cols[p], 1500)});
      } else {
        panels.push_back({title, histogram_image(cols[p], xr, yr, o.bins), {}});
      }
    }
    return std::make_tuple(panels, xr, yr);
  };

  const double size = o.panel;
  const size_t rows = data.defined() ? 2 : 1;
  plot::Svg svg(row_width(stages.size(), size), row_height(size) * static_cast<double>(rows));
  const std::string what = o.density ? "exact density, with samples as dots"
                                     : "histogram of " + std::to_string(o.samples) + " samples";
  auto [sample_panels, sx, sy] = row(sampled, true);
  draw_row(svg, 0, "Sampling, noise → data: z ~ base, then each layer's inverse (" + what + ")",
           sample_panels, sx, sy, size);
  if (data.defined()) {
    auto [data_panels, dx, dy] = row(encoded, false);
    draw_row(svg, row_height(size),
             "Encoding, data → noise: x, then each layer's forward (" +
                 (o.density ? std::string("exact density, with data points as dots")
                            : "histogram of " + std::to_string(data.size(0)) + " data points") +
                 ")",
             data_panels, dx, dy, size);
  }
  return svg.str();
}

io::Image density_raster(const Model& model, const at::Tensor& data, const FigureOptions& o) {
  require_2d(model, "density");
  if (!data.defined() && !(fixed(o.x) && fixed(o.y))) {
    throw ConfigError("the density of " + model.path + " needs axes: give --range or --data");
  }
  const Columns c = data.defined() ? columns_of(data) : Columns{};
  const plot::Range xr = shared_range({&c.x}, o.x), yr = shared_range({&c.y}, o.y);
  const std::vector<TransformPtr> layers = layers_of(model);
  return density_image(stage_density(model, layers, 0, xr, yr, o.bins));
}

std::string density_figure(const Model& model, const at::Tensor& data, const FigureOptions& o) {
  require_2d(model, "density");
  const Columns c = columns_of(data);
  const plot::Range xr = shared_range({&c.x}, o.x), yr = shared_range({&c.y}, o.y);
  const std::vector<TransformPtr> layers = layers_of(model);
  const double size = o.panel * 1.5;
  plot::Svg svg(row_width(2, size), row_height(size));
  draw_row(
      svg, 0, "Density of " + model.path + " and the data, on the same axes",
      {{"model density p(x)", density_image(stage_density(model, layers, 0, xr, yr, o.bins)), {}},
       {"data (" + std::to_string(data.size(0)) + " points)",
        histogram_image(c, xr, yr, o.bins),
        {}}},
      xr, yr, size);
  return svg.str();
}

bool fitted_to_target(const Model& model) {
  const Json& train = model.card.train;
  return train.is_object() && train.contains("target") && train["target"].is_object();
}

FigureOptions target_axes(const Model& model, const Target& target, FigureOptions o) {
  require_2d(model, "density");
  require_target_model(model, target);
  const Domain box = target.plot_box();
  if (!fixed(o.x)) o.x = {box.low[0], box.high[0]};
  if (!fixed(o.y)) o.y = {box.low[1], box.high[1]};
  return o;
}

std::string target_density_figure(const Model& model, const Target& target,
                                  const FigureOptions& options) {
  const FigureOptions o = target_axes(model, target, options);
  bool exact = false;
  const plot::Grid p = target_grid(target, model.dtype, o.x, o.y, o.bins, &exact);
  const plot::Grid q = stage_density(model, layers_of(model), 0, o.x, o.y, o.bins);
  // One colour scale for both, so that brightness compares across the panels.
  const double hi = std::max(grid_max(p), grid_max(q));
  const double size = o.panel * 1.5;
  plot::Svg svg(row_width(2, size), row_height(size) + 20);
  draw_row(svg, 0,
           "Target " + target.name() + " and the flow of " + model.path +
               ": same axes, same colour scale",
           {{exact ? "target p(x) = p̃(x)/Z" : "target p(x) = p̃(x)/Z, Z from the grid",
             density_image(p, hi),
             {}},
            {"flow q(x)", density_image(q, hi), {}}},
           o.x, o.y, size);
  svg.text(kLeft, row_height(size) + 8,
           "colour: density from 0 (dark) to " + fmt(hi, 3) + " (bright) in both panels", 12);
  return svg.str();
}

std::string weights_figure(const Model& model, const Target& target, const WeightsOptions& o,
                           ImportanceSummary* out) {
  require_target_model(model, target);
  ImportanceSummary s;
  const std::vector<double> log_w = flow_log_weights(model, target, o, s);
  std::vector<double> v;  // log w − log Ẑ of the samples with w > 0
  for (double w : log_w) {
    if (std::isfinite(w)) v.push_back(w - s.log_z);
  }
  const auto zero = static_cast<int64_t>(log_w.size() - v.size());
  // The far left tail (q ≫ p̃: 1% of the samples, which may reach thousands of nats) is left
  // out; the right one, which decides the unweighting efficiency, is shown in full.
  plot::Range r = plot::covering_range(v, 0.01, 0.05);
  const double top = std::max({*std::max_element(v.begin(), v.end()), s.log_w_max - s.log_z, 0.0});
  r.hi = std::max(r.hi, top + 0.03 * r.width());
  r.lo = std::min(r.lo, -0.03 * r.width());
  std::vector<double> counts(static_cast<size_t>(o.bins), 0.0);
  int64_t below = 0;
  for (double x : v) {
    if (x < r.lo) {
      ++below;
      continue;
    }
    const auto bin = static_cast<int64_t>((x - r.lo) / r.width() * static_cast<double>(o.bins));
    counts[static_cast<size_t>(std::clamp<int64_t>(bin, 0, o.bins - 1))] += 1;
  }
  const double peak = *std::max_element(counts.begin(), counts.end());
  const std::vector<std::string> caption = weights_caption(s, target, zero, below, r.lo);
  plot::Svg svg(680, 400 + 18.0 * static_cast<double>(caption.size()));
  // Headroom above the highest bar keeps the legend clear of it.
  const double y_top = std::max(peak, 1.0) * 1.25;
  plot::Axes axes(svg, 70, 40, 580, 300, r, {0, y_top});
  const double width = r.width() / static_cast<double>(o.bins);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] <= 0) continue;
    const double a = r.lo + static_cast<double>(i) * width;
    svg.rect(axes.px(a), axes.py(counts[i]), axes.px(a + width) - axes.px(a),
             axes.py(0) - axes.py(counts[i]), plot::hex(plot::series_color(0)));
  }
  const double w_max = s.log_w_max - s.log_z;
  axes.line({0, 0}, {0, y_top}, plot::hex(plot::series_color(1)), 2);
  axes.line({w_max, w_max}, {0, y_top}, plot::hex(plot::series_color(3)), 2);
  axes.legend({{"w = Ẑ (mean weight)", plot::hex(plot::series_color(1))},
               {"robust w_max", plot::hex(plot::series_color(3))}});
  axes.decorate("log w − log Ẑ of " + std::to_string(s.samples) + " samples of the flow, w = p̃/q",
                "log w − log Ẑ", "samples");
  for (size_t i = 0; i < caption.size(); ++i) {
    svg.text(70, 400 + 18.0 * static_cast<double>(i), caption[i], 12);
  }
  if (out) *out = s;
  return svg.str();
}

std::string latent_figure(const Model& model, const at::Tensor& data, const FigureOptions& o) {
  require_2d(model, "latent");
  c10::AutoGradMode no_grad(false);
  const at::Tensor z = model.flow->transform_to_noise(data);
  const Columns c = columns_of(z.narrow(0, 0, std::min<int64_t>(z.size(0), 5000)));
  const plot::Range r{-4, 4};
  const double size = o.panel * 2;
  plot::Svg svg(kLeft + size + kGap, kRowTitle + kPanelTitle + size + kBottom);
  svg.text(kLeft - 40, 17, "Data pushed into the latent space, z = f(x)", 14, "start", 0, true);
  plot::Axes axes(svg, kLeft, kRowTitle + kPanelTitle, size, size, fixed(o.x) ? o.x : r,
                  fixed(o.y) ? o.y : r);
  axes.scatter(c.x, c.y, plot::hex(plot::viridis(0.35)), 1.2);
  // The contours of N(0, I) are circles; these hold 39%, 86% and 99% of its mass.
  for (int radius = 1; radius <= 3; ++radius) {
    axes.circle(0, 0, radius, "#e4572e", 1.5, "5,3");
    const double at = radius * std::sqrt(0.5) + 0.08;
    svg.text(axes.px(at), axes.py(at), std::to_string(radius) + "σ", 11, "start", 0, false,
             "#e4572e");
  }
  axes.decorate(std::to_string(c.x.size()) + " points over the contours of N(0, I)", "z₁", "z₂");
  return svg.str();
}

std::string curves_figure(const std::vector<Json>& records, const std::string& title) {
  const LossCurves c = loss_curves(records);
  const io::MetricsCurves& curves = c.loss;
  if (curves.train.empty() && curves.val.empty()) {
    throw ConfigError(
        "the metrics hold no NLL or loss records (write them with zflow train --metrics or "
        "zflow fit-target --metrics)");
  }
  std::vector<double> all_steps = curves.steps, all_values = curves.train;
  all_steps.insert(all_steps.end(), curves.val_steps.begin(), curves.val_steps.end());
  all_steps.insert(all_steps.end(), c.ess_steps.begin(), c.ess_steps.end());
  all_values.insert(all_values.end(), curves.val.begin(), curves.val.end());
  const auto [lo, hi] = std::minmax_element(all_steps.begin(), all_steps.end());
  plot::Range xr{*lo, *hi > *lo ? *hi : *lo + 1};
  // The first steps can sit far above the rest: cover the values but their top 2%.
  plot::Range yr = plot::covering_range(all_values, 0.02, 0.08);
  // fit-target: the ESS of each validation in a second panel under the loss, same steps.
  const bool ess = !c.ess.empty();
  plot::Svg svg(680, ess ? 640 : 400);
  plot::Axes axes(svg, 70, 40, 580, 300, xr, yr);
  axes.line(curves.steps, curves.train, plot::hex(plot::series_color(0)), 1.5);
  axes.line(curves.val_steps, curves.val, plot::hex(plot::series_color(1)), 2);
  axes.scatter(curves.val_steps, curves.val, plot::hex(plot::series_color(1)), 2.5);
  axes.legend({{"training (running mean)", plot::hex(plot::series_color(0))},
               {"validation", plot::hex(plot::series_color(1))}});
  axes.decorate(title, "step",
                curves.bits_per_dim ? "bits/dim" : (c.variational ? "loss (nats)" : "NLL (nats)"));
  if (ess) {
    plot::Axes lower(svg, 70, 420, 580, 170, xr, {0, 100});
    lower.line(c.ess_steps, c.ess, plot::hex(plot::series_color(2)), 2);
    lower.scatter(c.ess_steps, c.ess, plot::hex(plot::series_color(2)), 2.5);
    lower.decorate("Effective sample size of each validation", "step", "ESS (%)");
  }
  return svg.str();
}

PickedImages pick_images(const Model& model, const std::string& spec, int64_t count,
                         uint64_t seed) {
  const ModelData data = load_model_images(model, spec, 0);
  const int64_t available = data.x.values.size(0);
  if (available < count) {
    throw DataError(data.x.source + " has " + std::to_string(available) + " images, " +
                    std::to_string(count) + " are needed");
  }
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor chosen =
      at::randperm(available, generator, at::TensorOptions(at::kLong)).narrow(0, 0, count);
  PickedImages picked;
  picked.images = to_model_dtype(data.x.values.index_select(0, chosen), model);
  if (data.context.values.defined()) {
    picked.context = to_model_dtype(data.context.values.index_select(0, chosen), model);
  }
  return picked;
}

int64_t sample_grid_rows(const Model& model, int64_t rows) {
  return model.class_conditional() ? model.context_features : rows;
}

io::Image sample_grid(const Model& model, int64_t rows, int64_t cols, double temperature,
                      int64_t scale, uint64_t seed) {
  seed_torch(seed);
  c10::AutoGradMode no_grad(false);
  if (model.class_conditional()) {
    // One row per class: `cols` samples of each, [K, cols, C, H, W].
    const int64_t classes = model.context_features;
    const at::Tensor images = model.flow->sample_at_temperature(
        cols, temperature, at::eye(classes, at::TensorOptions(model.dtype)));
    return data::image_grid(images.flatten(0, 1).to(at::kFloat), classes, cols, 2, scale);
  }
  const at::Tensor images = model.flow->sample_at_temperature(rows * cols, temperature);
  return data::image_grid(images.to(at::kFloat), rows, cols, 2, scale);
}

io::Image reconstruction_grid(const Model& model, const PickedImages& picked, int64_t rows,
                              int64_t cols, int64_t scale, double* error) {
  c10::AutoGradMode no_grad(false);
  const at::Tensor& x = picked.images;
  const at::Tensor back =
      model.flow->decode(model.flow->transform_to_noise(x, picked.context), picked.context);
  if (error) *error = (back - x).abs().max().item<double>();
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  // Rows of data, each followed by the row of its reconstructions.
  const at::Tensor pairs =
      at::stack({x.view({rows, cols, c, h, w}), back.view({rows, cols, c, h, w})}, 1)
          .reshape({2 * rows * cols, c, h, w});
  return data::image_grid(pairs.to(at::kFloat), 2 * rows, cols, 2, scale);
}

io::Image interpolation_grid(const Model& model, const PickedImages& picked, int64_t pairs,
                             int64_t steps, int64_t scale) {
  c10::AutoGradMode no_grad(false);
  const at::Tensor z = model.flow->transform_to_noise(picked.images, picked.context);
  const at::Tensor start = z.narrow(0, 0, pairs);
  const at::Tensor end = z.narrow(0, pairs, pairs);
  // Row i: decode((1 − t)·z_a + t·z_b) for t = 0, 1/(S−1), …, 1 (linear, as in Glow §5).
  const at::Tensor t = at::linspace(0.0, 1.0, steps, z.options()).view({1, steps, 1, 1, 1});
  const at::Tensor path = start.unsqueeze(1) * (1 - t) + end.unsqueeze(1) * t;
  at::Tensor context;
  if (picked.context.defined()) {
    // The classes' one-hot vectors along the same path (the prior is linear in them).
    const at::Tensor s = t.view({1, steps, 1});
    const at::Tensor& c = picked.context;
    context =
        (c.narrow(0, 0, pairs).unsqueeze(1) * (1 - s) + c.narrow(0, pairs, pairs).unsqueeze(1) * s)
            .reshape({pairs * steps, c.size(1)});
  }
  const at::Tensor images =
      model.flow->decode(path.reshape({pairs * steps, z.size(1), z.size(2), z.size(3)}), context);
  return data::image_grid(images.to(at::kFloat), pairs, steps, 2, scale);
}

}  // namespace zflow::cli
