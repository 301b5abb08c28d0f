#pragma once
/// \file
/// Feature permutations, z_i = x_{π(i)}: volume preserving (log|det J| = 0). Between
/// coupling or autoregressive layers they let every feature be transformed and conditioned
/// on in turn (NICE, Dinh et al. 2014, https://arxiv.org/abs/1410.8516; MAF, Papamakarios et
/// al. 2017, https://arxiv.org/abs/1705.07057).
///
/// Example:
///
///     auto shuffle = zflow::Permutation(zflow::PermutationOptions(5).kind("random").seed(3));
///     auto [z, logabsdet] = shuffle->forward(at::randn({8, 5}));  // logabsdet = 0

#include <cstdint>
#include <vector>

#include <string>

#include <torch/arg.h>

#include "zflow/core/index.h"
#include "zflow/core/random.h"
#include "zflow/core/transform.h"

namespace zflow {

/// Options of a permutation given by its kind rather than its indices.
struct PermutationOptions {
  explicit PermutationOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
  /// "reverse" or "random".
  TORCH_ARG(std::string, kind) = "reverse";
  /// Seed of a random permutation (zflow's portable generator, core/random.h).
  TORCH_ARG(uint64_t, seed) = 0;

 public:
  /// The indices; ConfigError for D < 1 or an unknown kind.
  std::vector<int64_t> indices() const;
};

/// z_i = x_{indices[i]}. The indices are a buffer, saved with the model.
class PermutationImpl : public TransformImpl {
 public:
  explicit PermutationImpl(std::vector<int64_t> indices);
  explicit PermutationImpl(const PermutationOptions& options)
      : PermutationImpl(options.indices()) {}
  /// Reverses the feature order.
  static std::shared_ptr<PermutationImpl> reverse(int64_t features);
  /// A uniformly random permutation drawn from `seed` with zflow's portable generator.
  static std::shared_ptr<PermutationImpl> random(int64_t features, uint64_t seed);

  Json spec() const override;
  std::string describe() const override;
  const std::vector<int64_t>& indices() const { return indices_; }

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  std::vector<int64_t> indices_;
  IndexList forward_index_;
  IndexList inverse_index_;
};
TORCH_MODULE(Permutation);

}  // namespace zflow
