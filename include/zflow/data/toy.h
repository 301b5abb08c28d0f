#pragma once
/// \file
/// The eight standard 2-D toy distributions of the flow literature, generated with zflow's
/// own portable random numbers so that a seed gives the same data on every machine.
/// Formulas and entropies: docs/datasets.md.
///
/// The eight (8gaussians, checkerboard, moons, rings, circles, pinwheel, 2spirals, swissroll)
/// are the ones popularised by FFJORD's toy_data.py (Grathwohl, Chen, Bettencourt, Sutskever
/// & Duvenaud 2019, https://arxiv.org/abs/1810.01367). zflow follows those definitions
/// closely but draws every curve parameter from a continuous distribution (scikit-learn's
/// moons and circles place points evenly), so that each density is well defined and its
/// entropy H = −∫ p log p known. A ninth, "torus", holds pairs of angles (a mixture of von
/// Mises products), for flows on the circle (transforms/circular.h). H is the best expected test
/// NLL any model can reach: a trained flow's NLL approaches it from above.
///
/// Example:
///
///     at::Tensor x = zflow::data::sample_toy("moons", 1000, /*seed=*/1);  // [1000, 2] float64
///     for (const auto& d : zflow::data::toy_datasets())
///       std::cout << d.name << ": " << d.entropy << " nats\n";

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

/// The exact density of the "torus" dataset at the angles (a, b) (any real numbers: it has
/// period 2π in each).
double torus_density(double a, double b);

/// Draws n points [n, 2] (float64) from dataset `name` with the given seed.
/// ConfigError for an unknown name (listing the known ones).
at::Tensor sample_toy(const std::string& name, int64_t n, uint64_t seed);

}  // namespace zflow::data
