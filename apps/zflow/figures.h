#pragma once
/// \file
/// The pictures of `zflow plot` and `zflow report`, built from a loaded model: the step-by-
/// step figure of a 2-D flow, its density beside the data, the data pushed into the latent
/// space, training curves, and the image models' sample, reconstruction and interpolation
/// grids. Charts are SVG documents (text stays text) with raster panels embedded as PNG.

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "common.h"
#include "zflow/io/image.h"
#include "zflow/io/metrics.h"
#include "zflow/plot/raster.h"

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

/// The density heat map alone, over the ranges of `o` (or covering `data`): a PNG raster
/// with row 0 at the top (largest y).
io::Image density_raster(const Model& model, const at::Tensor& data, const FigureOptions& o);

/// latent: the data pushed through the flow, z = f(x), over the contours of N(0, I). SVG.
std::string latent_figure(const Model& model, const at::Tensor& data, const FigureOptions& o);

/// curves: training and validation NLL (bits/dim for image models) against the step, from
/// metrics records (one JSON object per line of a metrics file). SVG; ConfigError if the
/// records hold no NLL.
std::string curves_figure(const std::vector<Json>& records, const std::string& title);

/// Reads a metrics file written by `zflow train --metrics` (io/metrics.h).
using io::read_metrics;

/// Image models: grids as PNG.
io::Image sample_grid(const Model& model, int64_t rows, int64_t cols, double temperature,
                      int64_t scale, uint64_t seed);
/// Rows of images, each followed by decode(encode(x)); `error` gets the largest pixel error.
io::Image reconstruction_grid(const Model& model, const at::Tensor& images, int64_t rows,
                              int64_t cols, int64_t scale, double* error = nullptr);
/// Per row, decode((1 − t)·z_a + t·z_b) for `steps` values of t from 0 to 1.
io::Image interpolation_grid(const Model& model, const at::Tensor& images, int64_t pairs,
                             int64_t steps, int64_t scale);
/// `count` images of `spec` for an image model, chosen at random with `seed`.
at::Tensor pick_images(const Model& model, const std::string& spec, int64_t count, uint64_t seed);

}  // namespace zflow::cli
