#pragma once

// Small helpers for tests of LibTorch modules: random parameters, a parameter by name,
// parameter counts, the largest absolute value of a tensor.

#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

namespace zflow::testing {

/// Sets every parameter to randn · scale (in its own dtype), so that nothing starts at zero.
inline void randomize_parameters(torch::nn::Module& module, double scale = 0.5) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.copy_(at::randn_like(p) * scale);
}

/// The parameter registered under `name` (a module path such as "layers.0.weight").
inline at::Tensor parameter(torch::nn::Module& module, const std::string& name) {
  return module.named_parameters()[name];
}

/// The number of scalar parameters.
inline int64_t parameter_count(torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

inline double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

}  // namespace zflow::testing
