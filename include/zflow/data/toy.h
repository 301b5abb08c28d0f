#pragma once
/// \file
/// The eight standard 2-D toy distributions of the flow literature, generated with zflow's
/// own portable random numbers so that a seed gives the same data on every machine.
/// Formulas and entropies: docs/datasets.md.

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow::data {

/// One built-in dataset.
struct ToyDataset {
  std::string name;
  std::string description;
  /// Differential entropy in nats: the best achievable expected test NLL.
  double entropy;
};

/// All built-in datasets, in a fixed order.
const std::vector<ToyDataset>& toy_datasets();

/// Whether `name` is a built-in dataset.
bool is_toy_dataset(const std::string& name);

/// Draws n points [n, 2] (float64) from dataset `name` with the given seed.
/// ConfigError for an unknown name (listing the known ones).
at::Tensor sample_toy(const std::string& name, int64_t n, uint64_t seed);

}  // namespace zflow::data
