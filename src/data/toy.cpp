#include "zflow/data/toy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include <ATen/ops/empty.h>

#include "zflow/core/error.h"

namespace zflow::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

/// zflow's portable random numbers. std::mt19937_64 is specified bit for bit by the C++
/// standard; the uniform and normal variates are computed here rather than with the
/// standard distributions, whose algorithms differ between library implementations.
class PortableRng {
 public:
  explicit PortableRng(uint64_t seed) : engine_(seed) {}

  /// Uniform in [0, 1): the 53 high bits of one 64-bit draw.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

  /// Uniform integer in {0, ..., n - 1}.
  int index(int n) {
    const int k = static_cast<int>(uniform() * n);
    return k < n ? k : n - 1;
  }

  /// Standard normal by the Box-Muller transform; the two values of a pair are returned by
  /// consecutive calls.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1], so that the logarithm is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * kPi * u2;
    spare_ = r * std::sin(angle);
    has_spare_ = true;
    return r * std::cos(angle);
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

struct Point {
  double x;
  double y;
};

// Each sampler draws one point; the order of the draws is part of the definition, so that a
// seed reproduces the same data everywhere. Formulas: docs/datasets.md.

Point eight_gaussians(PortableRng& rng) {
  // Centres 4 (cos k pi/4, sin k pi/4), written out so that no cos/sin rounding enters.
  const double s = std::sqrt(0.5);
  static const double kCentres[8][2] = {{1, 0},  {s, s},   {0, 1},  {-s, s},
                                        {-1, 0}, {-s, -s}, {0, -1}, {s, -s}};
  const int k = rng.index(8);
  const double e1 = rng.normal();
  const double e2 = rng.normal();
  return {(4.0 * kCentres[k][0] + 0.5 * e1) / 1.414, (4.0 * kCentres[k][1] + 0.5 * e2) / 1.414};
}

Point checkerboard(PortableRng& rng) {
  const double x1 = 4.0 * rng.uniform() - 2.0;
  const double u = rng.uniform();
  const double b = rng.uniform() < 0.5 ? 1.0 : 0.0;
  // floor(x1) mod 2 with Python's sign convention: a result in {0, 1}.
  const double cell = std::floor(x1);
  const double parity = cell - 2.0 * std::floor(cell / 2.0);
  const double x2 = u - 2.0 * b + parity;
  return {2.0 * x1, 2.0 * x2};
}

Point moons(PortableRng& rng) {
  const bool inner = rng.uniform() < 0.5;
  const double t = kPi * rng.uniform();
  const double e1 = rng.normal();
  const double e2 = rng.normal();
  double x = inner ? 1.0 - std::cos(t) : std::cos(t);
  double y = inner ? 1.0 - std::sin(t) - 0.5 : std::sin(t);
  x += 0.1 * e1;
  y += 0.1 * e2;
  return {2.0 * x - 1.0, 2.0 * y - 0.2};
}

Point rings(PortableRng& rng) {
  static const double kRadii[4] = {3.0, 2.25, 1.5, 0.75};
  const double r = kRadii[rng.index(4)];
  const double angle = 2.0 * kPi * rng.uniform();
  const double e1 = rng.normal();
  const double e2 = rng.normal();
  return {r * std::cos(angle) + 0.08 * e1, r * std::sin(angle) + 0.08 * e2};
}

Point circles(PortableRng& rng) {
  const double r = rng.uniform() < 0.5 ? 1.0 : 0.5;
  const double angle = 2.0 * kPi * rng.uniform();
  const double e1 = rng.normal();
  const double e2 = rng.normal();
  return {3.0 * (r * std::cos(angle) + 0.08 * e1), 3.0 * (r * std::sin(angle) + 0.08 * e2)};
}

Point pinwheel(PortableRng& rng) {
  const int k = rng.index(5);
  const double e1 = rng.normal();
  const double e2 = rng.normal();
  const double f1 = 1.0 + 0.3 * e1;
  const double f2 = 0.1 * e2;
  const double a = 2.0 * kPi * k / 5.0 + 0.25 * std::exp(f1);
  const double c = std::cos(a);
  const double s = std::sin(a);
  return {2.0 * (f1 * c + f2 * s), 2.0 * (-f1 * s + f2 * c)};
}

Point two_spirals(PortableRng& rng) {
  const double n = std::sqrt(rng.uniform()) * 3.0 * kPi;
  const double dx = -n * std::cos(n) + 0.5 * rng.uniform();
  const double dy = n * std::sin(n) + 0.5 * rng.uniform();
  const double sign = rng.uniform() < 0.5 ? 1.0 : -1.0;
  const double e1 = rng.normal();
  const double e2 = rng.normal();
  return {sign * dx / 3.0 + 0.1 * e1, sign * dy / 3.0 + 0.1 * e2};
}

Point swissroll(PortableRng& rng) {
  const double t = 1.5 * kPi + 3.0 * kPi * rng.uniform();
  const double e1 = rng.normal();
  const double e2 = rng.normal();
  return {t * std::cos(t) / 5.0 + 0.2 * e1, t * std::sin(t) / 5.0 + 0.2 * e2};
}

// The torus: a mixture of three products of von Mises densities on [−π, π)², one of them
// centred across the seam at ±π, so that a model that ignores the periodicity splits it.
struct VonMisesComponent {
  double mean1, mean2, kappa1, kappa2;
};
constexpr VonMisesComponent kTorusComponents[3] = {
    {-1.5, 1.0, 4.0, 2.0}, {1.0, -1.5, 2.0, 6.0}, {3.0, 3.0, 5.0, 5.0}};

double wrap_angle(double a) { return a - 2.0 * kPi * std::floor((a + kPi) / (2.0 * kPi)); }

/// One von Mises(μ, κ) draw by Best & Fisher's (1979) rejection sampler.
double von_mises(PortableRng& rng, double mean, double kappa) {
  const double tau = 1.0 + std::sqrt(1.0 + 4.0 * kappa * kappa);
  const double rho = (tau - std::sqrt(2.0 * tau)) / (2.0 * kappa);
  const double r = (1.0 + rho * rho) / (2.0 * rho);
  for (;;) {
    const double z = std::cos(kPi * rng.uniform());
    const double f = (1.0 + r * z) / (r + z);
    const double c = kappa * (r - f);
    const double u2 = rng.uniform();
    const double u3 = rng.uniform();
    if (c * (2.0 - c) - u2 > 0.0 || std::log(c / u2) + 1.0 - c >= 0.0) {
      return wrap_angle(mean + (u3 < 0.5 ? -1.0 : 1.0) * std::acos(std::clamp(f, -1.0, 1.0)));
    }
  }
}

Point torus(PortableRng& rng) {
  const VonMisesComponent& c = kTorusComponents[rng.index(3)];
  const double a = von_mises(rng, c.mean1, c.kappa1);
  const double b = von_mises(rng, c.mean2, c.kappa2);
  return {a, b};
}

using Sampler = Point (*)(PortableRng&);

struct Entry {
  ToyDataset info;
  Sampler sampler;
};

// Entropies: differential entropy in nats of the exact density (the best achievable expected
// test NLL). checkerboard is ln 32 exactly. The others were computed offline (a throwaway
// program, not part of the repository): the exact density is a mixture / curve measure
// convolved with the noise kernel, evaluated with a fine midpoint quadrature over the curve
// parameter (pinwheel: change of variables of its Gaussian latent, summed over the 5 arms);
// -p log p was integrated on a uniform grid, converged to 1e-5 under halving the grid step
// and the quadrature step, and a Monte Carlo average of -log p over 10^6 points from
// sample_toy agreed within its standard error (~0.001). Grid values (5 digits): 8gaussians
// 2.83188, moons 2.39388, rings 2.62318, circles 3.26814, pinwheel 2.31779, 2spirals
// 2.64545, swissroll 2.66965. See docs/datasets.md.
const std::vector<Entry>& entries() {
  static const std::vector<Entry> kEntries = {
      {{"8gaussians", "8 Gaussians (std 0.5) centred on a circle of radius 4, all divided by 1.414",
        2.832},
       eight_gaussians},
      {{"checkerboard", "uniform on 8 of the 16 2x2 squares of [-4, 4]^2, like a checkerboard",
        3.4657359027997265},
       checkerboard},
      {{"moons", "two interleaving half circles (scikit-learn make_moons, noise 0.1), x2", 2.394},
       moons},
      {{"rings", "4 concentric circles of radii 3, 2.25, 1.5, 0.75 with noise 0.08", 2.623}, rings},
      {{"circles", "two concentric circles of radii 3 and 1.5 (make_circles x3), noise 0.24",
        3.268},
       circles},
      {{"pinwheel", "5 curved arms of a pinwheel (Gaussian latent bent by an exp-angle)", 2.318},
       pinwheel},
      {{"2spirals", "two interleaved Archimedean spirals with noise 0.1", 2.645}, two_spirals},
      {{"swissroll", "a 2-D swiss roll spiral, t in [1.5 pi, 4.5 pi], noise 0.2", 2.670},
       swissroll},
      // Entropy by the periodic trapezoid rule on a 2048² grid of torus_density (exact to
      // about 1e-12 for this smooth periodic density); test_toy.cpp recomputes it.
      {{"torus",
        "angles on the torus [-pi, pi)^2: 3 products of von Mises densities, one across the seam "
        "(use --circular-columns 0,1)",
        2.7975881846649},
       torus},
  };
  return kEntries;
}

}  // namespace

const std::vector<ToyDataset>& toy_datasets() {
  static const std::vector<ToyDataset> kList = [] {
    std::vector<ToyDataset> list;
    for (const Entry& e : entries()) list.push_back(e.info);
    return list;
  }();
  return kList;
}

bool is_toy_dataset(const std::string& name) {
  for (const Entry& e : entries()) {
    if (e.info.name == name) return true;
  }
  return false;
}

double torus_density(double a, double b) {
  double p = 0.0;
  for (const VonMisesComponent& c : kTorusComponents) {
    p += std::exp(c.kappa1 * std::cos(a - c.mean1) + c.kappa2 * std::cos(b - c.mean2)) /
         (4.0 * kPi * kPi * std::cyl_bessel_i(0.0, c.kappa1) * std::cyl_bessel_i(0.0, c.kappa2));
  }
  return p / 3.0;
}

at::Tensor sample_toy(const std::string& name, int64_t n, uint64_t seed) {
  const Entry* entry = nullptr;
  for (const Entry& e : entries()) {
    if (e.info.name == name) entry = &e;
  }
  if (entry == nullptr) {
    std::string known;
    for (const Entry& e : entries()) {
      known += known.empty() ? "" : ", ";
      known += e.info.name;
    }
    throw ConfigError("unknown toy dataset '" + name + "' (known: " + known + ")");
  }
  if (n < 0) {
    throw ConfigError("sample_toy: the number of points must be non-negative, got " +
                      std::to_string(n));
  }
  at::Tensor out = at::empty({n, 2}, at::TensorOptions().dtype(at::kDouble));
  double* data = out.data_ptr<double>();
  PortableRng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const Point p = entry->sampler(rng);
    data[2 * i] = p.x;
    data[2 * i + 1] = p.y;
  }
  return out;
}

}  // namespace zflow::data
