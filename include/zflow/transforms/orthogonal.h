#pragma once
/// \file
/// Orthogonal linear layers: z = Q x with QᵀQ = I, so log|det J| = 0 and the inverse is
/// x = Qᵀ z, exact and as cheap as the forward. Two parameterisations of Q:
///
/// - `householder`: a product of K Householder reflections (Tomczak & Welling 2016,
///   "Improving Variational Auto-Encoders using Householder Flow",
///   https://arxiv.org/abs/1611.09630; van den Berg et al. 2018, Sylvester flows §3.2),
///
///       Q = H_1 H_2 ⋯ H_K,   H_k = I − 2 v_k v_kᵀ / ‖v_k‖²,
///
///   O(K·D) per sample without forming Q. K = D reflections reach every orthogonal matrix
///   (with det (−1)^K). The vectors v_k start N(0, I) (LibTorch's generator, as every
///   parameter's initialisation), so the layer starts as a random orthogonal map; a v_k
///   trained to 0 would be undefined, so ‖v_k‖² is floored at 1e-12 (never met in practice).
/// - `orthogonal_linear`: Q from a skew-symmetric S = A − Aᵀ (A strictly upper triangular,
///   D(D−1)/2 parameters, starting at 0: Q = I) by the matrix exponential Q = exp(S)
///   (Lezcano-Casado & Martínez-Rubio 2019, https://arxiv.org/abs/1901.08428) or the Cayley
///   map Q = (I − S)⁻¹ (I + S) (Helfrich et al. 2018, https://arxiv.org/abs/1707.09520).
///   Both give every rotation (det +1) near the identity; Cayley cannot reach eigenvalue −1,
///   exp is surjective onto SO(D). Q (D×D) is formed once per call.
///
/// On images [B, C, H, W] (features = C) both act on the channels of every pixel, like
/// Glow's invertible 1×1 convolution with an orthogonal weight.
///
/// Example:
///
///     auto q = zflow::HouseholderLinear(zflow::HouseholderLinearOptions(8).reflections(4));
///     auto [z, logabsdet] = q->forward(at::randn({16, 8}));  // logabsdet = 0

#include <cstdint>
#include <string>

#include <torch/arg.h>

#include "zflow/core/transform.h"

namespace zflow {

/// Q = H_1 H_2 ⋯ H_K (D×D) for the rows v_k of `vectors` [K, D], H_k = I − 2 v_k v_kᵀ/‖v_k‖²
/// (‖v_k‖² floored at 1e-12, so that v_k = 0 gives H_k = I); the identity when K = 0.
/// The matrix of `householder` and the Q of `sylvester`.
Tensor householder_product(const Tensor& vectors, int64_t features);

/// Options of HouseholderLinear ("householder").
struct HouseholderLinearOptions {
  /* implicit */ HouseholderLinearOptions(int64_t features) : features_(features) {}
  /// Number of features D (channels C on images; positive).
  TORCH_ARG(int64_t, features);
  /// Number of reflections K (0: D, enough for every orthogonal matrix).
  TORCH_ARG(int64_t, reflections) = 0;
};

class HouseholderLinearImpl : public TransformImpl {
 public:
  explicit HouseholderLinearImpl(const HouseholderLinearOptions& options);
  Json spec() const override;
  std::string describe() const override;
  /// Q (D×D), for tests and inspection.
  Tensor weight() const;

  Tensor vectors;  // [K, D], row k is v_k

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  /// Applies the reflections to the rows of `rows` [N, D]: H_K first (Q x) or H_1 first (Qᵀ z).
  Tensor reflect(Tensor rows, bool transpose) const;
  int64_t features_;
};
TORCH_MODULE(HouseholderLinear);

/// Options of OrthogonalLinear ("orthogonal_linear").
struct OrthogonalLinearOptions {
  /* implicit */ OrthogonalLinearOptions(int64_t features) : features_(features) {}
  /// Number of features D (channels C on images; positive).
  TORCH_ARG(int64_t, features);
  /// The map from skew-symmetric to orthogonal matrices: "exp" or "cayley".
  TORCH_ARG(std::string, map) = "exp";
};

class OrthogonalLinearImpl : public TransformImpl {
 public:
  explicit OrthogonalLinearImpl(const OrthogonalLinearOptions& options);
  Json spec() const override;
  std::string describe() const override;
  /// Q (D×D).
  Tensor weight() const;

  Tensor skew_entries;  // [D(D−1)/2]: the strictly upper triangle of S, row by row

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  int64_t features_;
  std::string map_;
};
TORCH_MODULE(OrthogonalLinear);

}  // namespace zflow
