#pragma once
/// \file
/// The HTML run report: one self-contained page (inline SVG, PNG as data URIs, no network)
/// with a model's configuration, final metrics, training curves and pictures; for a model
/// fitted to a target, the estimate of log Z and the target's density beside the flow's.

#include <string>
#include <vector>

#include "common.h"

namespace zflow::cli {

struct ReportOptions {
  /// Metrics records of the run (may be empty: then no curves).
  std::vector<Json> metrics;
  /// Data for the 2-D pictures / images for the image pictures (empty: the model's own
  /// built-in dataset, fashion-mnist for image models).
  std::string data;
  /// A model fitted to a target (zflow fit-target): the target (a built-in name or a
  /// TorchScript file; empty: the one its model card names) and its dimension (0: the
  /// card's), and the samples of the flow behind the histogram of importance weights
  /// (modest, so that the report stays quick).
  std::string target;
  int64_t target_dim = 0;
  int64_t weight_samples = 20000;
  uint64_t seed = 0;
};

/// The report of `model` as an HTML document.
std::string report_html(const Model& model, const ReportOptions& options);

/// Writes the report atomically to `path` (.html).
void write_report(const std::string& path, const Model& model, const ReportOptions& options);

}  // namespace zflow::cli
