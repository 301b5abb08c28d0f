#include "zflow/variational/objectives.h"

#include <cmath>
#include <iomanip>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/core/generator.h"

namespace zflow {

namespace {

/// log (1/B) Σ exp(v_b), stable.
Tensor log_mean_exp(const Tensor& v) {
  return at::logsumexp(v, 0) - std::log(static_cast<double>(v.size(0)));
}

void check_options(const VariationalOptions& o) {
  if (!(o.anneal_from > 0 && o.anneal_from <= 1)) {
    throw ConfigError("annealing must start from a temperature exponent in (0, 1], got " +
                      std::to_string(o.anneal_from));
  }
  if (o.anneal_steps < 0) throw ConfigError("annealing steps must be >= 0");
  if (!(o.alpha >= 0.0 && o.alpha < 1.0)) {
    throw ConfigError(
        "alpha must be in [0, 1) (alpha -> 1 is reverse KL, 0 the importance-weighted "
        "bound), got " +
        std::to_string(o.alpha));
  }
  if (o.buffer_capacity < 0) throw ConfigError("the buffer capacity must be >= 0");
  if (o.refresh_every < 1) throw ConfigError("the buffer refresh interval must be >= 1 step");
  if (o.validation_samples < 1) throw ConfigError("validation samples must be >= 1");
  if (o.window < 1) throw ConfigError("the diagnostics window must be >= 1 step");
}

}  // namespace

std::vector<std::pair<std::string, std::string>> variational_objective_names() {
  return {{"rkl", "reverse KL (negative ELBO), reparameterised; mode-seeking"},
          {"stl", "reverse KL with the path-derivative gradient (sticking the landing)"},
          {"alpha",
           "Renyi variational bound (alpha in [0, 1): from reverse KL towards the "
           "importance-weighted bound); more mass-covering as alpha falls"},
          {"fkl", "importance-weighted forward KL on a buffer of past samples; mass-covering"},
          {"variance", "variance of the importance weights on a buffer of past samples"}};
}

double annealing_beta(const VariationalOptions& o, int64_t step) {
  if (o.anneal_steps <= 0 || step >= o.anneal_steps) return 1.0;
  const double progress = static_cast<double>(step) / static_cast<double>(o.anneal_steps);
  return std::pow(o.anneal_from, 1.0 - progress);
}

VariationalObjective::VariationalObjective(TargetPtr target, VariationalOptions options)
    : target_(std::move(target)), options_(std::move(options)) {
  if (!target_) throw ConfigError("a variational objective needs a target");
  check_options(options_);
}

Tensor VariationalObjective::tempered_log_density(const Tensor& x, int64_t step,
                                                  Tensor* untempered) const {
  Tensor log_p = checked_log_density(*target_, x);
  if (untempered) *untempered = log_p;
  const double beta = annealing_beta(options_, step);
  return beta == 1.0 ? log_p : log_p * beta;
}

void VariationalObjective::record(const Tensor& log_weights, int64_t step) {
  if (step - window_start_ >= options_.window && current_.samples() > 0) {
    last_ = current_;
    has_last_ = true;
    current_.reset();
    window_start_ = step;
  }
  current_.add(log_weights.detach());
}

std::string VariationalObjective::progress_status() const {
  // The current window once it holds as many steps as half a window, else the last one.
  const ImportanceAccumulator& shown =
      (has_last_ && current_.samples() < last_.samples() / 2) ? last_ : current_;
  if (shown.samples() == 0) return {};
  try {
    const ImportanceSummary s = shown.summary();
    std::ostringstream out;
    out << std::fixed << std::setprecision(1) << "ESS " << 100.0 * s.ess << "%  log Z "
        << std::setprecision(4) << s.log_z;
    return out.str();
  } catch (const Error&) {
    return "ESS 0%";  // every weight was zero (no sample where p̃ > 0)
  }
}

Json VariationalObjective::progress_metrics() const {
  const ImportanceAccumulator& shown = has_last_ ? last_ : current_;
  if (shown.samples() == 0) return Json::object();
  try {
    const ImportanceSummary s = shown.summary();
    return {{"ess", s.ess}, {"log_z", s.log_z}, {"log_z_stderr", s.log_z_stderr}};
  } catch (const Error&) {
    return {{"ess", 0.0}};
  }
}

double VariationalObjective::validation_loss(FlowImpl& flow, const Tensor&, const Tensor&) {
  // The same samples at every validation (common random numbers): the comparison between
  // validations is then not blurred by the draw.
  return with_generator_seed(options_.validation_seed, [&] {
    torch::NoGradGuard no_grad;
    std::vector<Tensor> log_q, log_p;
    for (int64_t done = 0; done < options_.validation_samples;) {
      const int64_t n = std::min<int64_t>(4096, options_.validation_samples - done);
      auto [x, q] = flow.sample_and_log_prob(n);
      log_p.push_back(checked_log_density(*target_, x).to(at::kDouble));
      log_q.push_back(q.to(at::kDouble));
      done += n;
    }
    return validation_score(at::cat(log_q), at::cat(log_p));
  });
}

double VariationalObjective::validation_score(const Tensor& log_q, const Tensor& log_p) const {
  return (log_q - log_p).mean().item<double>();
}

std::string ReverseKL::name() const { return options_.stick_the_landing ? "stl" : "rkl"; }

Tensor ReverseKL::loss(FlowImpl& flow, const train::Batch& batch) {
  auto [x, log_q] = flow.sample_and_log_prob(batch.size);
  Tensor log_p;
  const Tensor tempered = tempered_log_density(x, batch.step, &log_p);
  record(log_p - log_q, batch.step);
  if (options_.stick_the_landing) {
    // Roeder et al. 2017, eq. 8: the total derivative of log q_θ(x_θ) is the path term
    // (through x) plus the score term ∂/∂θ log q_θ(x) at fixed x, whose expectation is 0.
    // log q_θ(x) at a detached x carries the score term alone; subtracting it (and adding
    // its value back) leaves the value and keeps only the path term in the gradient.
    const Tensor score_only = flow.log_prob(x.detach());
    log_q = log_q - score_only + score_only.detach();
  }
  return (log_q - tempered).mean();
}

AlphaDivergence::AlphaDivergence(TargetPtr target, VariationalOptions options)
    : VariationalObjective(std::move(target), std::move(options)) {}

Tensor AlphaDivergence::loss(FlowImpl& flow, const train::Batch& batch) {
  auto [x, log_q] = flow.sample_and_log_prob(batch.size);
  Tensor log_p;
  const Tensor tempered = tempered_log_density(x, batch.step, &log_p);
  record(log_p - log_q, batch.step);
  return renyi(tempered - log_q);
}

Tensor AlphaDivergence::renyi(const Tensor& log_w) const {
  // Li & Turner 2016, eq. 5 and 8: the Rényi variational bound
  //   L_α = 1/(1−α) · log E_q[w^{1−α}] ≤ log Z  (0 ≤ α < 1),
  // estimated with the batch's B samples (their eq. 10, biased like IWAE, consistent); the
  // loss is −L_α. Moving q away from p lowers every weight and so the bound: unlike
  // estimates of E_q[w²] from q's own samples (α > 1), which a q that escapes from p, or
  // shrinks onto a region where the weights are nearly equal, drives down (on gmm40 log Ẑ
  // fell to −10⁷, on the many-well to −1379 against 164.7), it has no such way out.
  const double b = 1.0 - options_.alpha;
  return -log_mean_exp(b * log_w) / b;
}

double AlphaDivergence::validation_score(const Tensor& log_q, const Tensor& log_p) const {
  return renyi(log_p - log_q).item<double>();
}

BufferedObjective::BufferedObjective(TargetPtr target, VariationalOptions options, std::string kind)
    : VariationalObjective(std::move(target), std::move(options)), kind_(std::move(kind)) {
  if (kind_ != "fkl" && kind_ != "variance") {
    throw ConfigError("unknown buffered objective '" + kind_ + "' (choose fkl or variance)");
  }
}

void BufferedObjective::refill(FlowImpl& flow, int64_t n, int64_t step) {
  torch::NoGradGuard no_grad;
  auto [x, log_g] = flow.sample_and_log_prob(n);
  const Tensor log_p = checked_log_density(*target_, x);
  record(log_p - log_g, step);
  const int64_t capacity =
      options_.buffer_capacity > 0 ? std::max(options_.buffer_capacity, n) : 10 * n;
  if (!x_.defined() || x_.size(0) != capacity || x_.size(1) != x.size(1)) {
    x_ = at::empty({capacity, x.size(1)}, x.options());
    log_g_ = at::empty({capacity}, log_g.options());
    log_p_ = at::empty({capacity}, log_p.options());
    size_ = next_ = 0;
  }
  // Ring buffer: the oldest samples make room.
  for (int64_t done = 0; done < n;) {
    const int64_t count = std::min(n - done, capacity - next_);
    x_.narrow(0, next_, count).copy_(x.narrow(0, done, count));
    log_g_.narrow(0, next_, count).copy_(log_g.narrow(0, done, count));
    log_p_.narrow(0, next_, count).copy_(log_p.narrow(0, done, count));
    done += count;
    next_ = (next_ + count) % capacity;
    size_ = std::min(capacity, size_ + count);
  }
}

Tensor BufferedObjective::loss(FlowImpl& flow, const train::Batch& batch) {
  if (size_ == 0 || batch.step % options_.refresh_every == 0) refill(flow, batch.size, batch.step);
  const Tensor rows = at::randint(size_, {batch.size}, at::TensorOptions(at::kLong));
  const Tensor x = x_.index_select(0, rows);
  const Tensor log_g = log_g_.index_select(0, rows);
  const double beta = annealing_beta(options_, batch.step);
  const Tensor log_p = log_p_.index_select(0, rows) * beta;
  return buffered_loss(log_p, flow.log_prob(x), log_g);
}

Tensor BufferedObjective::buffered_loss(const Tensor& log_p, const Tensor& log_q,
                                        const Tensor& log_g) const {
  if (kind_ == "fkl") {
    // E_p[−log q_θ] by self-normalised importance sampling from g (MadNIS eq. 10).
    const Tensor weights = at::softmax(log_p - log_g, 0).detach();
    return -(weights * log_q).sum();
  }
  // log E_g[p̃² / (q_θ g)] − 2 log Ẑ = log E_q[w²]/Z² (MadNIS's variance loss, eq. 9, in
  // log form); Ẑ from the same minibatch, without gradient.
  const Tensor log_z = log_mean_exp(log_p - log_g).detach();
  return log_mean_exp(2.0 * log_p - log_q - log_g) - 2.0 * log_z;
}

double BufferedObjective::validation_score(const Tensor& log_q, const Tensor& log_p) const {
  // The loss with q as its own proposal: the cross-entropy, or log(1/ESS).
  return buffered_loss(log_p, log_q, log_q).item<double>();
}

std::shared_ptr<VariationalObjective> make_variational_objective(TargetPtr target,
                                                                 VariationalOptions options) {
  const std::string name = options.objective;
  if (name == "rkl" || name == "stl") {
    if (name == "stl") options.stick_the_landing = true;
    return std::make_shared<ReverseKL>(std::move(target), std::move(options));
  }
  if (name == "alpha") return std::make_shared<AlphaDivergence>(std::move(target), options);
  if (name == "fkl" || name == "variance") {
    return std::make_shared<BufferedObjective>(std::move(target), std::move(options), name);
  }
  std::string known;
  for (const auto& [n, d] : variational_objective_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("unknown objective '" + name + "' for a target (choose " + known + ")");
}

}  // namespace zflow
