#pragma once
/// \file
/// Element-wise transforms with no conditioner:
///
///     elementwise_affine:  z = x · exp(s) + t        (learned s, t; NICE's scaling layer,
///                                                      Dinh et al. 2014,
///                                                      https://arxiv.org/abs/1410.8516)
///     standardize:         z = (x − μ) / σ            (fixed μ, σ)
///     sigmoid:             z = a + (b − a) · σ(x)     onto (a, b)
///     logit:               z = logit((x − a)/(b − a)) (RealNVP's preprocessing, Dinh et al.
///                                                      2017, https://arxiv.org/abs/1605.08803)
///     log_tails:           z = y within ±b, sign(y) · b · (1 + ln(|y|/b)) beyond
///
/// Example:
///
///     auto logit = zflow::Logit(zflow::LogitOptions().lower(0.0).upper(255.0));
///     auto [z, logabsdet] = logit->forward(at::rand({8, 3}) * 255);  // onto the real line
///     auto tails = zflow::LogTails(4.0);  // the last layer of every ready-made flow

#include <cstdint>
#include <vector>

#include <torch/arg.h>

#include "zflow/core/transform.h"

namespace zflow {

/// z = x · exp(log_scale) + shift with learnable per-feature parameters (start: identity).
struct ElementwiseAffineOptions {
  /* implicit */ ElementwiseAffineOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
};

class ElementwiseAffineImpl : public TransformImpl {
 public:
  explicit ElementwiseAffineImpl(const ElementwiseAffineOptions& options);
  Json spec() const override;
  std::string describe() const override;
  Tensor log_scale;
  Tensor shift;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  int64_t features_;
};
TORCH_MODULE(ElementwiseAffine);

/// z = (x − mean) / std with fixed statistics, fitted on training data: it lets a flow
/// work in the user's own units, and its log|det J| = −Σ log std is part of log p(x).
struct StandardizeOptions {
  StandardizeOptions(std::vector<double> mean, std::vector<double> std)
      : mean_(std::move(mean)), std_(std::move(std)) {}
  /// Per-feature means (finite; as many as `std`, at least one).
  TORCH_ARG(std::vector<double>, mean);
  /// Per-feature standard deviations (positive and finite).
  TORCH_ARG(std::vector<double>, std);
};

class StandardizeImpl : public TransformImpl {
 public:
  explicit StandardizeImpl(const StandardizeOptions& options);
  StandardizeImpl(std::vector<double> mean, std::vector<double> std)
      : StandardizeImpl(StandardizeOptions(std::move(mean), std::move(std))) {}
  /// Fits mean and standard deviation per column of data [N, D] (std floored at 1e-12
  /// relative to the largest, so constant columns stay invertible).
  static std::shared_ptr<StandardizeImpl> fit(const Tensor& data);
  /// The same from a column's mean and (biased) standard deviation [D] already computed,
  /// e.g. in chunks over a table larger than memory (core/column_moments.h).
  static std::shared_ptr<StandardizeImpl> from_moments(const Tensor& mean, const Tensor& std);
  Json spec() const override;
  std::string describe() const override;
  const std::vector<double>& mean_values() const { return mean_; }
  const std::vector<double>& std_values() const { return std_; }

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  std::vector<double> mean_;
  std::vector<double> std_;
  Tensor mean_buffer_;
  Tensor std_buffer_;
};
TORCH_MODULE(Standardize);

/// z = lower + (upper − lower) · sigmoid(x): maps the real line onto (lower, upper).
struct SigmoidOptions {
  /// The interval (lower, upper): finite, lower < upper.
  TORCH_ARG(double, lower) = 0.0;
  TORCH_ARG(double, upper) = 1.0;
};

class SigmoidImpl : public TransformImpl {
 public:
  explicit SigmoidImpl(const SigmoidOptions& options = {});
  Json spec() const override;
  std::string describe() const override;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  double lower_;
  double upper_;
};
TORCH_MODULE(Sigmoid);

/// z = logit((x − lower) / (upper − lower)): maps data on (lower, upper) onto the real
/// line. Inputs are clamped to [eps, 1 − eps] after rescaling so that values exactly on
/// the bounds give finite outputs.
struct LogitOptions {
  /// The interval (lower, upper) of the data: finite, lower < upper.
  TORCH_ARG(double, lower) = 0.0;
  TORCH_ARG(double, upper) = 1.0;
  /// Rescaled inputs are clamped to [eps, 1 − eps]; 0 ≤ eps < 0.5.
  TORCH_ARG(double, eps) = 1e-6;
};

class LogitImpl : public TransformImpl {
 public:
  explicit LogitImpl(const LogitOptions& options = {});
  Json spec() const override;
  std::string describe() const override;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  double lower_;
  double upper_;
  double eps_;
};
TORCH_MODULE(Logit);

/// Logarithmic tails: z = y for |y| ≤ b, z = sign(y) · b · (1 + ln(|y| / b)) beyond (C¹ at
/// ±b; inverse y = sign(z) · b · exp(|z| / b − 1) beyond b). As the last layer before a
/// standard normal base it gives the flow a base density with log-normal instead of
/// Gaussian tails, without touching what lies within ±b.
///
/// Why: a point away from the training data can be carried exponentially far out by the
/// affine layers (every layer multiplies by up to e^scale_bound, and each expands the
/// region it learned to sharpen; docs/reliability.md (Densities that generalise) measures it), and
/// a Gaussian base then charges |z|²/2: 10^5 nats and more for plausible points. Through these
/// tails it charges about (b ln |z|)² / 2, so an outlier's NLL grows like the square of its
/// distance from the data, as a Gaussian in the data's own space would.
struct LogTailsOptions {
  /* implicit */ LogTailsOptions(double bound = 4.0) : bound_(bound) {}
  /// Where the tails begin, b (positive and finite).
  TORCH_ARG(double, bound);
};

class LogTailsImpl : public TransformImpl {
 public:
  explicit LogTailsImpl(const LogTailsOptions& options = {});
  Json spec() const override;
  std::string describe() const override;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  double bound_;
};
TORCH_MODULE(LogTails);

}  // namespace zflow
