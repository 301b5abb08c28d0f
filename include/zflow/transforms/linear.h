#pragma once
/// \file
/// Invertible linear layer with an LU parameterisation (Kingma & Dhariwal 2018, §3.2,
/// https://arxiv.org/abs/1807.03039):
///
///     z = W x + b,   W = P L U,   log|det W| = Σ_i log d_i,
///
/// P a fixed permutation, L unit lower triangular, U upper triangular with a positive
/// diagonal d (d = exp(ŝ) or softplus(ŝ)); O(D) per sample, and the inverse solves two
/// triangular systems.
///
/// On images [B, C, H, W] (features = C) it is Glow's invertible 1×1 convolution: the same
/// W acts on the channels of every pixel, and log|det J| = H·W·Σ log d_i.
///
/// Example:
///
///     auto conv1x1 = zflow::LULinear(zflow::LULinearOptions(12).diagonal("exp").seed(7));
///     auto [z, logabsdet] = conv1x1->forward(at::randn({8, 12, 4, 4}));  // starts as z = P x

#include <cstdint>
#include <string>

#include <torch/arg.h>

#include "zflow/core/index.h"
#include "zflow/core/transform.h"

namespace zflow {

/// LU-parameterised invertible linear map; starts as z = P x (L = U = I, b = 0).
/// Options of LULinear ("lu_linear").
struct LULinearOptions {
  /* implicit */ LULinearOptions(int64_t features) : features_(features) {}
  /// Number of features D (channels C on images; positive).
  TORCH_ARG(int64_t, features);
  /// How the diagonal of U is kept positive: "exp" or "softplus".
  TORCH_ARG(std::string, diagonal) = "softplus";
  /// Seed of the fixed permutation P (0 = identity).
  TORCH_ARG(uint64_t, seed) = 0;
};

class LULinearImpl : public TransformImpl {
 public:
  explicit LULinearImpl(const LULinearOptions& options);
  /// Shorthand for LULinearOptions(features).diagonal(diagonal).seed(seed).
  LULinearImpl(int64_t features, std::string diagonal, uint64_t seed = 0)
      : LULinearImpl(LULinearOptions(features).diagonal(std::move(diagonal)).seed(seed)) {}
  Json spec() const override;
  std::string describe() const override;
  /// The full matrix W (for tests and inspection).
  Tensor weight() const;

  Tensor lower_entries;  // [D, D], only the strictly lower part is used
  Tensor upper_entries;  // [D, D], only the strictly upper part is used
  Tensor raw_diagonal;   // [D]
  Tensor bias;           // [D]

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  void check(const Tensor& inputs) const;
  TransformOutput forward_image(const Tensor& inputs) const;
  TransformOutput inverse_image(const Tensor& inputs) const;
  Tensor diagonal() const;
  Tensor lower() const;
  /// U from its strictly upper entries and the (already computed) positive diagonal.
  Tensor upper(const Tensor& diagonal) const;
  int64_t features_;
  std::string diagonal_kind_;
  uint64_t seed_;
  IndexList permutation_;
  IndexList inverse_permutation_;
};
TORCH_MODULE(LULinear);

}  // namespace zflow
