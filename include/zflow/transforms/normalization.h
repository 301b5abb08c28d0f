#pragma once
/// \file
/// Normalisation layers as bijections: ActNorm and BatchNorm.
///
/// ActNorm (Kingma & Dhariwal 2018, Glow §3.1, https://arxiv.org/abs/1807.03039): a
/// per-feature (per-channel for images) affine map
///
///     z = x · exp(log_scale) + shift,   log|det J| = (H·W ·) Σ log_scale,
///
/// whose parameters are initialised from the first batch seen in training mode, so that its
/// outputs start with zero mean and unit variance (features whose spread is below
/// kMinSpread are divided by kMinSpread instead).
///
/// Example:
///
///     auto norm = zflow::ActNorm(3);
///     norm->train();
///     auto [z, logabsdet] = norm->forward(at::randn({64, 3}) * 5 + 2);  // z: mean 0, std 1

#include <cstdint>

#include <torch/arg.h>

#include "zflow/core/transform.h"

namespace zflow {

/// ActNorm over [B, D] or [B, C, H, W] inputs (features = D or C).
struct ActNormOptions {
  /* implicit */ ActNormOptions(int64_t features) : features_(features) {}
  /// Number of features D (channels C on images; positive).
  TORCH_ARG(int64_t, features);
};

class ActNormImpl : public TransformImpl {
 public:
  explicit ActNormImpl(const ActNormOptions& options);
  Json spec() const override;
  std::string describe() const override;
  /// Whether the data-dependent initialisation has happened (saved with the model).
  bool initialized() const;

  /// The smallest spread (standard deviation per feature) the initialisation divides by,
  /// in the units of ActNorm's inputs, so the initial scale is at most 1 / kMinSpread.
  ///
  /// Why a floor: the first batch estimates a spread from a few dozen values. A feature
  /// that is (nearly) constant in it, say a column with one repeated value, or a pixel
  /// given to a tabular ActNorm as a feature of its own that is 0 in every image of the
  /// batch, has a spread near 0, and dividing by it puts a value the batch never showed at
  /// an extreme distance: a pixel of 0.5 where the batch had U[0, 1/256) dequantisation
  /// noise lands at 600 standard deviations, and the Gaussian base charges it 10^5 nats.
  /// (Image ActNorm pools each channel over all pixels, so its spreads are not that small.)
  /// Why 1e-2: the inputs of every ActNorm zflow builds are on a unit scale: standardised
  /// columns (tabular data; `zflow train` standardises by default), pixels in [0, 1)
  /// (spread about 0.3), or outputs of earlier layers initialised to unit variance. A
  /// spread below 1% of that unit is one the batch cannot tell from a constant, and the
  /// floor leaves every feature with a real spread untouched. The scale stays a trained
  /// parameter: the likelihood, which sees all the data and not one batch, may still make
  /// it larger. The floor applies at initialisation only, so saved models load unchanged.
  static constexpr double kMinSpread = 1e-2;

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

/// BatchNorm as a bijection (Dinh et al. 2017, RealNVP §3.7,
/// https://arxiv.org/abs/1605.08803; Papamakarios et al. 2017, MAF §3.4,
/// https://arxiv.org/abs/1705.07057): per feature (per channel for images),
///
///     z = (x − m) / √(v + ε) · exp(γ) + β,   log|det J| = (H·W ·) Σ (γ − ½ log(v + ε)),
///
/// where, in training mode and for batches of two or more, m and v are the batch's mean and
/// (biased) variance, which also update the running averages
/// m̄ ← (1 − momentum)·m̄ + momentum·m (the same for v̄); in evaluation mode, for a single
/// example, and always in the inverse, m̄ and v̄ are used. With batch statistics the outputs
/// of one example depend on the others in its batch: log|det J| above is then the Jacobian
/// of the map with m and v held fixed (MAF's choice), and inverse(forward(x)) = x holds in
/// evaluation mode only. The running averages are per process (under `torchrun`-style
/// distributed training each process keeps its own; rank 0's are saved).
///
/// Example:
///
///     auto norm = zflow::BatchNorm(zflow::BatchNormOptions(4).momentum(0.05));
///     norm->train();
///     auto [z, logabsdet] = norm->forward(at::randn({256, 4}) * 3 + 1);  // z: mean β = 0, std 1
struct BatchNormOptions {
  /* implicit */ BatchNormOptions(int64_t features) : features_(features) {}
  /// Number of features D (channels C on images; positive).
  TORCH_ARG(int64_t, features);
  /// Weight of each training batch in the running averages, in (0, 1].
  TORCH_ARG(double, momentum) = 0.1;
  /// ε added to the variance, > 0: keeps a constant feature's scale finite.
  TORCH_ARG(double, eps) = 1e-5;
};

class BatchNormImpl : public TransformImpl {
 public:
  explicit BatchNormImpl(const BatchNormOptions& options);
  Json spec() const override;
  std::string describe() const override;

  Tensor log_gamma;     // γ [D]
  Tensor beta;          // β [D]
  Tensor running_mean;  // m̄ [D] (buffer, saved with the model)
  Tensor running_var;   // v̄ [D] (buffer, saved with the model)

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  /// [D] as [1, D] or [1, D, 1, 1] to broadcast over `inputs`.
  Tensor view_params(const Tensor& p, const Tensor& inputs) const;
  /// log|det J| of the map with variance `var` for every example of `inputs`.
  Tensor logabsdet(const Tensor& var, const Tensor& inputs) const;
  BatchNormOptions options_;
};
TORCH_MODULE(BatchNorm);

}  // namespace zflow
