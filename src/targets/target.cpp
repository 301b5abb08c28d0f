#include "zflow/targets/target.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

[[noreturn]] void fail(const Target& target, const std::string& what) {
  throw Error("target " + target.name() + ": " + what);
}

std::string shape_text(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << sizes;
  return out.str();
}

/// [B] bool: rows of x inside the box [low, high] (boundary included). A row with a NaN is
/// not provably outside, so it counts as inside and reaches the target, whose NaN is then
/// reported by row.
at::Tensor inside_rows(const Domain& box, const at::Tensor& x) {
  const auto options = at::TensorOptions().dtype(x.scalar_type()).device(x.device());
  const at::Tensor low = at::tensor(box.low, at::kDouble).to(options);
  const at::Tensor high = at::tensor(box.high, at::kDouble).to(options);
  const at::Tensor detached = x.detach();
  return ((detached < low) | (detached > high)).any(1).logical_not();
}

class CallableTarget final : public Target {
 public:
  CallableTarget(std::string name, int64_t dim,
                 std::function<at::Tensor(const at::Tensor&)> log_density, Domain domain,
                 std::optional<double> log_normalizer)
      : name_(std::move(name)),
        dim_(dim),
        log_density_(std::move(log_density)),
        domain_(std::move(domain)),
        log_normalizer_(log_normalizer) {}

  std::string name() const override { return name_; }
  int64_t dim() const override { return dim_; }
  Domain domain() const override { return domain_; }
  at::Tensor log_density(const at::Tensor& x) const override { return log_density_(x); }
  std::optional<double> log_normalizer() const override { return log_normalizer_; }
  Domain plot_box() const override { return domain_.bounded() ? domain_ : Target::plot_box(); }

 private:
  std::string name_;
  int64_t dim_;
  std::function<at::Tensor(const at::Tensor&)> log_density_;
  Domain domain_;
  std::optional<double> log_normalizer_;
};

/// The checks of checked_log_density on the target's answer for `rows` rows; `index`, when
/// defined, maps those rows to the rows of the caller's x (for the row of a NaN).
at::Tensor checked_result(const Target& target, at::Tensor out, int64_t rows, at::ScalarType dtype,
                          const at::Tensor& index = {}) {
  if (!out.defined()) fail(target, "log density returned an undefined tensor");
  if (out.dim() == 2 && out.size(0) == rows && out.size(1) == 1) out = out.flatten();
  if (out.dim() != 1 || out.size(0) != rows) {
    fail(target, "log density has shape " + shape_text(out.sizes()) + ", expected [" +
                     std::to_string(rows) + "]");
  }
  if (!at::isFloatingType(out.scalar_type())) {
    fail(target, std::string("log density has dtype ") + c10::toString(out.scalar_type()) +
                     ", expected a floating dtype");
  }
  // One synchronisation for the common case that everything is fine.
  const at::Tensor detached = out.detach();
  const at::Tensor bad = at::isnan(detached) | at::isposinf(detached);
  if (bad.any().item<bool>()) {
    const int64_t row = bad.nonzero()[0][0].item<int64_t>();
    const bool nan = std::isnan(detached[row].item<double>());
    const int64_t x_row = index.defined() ? index[row].item<int64_t>() : row;
    fail(target, std::string("log density is ") + (nan ? "NaN" : "+inf") + " at row " +
                     std::to_string(x_row));
  }
  return out.to(dtype);
}

}  // namespace

Domain Domain::unit_box(int64_t dim) {
  Domain box;
  box.low.assign(static_cast<size_t>(dim), 0.0);
  box.high.assign(static_cast<size_t>(dim), 1.0);
  return box;
}

Domain Target::plot_box() const {
  Domain box;
  box.low.assign(static_cast<size_t>(dim()), -4.0);
  box.high.assign(static_cast<size_t>(dim()), 4.0);
  return box;
}

TargetPtr make_callable_target(std::string name, int64_t dim,
                               std::function<at::Tensor(const at::Tensor&)> log_density,
                               Domain domain, std::optional<double> log_normalizer) {
  if (dim < 1)
    throw ConfigError("target " + name + ": dimension must be ≥ 1, got " + std::to_string(dim));
  if (!log_density) throw ConfigError("target " + name + ": no log density function");
  if (domain.bounded()) {
    const auto d = static_cast<size_t>(dim);
    if (domain.low.size() != d || domain.high.size() != d) {
      throw ConfigError("target " + name + ": the domain needs " + std::to_string(dim) +
                        " lower and upper bounds");
    }
    for (size_t i = 0; i < d; ++i) {
      if (!(domain.low[i] < domain.high[i])) {
        throw ConfigError("target " + name + ": domain bound " + std::to_string(i) +
                          " has low ≥ high");
      }
    }
  }
  return std::make_shared<CallableTarget>(std::move(name), dim, std::move(log_density),
                                          std::move(domain), log_normalizer);
}

at::Tensor checked_log_density(const Target& target, const at::Tensor& x) {
  const int64_t dim = target.dim();
  if (!x.defined() || x.dim() != 2 || x.size(0) < 1 || x.size(1) != dim) {
    fail(target, "expected x [B, " + std::to_string(dim) + "] with B ≥ 1, got " +
                     (x.defined() ? shape_text(x.sizes()) : std::string("an undefined tensor")));
  }
  if (!at::isFloatingType(x.scalar_type())) {
    fail(target, std::string("expected floating x, got ") + c10::toString(x.scalar_type()));
  }
  const int64_t rows = x.size(0);
  const Domain domain = target.domain();
  if (!domain.bounded())
    return checked_result(target, target.log_density(x), rows, x.scalar_type());

  if (domain.low.size() != static_cast<size_t>(dim) ||
      domain.high.size() != static_cast<size_t>(dim)) {
    fail(target, "its domain has " + std::to_string(domain.low.size()) +
                     " bounds for D = " + std::to_string(dim));
  }
  // Only the inside rows reach the target: it need not be defined outside its box (a NaN
  // there must not raise), and no gradient flows through values that are masked away.
  const at::Tensor inside = inside_rows(domain, x);
  const int64_t count = inside.sum().item<int64_t>();
  if (count == rows) return checked_result(target, target.log_density(x), rows, x.scalar_type());
  at::Tensor out = at::full({rows}, -std::numeric_limits<double>::infinity(), x.options());
  if (count == 0) return out;
  const at::Tensor index = inside.nonzero().flatten();
  const at::Tensor values = checked_result(target, target.log_density(x.index_select(0, index)),
                                           count, x.scalar_type(), index);
  // Out of place, so that autograd reaches `values` (and through them x's inside rows).
  return out.index_put({index}, values);
}

}  // namespace zflow
