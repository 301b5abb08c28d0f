#pragma once
/// \file
/// Invertible linear layer with an LU parameterisation (Kingma & Dhariwal 2018, §3.2):
/// W = P L U, P a fixed permutation, L unit lower triangular, U upper triangular with a
/// positive diagonal d (d = exp(ŝ) or softplus(ŝ)). z = W x + b, log|det W| = Σ log d_i,
/// O(D) per sample; the inverse solves two triangular systems.
///
/// On images [B, C, H, W] (features = C) it is Glow's invertible 1×1 convolution: the same
/// W acts on the channels of every pixel, and log|det J| = H·W·Σ log d_i.

#include <cstdint>
#include <string>

#include "zflow/core/index.h"
#include "zflow/core/transform.h"

namespace zflow {

/// LU-parameterised invertible linear map; starts as z = P x (L = U = I, b = 0).
class LULinearImpl : public TransformImpl {
 public:
  /// `diagonal`: "exp" or "softplus". `seed`: the permutation P (0 = identity).
  LULinearImpl(int64_t features, std::string diagonal = "softplus", uint64_t seed = 0);
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
