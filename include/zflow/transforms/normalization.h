#pragma once
/// \file
/// ActNorm (Kingma & Dhariwal 2018, Glow §3.1): a per-feature (per-channel for images)
/// affine map z = x · exp(log_scale) + shift whose parameters are initialised from the
/// first batch seen in training mode, so that its outputs start with zero mean and unit
/// variance.

#include <cstdint>

#include "zflow/core/transform.h"

namespace zflow {

/// ActNorm over [B, D] or [B, C, H, W] inputs (features = D or C).
class ActNormImpl : public TransformImpl {
 public:
  explicit ActNormImpl(int64_t features);
  Json spec() const override;
  std::string describe() const override;
  /// Whether the data-dependent initialisation has happened (saved with the model).
  bool initialized() const;

  Tensor log_scale;
  Tensor shift;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  void initialize(const Tensor& inputs);
  Tensor view_params(const Tensor& p, const Tensor& inputs) const;
  Tensor logabsdet(const Tensor& inputs) const;
  int64_t features_;
  Tensor initialized_;
};
TORCH_MODULE(ActNorm);

}  // namespace zflow
