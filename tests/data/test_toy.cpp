#include "zflow/data/toy.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "zflow/core/error.h"

using zflow::ConfigError;
using zflow::data::is_toy_dataset;
using zflow::data::sample_toy;
using zflow::data::torus_density;
using zflow::data::toy_datasets;

namespace {

std::vector<double> to_vec(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

constexpr double kPi = 3.14159265358979323846;

}  // namespace

TEST(Toy, ListsTheNineDatasetsInOrder) {
  std::vector<std::string> names;
  for (const auto& d : toy_datasets()) {
    names.push_back(d.name);
    EXPECT_TRUE(is_toy_dataset(d.name));
    EXPECT_FALSE(d.description.empty()) << d.name;
    EXPECT_TRUE(std::isfinite(d.entropy)) << d.name;
    EXPECT_GT(d.entropy, 1.0) << d.name;
    EXPECT_LT(d.entropy, 4.0) << d.name;
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"8gaussians", "checkerboard", "moons", "rings", "circles",
                                      "pinwheel", "2spirals", "swissroll", "torus"}));
  EXPECT_FALSE(is_toy_dataset("9gaussians"));
  EXPECT_FALSE(is_toy_dataset(""));
  EXPECT_DOUBLE_EQ(toy_datasets()[1].entropy, std::log(32.0));
  EXPECT_NEAR(toy_datasets()[0].entropy, 2.832, 5e-4);
}

TEST(Toy, UnknownNameListsKnownOnes) {
  try {
    sample_toy("spiral", 10, 0);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("spiral"), std::string::npos) << what;
    EXPECT_NE(what.find("2spirals"), std::string::npos) << what;
    EXPECT_NE(what.find("checkerboard"), std::string::npos) << what;
  }
  EXPECT_THROW(sample_toy("moons", -1, 0), ConfigError);
}

TEST(Toy, ShapesDtypeAndFiniteValues) {
  for (const auto& d : toy_datasets()) {
    const at::Tensor x = sample_toy(d.name, 1000, 3);
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1000, 2})) << d.name;
    EXPECT_EQ(x.scalar_type(), at::kDouble) << d.name;
    for (double v : to_vec(x)) {
      ASSERT_TRUE(std::isfinite(v)) << d.name;
      ASSERT_LT(std::fabs(v), 10.0) << d.name;
    }
    EXPECT_EQ(sample_toy(d.name, 0, 3).sizes(), (std::vector<int64_t>{0, 2})) << d.name;
  }
}

TEST(Toy, DeterministicForASeed) {
  for (const auto& d : toy_datasets()) {
    const auto a = to_vec(sample_toy(d.name, 500, 42));
    const auto b = to_vec(sample_toy(d.name, 500, 42));
    const auto c = to_vec(sample_toy(d.name, 500, 43));
    EXPECT_EQ(a, b) << d.name;
    EXPECT_NE(a, c) << d.name;
    // A shorter draw is a prefix of a longer one.
    const auto p = to_vec(sample_toy(d.name, 100, 42));
    EXPECT_EQ(p, std::vector<double>(a.begin(), a.begin() + 200)) << d.name;
  }
}

// Regression guard of portability: these values come from zflow's own generator
// (std::mt19937_64, 53-bit uniforms, Box-Muller) and must be the same on every machine.
TEST(Toy, PinnedValues) {
  const auto g = to_vec(sample_toy("8gaussians", 4, 1));
  EXPECT_NEAR(g[0], 1.8177227124495507, 1e-12);
  EXPECT_NEAR(g[1], 2.0580886282499038, 1e-12);
  EXPECT_NEAR(g[6], -2.1439473768928066, 1e-12);
  EXPECT_NEAR(g[7], -2.053222726491756, 1e-12);
  const auto c = to_vec(sample_toy("checkerboard", 2, 1));
  EXPECT_NEAR(c[0], -2.928986847899739, 1e-12);
  EXPECT_NEAR(c[3], 0.70179622756583893, 1e-12);
}

TEST(Toy, CheckerboardCoversTheEightCellsEvenly) {
  const int64_t n = 80000;
  const auto x = to_vec(sample_toy("checkerboard", n, 5));
  std::array<int, 16> counts{};
  for (int64_t i = 0; i < n; ++i) {
    const double a = x[2 * i], b = x[2 * i + 1];
    ASSERT_GE(a, -4.0);
    ASSERT_LT(a, 4.0);
    ASSERT_GE(b, -4.0);
    ASSERT_LT(b, 4.0);
    const int ci = static_cast<int>(std::floor(a / 2)) + 2;
    const int cj = static_cast<int>(std::floor(b / 2)) + 2;
    ASSERT_EQ((ci + cj) % 2, 0) << "point (" << a << ", " << b << ") in a forbidden cell";
    ++counts[ci * 4 + cj];
  }
  int used = 0;
  for (int c : counts) {
    if (c == 0) continue;
    ++used;
    EXPECT_NEAR(c, n / 8, n / 8 * 0.05);
  }
  EXPECT_EQ(used, 8);
}

TEST(Toy, EightGaussiansClusterCentres) {
  const int64_t n = 40000;
  const auto x = to_vec(sample_toy("8gaussians", n, 9));
  const double r = 4.0 / 1.414;
  std::array<double, 8> sx{}, sy{}, sq{};
  std::array<int, 8> count{};
  for (int64_t i = 0; i < n; ++i) {
    const double a = x[2 * i], b = x[2 * i + 1];
    int best = 0;
    double best_d = 1e9;
    for (int k = 0; k < 8; ++k) {
      const double d = std::hypot(a - r * std::cos(k * kPi / 4), b - r * std::sin(k * kPi / 4));
      if (d < best_d) best_d = d, best = k;
    }
    sx[best] += a;
    sy[best] += b;
    sq[best] += best_d * best_d;
    ++count[best];
  }
  for (int k = 0; k < 8; ++k) {
    ASSERT_GT(count[k], 0);
    EXPECT_NEAR(count[k], n / 8, n / 8 * 0.06) << k;
    EXPECT_NEAR(sx[k] / count[k], r * std::cos(k * kPi / 4), 0.02) << k;
    EXPECT_NEAR(sy[k] / count[k], r * std::sin(k * kPi / 4), 0.02) << k;
    // E|noise|^2 = 2 sigma^2 with sigma = 0.5 / 1.414.
    EXPECT_NEAR(sq[k] / count[k], 2 * 0.125, 0.01) << k;
  }
}

TEST(Toy, RingsAndCirclesRadii) {
  const int64_t n = 40000;
  struct Case {
    std::string name;
    std::vector<double> radii;
    double noise;
  };
  for (const Case& c :
       {Case{"rings", {3, 2.25, 1.5, 0.75}, 0.08}, Case{"circles", {3, 1.5}, 0.24}}) {
    const auto x = to_vec(sample_toy(c.name, n, 11));
    std::vector<int> count(c.radii.size());
    std::vector<double> sum(c.radii.size());
    for (int64_t i = 0; i < n; ++i) {
      const double rho = std::hypot(x[2 * i], x[2 * i + 1]);
      size_t best = 0;
      for (size_t k = 1; k < c.radii.size(); ++k) {
        if (std::fabs(rho - c.radii[k]) < std::fabs(rho - c.radii[best])) best = k;
      }
      ASSERT_LT(std::fabs(rho - c.radii[best]), 6 * c.noise) << c.name << " radius " << rho;
      ++count[best];
      sum[best] += rho;
    }
    const double share = static_cast<double>(n) / c.radii.size();
    for (size_t k = 0; k < c.radii.size(); ++k) {
      EXPECT_NEAR(count[k], share, share * 0.05) << c.name << " ring " << k;
      // The mean radius of a noisy circle is r + noise^2 / (2 r) to first order.
      EXPECT_NEAR(sum[k] / count[k], c.radii[k] + c.noise * c.noise / (2 * c.radii[k]), 0.01)
          << c.name << " ring " << k;
    }
  }
}

TEST(Toy, MomentsOfTheCurves) {
  const int64_t n = 100000;
  auto mean = [&](const std::string& name) {
    const auto x = to_vec(sample_toy(name, n, 13));
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; ++i) mx += x[2 * i], my += x[2 * i + 1];
    return std::array<double, 2>{mx / n, my / n};
  };
  // moons: E x = 2 * 0.5 - 1 = 0, E y = 2 * (1/2)(2/pi + 1 - 2/pi - 0.5) - 0.2 = 0.3.
  auto m = mean("moons");
  EXPECT_NEAR(m[0], 0.0, 0.02);  // standard error ~0.005
  EXPECT_NEAR(m[1], 0.3, 0.02);
  // The symmetric ones are centred.
  for (const std::string name : {"2spirals", "pinwheel", "rings", "circles", "checkerboard"}) {
    auto c = mean(name);
    EXPECT_NEAR(c[0], 0.0, 0.03) << name;
    EXPECT_NEAR(c[1], 0.0, 0.03) << name;
  }
  // swissroll: E[t cos t] / 5 and E[t sin t] / 5 over t ~ U[1.5 pi, 4.5 pi].
  const double a = 1.5 * kPi, b = 4.5 * kPi;
  auto primitive_c = [](double t) { return std::cos(t) + t * std::sin(t); };  // of t cos t
  auto primitive_s = [](double t) { return std::sin(t) - t * std::cos(t); };  // of t sin t
  auto s = mean("swissroll");
  EXPECT_NEAR(s[0], (primitive_c(b) - primitive_c(a)) / (b - a) / 5, 0.02);
  EXPECT_NEAR(s[1], (primitive_s(b) - primitive_s(a)) / (b - a) / 5, 0.02);
}

// The torus dataset: angles in [−π, π), its entropy recomputed from the exact density by the
// periodic trapezoid rule (exponentially accurate for a smooth periodic integrand), and its
// sampler checked against that density: the mean of −log p over samples is the entropy,
// within its standard error.
TEST(Toy, TorusEntropyAndSamplerAgreeWithTheDensity) {
  const int n = 400;
  const double h = 2 * kPi / n;
  double entropy = 0.0, mass = 0.0;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double p = torus_density(-kPi + i * h, -kPi + j * h);
      mass += p * h * h;
      entropy -= p * std::log(p) * h * h;
    }
  }
  EXPECT_NEAR(mass, 1.0, 1e-10);
  EXPECT_NEAR(toy_datasets().back().entropy, entropy, 1e-9);
  EXPECT_NEAR(torus_density(1.0 + 2 * kPi, -2.0), torus_density(1.0, -2.0), 1e-15);
  const at::Tensor x = sample_toy("torus", 100000, 3);
  const auto v = to_vec(x);
  double sum = 0.0, sum_sq = 0.0;
  int across_seam = 0;
  for (size_t k = 0; k < v.size(); k += 2) {
    ASSERT_GE(v[k], -kPi);
    ASSERT_LT(v[k], kPi);
    const double nll = -std::log(torus_density(v[k], v[k + 1]));
    sum += nll;
    sum_sq += nll * nll;
    if (std::abs(v[k]) > 2.8 && std::abs(v[k + 1]) > 2.8) ++across_seam;
  }
  const double count = static_cast<double>(v.size() / 2);
  const double mean = sum / count;
  const double standard_error = std::sqrt((sum_sq / count - mean * mean) / count);
  EXPECT_NEAR(mean, entropy, 4 * standard_error);
  // The component centred at (3, 3) straddles both seams.
  EXPECT_GT(across_seam, 5000);
}
