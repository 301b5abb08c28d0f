#include "zflow/transforms/linear.h"

#include <cmath>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/transforms/permutation.h"

namespace zflow {

LULinearImpl::LULinearImpl(const LULinearOptions& options)
    : TransformImpl("lu_linear"),
      features_(options.features()),
      diagonal_kind_(options.diagonal()),
      seed_(options.seed()) {
  require_positive("lu_linear: features", features_);
  if (diagonal_kind_ != "exp" && diagonal_kind_ != "softplus") {
    throw ConfigError("lu_linear: diagonal must be 'exp' or 'softplus', got '" + diagonal_kind_ +
                      "'");
  }
  std::vector<int64_t> perm(static_cast<size_t>(features_));
  for (int64_t i = 0; i < features_; ++i) perm[i] = i;
  if (seed_ != 0) perm = random_permutation(features_, seed_);
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int64_t>(i);

  lower_entries = register_parameter("lower", at::zeros({features_, features_}, at::kFloat));
  upper_entries = register_parameter("upper", at::zeros({features_, features_}, at::kFloat));
  // The diagonal starts at 1: exp(0) = 1, softplus(log(e − 1)) = 1.
  const double start = diagonal_kind_ == "exp" ? 0.0 : std::log(std::exp(1.0) - 1.0);
  raw_diagonal = register_parameter("raw_diagonal", at::full({features_}, start, at::kFloat));
  bias = register_parameter("bias", at::zeros({features_}, at::kFloat));
  permutation_ = IndexList(perm);
  inverse_permutation_ = IndexList(inverse);
}

Tensor LULinearImpl::diagonal() const {
  return diagonal_kind_ == "exp" ? at::exp(raw_diagonal) : at::softplus(raw_diagonal) + 1e-5;
}

Tensor LULinearImpl::lower() const {
  return at::tril(lower_entries, -1) + at::eye(features_, lower_entries.options());
}

Tensor LULinearImpl::upper(const Tensor& diagonal) const {
  return at::triu(upper_entries, 1) + at::diag(diagonal);
}

Tensor LULinearImpl::weight() const {
  return at::matmul(lower(), upper(diagonal()))
      .index_select(0, permutation_.on(lower_entries.device()));
}

namespace {

// Images [B, C, H, W] are the same map over the channels of every pixel (Glow's invertible
// 1×1 convolution), and log|det| counts H·W times.
double pixels_per_sample(const Tensor& inputs) {
  return static_cast<double>(inputs.size(2) * inputs.size(3));
}

}  // namespace

void LULinearImpl::check(const Tensor& inputs) const {
  TORCH_CHECK((inputs.dim() == 2 || inputs.dim() == 4) && inputs.size(1) == features_,
              "lu_linear: expected [B, ", features_, "] or [B, ", features_, ", H, W], got ",
              inputs.sizes());
}

// Images: W (C×C, formed once) applied to the channel vector of every pixel as one batched
// product on the [B, C, H·W] view, z = W x + b, without reordering the pixels into rows and
// back (that reordering and the two triangular products had cost more than the product).
TransformOutput LULinearImpl::forward_image(const Tensor& inputs) const {
  const Tensor z = at::matmul(weight(), inputs.reshape({inputs.size(0), features_, -1})) +
                   bias.view({1, features_, 1});
  const Tensor logabsdet =
      (at::log(diagonal()).sum() * pixels_per_sample(inputs)).expand({inputs.size(0)});
  return {z.view(inputs.sizes()), logabsdet};
}

// Images: W⁻¹ = U⁻¹ L⁻¹ Pᵀ from two triangular solves against Pᵀ (C×C), then one batched
// product, x = W⁻¹ (z − b).
TransformOutput LULinearImpl::inverse_image(const Tensor& inputs) const {
  const Tensor permutation_t = at::eye(features_, lower_entries.options())
                                   .index_select(0, inverse_permutation_.on(inputs.device()));
  const Tensor d = diagonal();
  const Tensor w = at::linalg_solve_triangular(lower(), permutation_t, /*upper=*/false,
                                               /*left=*/true, /*unitriangular=*/true);
  const Tensor inverse = at::linalg_solve_triangular(upper(d), w, /*upper=*/true);
  const Tensor x = at::matmul(
      inverse, (inputs - bias.view({1, features_, 1, 1})).reshape({inputs.size(0), features_, -1}));
  const Tensor logabsdet = (-at::log(d).sum() * pixels_per_sample(inputs)).expand({inputs.size(0)});
  return {x.view(inputs.sizes()), logabsdet};
}

TransformOutput LULinearImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  if (inputs.dim() == 4) return forward_image(inputs);
  // z = P L U x + b, in row form: x Uᵀ Lᵀ, then the row permutation as a column gather.
  const Tensor d = diagonal();
  const Tensor y = at::matmul(at::matmul(inputs, upper(d).t()), lower().t());
  const Tensor z = y.index_select(1, permutation_.on(inputs.device())) + bias;
  const Tensor logabsdet = at::log(d).sum().expand({inputs.size(0)});
  return {z, logabsdet};
}

TransformOutput LULinearImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  if (inputs.dim() == 4) return inverse_image(inputs);
  // Solve L U xᵀ = Pᵀ (z − b)ᵀ with two triangular solves.
  const Tensor y = (inputs - bias).index_select(1, inverse_permutation_.on(inputs.device())).t();
  const Tensor w = at::linalg_solve_triangular(lower(), y, /*upper=*/false, /*left=*/true,
                                               /*unitriangular=*/true);
  const Tensor d = diagonal();
  const Tensor x = at::linalg_solve_triangular(upper(d), w, /*upper=*/true);
  const Tensor logabsdet = (-at::log(d).sum()).expand({inputs.size(0)});
  return {x.t(), logabsdet};
}

Json LULinearImpl::spec() const {
  return {{"type", "lu_linear"},
          {"features", features_},
          {"diagonal", diagonal_kind_},
          {"seed", seed_}};
}

std::string LULinearImpl::describe() const {
  return "lu_linear(" + std::to_string(features_) + ", " + diagonal_kind_ + " diagonal)";
}

}  // namespace zflow
