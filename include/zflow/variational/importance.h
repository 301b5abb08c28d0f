#pragma once
/// \file
/// Importance sampling with a proposal q (a trained flow, or a plain uniform or Gaussian
/// one) for an unnormalised target p̃: with x_i ~ q and weights w_i = p̃(x_i)/q(x_i),
///
///     Ẑ = (1/N) Σ w_i,        se(Ẑ) = sd(w)/√N,          (Z = ∫ p̃, or the integral)
///     ESS% = (Σ w)² / (N Σ w²) = Ẑ² / (Ẑ² + var(w)),
///     unweighting efficiency ε = ⟨w⟩ / w_max,
///
/// where w_max is the replica-robust maximum of Gao et al. 2020, "Event generation with
/// normalizing flows" (arXiv:2001.10028, sec. III): the median of the maxima of R disjoint
/// replicas (sample i belongs to replica i mod R), so that one outlier does not decide it.
/// Everything is accumulated in log space per batch (ImportanceAccumulator), so that
/// N = 10^8 samples take constant memory and weights spanning hundreds of orders of
/// magnitude neither overflow nor underflow.
///
/// Example:
///
///     zflow::ImportanceAccumulator acc;
///     acc.add(log_target - log_q);                   // [B] log weights, any number of times
///     zflow::ImportanceSummary s = acc.summary();    // s.log_z, s.ess, s.unweighting_efficiency

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "zflow/core/spec.h"
#include "zflow/targets/target.h"

namespace zflow {

/// What importance sampling found.
struct ImportanceSummary {
  /// Samples N, and those with w > 0 (p̃ > 0).
  int64_t samples = 0;
  int64_t nonzero = 0;
  /// log Ẑ and the standard error of log Ẑ (delta method: se(Ẑ)/Ẑ). se uses the sample
  /// variance Σ(w − Ẑ)²/(N − 1); +inf (null in JSON) for N = 1.
  double log_z = 0;
  double log_z_stderr = 0;
  /// Ẑ and se(Ẑ) (may overflow to inf for large log Z; log_z does not).
  double z = 0;
  double z_stderr = 0;
  /// Relative variance of the weights var(w)/Ẑ² (per sample; plain MC's figure of merit),
  /// with the population variance Σ(w − Ẑ)²/N, so that ESS = 1/(1 + relative_variance).
  double relative_variance = 0;
  /// ESS as a fraction of N, in [0, 1].
  double ess = 0;
  /// ⟨w⟩ / w_max with the replica-robust w_max, and with the plain maximum. Not capped: the
  /// robust one exceeds 1 when a few over-weights (w > w_max) dominate Ẑ, itself a sign
  /// that the proposal misses part of the target.
  double unweighting_efficiency = 0;
  double unweighting_efficiency_plain_max = 0;
  /// log w_max (replica-robust: the median of the replicas' maxima, the middle two averaged
  /// in w for an even count; the largest weight when that median is 0, i.e. when half the
  /// replicas saw only w = 0) and log of the largest weight.
  double log_w_max = 0;
  double log_w_largest = 0;
  /// The number of replicas R' used for w_max: the largest divisor of R with at least 100
  /// samples in each (1 for N < 200), so that sample i is in replica i mod R'.
  int64_t replicas = 0;
};

/// The summary as JSON (the keys above), for --json and the benchmark.
Json to_json(const ImportanceSummary& summary);

/// Streaming sums of the weights, exact in log space (Chan et al.'s merge of means and
/// squared deviations, rescaled when the running maximum grows).
class ImportanceAccumulator {
 public:
  /// `replicas` R ≥ 1 for the robust maximum (default 100; with N < 100·R, fewer).
  explicit ImportanceAccumulator(int64_t replicas = 100);
  /// Adds log weights [B] (any floating dtype; −inf for w = 0). zflow::Error for NaN or
  /// +inf (one line saying which sample of this batch).
  void add(const at::Tensor& log_weights);
  /// Merges another accumulator's samples as if they followed this one's: exactly, replica
  /// maxima included (the other's replica r becomes (r + N) mod R). ConfigError when the
  /// replica counts differ.
  void merge(const ImportanceAccumulator& other);
  /// The estimates so far; zflow::Error when no sample was added or every weight is 0.
  ImportanceSummary summary() const;
  int64_t samples() const { return n_; }
  void reset();

 private:
  int64_t replicas_;
  int64_t n_ = 0;
  int64_t nonzero_ = 0;
  double shift_ = -std::numeric_limits<double>::infinity();  // log of the scale of mean_/m2_
  double mean_ = 0;                                          // mean of w·e^{−shift}
  double m2_ = 0;                                            // Σ (w·e^{−shift} − mean)²
  std::vector<double> replica_log_max_;                      // per replica, −inf when empty
};

/// A proposal: n samples x [n, D] and their log densities log q(x) [n].
using Proposal = std::function<std::pair<at::Tensor, at::Tensor>(int64_t n)>;

/// Plain Monte Carlo proposals: uniform on a box, and N(mean, diag(std²)).
Proposal uniform_proposal(const Domain& box, at::ScalarType dtype = at::kDouble);
Proposal normal_proposal(std::vector<double> mean, std::vector<double> std,
                         at::ScalarType dtype = at::kDouble);

/// Options of importance_sample.
struct ImportanceOptions {
  /// Samples N in all, drawn `batch` at a time.
  int64_t samples = 1000000;
  int64_t batch = 65536;
  int64_t replicas = 100;
  /// Called after every batch with the samples, their log weights and the samples so far
  /// (to write weighted samples or draw a progress bar); may be empty.
  std::function<void(const at::Tensor& x, const at::Tensor& log_w, int64_t done)> on_batch;
};

/// One batch: n samples x [n, D] of `proposal` and their log weights log p̃(x) − log q(x)
/// [n] (float64), without autograd, with the checks of importance_sample (`first`, the
/// index of the batch's first sample, names a bad sample in the error).
std::pair<at::Tensor, at::Tensor> weighted_batch(const Proposal& proposal, const Target& target,
                                                 int64_t n, int64_t first = 0);

/// Draws N samples from `proposal` in batches (no autograd) and accumulates their log
/// weights log p̃(x) − log q(x) with checked_log_density. zflow::Error for a NaN or +inf
/// log q, a proposal sample of the wrong shape, and a target that fails its checks.
ImportanceSummary importance_sample(const Proposal& proposal, const Target& target,
                                    const ImportanceOptions& options);

/// Accept-reject unweighting (Gao et al. 2020, sec. III): keeps each sample with
/// probability min(1, w/w_max); an over-weight sample (w > w_max) is kept with the residual
/// weight w/w_max > 1. Returns the kept rows' indices [K] and their weights [K] (1 except
/// the over-weights). `uniforms` [B] in [0, 1) makes it deterministic. The results are on the
/// CPU (int64 and float64); ConfigError for a non-finite log_w_max.
std::pair<at::Tensor, at::Tensor> unweight(const at::Tensor& log_weights, double log_w_max,
                                           const at::Tensor& uniforms);

/// Prints "log Z = … ± …", the integral (bounded targets), ESS% and the unweighting
/// efficiencies, one per line, and the exact log Z with the error when `known` is set.
void print_summary(std::ostream& out, const ImportanceSummary& summary, bool integral,
                   std::optional<double> known_log_z = {});

}  // namespace zflow
