#include "zflow/variational/importance.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Samples per replica below which the replicas are folded together (see
// effective_replicas): the median of the maxima of a few samples each is the median of the
// weights, not an estimate of their maximum.
constexpr int64_t kSamplesPerReplica = 100;

/// Chan, Golub & LeVeque 1979's pairwise merge of (n, mean, M2) with (nb, mean_b, m2_b), each
/// stored relative to its own scale e^{shift}: both are first brought to the larger shift
/// (mean by e^{old−new}, M2 by e^{2(old−new)}), so no value exceeds 1 and weights spanning
/// hundreds of orders of magnitude neither overflow nor underflow into the sums that matter.
/// A shift of −inf means "every weight so far is 0" (mean = M2 = 0).
void merge_moments(int64_t& n, double& shift, double& mean, double& m2, int64_t nb, double shift_b,
                   double mean_b, double m2_b) {
  if (nb == 0) return;
  const double new_shift = std::max(shift, shift_b);
  if (new_shift == -kInf) {  // Zeros only, on both sides: mean and M2 stay 0.
    n += nb;
    return;
  }
  const double sa = shift == -kInf ? 0.0 : std::exp(shift - new_shift);
  const double sb = shift_b == -kInf ? 0.0 : std::exp(shift_b - new_shift);
  const double mean_a = mean * sa;
  const double m2_a = m2 * sa * sa;
  mean_b *= sb;
  m2_b *= sb * sb;
  const double na = static_cast<double>(n);
  const double nbd = static_cast<double>(nb);
  const double total = na + nbd;
  const double delta = mean_b - mean_a;
  mean = mean_a + delta * (nbd / total);
  m2 = m2_a + m2_b + delta * delta * (na * nbd / total);
  shift = new_shift;
  n += nb;
}

/// log((e^a + e^b)/2) without overflow; −inf when both are.
double log_mean_exp2(double a, double b) {
  const double hi = std::max(a, b);
  if (hi == -kInf) return -kInf;
  return hi + std::log1p(std::exp(std::min(a, b) - hi)) - std::log(2.0);
}

/// The replicas actually used for w_max: the largest divisor R' of R with at least
/// kSamplesPerReplica samples in each (1 when N < 2·kSamplesPerReplica). A divisor, so that
/// folding replica r into r mod R' keeps the rule "sample i belongs to replica i mod R'"
/// ((i mod R) mod R' = i mod R' when R' divides R) and the replicas stay equally large.
int64_t effective_replicas(int64_t replicas, int64_t samples) {
  const int64_t cap = std::max<int64_t>(1, std::min(replicas, samples / kSamplesPerReplica));
  for (int64_t r = cap; r > 1; --r) {
    if (replicas % r == 0) return r;
  }
  return 1;
}

/// The first entry of a 1-D tensor that is NaN or +inf (and −inf too unless allow_minus_inf),
/// or −1.
int64_t first_bad(const at::Tensor& values, bool allow_minus_inf) {
  const at::Tensor bad = allow_minus_inf ? at::isnan(values) | at::isposinf(values)
                                         : at::logical_not(at::isfinite(values));
  if (!bad.any().item<bool>()) return -1;
  return at::argmax(bad.to(at::kByte)).item<int64_t>();
}

std::string shape_string(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

std::string printf_string(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

/// "value ± error" with two significant digits of the error and the value to the same
/// decimal place; fixed notation for moderate values, scientific otherwise.
std::string with_error(double value, double error) {
  if (!std::isfinite(value)) return printf_string("%g", value);
  if (error == 0) return printf_string("%.10g", value) + " ± 0";
  if (!std::isfinite(error)) return printf_string("%.6g", value) + " ± n/a";
  const int error_exponent = static_cast<int>(std::floor(std::log10(error)));
  const int decimals = 1 - error_exponent;
  if (decimals >= 0 && decimals <= 10 && std::fabs(value) < 1e7) {
    const std::string format = "%." + std::to_string(decimals) + "f";
    return printf_string(format.c_str(), value) + " ± " + printf_string(format.c_str(), error);
  }
  const int value_exponent =
      value == 0 ? error_exponent + 1 : static_cast<int>(std::floor(std::log10(std::fabs(value))));
  const int digits = std::max(1, value_exponent - error_exponent + 1);
  const std::string format = "%." + std::to_string(digits) + "e";
  return printf_string(format.c_str(), value) + " ± " + printf_string("%.1e", error);
}

/// A fraction as a percentage: one decimal from 1 % up, two significant digits below.
std::string percent(double fraction) {
  const double p = 100 * fraction;
  return printf_string(p >= 1 || p == 0 ? "%.1f" : "%.2g", p) + " %";
}

}  // namespace

Json to_json(const ImportanceSummary& s) {
  // nlohmann writes a non-finite double (z for log Z > 709, the error of one sample) as null.
  return Json{{"samples", s.samples},
              {"nonzero", s.nonzero},
              {"log_z", s.log_z},
              {"log_z_stderr", s.log_z_stderr},
              {"z", s.z},
              {"z_stderr", s.z_stderr},
              {"relative_variance", s.relative_variance},
              {"ess", s.ess},
              {"unweighting_efficiency", s.unweighting_efficiency},
              {"unweighting_efficiency_plain_max", s.unweighting_efficiency_plain_max},
              {"log_w_max", s.log_w_max},
              {"log_w_largest", s.log_w_largest},
              {"replicas", s.replicas}};
}

ImportanceAccumulator::ImportanceAccumulator(int64_t replicas) : replicas_(replicas) {
  if (replicas < 1) {
    throw ConfigError("importance sampling: replicas must be at least 1 (got " +
                      std::to_string(replicas) + ")");
  }
  reset();
}

void ImportanceAccumulator::reset() {
  n_ = 0;
  nonzero_ = 0;
  shift_ = -kInf;
  mean_ = 0;
  m2_ = 0;
  replica_log_max_.assign(static_cast<size_t>(replicas_), -kInf);
}

void ImportanceAccumulator::add(const at::Tensor& log_weights) {
  TORCH_CHECK(log_weights.dim() == 1, "ImportanceAccumulator::add: log weights must be [B], got ",
              log_weights.sizes());
  TORCH_CHECK(at::isFloatingType(log_weights.scalar_type()),
              "ImportanceAccumulator::add: log weights must be floating, got ",
              log_weights.scalar_type());
  const int64_t b = log_weights.size(0);
  if (b == 0) return;
  const at::Tensor lw = log_weights.detach().to(at::kCPU, at::kDouble).contiguous();
  // Checked before anything changes, so that a bad batch leaves the accumulator as it was.
  const int64_t bad = first_bad(lw, /*allow_minus_inf=*/true);
  if (bad >= 0) {
    const double value = lw[bad].item<double>();
    throw Error("importance sampling: log weight of sample " + std::to_string(bad) +
                " of the batch (sample " + std::to_string(n_ + bad) + " overall) is " +
                (std::isnan(value) ? "nan" : "+inf") + "; log weights must be finite or -inf");
  }
  const double batch_shift = lw.max().item<double>();
  double batch_mean = 0;
  double batch_m2 = 0;
  if (batch_shift > -kInf) {
    // The batch's w·e^{−max} in (0, 1] (0 for w = 0), its mean and squared deviations.
    const at::Tensor v = at::exp(lw - batch_shift);
    batch_mean = v.mean().item<double>();
    batch_m2 = (v - batch_mean).pow(2).sum().item<double>();
  }
  nonzero_ += (lw > -kInf).sum().item<int64_t>();
  const double* data = lw.data_ptr<double>();
  int64_t replica = n_ % replicas_;
  for (int64_t i = 0; i < b; ++i) {
    double& m = replica_log_max_[static_cast<size_t>(replica)];
    m = std::max(m, data[i]);
    if (++replica == replicas_) replica = 0;
  }
  merge_moments(n_, shift_, mean_, m2_, b, batch_shift, batch_mean, batch_m2);
}

void ImportanceAccumulator::merge(const ImportanceAccumulator& other) {
  if (other.replicas_ != replicas_) {
    throw ConfigError("importance sampling: cannot merge accumulators with " +
                      std::to_string(replicas_) + " and " + std::to_string(other.replicas_) +
                      " replicas");
  }
  const ImportanceAccumulator copy = other;  // other may be *this
  // The other's sample j becomes sample n_ + j, so its replica r becomes (r + n_) mod R:
  // the merged replica maxima are exactly those of the concatenated stream.
  const int64_t offset = n_ % replicas_;
  for (int64_t r = 0; r < replicas_; ++r) {
    double& m = replica_log_max_[static_cast<size_t>((r + offset) % replicas_)];
    m = std::max(m, copy.replica_log_max_[static_cast<size_t>(r)]);
  }
  nonzero_ += copy.nonzero_;
  merge_moments(n_, shift_, mean_, m2_, copy.n_, copy.shift_, copy.mean_, copy.m2_);
}

ImportanceSummary ImportanceAccumulator::summary() const {
  if (n_ == 0) throw Error("importance sampling: no samples were added");
  if (shift_ == -kInf) {
    throw Error("importance sampling: all " + std::to_string(n_) +
                " weights are zero (the target vanishes wherever the proposal sampled)");
  }
  ImportanceSummary s;
  const double n = static_cast<double>(n_);
  s.samples = n_;
  s.nonzero = nonzero_;
  // mean_ ≥ 1/N > 0: the largest weight is 1 on the scale e^{shift}.
  s.log_z = shift_ + std::log(mean_);
  s.z = std::exp(s.log_z);
  // Population variance M2/N for the relative variance and the ESS, so that
  // ESS = Ẑ²/(Ẑ² + var) = (Σw)²/(N Σw²) exactly (Kong 1992; Owen 2013, eq. 9.13).
  const double var_pop = m2_ / n;
  s.relative_variance = var_pop / (mean_ * mean_);
  s.ess = 1 / (1 + s.relative_variance);
  // The sample variance M2/(N−1) for the standard error, as for any Monte Carlo mean; none
  // from one sample (+inf, written as null in JSON).
  if (n_ == 1) {
    s.z_stderr = kInf;
    s.log_z_stderr = kInf;
  } else {
    const double se = std::sqrt(m2_ / (n - 1) / n);  // on the scale e^{shift}
    s.log_z_stderr = se / mean_;
    s.z_stderr = se > 0 ? std::exp(shift_ + std::log(se)) : 0.0;
  }
  // Replica-robust w_max (Gao et al. 2020, sec. III): the median of the replicas' maxima,
  // the middle two averaged (in w) for an even count.
  const int64_t r = effective_replicas(replicas_, n_);
  std::vector<double> maxima(static_cast<size_t>(r), -kInf);
  for (int64_t i = 0; i < replicas_; ++i) {
    double& m = maxima[static_cast<size_t>(i % r)];
    m = std::max(m, replica_log_max_[static_cast<size_t>(i)]);
  }
  std::sort(maxima.begin(), maxima.end());
  const size_t half = maxima.size() / 2;
  double robust = maxima.size() % 2 ? maxima[half] : log_mean_exp2(maxima[half - 1], maxima[half]);
  // −inf: at least half the replicas saw only w = 0, so their maxima say nothing about the
  // bulk; the plain maximum is the only estimate left.
  if (robust == -kInf) robust = shift_;
  s.replicas = r;
  s.log_w_max = robust;
  s.log_w_largest = shift_;
  s.unweighting_efficiency = std::exp(s.log_z - s.log_w_max);
  s.unweighting_efficiency_plain_max = std::exp(s.log_z - s.log_w_largest);
  return s;
}

Proposal uniform_proposal(const Domain& box, at::ScalarType dtype) {
  if (!box.bounded() || box.low.size() != box.high.size()) {
    throw ConfigError("uniform proposal: needs a box with as many lower as upper bounds");
  }
  if (!at::isFloatingType(dtype)) throw ConfigError("uniform proposal: dtype must be floating");
  double log_volume = 0;
  for (size_t i = 0; i < box.low.size(); ++i) {
    const double width = box.high[i] - box.low[i];
    if (!std::isfinite(box.low[i]) || !std::isfinite(width) || !(width > 0)) {
      throw ConfigError("uniform proposal: bound " + std::to_string(i) +
                        " must be finite with low < high");
    }
    log_volume += std::log(width);
  }
  const at::Tensor low = at::tensor(box.low, at::TensorOptions().dtype(at::kDouble)).to(dtype);
  const at::Tensor width =
      (at::tensor(box.high, at::TensorOptions().dtype(at::kDouble)) - low.to(at::kDouble))
          .to(dtype);
  const int64_t dim = static_cast<int64_t>(box.low.size());
  return [low, width, dim, log_volume, dtype](int64_t n) {
    const at::Tensor x = low + width * at::rand({n, dim}, at::TensorOptions().dtype(dtype));
    return std::make_pair(x, at::full({n}, -log_volume, at::TensorOptions().dtype(dtype)));
  };
}

Proposal normal_proposal(std::vector<double> mean, std::vector<double> std, at::ScalarType dtype) {
  if (mean.empty() || mean.size() != std.size()) {
    throw ConfigError("normal proposal: needs as many means as standard deviations (at least 1)");
  }
  if (!at::isFloatingType(dtype)) throw ConfigError("normal proposal: dtype must be floating");
  double log_norm = 0;  // Σ log σ_i + D/2 log 2π
  for (size_t i = 0; i < mean.size(); ++i) {
    if (!std::isfinite(mean[i]) || !std::isfinite(std[i]) || !(std[i] > 0)) {
      throw ConfigError("normal proposal: mean " + std::to_string(i) +
                        " must be finite and its standard deviation finite and positive");
    }
    log_norm += std::log(std[i]) + 0.5 * std::log(2 * M_PI);
  }
  const auto options = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor mu = at::tensor(mean, options).to(dtype);
  const at::Tensor sigma = at::tensor(std, options).to(dtype);
  const int64_t dim = static_cast<int64_t>(mean.size());
  return [mu, sigma, dim, log_norm, dtype](int64_t n) {
    // log q from the standard normal draws themselves, not from (x − μ)/σ: exact for x.
    const at::Tensor z = at::randn({n, dim}, at::TensorOptions().dtype(dtype));
    return std::make_pair(mu + sigma * z, -0.5 * z.pow(2).sum(1) - log_norm);
  };
}

std::pair<at::Tensor, at::Tensor> weighted_batch(const Proposal& proposal, const Target& target,
                                                 int64_t n, int64_t first) {
  const at::NoGradGuard no_grad;
  const int64_t dim = target.dim();
  const auto [x, log_q] = proposal(n);
  if (!x.defined() || x.dim() != 2 || x.size(0) != n || x.size(1) != dim) {
    throw Error("importance sampling: the proposal returned x of shape " +
                (x.defined() ? shape_string(x) : std::string("(undefined)")) + " for " +
                std::to_string(n) + " samples of the " + std::to_string(dim) + "-D target '" +
                target.name() + "' (expected [" + std::to_string(n) + ", " + std::to_string(dim) +
                "])");
  }
  if (!log_q.defined() || log_q.dim() != 1 || log_q.size(0) != n ||
      !at::isFloatingType(log_q.scalar_type())) {
    throw Error("importance sampling: the proposal returned log q of shape " +
                (log_q.defined() ? shape_string(log_q) : std::string("(undefined)")) + " for " +
                std::to_string(n) + " samples (expected floating [" + std::to_string(n) + "])");
  }
  const at::Tensor log_q64 = log_q.to(at::kDouble);
  // −inf is impossible at a point the proposal drew: it would be a proposal bug, and the
  // weight p̃/q would be +inf.
  const int64_t bad = first_bad(log_q64, /*allow_minus_inf=*/false);
  if (bad >= 0) {
    throw Error("importance sampling: the proposal's log q of sample " +
                std::to_string(first + bad) + " is " +
                printf_string("%g", log_q64[bad].item<double>()) + " (must be finite)");
  }
  const at::Tensor log_w = checked_log_density(target, x).to(at::kDouble) - log_q64.to(x.device());
  return {x, log_w};
}

ImportanceSummary importance_sample(const Proposal& proposal, const Target& target,
                                    const ImportanceOptions& options) {
  const auto require = [](bool ok, const std::string& what, int64_t value) {
    if (!ok) {
      throw ConfigError("importance sampling: " + what + " must be at least 1 (got " +
                        std::to_string(value) + ")");
    }
  };
  require(options.samples >= 1, "samples", options.samples);
  require(options.batch >= 1, "batch", options.batch);
  require(options.replicas >= 1, "replicas", options.replicas);
  if (!proposal) throw ConfigError("importance sampling: no proposal");

  const at::NoGradGuard no_grad;
  ImportanceAccumulator accumulator(options.replicas);
  for (int64_t done = 0; done < options.samples;) {
    const int64_t n = std::min(options.batch, options.samples - done);
    const auto [x, log_w] = weighted_batch(proposal, target, n, done);
    accumulator.add(log_w);
    done += n;
    if (options.on_batch) options.on_batch(x, log_w, done);
  }
  return accumulator.summary();
}

std::pair<at::Tensor, at::Tensor> unweight(const at::Tensor& log_weights, double log_w_max,
                                           const at::Tensor& uniforms) {
  TORCH_CHECK(log_weights.dim() == 1, "unweight: log weights must be [B], got ",
              log_weights.sizes());
  TORCH_CHECK(uniforms.dim() == 1 && uniforms.size(0) == log_weights.size(0),
              "unweight: uniforms must be [", log_weights.size(0), "], got ", uniforms.sizes());
  if (!std::isfinite(log_w_max)) {
    throw ConfigError("unweight: log w_max must be finite (got " + printf_string("%g", log_w_max) +
                      ")");
  }
  const at::Tensor lw = log_weights.detach().to(at::kCPU, at::kDouble);
  const at::Tensor u = uniforms.detach().to(at::kCPU, at::kDouble);
  TORCH_CHECK(u.numel() == 0 || (u.min().item<double>() >= 0 && u.max().item<double>() < 1),
              "unweight: uniforms must lie in [0, 1)");
  const int64_t bad = first_bad(lw, /*allow_minus_inf=*/true);
  if (bad >= 0) {
    throw Error("unweight: log weight of sample " + std::to_string(bad) + " is " +
                printf_string("%g", lw[bad].item<double>()));
  }
  // Keep with probability min(1, w/w_max): u < w/w_max with u ~ U[0, 1). A w = 0 (ratio 0)
  // is never kept.
  const at::Tensor ratio = at::exp(lw - log_w_max);
  const at::Tensor kept = at::nonzero(u < ratio).reshape({-1});
  return {kept, at::clamp_min(ratio.index_select(0, kept), 1.0)};
}

void print_summary(std::ostream& out, const ImportanceSummary& s, bool integral,
                   std::optional<double> known_log_z) {
  out << "log Z         = " << with_error(s.log_z, s.log_z_stderr) << '\n';
  if (integral) out << "integral      = " << with_error(s.z, s.z_stderr) << '\n';
  out << "ESS           = " << percent(s.ess) << " of " << s.samples << '\n';
  if (s.nonzero < s.samples) {
    out << "nonzero       = " << percent(static_cast<double>(s.nonzero) / s.samples)
        << " of the weights (the target vanishes elsewhere)\n";
  }
  const std::string replicas =
      std::to_string(s.replicas) + (s.replicas == 1 ? " replica" : " replicas");
  if (s.unweighting_efficiency > 1) {
    // The median replica maximum is below the mean: a few weights carry the estimate and
    // no robust w_max exists at this N.
    out << "unweighting   = " << percent(s.unweighting_efficiency_plain_max)
        << " with the largest weight; no robust w_max (the median of the " << replicas
        << "' maxima is below the mean weight: a few weights carry the estimate)\n";
  } else {
    out << "unweighting   = " << percent(s.unweighting_efficiency) << " (replica-robust w_max, "
        << replicas << "), " << percent(s.unweighting_efficiency_plain_max)
        << " with the largest weight\n";
  }
  if (known_log_z) {
    const double error = s.log_z - *known_log_z;
    out << "exact log Z   = " << printf_string("%.6g", *known_log_z) << " (error "
        << printf_string("%.2g", error);
    if (s.log_z_stderr > 0 && std::isfinite(s.log_z_stderr)) {
      out << ", " << printf_string("%.1f", std::fabs(error) / s.log_z_stderr) << " standard errors";
    }
    out << ")\n";
  }
}

}  // namespace zflow
