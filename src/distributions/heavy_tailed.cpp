#include "zflow/distributions/heavy_tailed.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include <ATen/ATen.h>

#include "event_shape.h"
#include "zflow/core/error.h"
#include "zflow/core/transform.h"

namespace zflow {

namespace {

constexpr double kLogPi = 1.14472988584940017414;  // log π
constexpr double kLog2 = 0.69314718055994530942;   // log 2

/// "0.01", "nan": a number for messages (std::to_string would write 0.010000).
std::string number(double value) {
  std::ostringstream s;
  s << value;
  return s.str();
}

/// softplus⁻¹(y) = log(e^y − 1), written so that it does not overflow for large y.
double inverse_softplus(double y) {
  return y > 20 ? y + std::log1p(-std::exp(-y)) : std::log(std::expm1(y));
}

/// lgamma((ν+1)/2) − lgamma(ν/2) − ½ log(νπ): the normalising term of one Student-t
/// coordinate, for a fixed ν.
double student_t_log_normaliser(double df) {
  return std::lgamma(0.5 * (df + 1)) - std::lgamma(0.5 * df) - 0.5 * (std::log(df) + kLogPi);
}

}  // namespace

// ---- LocationScaleImpl ------------------------------------------------------------------

LocationScaleImpl::LocationScaleImpl(std::string type, std::vector<int64_t> shape,
                                     bool learn_loc_scale)
    : DistributionImpl(std::move(type)), shape_(std::move(shape)) {
  if (shape_.empty()) throw ConfigError(this->type() + ": shape must not be empty");
  for (auto s : shape_) require_positive(this->type() + ": event size", s);
  anchor_ = register_buffer("anchor", at::zeros({0}, at::kFloat));
  if (learn_loc_scale) {
    loc = register_parameter("loc", at::zeros(shape_, at::kFloat));
    log_scale = register_parameter("log_scale", at::zeros(shape_, at::kFloat));
  }
}

Tensor LocationScaleImpl::log_prob(const Tensor& inputs, const Tensor&) {
  detail::check_event(type(), shape_, inputs);
  if (!learns_loc_scale()) return sum_except_batch(standard_log_density(inputs));
  Tensor u = (inputs - loc) * at::exp(-log_scale);
  return sum_except_batch(standard_log_density(u)) - log_scale.sum();
}

Tensor LocationScaleImpl::sample(int64_t n, const Tensor&) {
  TORCH_CHECK(n >= 0, type(), ": number of samples must be >= 0, got ", n);
  Tensor eps = standard_sample(n, tensor_options());
  if (!learns_loc_scale()) return eps;
  return loc + at::exp(log_scale) * eps;
}

// ---- StudentTImpl -----------------------------------------------------------------------

StudentTImpl::StudentTImpl(StudentTOptions options_)
    : LocationScaleImpl("student_t", options_.shape(), options_.learn_loc_scale()),
      options(std::move(options_)) {
  const double df = options.df();
  if (!(df > 0) || !std::isfinite(df)) {
    throw ConfigError("student_t: df (degrees of freedom) must be a positive finite number, got " +
                      number(df));
  }
  if (options.learn_df()) {
    if (!(df > kMinDf)) {
      throw ConfigError("student_t: a learned df must start above its floor " + number(kMinDf) +
                        ", got " + number(df));
    }
    raw_df =
        register_parameter("raw_df", at::full(shape_, inverse_softplus(df - kMinDf), at::kFloat));
  }
}

Tensor StudentTImpl::degrees_of_freedom() const {
  if (!raw_df.defined()) return at::full(shape_, options.df(), tensor_options());
  return at::softplus(raw_df) + kMinDf;
}

Tensor StudentTImpl::standard_log_density(const Tensor& u) {
  if (!raw_df.defined()) {
    const double df = options.df();
    return student_t_log_normaliser(df) - 0.5 * (df + 1) * at::log1p(u * u / df);
  }
  Tensor df = degrees_of_freedom().to(u.scalar_type());  // event shape, broadcast over B
  // The normalising term in float64 (see the class comment), then back to u's dtype.
  Tensor df64 = df.to(at::kDouble);
  Tensor normaliser =
      (at::lgamma(0.5 * (df64 + 1)) - at::lgamma(0.5 * df64) - 0.5 * (at::log(df64) + kLogPi))
          .to(u.scalar_type());
  return normaliser - 0.5 * (df + 1) * at::log1p(u * u / df);
}

Tensor StudentTImpl::standard_sample(int64_t n, const at::TensorOptions& dtype_device) {
  const auto size = detail::batch_shape(n, shape_);
  Tensor df = raw_df.defined() ? degrees_of_freedom().expand(size).contiguous()
                               : at::full(size, options.df(), dtype_device);
  // χ²(ν) = 2 Gamma(ν/2, 1). A draw that underflows to 0 (tiny ν) is raised to the
  // smallest normal number, as torch.distributions.Gamma does, so that ε stays finite
  // wherever it can.
  const double tiny = dtype_device.dtype() == at::kDouble
                          ? std::numeric_limits<double>::min()
                          : static_cast<double>(std::numeric_limits<float>::min());
  Tensor chi2 = 2 * at::_standard_gamma(0.5 * df).clamp_min(tiny);
  Tensor normal = at::randn(size, dtype_device);
  return normal * at::rsqrt(chi2 / df);
}

Json StudentTImpl::spec() const {
  return {{"type", "student_t"},
          {"shape", shape_},
          {"df", options.df()},
          {"learn_df", options.learn_df()},
          {"learn_loc_scale", options.learn_loc_scale()}};
}

void StudentTImpl::pretty_print(std::ostream& stream) const {
  stream << "StudentT(shape=" << at::IntArrayRef(shape_) << ", df=" << options.df()
         << (options.learn_df() ? " (learned)" : "")
         << (options.learn_loc_scale() ? ", learned loc and scale" : "") << ")";
}

// ---- LaplaceImpl ------------------------------------------------------------------------

LaplaceImpl::LaplaceImpl(std::vector<int64_t> shape, bool learn_loc_scale)
    : LocationScaleImpl("laplace", std::move(shape), learn_loc_scale) {}

Tensor LaplaceImpl::standard_log_density(const Tensor& u) { return -at::abs(u) - kLog2; }

Tensor LaplaceImpl::standard_sample(int64_t n, const at::TensorOptions& dtype_device) {
  const auto size = detail::batch_shape(n, shape_);
  // U ∈ [0, 1), so 1 − U ∈ (0, 1] and −log(1 − U) is a finite Exponential(1) draw.
  Tensor first = -at::log1p(-at::rand(size, dtype_device));
  Tensor second = -at::log1p(-at::rand(size, dtype_device));
  return first - second;
}

Json LaplaceImpl::spec() const {
  return {{"type", "laplace"}, {"shape", shape_}, {"learn_loc_scale", learns_loc_scale()}};
}

void LaplaceImpl::pretty_print(std::ostream& stream) const {
  stream << "Laplace(shape=" << at::IntArrayRef(shape_)
         << (learns_loc_scale() ? ", learned loc and scale" : "") << ")";
}

}  // namespace zflow
