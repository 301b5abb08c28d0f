#pragma once
/// \file
/// Assembling the spec of the flow to train from a recipe: a ready-made model (builders.h)
/// or a hand-written spec, a fixed standardisation z = (x − mean)/std fitted on the
/// training rows in front of it, and for a conditional flow the context's size, its
/// standardisation and an optional embedding network. Also the checks that make training
/// fail early with a clear message: constant columns and values that overflow once
/// standardised.
///
/// Example:
///
///     zflow::FlowRecipe recipe;
///     recipe.model = "nsf-coupling";
///     recipe.event_shape = {2};
///     zflow::AssembledSpec a = zflow::assemble_flow_spec(recipe, train_rows);
///     zflow::FlowPtr flow = zflow::make_flow(a.spec);

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "zflow/core/spec.h"
#include "zflow/flows/builders.h"

namespace zflow {

/// What to build.
struct FlowRecipe {
  /// A ready-made model's name (builder_names, image_builder_names); ignored when `spec`
  /// is set.
  std::string model;
  /// A hand-written flow spec (read_flow_spec_file), or null.
  Json spec = nullptr;
  /// Where `spec` came from, for messages ("" for a builder).
  std::string spec_source;
  BuilderOptions builder;
  /// [D] for tabular data, [C, H, W] for images (image models: no standardisation).
  std::vector<int64_t> event_shape;
  bool standardize = true;
  /// Size K of the raw context (0: unconditional). For an image model the context is the
  /// one-hot class (K classes) and is not standardised.
  int64_t context_features = 0;
  /// Width of an MLP embedding of the context (0: none).
  int64_t embedding = 0;
};

/// The spec and the fitted standardisations (null where none) for the model card.
struct AssembledSpec {
  Json spec;
  Json standardization = nullptr;
  Json context_standardization = nullptr;
};

/// The spec for `recipe`, with standardisations fitted on `train` [N, D] and
/// `train_context` [N, K] (undefined when unconditional). ConfigError for a spec that
/// contradicts the recipe (a conditional spec without context, a context size or an
/// embedding already in the spec). When `train_rows` (int64) is given, only those rows of
/// `train` and `train_context` are the training data; the statistics are computed in
/// chunks (core/column_moments.h), so a memory-mapped table is never copied whole.
AssembledSpec assemble_flow_spec(const FlowRecipe& recipe, const at::Tensor& train,
                                 const at::Tensor& train_context = {},
                                 const at::Tensor& train_rows = {});

/// A flow spec read from a JSON file (ConfigError naming the file when it is not one);
/// the transform is wrapped in a composite so that a standardisation can go in front.
Json read_flow_spec_file(const std::string& path);

/// DataError for tabular data a flow cannot fit: constant columns in the training rows
/// `train` (those of `train_rows` when given) (a point mass has no density) and values of
/// `values` (all rows) whose standardisation overflows in `dtype`, named by `source`, row
/// and `labels[column]`. Reads the data a chunk at a time.
void check_trainable(const std::string& source, const std::vector<std::string>& labels,
                     const at::Tensor& values, const at::Tensor& train, bool standardize,
                     at::ScalarType dtype, const at::Tensor& train_rows = {});

}  // namespace zflow
