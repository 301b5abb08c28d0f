#include "zflow/transforms/orthogonal.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

/// The pixels' channel vectors of [B, C, H, W] as rows [B·H·W, C]; [B, D] stays as it is.
Tensor as_rows(const Tensor& inputs) {
  return inputs.dim() == 4 ? inputs.permute({0, 2, 3, 1}).reshape({-1, inputs.size(1)}) : inputs;
}

/// The converse of as_rows for inputs shaped like `like`.
Tensor from_rows(const Tensor& rows, const Tensor& like) {
  if (like.dim() != 4) return rows;
  return rows.reshape({like.size(0), like.size(2), like.size(3), like.size(1)})
      .permute({0, 3, 1, 2})
      .contiguous();
}

void check_inputs(const std::string& type, const Tensor& inputs, int64_t features) {
  TORCH_CHECK((inputs.dim() == 2 || inputs.dim() == 4) && inputs.size(1) == features, type,
              ": expected [B, ", features, "] or [B, ", features, ", H, W], got ", inputs.sizes());
}

/// An orthogonal map has |det| = 1.
TransformOutput volume_preserving(Tensor outputs, const Tensor& inputs) {
  return {std::move(outputs), at::zeros({inputs.size(0)}, inputs.options())};
}

}  // namespace

// ---- Householder reflections ---------------------------------------------------------------

HouseholderLinearImpl::HouseholderLinearImpl(const HouseholderLinearOptions& options)
    : TransformImpl("householder"), features_(options.features()) {
  require_positive("householder: features", features_);
  if (options.reflections() < 0) throw ConfigError("householder: reflections must be >= 0");
  const int64_t count = options.reflections() > 0 ? options.reflections() : features_;
  vectors = register_parameter("vectors", at::randn({count, features_}, at::kFloat));
}

Tensor HouseholderLinearImpl::reflect(Tensor rows, bool transpose) const {
  // H x = x − 2 (vᵀx / vᵀv) v for each row x; Q x = H_1(H_2(⋯ H_K x)) applies H_K first,
  // Qᵀ z = H_K(⋯ H_1 z) applies H_1 first.
  const Tensor scale = 2.0 / vectors.pow(2).sum(1).clamp_min(1e-12);  // [K]
  const int64_t count = vectors.size(0);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t k = transpose ? i : count - 1 - i;
    const Tensor v = vectors[k];
    rows = rows - at::outer(at::mv(rows, v) * scale[k], v);
  }
  return rows;
}

Tensor householder_product(const Tensor& vectors, int64_t features) {
  // Q ← Q H_k = Q − 2 (Q v_k) v_kᵀ/‖v_k‖², k = 1 … K.
  Tensor q = at::eye(features, vectors.options());
  for (int64_t k = 0; k < vectors.size(0); ++k) {
    const Tensor v = vectors[k];
    q = q - 2 * at::outer(at::mv(q, v), v) / at::dot(v, v).clamp_min(1e-12);
  }
  return q;
}

Tensor HouseholderLinearImpl::weight() const { return householder_product(vectors, features_); }

TransformOutput HouseholderLinearImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check_inputs("householder", inputs, features_);
  return volume_preserving(from_rows(reflect(as_rows(inputs), false), inputs), inputs);
}

TransformOutput HouseholderLinearImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check_inputs("householder", inputs, features_);
  return volume_preserving(from_rows(reflect(as_rows(inputs), true), inputs), inputs);
}

Json HouseholderLinearImpl::spec() const {
  return {{"type", "householder"}, {"features", features_}, {"reflections", vectors.size(0)}};
}

std::string HouseholderLinearImpl::describe() const {
  return "householder(" + std::to_string(features_) + ", " + std::to_string(vectors.size(0)) +
         " reflections)";
}

// ---- exp / Cayley of a skew-symmetric matrix ----------------------------------------------------

OrthogonalLinearImpl::OrthogonalLinearImpl(const OrthogonalLinearOptions& options)
    : TransformImpl("orthogonal_linear"), features_(options.features()), map_(options.map()) {
  require_positive("orthogonal_linear: features", features_);
  if (map_ != "exp" && map_ != "cayley") {
    throw ConfigError("orthogonal_linear: map must be exp or cayley, got '" + map_ + "'");
  }
  skew_entries =
      register_parameter("skew_entries", at::zeros({features_ * (features_ - 1) / 2}, at::kFloat));
}

Tensor OrthogonalLinearImpl::weight() const {
  // The strictly upper triangle row by row, the order of triu_indices.
  const Tensor upper =
      at::triu_indices(features_, features_, 1, skew_entries.options().dtype(at::kLong));
  const Tensor a = at::zeros({features_, features_}, skew_entries.options())
                       .index_put({upper[0], upper[1]}, skew_entries);
  const Tensor skew = a - a.t();
  if (map_ == "exp") return at::linalg_matrix_exp(skew);
  // (I − S)⁻¹(I + S): I − S is invertible for every skew S (its eigenvalues are 1 − iλ).
  const Tensor eye = at::eye(features_, skew.options());
  return at::linalg_solve(eye - skew, eye + skew);
}

TransformOutput OrthogonalLinearImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check_inputs("orthogonal_linear", inputs, features_);
  return volume_preserving(from_rows(at::mm(as_rows(inputs), weight().t()), inputs), inputs);
}

TransformOutput OrthogonalLinearImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check_inputs("orthogonal_linear", inputs, features_);
  return volume_preserving(from_rows(at::mm(as_rows(inputs), weight()), inputs), inputs);
}

Json OrthogonalLinearImpl::spec() const {
  return {{"type", "orthogonal_linear"}, {"features", features_}, {"map", map_}};
}

std::string OrthogonalLinearImpl::describe() const {
  return "orthogonal_linear(" + std::to_string(features_) + ", " + map_ + ")";
}

}  // namespace zflow
