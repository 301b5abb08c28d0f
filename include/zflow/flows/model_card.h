#pragma once
/// \file
/// The model card: what a trained model's file says about how it was made, as a typed
/// record with a version. It is stored in the checkpoint's metadata (flows/checkpoint.h),
/// one entry per field, so that files written before the card existed read as version 0
/// with whatever they hold. `zflow train` writes it; every command that reads a model, and
/// `zflow info`, reads it back.
///
/// Example:
///
///     zflow::ModelCard card;
///     card.dataset = "moons";
///     card.model = "realnvp";
///     card.features = 2;
///     card.columns = {"x", "y"};
///     zflow::save_checkpoint("m.safetensors", *flow, card.to_metadata());
///     zflow::ModelCard back = zflow::ModelCard::from_metadata(
///         zflow::load_checkpoint("m.safetensors").metadata, 2, 0);

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "zflow/core/spec.h"

namespace zflow {

struct ModelCard {
  /// The version this zflow writes. 0: a file written before the model card.
  static constexpr int kVersion = 1;
  int version = kVersion;
  /// The built-in dataset's name or the data file, as given to training.
  std::string dataset;
  /// The ready-made model's name ("realnvp") or "spec FILE".
  std::string model;
  /// Data features D (C·H·W for images) and their column names (empty if unknown) and
  /// 0-based indices in the file (empty if unknown).
  int64_t features = 0;
  std::vector<std::string> columns;
  std::vector<int64_t> column_indices;
  /// The raw context's size K (0: unconditional), its column names and indices.
  int64_t context_features = 0;
  std::vector<std::string> context_columns;
  std::vector<int64_t> context_column_indices;
  /// [C, H, W] for an image model, empty for a tabular one.
  std::vector<int64_t> image_shape;
  /// A class-conditional image model (its context is the one-hot class): the names of its
  /// K = context_features classes, by label (the label numbers where the data named none);
  /// empty otherwise.
  std::vector<std::string> class_names;
  /// {"mean": [...], "std": [...]} fitted on the training split, or null.
  Json standardization = nullptr;
  Json context_standardization = nullptr;
  /// {"options": {...}, "result": {...}}: the training options and what happened.
  Json train = nullptr;
  /// Absolute path of the metrics file written during training ("" if none).
  std::string metrics_file;

  /// One metadata entry per field (JSON text where the value is not a plain string), and
  /// "model_card" with the version.
  std::map<std::string, std::string> to_metadata() const;
  /// Reads the card from a checkpoint's metadata. Damaged or missing entries read as
  /// unknown (empty, null); stored names and indices are kept only when they agree with the
  /// model's `features` and `context_features`.
  static ModelCard from_metadata(const std::map<std::string, std::string>& metadata,
                                 int64_t features, int64_t context_features);
};

}  // namespace zflow
