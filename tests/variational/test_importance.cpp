// Importance sampling: exact answers when the proposal is the target, analytic Gaussian
// moments within derived standard errors, streaming and merging that do not change the
// result, extreme log weights, the replica-robust maximum, and unweighting.

#include "zflow/variational/importance.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "support/expect_error.h"
#include "zflow/core/error.h"

namespace {

using zflow::testing::expect_error;

constexpr double kLog2Pi = 1.8378770664093454836;  // log 2π

/// E_q[w^k] for w = p/q, p = N(0, sp²), q = N(0, sq²) in 1-D:
/// ∫ p^k q^{1−k} dx = sp^{−k} sq^{k−1} / sqrt(k/sp² − (k−1)/sq²) (a Gaussian integral).
double gaussian_weight_moment(int k, double sp, double sq) {
  return std::pow(sp, -k) * std::pow(sq, k - 1) / std::sqrt(k / (sp * sp) - (k - 1) / (sq * sq));
}

/// log p̃ = log c + log N(x; 0, σ² I) in D dimensions.
zflow::TargetPtr gaussian_target(int64_t dim, double sigma, double log_c) {
  return zflow::make_callable_target(
      "gauss", dim,
      [=](const at::Tensor& x) {
        return log_c - 0.5 * (x / sigma).pow(2).sum(1) -
               static_cast<double>(dim) * (std::log(sigma) + 0.5 * kLog2Pi);
      },
      {}, log_c);
}

void expect_same_summary(const zflow::ImportanceSummary& a, const zflow::ImportanceSummary& b,
                         double tol) {
  const auto near = [tol](double x, double y, const char* what) {
    EXPECT_LE(std::fabs(x - y), tol * std::max(1.0, std::fabs(y)))
        << what << ": " << x << " vs " << y;
  };
  EXPECT_EQ(a.samples, b.samples);
  EXPECT_EQ(a.nonzero, b.nonzero);
  near(a.log_z, b.log_z, "log_z");
  near(a.log_z_stderr, b.log_z_stderr, "log_z_stderr");
  near(a.z, b.z, "z");
  near(a.z_stderr, b.z_stderr, "z_stderr");
  near(a.relative_variance, b.relative_variance, "relative_variance");
  near(a.ess, b.ess, "ess");
  near(a.unweighting_efficiency, b.unweighting_efficiency, "unweighting_efficiency");
  near(a.unweighting_efficiency_plain_max, b.unweighting_efficiency_plain_max, "plain max");
  // The replica maxima depend only on the samples' indices: identical, not merely close.
  EXPECT_EQ(a.log_w_max, b.log_w_max);
  EXPECT_EQ(a.log_w_largest, b.log_w_largest);
  EXPECT_EQ(a.replicas, b.replicas);
}

TEST(Importance, ProposalEqualToTheTargetIsExact) {
  at::manual_seed(1);
  zflow::ImportanceOptions options;
  options.samples = 20000;
  options.batch = 3000;
  const zflow::ImportanceSummary s = zflow::importance_sample(
      zflow::normal_proposal({0, 0, 0}, {1, 1, 1}), *gaussian_target(3, 1.0, 0.0), options);
  EXPECT_EQ(s.samples, 20000);
  EXPECT_EQ(s.nonzero, 20000);
  EXPECT_NEAR(s.log_z, 0.0, 1e-12);
  EXPECT_NEAR(s.z, 1.0, 1e-12);
  EXPECT_NEAR(s.ess, 1.0, 1e-12);
  EXPECT_LT(s.z_stderr, 1e-12);
  EXPECT_LT(s.log_z_stderr, 1e-12);
  EXPECT_LT(s.relative_variance, 1e-12);
  EXPECT_NEAR(s.unweighting_efficiency, 1.0, 1e-12);
  EXPECT_NEAR(s.unweighting_efficiency_plain_max, 1.0, 1e-12);
  EXPECT_EQ(s.replicas, 100);
}

TEST(Importance, UnnormalisedTargetGivesLogC) {
  at::manual_seed(2);
  zflow::ImportanceOptions options;
  options.samples = 5000;
  options.batch = 1024;
  for (double log_c : {-30.0, 2.5, 400.0}) {
    const zflow::ImportanceSummary s = zflow::importance_sample(
        zflow::normal_proposal({1, -2}, {0.5, 3}),
        *zflow::make_callable_target("shifted", 2,
                                     [=](const at::Tensor& x) {
                                       const at::Tensor z0 = (x.select(1, 0) - 1) / 0.5;
                                       const at::Tensor z1 = (x.select(1, 1) + 2) / 3;
                                       return log_c - 0.5 * (z0 * z0 + z1 * z1) - kLog2Pi -
                                              std::log(0.5 * 3);
                                     }),
        options);
    EXPECT_NEAR(s.log_z, log_c, 1e-12 * std::max(1.0, log_c)) << log_c;
    EXPECT_NEAR(s.ess, 1.0, 1e-12) << log_c;
    EXPECT_NEAR(s.unweighting_efficiency, 1.0, 1e-12) << log_c;
  }
}

TEST(Importance, MismatchedGaussianMatchesTheAnalyticMoments) {
  // p̃ = c·N(0, 1), q = N(0, 1.5²): w = c·p/q ≤ 1.5c, so all moments exist. With Z = c and
  // m_k = E_q[(w/c)^k]: relative variance r = m2 − 1, ESS = 1/m2, se(Ẑ)/Z = sqrt(r/N).
  const double sp = 1.0, sq = 1.5, log_c = 3.0;
  const int64_t n = 1000000;
  const double m2 = gaussian_weight_moment(2, sp, sq);
  const double m3 = gaussian_weight_moment(3, sp, sq);
  const double m4 = gaussian_weight_moment(4, sp, sq);
  const double r = m2 - 1;
  // The estimator r̂ = mean(w²)/mean(w)² − 1 by the delta method at (mean w, mean w²) =
  // (1, m2): gradient (−2 m2, 1), so Var r̂ = [4 m2² Var w − 4 m2 Cov(w, w²) + Var w²] / N.
  const double var_r = (4 * m2 * m2 * (m2 - 1) - 4 * m2 * (m3 - m2) + (m4 - m2 * m2)) / n;
  const double se_r = std::sqrt(var_r);
  const double se_log_z = std::sqrt(r / n);  // delta method: se(Ẑ)/Z
  const double se_ess = se_r / ((1 + r) * (1 + r));

  at::manual_seed(3);
  zflow::ImportanceOptions options;
  options.samples = n;
  int64_t batches = 0;
  int64_t last_done = 0;
  options.on_batch = [&](const at::Tensor& x, const at::Tensor& log_w, int64_t done) {
    ++batches;
    EXPECT_EQ(x.size(0), log_w.size(0));
    EXPECT_EQ(done, last_done + x.size(0));
    last_done = done;
  };
  const zflow::ImportanceSummary s = zflow::importance_sample(
      zflow::normal_proposal({0}, {sq}), *gaussian_target(1, sp, log_c), options);
  EXPECT_EQ(batches, (n + options.batch - 1) / options.batch);
  EXPECT_EQ(last_done, n);
  EXPECT_NEAR(s.log_z, log_c, 5 * se_log_z);
  EXPECT_NEAR(s.relative_variance, r, 5 * se_r);
  EXPECT_NEAR(s.ess, 1 / m2, 5 * se_ess);
  // The reported standard error estimates sqrt(r/N): its relative error is about
  // se_r/(2r), far below 5 %.
  EXPECT_NEAR(s.log_z_stderr / se_log_z, 1.0, 5 * se_r / (2 * r));
  EXPECT_NEAR(s.z_stderr / s.z, s.log_z_stderr, 1e-12);
}

TEST(Importance, StreamingEqualsOneShot) {
  at::manual_seed(4);
  const int64_t n = 5003;
  at::Tensor lw = at::randn({n}, at::kDouble) * 4;
  lw.index_put_({at::arange(0, n, 17)}, -std::numeric_limits<double>::infinity());
  // Ascending order makes the running maximum grow with every batch (the rescaling path).
  for (const at::Tensor& log_w : {lw, std::get<0>(lw.sort())}) {
    zflow::ImportanceAccumulator whole;
    whole.add(log_w);
    const zflow::ImportanceSummary one = whole.summary();
    EXPECT_EQ(one.nonzero, n - (n + 16) / 17);

    zflow::ImportanceAccumulator streamed;
    const std::vector<int64_t> sizes = {1, 7, 1000, 3, 0, 2500, 99};
    int64_t begin = 0;
    for (int64_t size : sizes) {
      streamed.add(log_w.narrow(0, begin, size));
      begin += size;
    }
    streamed.add(log_w.narrow(0, begin, n - begin));
    expect_same_summary(streamed.summary(), one, 1e-12);

    // merge(): A then B, as if B's samples followed A's; also into and from an empty one.
    for (int64_t split : {int64_t{1}, int64_t{250}, int64_t{3333}}) {
      zflow::ImportanceAccumulator a, b, empty;
      a.add(log_w.narrow(0, 0, split));
      b.add(log_w.narrow(0, split, n - split));
      a.merge(b);
      a.merge(empty);
      expect_same_summary(a.summary(), one, 1e-12);
      empty.merge(a);
      expect_same_summary(empty.summary(), one, 1e-12);
    }
  }
  // Float32 log weights are accepted (widened to float64).
  const at::Tensor lw32 = lw.to(at::kFloat);
  zflow::ImportanceAccumulator f32;
  f32.add(lw32);
  const double expected =
      (at::logsumexp(lw32.to(at::kDouble), 0) - std::log(static_cast<double>(n))).item<double>();
  EXPECT_NEAR(f32.summary().log_z, expected, 1e-12);
}

TEST(Importance, MergeKeepsTheReplicaOfEverySample) {
  // R = 3, N = 300 (3 replicas of 100). A holds sample 0 (log w 5, replica 0); B's local
  // samples 0, 3, 6, ... (log w 4) are global 1, 4, 7, ..., so replica 1; the rest are 0.
  // Replica maxima (5, 4, 0): median 4. Had B kept its own numbering they would be (5, 0, 0).
  zflow::ImportanceAccumulator a(3), b(3), sequential(3);
  const at::Tensor first = at::full({1}, 5.0, at::kDouble);
  at::Tensor rest = at::zeros({299}, at::kDouble);
  rest.slice(0, 0, 299, 3).fill_(4.0);
  a.add(first);
  b.add(rest);
  a.merge(b);
  sequential.add(first);
  sequential.add(rest);
  EXPECT_EQ(a.summary().replicas, 3);
  EXPECT_EQ(a.summary().log_w_max, 4.0);
  expect_same_summary(a.summary(), sequential.summary(), 1e-12);
  // Merging with itself doubles the stream.
  zflow::ImportanceAccumulator twice = sequential;
  twice.merge(twice);
  EXPECT_EQ(twice.samples(), 600);
  EXPECT_NEAR(twice.summary().log_z, sequential.summary().log_z, 1e-12);

  zflow::ImportanceAccumulator ten(10), twenty(20);
  EXPECT_THROW(ten.merge(twenty), zflow::ConfigError);
}

TEST(Importance, ExtremeLogWeightsDoNotOverflow) {
  const auto check = [](std::vector<double> values, double expected_log_z) {
    zflow::ImportanceAccumulator acc;
    // One at a time, so that the shift grows between batches too.
    for (double v : values) acc.add(at::tensor({v}, at::kDouble));
    const zflow::ImportanceSummary s = acc.summary();
    EXPECT_NEAR(s.log_z, expected_log_z, 1e-12 * std::max(1.0, std::fabs(expected_log_z)));
    EXPECT_TRUE(std::isfinite(s.log_z_stderr));
    EXPECT_TRUE(std::isfinite(s.ess));
  };
  // log((e^a + e^b + e^c)/3) by hand: the smaller terms relative to the largest.
  check({-700, 700, 700.5}, 700.5 + std::log1p(std::exp(-0.5) + std::exp(-1400.5)) - std::log(3));
  check({700, 1e5, -700}, 1e5 + std::log1p(std::exp(700 - 1e5)) - std::log(3));
  check({-700, -701}, -700 + std::log1p(std::exp(-1)) - std::log(2));
  check({-1e5, -1e5 + 1}, -1e5 + 1 + std::log1p(std::exp(-1)) - std::log(2));

  zflow::ImportanceAccumulator equal;
  equal.add(at::full({1000}, 1e5, at::kDouble));
  equal.add(at::full({17}, 1e5, at::kDouble));
  const zflow::ImportanceSummary s = equal.summary();
  EXPECT_EQ(s.ess, 1.0);
  EXPECT_EQ(s.relative_variance, 0.0);
  EXPECT_EQ(s.log_z, 1e5);
  EXPECT_TRUE(std::isinf(s.z));  // e^{1e5}: as documented, only log_z stays finite
}

TEST(Importance, ReplicaRobustMaximumIgnoresAnOutlier) {
  // 10^5 weights 2u (u ~ U(0, 1): mean 1, maximum 2) and one outlier 10^4. Each of the 100
  // replicas holds 1000 bulk weights, whose maximum is below 2(1 − 0.01) with probability
  // 0.99^1000 ≈ 4e-5: the median of the maxima lies in [1.98, 2] but for a negligible chance.
  at::manual_seed(5);
  const int64_t bulk = 100000;
  at::Tensor w = 2 * at::rand({bulk + 1}, at::kDouble);
  w[12345] = 1e4;
  zflow::ImportanceAccumulator acc;
  acc.add(w.log());
  const zflow::ImportanceSummary s = acc.summary();
  const double z_hat = w.mean().item<double>();
  EXPECT_EQ(s.replicas, 100);
  EXPECT_NEAR(s.log_z, std::log(z_hat), 1e-12);
  EXPECT_GE(std::exp(s.log_w_max), 1.98);
  EXPECT_LE(std::exp(s.log_w_max), 2.0);
  EXPECT_NEAR(s.unweighting_efficiency, z_hat / 2, 0.011 * z_hat / 2);
  EXPECT_NEAR(s.log_w_largest, std::log(1e4), 1e-12);
  EXPECT_NEAR(s.unweighting_efficiency_plain_max, z_hat / 1e4, 1e-12);
}

TEST(Importance, FewSamplesUseFewerReplicas) {
  // 250 samples, R = 100: at least 100 samples per replica allows 2 (a divisor of 100), so
  // the even and the odd samples; the median of two maxima is their mean.
  at::manual_seed(6);
  const at::Tensor lw = at::randn({250}, at::kDouble);
  zflow::ImportanceAccumulator acc;
  acc.add(lw);
  const zflow::ImportanceSummary s = acc.summary();
  EXPECT_EQ(s.replicas, 2);
  const double even = lw.slice(0, 0, 250, 2).max().item<double>();
  const double odd = lw.slice(0, 1, 250, 2).max().item<double>();
  EXPECT_NEAR(std::exp(s.log_w_max), 0.5 * (std::exp(even) + std::exp(odd)), 1e-12);
  EXPECT_EQ(s.log_w_largest, std::max(even, odd));

  // 50 samples: one replica, the plain maximum. 700 of R = 7: 7 replicas (i mod 7).
  zflow::ImportanceAccumulator few;
  few.add(lw.narrow(0, 0, 50));
  EXPECT_EQ(few.summary().replicas, 1);
  EXPECT_EQ(few.summary().log_w_max, few.summary().log_w_largest);

  const at::Tensor lw7 = at::randn({700}, at::kDouble);
  zflow::ImportanceAccumulator seven(7);
  seven.add(lw7);
  std::vector<double> maxima;
  for (int64_t r = 0; r < 7; ++r) maxima.push_back(lw7.slice(0, r, 700, 7).max().item<double>());
  std::sort(maxima.begin(), maxima.end());
  EXPECT_EQ(seven.summary().replicas, 7);
  EXPECT_EQ(seven.summary().log_w_max, maxima[3]);
}

TEST(Importance, ZeroWeightsCountAsSamples) {
  const double inf = std::numeric_limits<double>::infinity();
  zflow::ImportanceAccumulator acc;
  acc.add(at::tensor({-inf, -inf}, at::kDouble));
  acc.add(at::tensor({0.0, std::log(3.0), -inf}, at::kDouble));
  const zflow::ImportanceSummary s = acc.summary();
  // w = (0, 0, 1, 3, 0): mean 4/5, Σw² = 10, ESS = 16/(5·10), sample variance
  // (Σw² − N·mean²)/(N − 1) = (10 − 3.2)/4.
  EXPECT_EQ(s.samples, 5);
  EXPECT_EQ(s.nonzero, 2);
  EXPECT_NEAR(s.z, 0.8, 1e-15);
  EXPECT_NEAR(s.ess, 16.0 / 50.0, 1e-15);
  EXPECT_NEAR(s.relative_variance, (10.0 / 5 - 0.64) / 0.64, 1e-14);
  EXPECT_NEAR(s.z_stderr, std::sqrt(6.8 / 4 / 5), 1e-15);
  EXPECT_NEAR(s.log_z_stderr, std::sqrt(6.8 / 4 / 5) / 0.8, 1e-15);
}

TEST(Importance, Errors) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  zflow::ImportanceAccumulator acc;
  acc.add(at::zeros({3}, at::kDouble));
  expect_error<zflow::Error>(
      [&] {
        acc.add(at::tensor({0.0, 1.0, nan}, at::kDouble));
      },
      {"log weight of sample 2", "sample 5 overall", "nan"});
  expect_error<zflow::Error>([&] { acc.add(at::tensor({inf}, at::kDouble)); },
                             {"log weight of sample 0", "+inf"});
  EXPECT_EQ(acc.samples(), 3);  // the bad batches left it unchanged
  EXPECT_THROW(acc.add(at::zeros({2, 2})), c10::Error);
  EXPECT_THROW(acc.add(at::zeros({2}, at::kLong)), c10::Error);

  expect_error<zflow::Error>([] { zflow::ImportanceAccumulator().summary(); }, {"no samples"});
  zflow::ImportanceAccumulator zeros;
  zeros.add(at::full({4}, -inf, at::kDouble));
  expect_error<zflow::Error>([&] { zeros.summary(); }, {"all 4 weights are zero"});
  acc.reset();
  EXPECT_EQ(acc.samples(), 0);
  EXPECT_THROW(acc.summary(), zflow::Error);
  EXPECT_THROW(zflow::ImportanceAccumulator(0), zflow::ConfigError);

  const zflow::TargetPtr target = gaussian_target(2, 1.0, 0.0);
  zflow::ImportanceOptions options;
  options.samples = 10;
  const auto run = [&](zflow::Proposal proposal) {
    return zflow::importance_sample(proposal, *target, options);
  };
  expect_error<zflow::Error>(
      [&] { run([](int64_t n) {
              return std::make_pair(at::zeros({n, 3}), at::zeros({n}));
            }); },
      {"shape [10, 3]", "expected [10, 2]"});
  expect_error<zflow::Error>(
      [&] { run([](int64_t n) {
              return std::make_pair(at::zeros({n + 1, 2}), at::zeros({n}));
            }); },
      {"shape [11, 2]"});
  expect_error<zflow::Error>(
      [&] { run([](int64_t n) {
              return std::make_pair(at::zeros({n, 2}), at::zeros({n, 1}));
            }); },
      {"log q of shape [10, 1]"});
  for (double bad : {nan, inf, -inf}) {
    expect_error<zflow::Error>(
        [&] {
          run([bad](int64_t n) {
            at::Tensor log_q = at::zeros({n}, at::kDouble);
            log_q[4] = bad;
            return std::make_pair(at::zeros({n, 2}, at::kDouble), log_q);
          });
        },
        {"log q of sample 4", "must be finite"});
  }
  // The target's own failure (NaN) comes through checked_log_density.
  const zflow::TargetPtr broken = zflow::make_callable_target(
      "broken", 2, [](const at::Tensor& x) { return x.sum(1) * std::nan(""); });
  EXPECT_THROW(zflow::importance_sample(zflow::normal_proposal({0, 0}, {1, 1}), *broken, options),
               zflow::Error);

  const zflow::Proposal good = zflow::normal_proposal({0, 0}, {1, 1});
  for (auto field : {&zflow::ImportanceOptions::samples, &zflow::ImportanceOptions::batch,
                     &zflow::ImportanceOptions::replicas}) {
    zflow::ImportanceOptions bad_options;
    bad_options.*field = 0;
    EXPECT_THROW(zflow::importance_sample(good, *target, bad_options), zflow::ConfigError);
  }
  EXPECT_THROW(zflow::normal_proposal({0}, {0}), zflow::ConfigError);
  EXPECT_THROW(zflow::normal_proposal({0, 1}, {1}), zflow::ConfigError);
  EXPECT_THROW(zflow::uniform_proposal(zflow::Domain{}), zflow::ConfigError);
  EXPECT_THROW(zflow::uniform_proposal(zflow::Domain{{0, 1}, {1, 1}}), zflow::ConfigError);
}

TEST(Importance, UnweightWithGivenUniforms) {
  const int64_t b = 100;
  const at::Tensor u = (at::arange(b, at::kDouble) + 0.5) / b;  // 0.005, 0.015, ..., 0.995
  // w/w_max = 0.3: kept when u < 0.3, the first 30.
  {
    const auto [kept, weights] =
        zflow::unweight(at::full({b}, std::log(0.3) + 7, at::kDouble), 7, u);
    ASSERT_EQ(kept.size(0), 30);
    EXPECT_TRUE(at::equal(kept, at::arange(30, at::kLong)));
    EXPECT_TRUE(at::equal(weights, at::ones({30}, at::kDouble)));
  }
  // Over-weights (w/w_max = 2.5) are always kept with that weight; zero weights never.
  {
    at::Tensor lw = at::full({b}, std::log(0.3), at::kDouble);
    lw[90] = std::log(2.5);
    lw[1] = -std::numeric_limits<double>::infinity();
    const auto [kept, weights] = zflow::unweight(lw, 0.0, u);
    ASSERT_EQ(kept.size(0), 30);  // 0, 2..29 and 90
    EXPECT_EQ(kept[0].item<int64_t>(), 0);
    EXPECT_EQ(kept[1].item<int64_t>(), 2);
    EXPECT_EQ(kept[29].item<int64_t>(), 90);
    EXPECT_NEAR(weights[29].item<double>(), 2.5, 1e-14);
    EXPECT_TRUE(at::equal(weights.narrow(0, 0, 29), at::ones({29}, at::kDouble)));
  }
  // All weights equal to w_max: everything is kept with weight 1, even at u → 1.
  {
    const at::Tensor edge = at::full({3}, std::nextafter(1.0, 0.0), at::kDouble);
    const auto [kept, weights] = zflow::unweight(at::full({3}, -4.25, at::kDouble), -4.25, edge);
    EXPECT_TRUE(at::equal(kept, at::arange(3, at::kLong)));
    EXPECT_TRUE(at::equal(weights, at::ones({3}, at::kDouble)));
  }
  EXPECT_THROW(zflow::unweight(at::zeros({3}), 0, at::zeros({2})), c10::Error);
  EXPECT_THROW(zflow::unweight(at::zeros({1}), 0, at::ones({1})), c10::Error);
  EXPECT_THROW(zflow::unweight(at::zeros({1}), std::nan(""), at::zeros({1})), zflow::ConfigError);
}

TEST(Importance, UnweightAcceptsTheExpectedNumber) {
  // K is a sum of independent Bernoulli(min(1, w/w_max)): mean Σp, variance Σp(1 − p).
  at::manual_seed(7);
  const int64_t b = 100000;
  const at::Tensor lw = at::randn({b}, at::kDouble);
  const double log_w_max = 1.5;
  const at::Tensor p = at::clamp_max(at::exp(lw - log_w_max), 1.0);
  const double mean = p.sum().item<double>();
  const double sd = (p * (1 - p)).sum().sqrt().item<double>();
  const auto [kept, weights] = zflow::unweight(lw, log_w_max, at::rand({b}, at::kDouble));
  EXPECT_NEAR(static_cast<double>(kept.size(0)), mean, 5 * sd);
  // The kept weights sum to Σ max(1, w/w_max) over the kept rows, and each is ≥ 1.
  EXPECT_GE(weights.min().item<double>(), 1.0);
  EXPECT_EQ(kept.scalar_type(), at::kLong);
  EXPECT_EQ(weights.scalar_type(), at::kDouble);
}

TEST(Importance, UniformProposalIntegratesOverTheUnitBox) {
  // f(x) = 4·x0·x1 on [0, 1]²: ∫ f = 1, E[f²] = (4/3)², so sd(f) = sqrt(16/9 − 1) = √7/3.
  // The sample variance's own sd is sqrt((μ4 − σ⁴)/N) with μ4 = E(f − 1)⁴ = E f⁴ − 4E f³ +
  // 6E f² − 3 = (16/5)² − 4·2² + 6·16/9 − 3.
  const int64_t n = 1000000;
  const double sd = std::sqrt(7.0) / 3;
  const double se = sd / std::sqrt(static_cast<double>(n));
  const double mu4 = 3.2 * 3.2 - 16 + 6 * 16.0 / 9 - 3;
  const double se_rel_sd = std::sqrt((mu4 - std::pow(sd, 4)) / n) / (2 * sd * sd);
  const zflow::TargetPtr target = zflow::make_callable_target(
      "product", 2, [](const at::Tensor& x) { return at::log(2 * x).sum(1); },
      zflow::Domain::unit_box(2), 0.0);
  at::manual_seed(8);
  zflow::ImportanceOptions options;
  options.samples = n;
  options.batch = 100000;
  const zflow::ImportanceSummary s =
      zflow::importance_sample(zflow::uniform_proposal(target->domain()), *target, options);
  EXPECT_NEAR(s.z, 1.0, 4 * se);
  EXPECT_NEAR(s.z_stderr / se, 1.0, 5 * se_rel_sd);
  EXPECT_NEAR(s.log_z_stderr, s.z_stderr / s.z, 1e-12);

  // A box other than the unit box: log q = −log volume, so the integral of a constant 1 over
  // [−1, 3] × [2, 2.5] is the volume 2 exactly.
  const zflow::Domain box{{-1, 2}, {3, 2.5}};
  const zflow::TargetPtr one = zflow::make_callable_target(
      "one", 2, [](const at::Tensor& x) { return at::zeros({x.size(0)}, x.options()); }, box);
  options.samples = 1000;
  const zflow::ImportanceSummary v =
      zflow::importance_sample(zflow::uniform_proposal(box, at::kFloat), *one, options);
  EXPECT_NEAR(v.log_z, std::log(2.0), 1e-6);  // log q in float32
  EXPECT_NEAR(v.ess, 1.0, 1e-12);
}

TEST(Importance, JsonAndPrintedSummary) {
  zflow::ImportanceAccumulator acc(4);
  acc.add(at::log(at::tensor({1.0, 2.0, 3.0, 4.0, 0.0}, at::kDouble)));
  const zflow::ImportanceSummary s = acc.summary();
  const zflow::Json j = zflow::to_json(s);
  EXPECT_EQ(j.at("samples").get<int64_t>(), 5);
  EXPECT_EQ(j.at("nonzero").get<int64_t>(), 4);
  EXPECT_NEAR(j.at("z").get<double>(), 2.0, 1e-15);
  EXPECT_NEAR(j.at("ess").get<double>(), 100.0 / (5 * 30), 1e-15);
  for (const char* key :
       {"log_z", "log_z_stderr", "z_stderr", "relative_variance", "unweighting_efficiency",
        "unweighting_efficiency_plain_max", "log_w_max", "log_w_largest", "replicas"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }

  std::ostringstream with, without;
  zflow::print_summary(with, s, true, std::log(2.0) + 0.1);
  zflow::print_summary(without, s, false);
  const std::string text = with.str();
  EXPECT_NE(text.find("log Z         = 0.69 ± 0.35"), std::string::npos) << text;
  EXPECT_NE(text.find("integral      = 2.00 ± 0.71"), std::string::npos) << text;
  EXPECT_NE(text.find("ESS           = 66.7 % of 5"), std::string::npos) << text;
  EXPECT_NE(text.find("80.0 % of the weights"), std::string::npos) << text;
  EXPECT_NE(text.find("50.0 % with the largest weight"), std::string::npos) << text;
  EXPECT_NE(text.find("exact log Z   = 0.793147 (error -0.1, 0.3 standard errors)"),
            std::string::npos)
      << text;
  EXPECT_EQ(without.str().find("integral"), std::string::npos);
  EXPECT_EQ(without.str().find("exact"), std::string::npos);
}

}  // namespace
