#pragma once
/// \file
/// Unnormalised target densities p̃(x) = Z·p(x): what variational inference, importance
/// sampling and Monte Carlo integration fit a flow to when there are no data
/// (docs/variational.md). A Target gives log p̃ over R^D, or over a box such as the unit box
/// [0, 1]^D for integrands; its normalising constant Z = ∫ p̃ (the integral, for an
/// integrand) is what the estimators of zflow/variational/importance.h estimate.
///
/// Three ways to make one: a C++ callable (make_callable_target), a TorchScript file whose
/// `forward` maps [B, D] to [B] log densities (load_torchscript_target), or a built-in by
/// name (zflow/targets/builtin.h).
///
/// Example:
///
///     // A standard normal in 3-D, unnormalised: log Z = 1.5·log(2π).
///     zflow::TargetPtr target = zflow::make_callable_target(
///         "gauss3", 3, [](const torch::Tensor& x) { return -0.5 * x.pow(2).sum(1); });
///     torch::Tensor log_p = zflow::checked_log_density(*target, torch::randn({8, 3}));

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow {

/// Where a target lives: all of R^D, or the box [low, high] (p̃ = 0 outside).
struct Domain {
  /// Empty: R^D. Otherwise D lower and D upper bounds, low < high.
  std::vector<double> low;
  std::vector<double> high;
  bool bounded() const { return !low.empty(); }
  /// The unit box [0, 1]^D.
  static Domain unit_box(int64_t dim);
};

/// An unnormalised log density log p̃(x) over R^D or a box.
class Target {
 public:
  virtual ~Target() = default;
  /// A short name for logs and the model card ("funnel", a file name).
  virtual std::string name() const = 0;
  /// D.
  virtual int64_t dim() const = 0;
  /// R^D unless overridden.
  virtual Domain domain() const { return {}; }
  /// log p̃(x) per row: x [B, D] → [B], in x's dtype; −inf where p̃ = 0. Differentiable in
  /// x where the target is (reverse KL back-propagates through it). May be called with any
  /// floating dtype; implementations must not keep state between calls.
  virtual at::Tensor log_density(const at::Tensor& x) const = 0;
  /// log Z = log ∫ p̃ where it is known (analytically or by an accurate quadrature).
  virtual std::optional<double> log_normalizer() const { return std::nullopt; }
  /// A box [low, high] holding nearly all the mass, for pictures (2-D) and for a plain
  /// Monte Carlo proposal; the domain when bounded. Default: [−4, 4]^D.
  virtual Domain plot_box() const;
  /// One line: formula and source (for `zflow fit-target --help` and the model card).
  virtual std::string description() const { return ""; }
};

using TargetPtr = std::shared_ptr<Target>;

/// A target from a C++ function of x [B, D] → [B].
TargetPtr make_callable_target(std::string name, int64_t dim,
                               std::function<at::Tensor(const at::Tensor&)> log_density,
                               Domain domain = {}, std::optional<double> log_normalizer = {});

/// A TorchScript module saved by Python (`torch.jit.script(module).save(path)`) whose
/// `forward(x)` maps [B, D] to [B] log densities. D is `dim` when > 0, else the module's
/// integer attribute `dim` (ConfigError when neither is given, or when both are and differ).
/// A module may also declare `log_z` (float) and `low`/`high` (lists of floats: a bounded
/// domain). ConfigError with one line for a file that is missing, not TorchScript, or
/// without `forward`. x reaches `forward` as it is, float32 or float64 and with its autograd
/// graph (reverse KL differentiates through the module); an exception inside forward, or an
/// answer that is not a Tensor, is a zflow::Error naming the file.
TargetPtr load_torchscript_target(const std::string& path, int64_t dim = 0);

/// log p̃(x) checked: x [B, D] with B ≥ 1 and D = target.dim(); the result must be [B]
/// (a [B, 1] result is accepted and flattened), floating, with no NaN and no +inf.
/// Throws zflow::Error with one line naming the target and what was wrong (the first bad
/// row for NaN). Points outside a bounded domain get −inf without calling the target.
at::Tensor checked_log_density(const Target& target, const at::Tensor& x);

}  // namespace zflow
