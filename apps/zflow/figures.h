#pragma once
/// \file
/// The pictures of `zflow plot` and `zflow report`, built from a loaded model: the step-by-
/// step figure of a 2-D flow, its density beside the data (or beside the target it was
/// fitted to), the data pushed into the latent space, training curves, the distribution of
/// importance weights of a model fitted to a target, and the image models' sample,
/// reconstruction and interpolation grids. Charts are SVG documents (text stays text) with
/// raster panels embedded as PNG.

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "common.h"
#include "zflow/io/image.h"
#include "zflow/io/metrics.h"
#include "zflow/plot/raster.h"
#include "zflow/targets/target.h"
#include "zflow/variational/importance.h"

namespace zflow::cli {

/// Options shared by the 2-D figures.
struct FigureOptions {
  /// Samples drawn for the histograms.
  int64_t samples = 20000;
  /// Histogram bins (and density grid cells) per axis.
  int64_t bins = 100;
  /// Side of one panel in px.
  double panel = 200;
  /// Fixed axes (x.lo, x.hi, y.lo, y.hi); empty ranges (lo == hi) mean "cover the data".
  plot::Range x{0, 0};
  plot::Range y{0, 0};
  /// steps: at most this many panels per row (layers are grouped evenly to fit).
  int64_t max_panels = 8;
  /// steps: groups of consecutive layers per panel (0: automatic, from max_panels).
  int64_t groups = 0;
  /// steps: show the exact density of every stage, with samples as dots over it, instead
  /// of a histogram of samples.
  bool density = false;
  /// steps: a continuous layer is shown at this many evenly spaced times after its start
  /// (the seed's picture as a film strip: noise bent into data step by step).
  int64_t times = 6;
  uint64_t seed = 0;
};

/// The data to draw with a 2-D model: `spec` (a toy name or a file; empty: the model's own
/// toy dataset, else ConfigError asking for --data), `n` rows at most.
at::Tensor figure_data(const Model& model, const std::string& spec, int64_t n, uint64_t seed);

/// steps: a row of panels from z ~ N(0, I) through each layer's inverse to x, and (when
/// `data` is defined) the row from data to latent. SVG.
std::string steps_figure(const Model& model, const at::Tensor& data, const FigureOptions& o);

/// density: the model's density as a heat map beside a histogram of the data, same axes. SVG.
std::string density_figure(const Model& model, const at::Tensor& data, const FigureOptions& o);

/// The density heat map alone, over the ranges of `o` (or covering `data`; `data` may be
/// undefined when both ranges are fixed): a PNG raster with row 0 at the top (largest y).
io::Image density_raster(const Model& model, const at::Tensor& data, const FigureOptions& o);

/// Whether the model file records a target it was fitted to (`zflow fit-target`), rather
/// than data.
bool fitted_to_target(const Model& model);

/// `o` with its unset ranges taken from the target's plot box: the axes of the pictures of
/// a 2-D model fitted to `target`. ConfigError unless the model is 2-D, unconditional and
/// of the target's dimension.
FigureOptions target_axes(const Model& model, const Target& target, FigureOptions o);

/// density of a model fitted to a 2-D target: the normalised target p(x) = p̃(x)/Z (Z from
/// log_normalizer() when known, else the grid's own sum) beside the flow's q(x), over the
/// same axes (target_axes) and on the same colour scale. SVG.
std::string target_density_figure(const Model& model, const Target& target, const FigureOptions& o);

/// Options of weights_figure.
struct WeightsOptions {
  /// Samples of the flow.
  int64_t samples = 100000;
  /// Histogram bins.
  int64_t bins = 80;
  uint64_t seed = 0;
};

/// weights: a histogram of log w − log Ẑ, w = p̃(x)/q(x), over `samples` draws x ~ q of the
/// flow, with ESS, unweighting efficiency and log Ẑ ± se written under it and the robust
/// w_max marked (any D). `summary`, when given, gets the estimates. SVG; ConfigError when
/// the model and the target differ in dimension.
std::string weights_figure(const Model& model, const Target& target, const WeightsOptions& o,
                           ImportanceSummary* summary = nullptr);

/// latent: the data pushed through the flow, z = f(x), over the contours of N(0, I). SVG.
std::string latent_figure(const Model& model, const at::Tensor& data, const FigureOptions& o);

/// curves: training and validation NLL (bits/dim for image models) against the step, from
/// metrics records (one JSON object per line of a metrics file); for the records of
/// `zflow fit-target`, the training and validation loss and, under them, the ESS of each
/// validation. SVG; ConfigError if the records hold no NLL and no loss.
std::string curves_figure(const std::vector<Json>& records, const std::string& title);

/// Reads a metrics file written by `zflow train --metrics` (io/metrics.h).
using io::read_metrics;

/// Images of a data set for an image model, and for a class-conditional one their one-hot
/// classes [N, K] (undefined otherwise), in the model's dtype.
struct PickedImages {
  at::Tensor images;
  at::Tensor context;
};

/// The number of rows of sample_grid: `rows`, or one per class of a class-conditional model.
int64_t sample_grid_rows(const Model& model, int64_t rows);
/// Image models: grids as PNG. A class-conditional model's sample grid has one row per class
/// (sample_grid_rows), `cols` samples of that class each.
io::Image sample_grid(const Model& model, int64_t rows, int64_t cols, double temperature,
                      int64_t scale, uint64_t seed);
/// Rows of images, each followed by decode(encode(x)); `error` gets the largest pixel error.
io::Image reconstruction_grid(const Model& model, const PickedImages& images, int64_t rows,
                              int64_t cols, int64_t scale, double* error = nullptr);
/// Per row, decode((1 − t)·z_a + t·z_b) for `steps` values of t from 0 to 1 (the one-hot
/// classes of a class-conditional model mixed the same way).
io::Image interpolation_grid(const Model& model, const PickedImages& images, int64_t pairs,
                             int64_t steps, int64_t scale);
/// `count` images of `spec` for an image model, chosen at random with `seed`.
PickedImages pick_images(const Model& model, const std::string& spec, int64_t count, uint64_t seed);

}  // namespace zflow::cli
