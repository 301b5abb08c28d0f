#pragma once
/// \file
/// Coupling layers (NICE, Dinh et al. 2014; RealNVP, Dinh et al. 2017). A binary mask splits
/// the features: those with mask 0 pass unchanged and, with the context, feed the
/// conditioner; those with mask 1 are transformed elementwise with the conditioner's output.
/// The Jacobian is triangular, so log|det J| is the sum of the elementwise log-derivatives.

#include <cstdint>
#include <vector>

#include "zflow/core/index.h"
#include "zflow/core/transform.h"
#include "zflow/nn/mlp.h"

namespace zflow {

/// Shared machinery: the mask, the index buffers and the conditioner.
class CouplingTransformImpl : public TransformImpl {
 public:
  /// `mask[i]` is 1 for transformed features, 0 for identity features; both sets non-empty.
  /// `params_per_feature` conditioner outputs per transformed feature.
  CouplingTransformImpl(std::string type, std::vector<int64_t> mask, int64_t params_per_feature,
                        const Json& conditioner, int64_t context_features);

  const std::vector<int64_t>& mask() const { return mask_; }
  std::string describe() const override;

 protected:
  /// Common spec fields: mask, conditioner, context_features.
  Json base_spec() const;
  /// y_t from x_t and the conditioner's params [B, Dt, P]: returns {y_t, logabsdet [B]}.
  virtual TransformOutput transform_part(const Tensor& x_t, const Tensor& params, bool inverse) = 0;

  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  TransformOutput apply(const Tensor& inputs, const Tensor& context, bool inverse);
  std::vector<int64_t> mask_;
  int64_t params_per_feature_;
  Json conditioner_spec_;
  int64_t context_features_;
  IndexList identity_index_;
  IndexList transform_index_;
  /// Both index lists are consecutive runs (half masks): the parts are then taken with
  /// narrow and joined with cat, cheaper forward and backward than index_select/index_copy.
  bool blocks_ = false;
  nn::MLP conditioner_{nullptr};
};

/// Affine coupling (RealNVP): z_t = x_t · exp(s) + t, with the log-scale softly bounded,
/// s = b · tanh(ŝ / b), so that no layer can scale by more than e^±b and deep stacks
/// cannot blow up. The conditioner's last layer starts at zero: the layer starts as the
/// identity.
class AffineCouplingImpl : public CouplingTransformImpl {
 public:
  AffineCouplingImpl(std::vector<int64_t> mask, const Json& conditioner,
                     int64_t context_features = 0, double scale_bound = 3.0);
  Json spec() const override;

 protected:
  TransformOutput transform_part(const Tensor& x_t, const Tensor& params, bool inverse) override;

 private:
  double scale_bound_;
};
TORCH_MODULE(AffineCoupling);

/// Additive coupling (NICE): z_t = x_t + t; volume preserving (log|det J| = 0).
class AdditiveCouplingImpl : public CouplingTransformImpl {
 public:
  AdditiveCouplingImpl(std::vector<int64_t> mask, const Json& conditioner,
                       int64_t context_features = 0);
  Json spec() const override;

 protected:
  TransformOutput transform_part(const Tensor& x_t, const Tensor& params, bool inverse) override;
};
TORCH_MODULE(AdditiveCoupling);

/// The alternating masks used by the builders: features [0, D/2) or [D/2, D) transformed,
/// depending on `even`; for D = 1 the single feature is... not splittable (ConfigError).
std::vector<int64_t> half_mask(int64_t features, bool even);

}  // namespace zflow
