#include "zflow/ode/solver.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "zflow/core/error.h"

namespace zflow::ode {

namespace {

/// y + h Σ_i a_i k_i, state tensor by state tensor (terms with a_i = 0 skipped).
State combine(const State& y, double h,
              std::initializer_list<std::pair<double, const State*>> terms) {
  State out;
  out.reserve(y.size());
  for (size_t j = 0; j < y.size(); ++j) {
    at::Tensor r = y[j];
    for (const auto& [a, k] : terms) {
      if (a != 0.0) r = r + (*k)[j] * (h * a);
    }
    out.push_back(r);
  }
  return out;
}

/// Root mean square of v / (atol + rtol·max(|y0|, |y1|)) over every element of every state
/// tensor, in double precision, without autograd.
double scaled_rms(const State& v, const State& y0, const State& y1, double atol, double rtol) {
  at::NoGradGuard no_grad;
  double sum = 0.0;
  int64_t count = 0;
  for (size_t j = 0; j < v.size(); ++j) {
    const at::Tensor scale = at::maximum(y0[j].detach().abs(), y1[j].detach().abs())
                                 .to(at::kDouble)
                                 .mul_(rtol)
                                 .add_(atol);
    sum += v[j].detach().to(at::kDouble).div(scale).pow(2).sum().item<double>();
    count += v[j].numel();
  }
  return count == 0 ? 0.0 : std::sqrt(sum / static_cast<double>(count));
}

/// Hairer, Nørsett & Wanner §II.4's starting step for a method of order 5 (one evaluation).
double starting_step(const Dynamics& f, const State& y0, const State& f0, double t0, double span,
                     const SolverOptions& o, int64_t& evaluations) {
  const double d0 = scaled_rms(y0, y0, y0, o.atol, o.rtol);
  const double d1 = scaled_rms(f0, y0, y0, o.atol, o.rtol);
  double h0 = (d0 < 1e-5 || d1 < 1e-5 || !std::isfinite(d1)) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, std::abs(span));
  const double direction = span < 0 ? -1.0 : 1.0;
  State y1;
  State f1;
  {
    at::NoGradGuard no_grad;
    y1 = combine(y0, direction * h0, {{1.0, &f0}});
    f1 = f(t0 + direction * h0, y1);
  }
  ++evaluations;
  State difference;
  for (size_t j = 0; j < f0.size(); ++j) difference.push_back(f1[j].detach() - f0[j].detach());
  const double d2 = scaled_rms(difference, y0, y0, o.atol, o.rtol) / h0;
  const double dmax = std::max(d1, d2);
  const double h1 = (dmax <= 1e-15 || !std::isfinite(dmax)) ? std::max(1e-6, h0 * 1e-3)
                                                            : std::pow(0.01 / dmax, 1.0 / 5.0);
  return std::min({100.0 * h0, h1, std::abs(span)});
}

Solution fixed_steps(const Dynamics& f, const State& y0, double t0, double t1,
                     const SolverOptions& o) {
  Solution s;
  State y = y0;
  const double h = (t1 - t0) / static_cast<double>(o.steps);
  for (int64_t i = 0; i < o.steps; ++i) {
    // t from the step index, not by accumulation: no drift over many steps.
    const double t = t0 + (t1 - t0) * static_cast<double>(i) / static_cast<double>(o.steps);
    if (o.method == "euler") {
      const State k1 = f(t, y);
      y = combine(y, h, {{1.0, &k1}});
    } else if (o.method == "midpoint") {
      const State k1 = f(t, y);
      const State k2 = f(t + h / 2, combine(y, h, {{0.5, &k1}}));
      y = combine(y, h, {{1.0, &k2}});
    } else {  // rk4
      const State k1 = f(t, y);
      const State k2 = f(t + h / 2, combine(y, h, {{0.5, &k1}}));
      const State k3 = f(t + h / 2, combine(y, h, {{0.5, &k2}}));
      const State k4 = f(t + h, combine(y, h, {{1.0, &k3}}));
      y = combine(y, h, {{1.0 / 6, &k1}, {1.0 / 3, &k2}, {1.0 / 3, &k3}, {1.0 / 6, &k4}});
    }
    s.evaluations += evaluations_per_step(o.method);
  }
  s.accepted_steps = o.steps;
  s.state = std::move(y);
  return s;
}

// The Dormand-Prince 5(4) tableau (Dormand & Prince 1980, Table 2).
constexpr double c2 = 1.0 / 5, c3 = 3.0 / 10, c4 = 4.0 / 5, c5 = 8.0 / 9;
constexpr double a21 = 1.0 / 5;
constexpr double a31 = 3.0 / 40, a32 = 9.0 / 40;
constexpr double a41 = 44.0 / 45, a42 = -56.0 / 15, a43 = 32.0 / 9;
constexpr double a51 = 19372.0 / 6561, a52 = -25360.0 / 2187, a53 = 64448.0 / 6561,
                 a54 = -212.0 / 729;
constexpr double a61 = 9017.0 / 3168, a62 = -355.0 / 33, a63 = 46732.0 / 5247, a64 = 49.0 / 176,
                 a65 = -5103.0 / 18656;
// The fifth-order weights (also the last stage's row: first same as last).
constexpr double b1 = 35.0 / 384, b3 = 500.0 / 1113, b4 = 125.0 / 192, b5 = -2187.0 / 6784,
                 b6 = 11.0 / 84;
// Fifth minus fourth order weights: the local error estimate.
constexpr double e1 = 71.0 / 57600, e3 = -71.0 / 16695, e4 = 71.0 / 1920, e5 = -17253.0 / 339200,
                 e6 = 22.0 / 525, e7 = -1.0 / 40;

Solution dopri5(const Dynamics& f, const State& y0, double t0, double t1,
                const SolverOptions& options) {
  // Tolerances below what the state's dtype resolves could never be met: raise them to
  // 2^-20 (8 float32 epsilons) in single and half precision.
  SolverOptions o = options;
  if (!y0.empty() && y0[0].scalar_type() != at::kDouble) {
    o.atol = std::max(o.atol, 0x1p-20);
    o.rtol = std::max(o.rtol, 0x1p-20);
  }
  Solution s;
  State y = y0;
  State k1 = f(t0, y);
  s.evaluations = 1;
  const double span = t1 - t0;
  const double direction = span < 0 ? -1.0 : 1.0;
  double h = starting_step(f, y, k1, t0, span, o, s.evaluations);
  double t = t0;
  // The smallest step that still moves t: below it the solver would spin forever.
  const double smallest = 1e-12 * std::max(std::abs(span), std::abs(t0));
  while (direction * (t1 - t) > 0) {
    if (s.accepted_steps + s.rejected_steps >= o.max_steps) {
      std::ostringstream m;
      m << "dopri5: did not reach t = " << t1 << " in " << o.max_steps << " steps (at t = " << t
        << ", step " << h << "): the velocity field is too stiff for atol " << o.atol
        << " and rtol " << o.rtol << "; loosen them or use a fixed-step solver";
      throw Error(m.str());
    }
    const bool last = direction * (t + direction * h - t1) >= 0;
    const double step = last ? t1 - t : direction * h;
    const State k2 = f(t + c2 * step, combine(y, step, {{a21, &k1}}));
    const State k3 = f(t + c3 * step, combine(y, step, {{a31, &k1}, {a32, &k2}}));
    const State k4 = f(t + c4 * step, combine(y, step, {{a41, &k1}, {a42, &k2}, {a43, &k3}}));
    const State k5 =
        f(t + c5 * step, combine(y, step, {{a51, &k1}, {a52, &k2}, {a53, &k3}, {a54, &k4}}));
    const State k6 =
        f(t + step, combine(y, step, {{a61, &k1}, {a62, &k2}, {a63, &k3}, {a64, &k4}, {a65, &k5}}));
    State y1 = combine(y, step, {{b1, &k1}, {b3, &k3}, {b4, &k4}, {b5, &k5}, {b6, &k6}});
    const State k7 = f(t + step, y1);
    s.evaluations += 6;
    State error;
    {
      at::NoGradGuard no_grad;
      State zero;
      for (const auto& v : y) zero.push_back(at::zeros_like(v));
      error =
          combine(zero, step, {{e1, &k1}, {e3, &k3}, {e4, &k4}, {e5, &k5}, {e6, &k6}, {e7, &k7}});
    }
    const double rms = scaled_rms(error, y, y1, o.atol, o.rtol);
    const bool accept = std::isfinite(rms) && rms <= 1.0;
    if (accept) {
      t = last ? t1 : t + step;
      y = std::move(y1);
      k1 = k7;
      ++s.accepted_steps;
    } else {
      ++s.rejected_steps;
    }
    const double factor = std::isfinite(rms)
                              ? std::clamp(0.9 * std::pow(std::max(rms, 1e-10), -0.2), 0.2, 10.0)
                              : 0.2;
    h = std::abs(step) * factor;
    if (!accept && h < smallest) {
      std::ostringstream m;
      m << "dopri5: the step size underflowed at t = " << t
        << (std::isfinite(rms) ? ": the velocity field is too stiff for these tolerances"
                               : ": the velocity field is not finite there");
      throw Error(m.str());
    }
  }
  s.state = std::move(y);
  return s;
}

}  // namespace

std::vector<std::string> solver_names() { return {"euler", "midpoint", "rk4", "dopri5"}; }

bool is_fixed_step(const std::string& method) {
  return method == "euler" || method == "midpoint" || method == "rk4";
}

int64_t evaluations_per_step(const std::string& method) {
  if (method == "euler") return 1;
  if (method == "midpoint") return 2;
  if (method == "rk4") return 4;
  throw ConfigError("evaluations_per_step: " + method + " is not a fixed-step method");
}

void check_options(const SolverOptions& o) {
  if (!is_fixed_step(o.method) && o.method != "dopri5") {
    throw ConfigError("unknown ODE solver '" + o.method +
                      "' (choose euler, midpoint, rk4 or dopri5)");
  }
  if (is_fixed_step(o.method) && o.steps < 1) {
    throw ConfigError("the " + o.method + " solver needs at least 1 step (got " +
                      std::to_string(o.steps) + ")");
  }
  auto positive = [](double v) { return std::isfinite(v) && v > 0; };
  if (!positive(o.atol) || !positive(o.rtol)) {
    std::ostringstream m;
    m << "ODE tolerances must be positive and finite (atol " << o.atol << ", rtol " << o.rtol
      << ")";
    throw ConfigError(m.str());
  }
  if (o.max_steps < 1) throw ConfigError("ODE solver: max_steps must be at least 1");
}

Solution integrate(const Dynamics& f, const State& y0, double t0, double t1,
                   const SolverOptions& options) {
  check_options(options);
  TORCH_CHECK(std::isfinite(t0) && std::isfinite(t1), "ode::integrate: times must be finite");
  if (t0 == t1) return Solution{y0, 0, 0, 0};
  return is_fixed_step(options.method) ? fixed_steps(f, y0, t0, t1, options)
                                       : dopri5(f, y0, t0, t1, options);
}

}  // namespace zflow::ode
