#pragma once
/// \file
/// Training metrics as `zflow train --metrics` writes them: JSON Lines, one object per line
/// ({"step": 100, "train_nll": 1.23, "val_nll": 1.31, ...}; records with an "event" field
/// mark a resume or an early stop). `zflow report` and `zflow plot curves` read them back.
/// Image models also log bits per dimension, bpd = NLL / (D · ln 2) with D = C·H·W.
///
/// Example:
///
///     auto records = zflow::io::read_metrics("out/metrics.jsonl");
///     zflow::io::MetricsCurves curves = zflow::io::metrics_curves(records);
///     // curves.train[i] at curves.steps[i]; curves.val[j] at curves.val_steps[j]

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace zflow::io {

/// Reads a metrics file: one JSON value per line, blank lines skipped. IOError if the file
/// cannot be read; DataError naming the file and the line for a line that is not JSON.
std::vector<nlohmann::json> read_metrics(const std::string& path);

/// The learning curves held by metrics records.
struct MetricsCurves {
  /// Whether the values are bits/dim (image models log them beside the NLL and they are
  /// preferred), otherwise NLL in nats.
  bool bits_per_dim = false;
  /// The training loss (a running mean) against the step.
  std::vector<double> steps, train;
  /// The validation loss (or that of a training subset, without validation data).
  std::vector<double> val_steps, val;
};

/// Extracts the curves from records: objects with a "step" and no "event"; a loss that is not
/// a finite number (a diverged run writes null) is left out. DataError naming the record for
/// a "step" that is not a finite number.
MetricsCurves metrics_curves(const std::vector<nlohmann::json>& records);

}  // namespace zflow::io
