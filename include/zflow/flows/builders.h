#pragma once
/// \file
/// Ready-made architectures, returned as flow specs (so that what is built can be saved,
/// printed and rebuilt): RealNVP, NICE, Glow, MAF, IAF, NSF, and the multi-scale image
/// models Glow and RealNVP.
///
/// Papers: NICE, Dinh et al. 2014 (https://arxiv.org/abs/1410.8516); RealNVP, Dinh et al.
/// 2017 (https://arxiv.org/abs/1605.08803); Glow, Kingma & Dhariwal 2018
/// (https://arxiv.org/abs/1807.03039); MAF, Papamakarios et al. 2017
/// (https://arxiv.org/abs/1705.07057); IAF, Kingma et al. 2016
/// (https://arxiv.org/abs/1606.04934); NSF, Durkan et al. 2019
/// (https://arxiv.org/abs/1906.04032).
///
/// Example:
///
///     zflow::BuilderOptions options;
///     options.layers = 4;
///     options.bins = 16;
///     zflow::FlowPtr flow = zflow::make_flow(zflow::build_flow_spec("nsf-coupling", 2, options));

#include <cstdint>
#include <string>
#include <vector>

#include "zflow/core/spec.h"

namespace zflow {

/// The default tabular model and image model of `zflow train`, chosen by measurement
/// (docs/benchmarks.md, "Defaults of zflow train": with the defaults below, nsf-coupling
/// comes within 0.05 nats of the entropy on all eight built-in 2-D datasets).
inline constexpr const char* kDefaultTabularModel = "nsf-coupling";
inline constexpr const char* kDefaultImageModel = "glow";
/// The conditioners' hidden width when `hidden` is 0: tabular MLPs, image conv nets.
inline constexpr int64_t kDefaultTabularHidden = 128;
inline constexpr int64_t kDefaultImageHidden = 64;

/// The student_t base's degrees of freedom and the gaussian_mixture base's components when
/// BuilderOptions leave them 0 (why 5: StudentTOptions::df).
inline constexpr double kDefaultBaseDf = 5.0;
inline constexpr int64_t kDefaultBaseComponents = 8;

/// Options shared by the builders: the single home of their defaults. Unset fields take
/// each builder's default.
struct BuilderOptions {
  /// Coupling layers (realnvp, nice), steps (glow) or spline layers (nsf-*).
  int64_t layers = 6;
  /// Hidden width of the conditioners (0: kDefaultTabularHidden for the tabular models,
  /// kDefaultImageHidden channels for the image models).
  int64_t hidden = 0;
  /// Hidden layers (or residual blocks) per conditioner.
  int64_t depth = 2;
  /// Conditioner activation (empty: the model's default, relu; cnf: silu, smooth as the
  /// trace of its Jacobian needs).
  std::string activation;
  /// "mlp" or "resmlp".
  std::string conditioner = "mlp";
  /// Bound b of the affine couplings' soft-clamped log-scale.
  double scale_bound = 3.0;
  /// Size of the context vector (0 = unconditional).
  int64_t context_features = 0;
  /// Seed of random permutations.
  uint64_t seed = 0;
  /// Spline bins (nsf-*).
  int64_t bins = 16;
  /// Half-width B of the splines' interval [−B, B] in standardised units; identity
  /// outside (nsf-*).
  double tail_bound = 4.0;
  /// 1 for the features that are angles (radians), 0 for the others; empty: none. With any
  /// angle, nsf-coupling becomes a flow on the (partial) torus: circular spline couplings on
  /// alternating halves (transforms/circular.h), no linear layers (which would mix angles
  /// with other coordinates), and the circular_uniform base (uniform on the circle for the
  /// angles, N(0, 1) for the rest). The other models refuse angles.
  std::vector<int64_t> circular;
  /// A batch_norm layer after every layer but the last (maf and realnvp, as in their
  /// papers: Papamakarios et al. 2017 §3.4, Dinh et al. 2017 §3.7).
  bool batch_norm = false;
  /// Base distribution of the tabular models (base_names(); the image models and cnf
  /// take standard_normal only).
  std::string base = "standard_normal";
  /// student_t base: degrees of freedom ν, fixed or the initial value when learned (0:
  /// kDefaultBaseDf). ConfigError with another base.
  double base_df = 0;
  /// student_t base: learn ν per coordinate. ConfigError with another base.
  bool base_learn_df = false;
  /// gaussian_mixture base: components (0: kDefaultBaseComponents). ConfigError with
  /// another base.
  int64_t base_components = 0;

  // Image models (glow on images, realnvp-image); `hidden` is then the conditioners'
  // hidden channels.
  /// Scales of the multi-scale architecture (0: as many as H and W allow, at most 3).
  int64_t levels = 0;
  /// Flow steps per level (0: the model's default, glow 8, realnvp-image 3 per group).
  int64_t steps_per_level = 0;
  /// Coupling transformer: "affine" or "additive".
  std::string coupling = "affine";
  /// RealNVP's logit preprocessing y = logit(α + (1 − 2α)·x) with this α (< 0: the model's
  /// default, glow 0 = none, realnvp-image 0.05; 0: none).
  double logit_alpha = -1.0;
  /// Bits per pixel value of the data (8 for ordinary images).
  int64_t bits = 8;
  /// Dequantisation of the pixels: "uniform" (u ~ U[0, 1)^D, `dequantize`) or "variational"
  /// (u from a learned q(u | x) trained with the flow, Flow++'s; `variational_dequantize`).
  std::string dequantize = "uniform";
  /// Image models with context_features K > 0 are class-conditional (the context is the
  /// one-hot class): a zero-initialised linear map of it sets the mean and log-scale of the
  /// last level's Gaussian, and with `split_context` those of every factored-out part too
  /// (MultiscaleOptions).
  bool split_context = true;

  // Continuous flows (cnf; transforms/continuous.h): the velocity field has `depth` hidden
  // layers of width `hidden` (images: a U-Net with `levels` resolutions).
  /// ODE solver: euler, midpoint, rk4 or dopri5.
  std::string solver = "dopri5";
  /// Steps of the fixed-step solvers.
  int64_t ode_steps = 20;
  /// dopri5's tolerances.
  double atol = 1e-5;
  double rtol = 1e-5;
  /// The trace in evaluation: "exact" or "hutchinson" (empty: exact for tabular data,
  /// hutchinson for images, where D vector-Jacobian products per step cost too much).
  std::string trace;
  /// Time features of the velocity field: "linear" (t as an input) or "sinusoidal" (empty:
  /// linear for tabular data, sinusoidal for the U-Net of images).
  std::string time_embedding;
};

/// The activation of `options` for model `name` (its default when none was chosen).
std::string builder_activation(const std::string& name, const BuilderOptions& options);

/// The bases BuilderOptions::base may name, with a one-line description each. Every
/// registered distribution but box_uniform (a bounded base under flows onto R^D gives
/// −inf log-likelihoods; build_box_flow_spec uses it for bounded domains);
/// conditional_diagonal_normal needs context_features > 0.
std::vector<std::pair<std::string, std::string>> base_names();

/// Names of the ready-made models with a one-line description each.
std::vector<std::pair<std::string, std::string>> builder_names();

/// The spec of model `name` for `features`-dimensional data; ConfigError if unknown.
Json build_flow_spec(const std::string& name, int64_t features, const BuilderOptions& options);

/// The spec of model `name` whose support is the box [low, high] (one bound per feature):
/// the density of a flow for integrands and targets with hard edges (docs/variational.md,
/// "Bounded domains"). For the spline models (nsf-coupling, nsf-autoregressive) every layer
/// maps the box onto itself: a fixed affine map onto [−1, 1]^D, rational-quadratic splines
/// on [−1, 1] (tail_bound 1, so the identity tails are never reached) alternating with
/// reverse permutations, and a uniform base on [−1, 1]^D; q is then exact up to the edges.
/// Every other model gets a logit end instead: x is mapped onto (0, 1)^D and through
/// logit onto R^D, where the model and its normal base act. ConfigError for bounds that
/// are not finite with low < high, or not one pair per feature.
Json build_box_flow_spec(const std::string& name, int64_t features, const BuilderOptions& options,
                         const std::vector<double>& low, const std::vector<double>& high);

/// Names of the ready-made image models with a one-line description each.
std::vector<std::pair<std::string, std::string>> image_builder_names();

/// The spec of image model `name` ("glow" or "realnvp-image") for images of event shape
/// [C, H, W] with integer pixel values 0 … 2^bits − 1: dequantisation, the optional logit,
/// then the multi-scale transform, over a standard normal. With options.context_features
/// K > 0 the model is class-conditional, p(x | y) given the one-hot class y [B, K] as the
/// flow's context (glow and realnvp-image only). ConfigError if unknown or if
/// H and W are not divisible by 2^levels.
Json build_image_flow_spec(const std::string& name, const std::vector<int64_t>& shape,
                           const BuilderOptions& options);

/// Inserts a fixed standardisation (z = (x − mean)/std) as the first layer of a flow spec.
Json with_standardization(const Json& flow_spec, const std::vector<double>& mean,
                          const std::vector<double>& std);

}  // namespace zflow
