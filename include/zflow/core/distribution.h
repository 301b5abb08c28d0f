#pragma once
/// \file
/// Distributions over [D] (or [C, H, W]) vectors, optionally conditioned on a context.
///
/// One interface serves the base densities π of distributions/ and the flows built on them
/// (flows/flow.h), whose density is the change of variables
/// log p(x | c) = log π(f(x | c) | c) + log|det ∂f/∂x| (Papamakarios et al. 2021,
/// https://arxiv.org/abs/1912.02762). log_prob scores data, sample draws from the model.
///
/// Example (StandardNormal: zflow/distributions/normal.h):
///
///     zflow::StandardNormal base(std::vector<int64_t>{2});
///     torch::Tensor x = base->sample(512);        // [512, 2]
///     torch::Tensor log_p = base->log_prob(x);    // [512]
///     auto [y, log_q] = base->sample_and_log_prob(16);  // [16, 2], [16]

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "zflow/core/spec.h"

namespace zflow {

using torch::Tensor;

/// Base class of every density: base distributions and flows alike.
class DistributionImpl : public torch::nn::Module {
 public:
  explicit DistributionImpl(std::string type) : torch::nn::Module(type), type_(std::move(type)) {}

  /// log p(x | context) per sample: x [B, ...] → [B].
  virtual Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) = 0;
  /// n samples [n, ...]; see docs/conventions.md for the shapes with a context.
  virtual Tensor sample(int64_t n, const Tensor& context = {}) = 0;
  /// Samples and their log densities, cheaper than sample() then log_prob() for flows.
  virtual std::pair<Tensor, Tensor> sample_and_log_prob(int64_t n, const Tensor& context = {});

  /// Size of the context vector this distribution conditions on (0: unconditional).
  virtual int64_t context_features() const { return 0; }
  /// The shape of one event ({D} for tabular data).
  virtual std::vector<int64_t> event_shape() const = 0;
  /// A spec from which make_distribution rebuilds it.
  virtual Json spec() const = 0;
  const std::string& type() const { return type_; }

 private:
  std::string type_;
};

using DistributionPtr = std::shared_ptr<DistributionImpl>;

}  // namespace zflow
