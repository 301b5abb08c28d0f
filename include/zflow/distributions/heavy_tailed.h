#pragma once
/// \file
/// Heavy-tailed base distributions π: independent Student-t or Laplace coordinates.
///
/// Why: a flow whose layers are Lipschitz (affine and spline couplings with identity tails,
/// LU layers) keeps the tail class of its base, so a Gaussian base cannot give a flow with
/// power-law tails however it is trained (Jaini et al. 2020, "Tails of Lipschitz triangular
/// flows", https://arxiv.org/abs/1907.04481). A Student-t base sets the power law of the
/// tails through its degrees of freedom ν, which may be learned with the flow (Jaini et
/// al.'s tail-adaptive flows; per coordinate as in Laszkiewicz et al. 2022, "Marginal
/// tail-adaptive normalizing flows", https://arxiv.org/abs/2206.10311). Its negative log
/// density grows like (ν+1) log|z| rather than z²/2, so outliers cost little and pull the model
/// less (Alexanderson & Henter 2020, "Robust model training and generalisation with
/// Studentising flows", https://arxiv.org/abs/2006.06599).
///
/// Per coordinate, with u = (z − μ) / σ (μ = 0 and σ = 1 unless learned):
///
///     log t_ν(z)    = lgamma((ν+1)/2) − lgamma(ν/2) − ½ log(νπ) − log σ − (ν+1)/2 · log(1 + u²/ν)
///     log Laplace(z) = −|u| − log 2 − log σ
///
/// and the log density of an event is the sum over its coordinates.
///
/// Example:
///
///     zflow::StudentT
///     base(zflow::StudentTOptions(std::vector<int64_t>{2}).df(4.0).learn_df(true)); torch::Tensor
///     z = base->sample(256);        // [256, 2] torch::Tensor log_pi = base->log_prob(z);   //
///     [256], differentiable in ν torch::Tensor nu = base->degrees_of_freedom();  // [2]

#include <cstdint>
#include <ostream>
#include <vector>

#include <torch/arg.h>

#include "zflow/core/distribution.h"

namespace zflow {

/// Independent coordinates z = μ + σ ⊙ ε, ε drawn from a fixed standard density: the shared
/// part of StudentT and Laplace. With `learn_loc_scale` the location μ ("loc") and log σ
/// ("log_scale") are parameters of the event's shape, initialised to 0 (as DiagonalNormal's
/// "mean" and "log_scale"); otherwise μ = 0 and σ = 1 and nothing is stored for them. The
/// dtype and device of samples follow the module (`to()`), through a registered empty
/// buffer "anchor".
class LocationScaleImpl : public DistributionImpl {
 public:
  /// inputs [B, ...event] → [B]: Σ log ε-density(u) − Σ log σ with u = (x − μ) / σ.
  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  /// [n, ...event], reparameterised in μ and σ (and in whatever standard_sample is).
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  std::vector<int64_t> event_shape() const override { return shape_; }

  Tensor loc;        // undefined unless learned
  Tensor log_scale;  // undefined unless learned

 protected:
  /// ConfigError unless every event size is positive.
  LocationScaleImpl(std::string type, std::vector<int64_t> shape, bool learn_loc_scale);
  /// Log density of the standard variable, element by element: u [B, ...] → [B, ...].
  virtual Tensor standard_log_density(const Tensor& u) = 0;
  /// n standard draws [n, ...event] of the given dtype and device.
  virtual Tensor standard_sample(int64_t n, const at::TensorOptions& dtype_device) = 0;
  bool learns_loc_scale() const { return loc.defined(); }
  /// Options (dtype, device) of the module's tensors.
  at::TensorOptions tensor_options() const { return anchor_.options(); }

  std::vector<int64_t> shape_;

 private:
  Tensor anchor_;  // empty buffer that carries dtype and device
};

/// Options of StudentT; spec fields of the same names.
struct StudentTOptions {
  /* implicit */ StudentTOptions(std::vector<int64_t> shape) : shape_(std::move(shape)) {}
  /// Event shape, {D} or {C, H, W}.
  TORCH_ARG(std::vector<int64_t>, shape);
  /// Degrees of freedom ν (> 0): fixed, or the initial value of every coordinate's ν when
  /// learned. 5 by default: heavy power-law tails (density ~ |z|^−6) while the variance
  /// ν/(ν−2) and the kurtosis stay finite, so standardised data meet a base of similar
  /// spread. ν = 1 is the Cauchy distribution; ν → ∞ the standard normal.
  TORCH_ARG(double, df) = 5.0;
  /// Learn one ν per coordinate, ν = softplus(raw) + kMinDf ("raw_df").
  TORCH_ARG(bool, learn_df) = false;
  /// Learn a location and log-scale per coordinate ("loc", "log_scale").
  TORCH_ARG(bool, learn_loc_scale) = false;
};

/// Independent Student-t coordinates with ν degrees of freedom (the formula above).
///
/// Learned ν is ν = softplus(raw_df) + kMinDf: softplus keeps it positive without a hard
/// clamp that would stop the gradient, and the floor kMinDf keeps ν > 0 (so lgamma(ν/2)
/// and log(1 + u²/ν) stay finite) where softplus underflows to 0 in float32 (raw below
/// about −88). The normalising terms are computed in float64 whatever the dtype: in float32
/// lgamma((ν+1)/2) − lgamma(ν/2) loses its digits once ν is in the thousands.
///
/// Sampling: ε = N / sqrt(G / ν) with N ~ N(0, 1) and G ~ χ²(ν) = 2 · Gamma(ν/2, 1), drawn
/// by at::_standard_gamma. That draw has an implicit reparameterisation gradient (Figurnov
/// et al. 2018, https://arxiv.org/abs/1805.08498), so samples are differentiable in a
/// learned ν as well as in μ and σ (reverse-KL training of a flow reaches ν).
///
/// Spec: {"type": "student_t", "shape": [...], "df": 5.0, "learn_df": false,
/// "learn_loc_scale": false}; ConfigError for ν ≤ 0 or not finite, or a learned ν not above
/// kMinDf, and for a bad shape.
class StudentTImpl : public LocationScaleImpl {
 public:
  /// The floor of a learned ν.
  static constexpr double kMinDf = 1e-2;

  explicit StudentTImpl(StudentTOptions options);
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

  /// ν per coordinate, of the event's shape (differentiable when learned).
  Tensor degrees_of_freedom() const;

  StudentTOptions options;
  Tensor raw_df;  // undefined unless ν is learned

 protected:
  Tensor standard_log_density(const Tensor& u) override;
  Tensor standard_sample(int64_t n, const at::TensorOptions& dtype_device) override;
};
TORCH_MODULE(StudentT);

/// Independent Laplace coordinates, log density −|u| − log 2 − log σ per coordinate: tails
/// e^−|z|, heavier than the Gaussian's e^−z²/2 yet lighter than any Student-t's, and the
/// same cost |z| for every outlier direction (a robust, median-like fit).
/// Sampling: ε = E₁ − E₂ with E = −log(1 − U), U ~ U[0, 1) (the difference of two
/// exponential variables is Laplace), reparameterised in μ and σ.
/// Spec: {"type": "laplace", "shape": [...], "learn_loc_scale": false}.
class LaplaceImpl : public LocationScaleImpl {
 public:
  explicit LaplaceImpl(std::vector<int64_t> shape, bool learn_loc_scale = false);
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

 protected:
  Tensor standard_log_density(const Tensor& u) override;
  Tensor standard_sample(int64_t n, const at::TensorOptions& dtype_device) override;
};
TORCH_MODULE(Laplace);

}  // namespace zflow
