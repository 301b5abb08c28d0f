#include "zflow/transforms/permutation.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

std::vector<int64_t> PermutationOptions::indices() const {
  require_positive("permutation: features", features());
  if (kind() == "random") return random_permutation(features(), seed());
  if (kind() != "reverse") {
    throw ConfigError("permutation: kind must be 'reverse' or 'random', got '" + kind() + "'");
  }
  std::vector<int64_t> p(static_cast<size_t>(features()));
  for (int64_t i = 0; i < features(); ++i) p[i] = features() - 1 - i;
  return p;
}

PermutationImpl::PermutationImpl(std::vector<int64_t> indices)
    : TransformImpl("permutation"), indices_(std::move(indices)) {
  const auto n = static_cast<int64_t>(indices_.size());
  if (n == 0) throw ConfigError("permutation: needs at least one feature");
  std::vector<int64_t> inverse(indices_.size(), -1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = indices_[i];
    if (j < 0 || j >= n || inverse[j] != -1) {
      throw ConfigError("permutation: indices are not a permutation of 0.." +
                        std::to_string(n - 1));
    }
    inverse[j] = i;
  }
  forward_index_ = IndexList(indices_);
  inverse_index_ = IndexList(inverse);
}

std::shared_ptr<PermutationImpl> PermutationImpl::reverse(int64_t features) {
  return std::make_shared<PermutationImpl>(PermutationOptions(features).kind("reverse"));
}

std::shared_ptr<PermutationImpl> PermutationImpl::random(int64_t features, uint64_t seed) {
  return std::make_shared<PermutationImpl>(PermutationOptions(features).kind("random").seed(seed));
}

TransformOutput PermutationImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  TORCH_CHECK(inputs.size(1) == static_cast<int64_t>(indices_.size()), "permutation: expected ",
              indices_.size(), " features, got ", inputs.sizes());
  return {inputs.index_select(1, forward_index_.on(inputs.device())),
          at::zeros({inputs.size(0)}, inputs.options())};
}

TransformOutput PermutationImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  TORCH_CHECK(inputs.size(1) == static_cast<int64_t>(indices_.size()), "permutation: expected ",
              indices_.size(), " features, got ", inputs.sizes());
  return {inputs.index_select(1, inverse_index_.on(inputs.device())),
          at::zeros({inputs.size(0)}, inputs.options())};
}

Json PermutationImpl::spec() const { return {{"type", "permutation"}, {"indices", indices_}}; }

std::string PermutationImpl::describe() const {
  std::string s = "permutation(";
  for (size_t i = 0; i < indices_.size() && i < 16; ++i)
    s += (i ? " " : "") + std::to_string(indices_[i]);
  return s + (indices_.size() > 16 ? " ...)" : ")");
}

}  // namespace zflow
