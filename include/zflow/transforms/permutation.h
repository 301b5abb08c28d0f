#pragma once
/// \file
/// Feature permutations: volume preserving (log|det J| = 0).

#include <cstdint>
#include <vector>

#include "zflow/core/index.h"
#include "zflow/core/random.h"
#include "zflow/core/transform.h"

namespace zflow {

/// z_i = x_{indices[i]}. The indices are a buffer, saved with the model.
class PermutationImpl : public TransformImpl {
 public:
  explicit PermutationImpl(std::vector<int64_t> indices);
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
