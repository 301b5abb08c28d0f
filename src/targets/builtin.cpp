// The built-in targets of zflow/targets/builtin.h: log p̃ = −energy, written with ATen ops
// only, so that they run in float32 and float64 and are differentiable in x. A −ln(e^{−a} +
// e^{−b}) of the papers is at::logaddexp, which does not underflow.

#include "zflow/targets/builtin.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kLog2Pi = 1.83787706640934548356;  // log(2π)

/// A box with the same bounds in every coordinate.
Domain cube(int64_t dim, double low, double high) {
  Domain box;
  box.low.assign(static_cast<size_t>(dim), low);
  box.high.assign(static_cast<size_t>(dim), high);
  return box;
}

/// Everything a built-in is: its formula as a function of x [B, D] and its constants.
struct Spec {
  std::string name;
  int64_t dim = 2;
  std::function<at::Tensor(const at::Tensor&)> log_density;
  std::optional<double> log_z;
  Domain domain;
  Domain plot_box;
  std::string description;
};

class BuiltinTarget final : public Target {
 public:
  explicit BuiltinTarget(Spec spec) : spec_(std::move(spec)) {}
  std::string name() const override { return spec_.name; }
  int64_t dim() const override { return spec_.dim; }
  Domain domain() const override { return spec_.domain; }
  at::Tensor log_density(const at::Tensor& x) const override { return spec_.log_density(x); }
  std::optional<double> log_normalizer() const override { return spec_.log_z; }
  Domain plot_box() const override { return spec_.plot_box; }
  std::string description() const override { return spec_.description; }

 private:
  Spec spec_;
};

// ---------------------------------------------------------------------------------------------
// Rezende & Mohamed 2015 (arXiv:1505.05770), Table 1.
//
// U2, U3 and U4 as printed do not decay along z1 and have no normaliser; zflow multiplies
// them by the envelope exp(−(z1/4)⁴). Their z2-integrals are then Gaussian integrals that
// do not depend on z1, so their log Z is analytic: ∫ exp(−(z1/4)⁴) dz1 = 8·Γ(5/4), times
// σ√(2π) for each Gaussian ridge of width σ in z2.

at::Tensor w1(const at::Tensor& z1) { return at::sin(2 * kPi * z1 / 4); }
at::Tensor w2(const at::Tensor& z1) { return 3 * at::exp(-0.5 * ((z1 - 1) / 0.6).pow(2)); }
at::Tensor w3(const at::Tensor& z1) { return 3 * at::sigmoid((z1 - 1) / 0.3); }
at::Tensor envelope_energy(const at::Tensor& z1) { return (z1 / 4).pow(4); }

/// −½((t)/σ)².
at::Tensor ridge(const at::Tensor& t, double sigma) { return -0.5 * (t / sigma).pow(2); }

at::Tensor u1_log_density(const at::Tensor& x) {
  const at::Tensor z1 = x.select(1, 0);
  // linalg_vector_norm's backward is 0 (not NaN) at the origin.
  const at::Tensor r = at::linalg_vector_norm(x, 2, at::IntArrayRef{1});
  return ridge(r - 2, 0.4) + at::logaddexp(ridge(z1 - 2, 0.6), ridge(z1 + 2, 0.6));
}

at::Tensor u2_log_density(const at::Tensor& x) {
  const at::Tensor z1 = x.select(1, 0);
  const at::Tensor z2 = x.select(1, 1);
  return ridge(z2 - w1(z1), 0.4) - envelope_energy(z1);
}

at::Tensor u3_log_density(const at::Tensor& x) {
  const at::Tensor z1 = x.select(1, 0);
  const at::Tensor z2 = x.select(1, 1);
  const at::Tensor t = z2 - w1(z1);
  return at::logaddexp(ridge(t, 0.35), ridge(t + w2(z1), 0.35)) - envelope_energy(z1);
}

at::Tensor u4_log_density(const at::Tensor& x) {
  const at::Tensor z1 = x.select(1, 0);
  const at::Tensor z2 = x.select(1, 1);
  const at::Tensor t = z2 - w1(z1);
  return at::logaddexp(ridge(t, 0.4), ridge(t + w3(z1), 0.35)) - envelope_energy(z1);
}

/// log of ∫ exp(−(z1/4)⁴) dz1 = 4 · 2Γ(5/4).
double log_envelope_integral() { return std::log(8 * std::tgamma(1.25)); }

Spec rezende(int which) {
  const double half_log_2pi = 0.5 * kLog2Pi;
  Spec spec;
  spec.name = "u" + std::to_string(which);
  spec.plot_box = cube(2, -6, 6);
  switch (which) {
    case 1:
      spec.log_density = u1_log_density;
      // log ∫ exp(−U1) over R², not analytic. Computed once in float64 with numpy as a
      // 1-D composite Simpson rule in r on [0, 8] (4001 to 16001 nodes) of a periodic
      // trapezoid rule in θ (512 to 2048 nodes); all agree to 1e-15, and a Cartesian
      // trapezoid grid on [−8, 8]² with spacing 0.005 agrees to 1e-13.
      spec.log_z = 1.877501626109749;
      // The ring (radius 2, width 0.4) is inside [−4, 4]² up to 1e-8 of the mass.
      spec.plot_box = cube(2, -4, 4);
      spec.description =
          "U1 = ½((‖z‖−2)/0.4)² − ln(e^{−½((z1−2)/0.6)²} + e^{−½((z1+2)/0.6)²}) "
          "(Rezende & Mohamed 2015, Table 1)";
      break;
    case 2:
      spec.log_density = u2_log_density;
      spec.log_z = log_envelope_integral() + std::log(0.4) + half_log_2pi;
      spec.description =
          "U2 = ½((z2−w1)/0.4)² + (z1/4)⁴, w1 = sin(2πz1/4) "
          "(Rezende & Mohamed 2015, Table 1, with an envelope)";
      break;
    case 3:
      spec.log_density = u3_log_density;
      spec.log_z = log_envelope_integral() + std::log(2 * 0.35) + half_log_2pi;
      spec.description =
          "U3 = −ln(e^{−½((z2−w1)/0.35)²} + e^{−½((z2−w1+w2)/0.35)²}) + (z1/4)⁴, "
          "w2 = 3e^{−½((z1−1)/0.6)²} (Rezende & Mohamed 2015, Table 1, with an envelope)";
      break;
    default:
      spec.log_density = u4_log_density;
      spec.log_z = log_envelope_integral() + std::log(0.4 + 0.35) + half_log_2pi;
      spec.description =
          "U4 = −ln(e^{−½((z2−w1)/0.4)²} + e^{−½((z2−w1+w3)/0.35)²}) + (z1/4)⁴, "
          "w3 = 3σ((z1−1)/0.3) (Rezende & Mohamed 2015, Table 1, with an envelope)";
      break;
  }
  // The envelope leaves 6.8% of the mass of U2…U4 at |z1| > 4 but only 0.05% at |z1| > 6,
  // hence [−6, 6]² rather than the paper's [−4, 4]² (the box is also a Monte Carlo proposal).
  return spec;
}

// ---------------------------------------------------------------------------------------------
// FAB's 40-mode mixture (Midgley et al. 2023, arXiv:2208.01893): 40 equally
// weighted Gaussians in R², means uniform on [−40, 40]², scale softplus(1) per coordinate.

/// splitmix64 (Steele, Lea & Flood 2014): the means come from this fixed generator, not
/// from torch's, so that they are the same in every build and never depend on a seed
/// set elsewhere. They are not FAB's means.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

constexpr int64_t kGmmModes = 40;

std::vector<double> gmm40_means() {
  uint64_t state = 0x7A666C6F77ULL;  // "zflow"
  std::vector<double> means(2 * kGmmModes);
  for (double& m : means) {
    const double u = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;  // [0, 1)
    m = -40 + 80 * u;
  }
  return means;
}

Spec gmm40() {
  const double scale = std::log1p(std::exp(1.0));  // softplus(1)
  const auto means = std::make_shared<const std::vector<double>>(gmm40_means());
  Spec spec;
  spec.name = "gmm40";
  spec.log_density = [means, scale](const at::Tensor& x) {
    const at::Tensor mu =
        at::tensor(*means, at::kDouble).view({kGmmModes, 2}).to(x.device(), x.scalar_type());
    const at::Tensor sq = (x.unsqueeze(1) - mu).pow(2).sum(2);  // [B, 40]
    const double log_norm =
        -std::log(static_cast<double>(kGmmModes)) - kLog2Pi - 2 * std::log(scale);
    return at::logsumexp(-0.5 * sq / (scale * scale), 1) + log_norm;
  };
  spec.log_z = 0.0;
  spec.plot_box = cube(2, -50, 50);
  spec.description =
      "40 equally weighted N(μ_k, softplus(1)² I), μ_k uniform on [−40, 40]² "
      "(FAB, Midgley et al. 2023)";
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Neal's funnel (Neal 2003, "Slice sampling"): v = x_0 ~ N(0, 3²) and
// x_i | v ~ N(0, e^v) for i = 1 … D−1, normalised.

Spec funnel(int64_t dim) {
  Spec spec;
  spec.name = "funnel";
  spec.dim = dim;
  spec.log_density = [dim](const at::Tensor& x) {
    const at::Tensor v = x.select(1, 0);
    const at::Tensor rest = x.narrow(1, 1, dim - 1);
    const double d = static_cast<double>(dim);
    return -v.pow(2) / 18 - std::log(3.0) - 0.5 * (d - 1) * v -
           0.5 * at::exp(-v) * rest.pow(2).sum(1) - 0.5 * d * kLog2Pi;
  };
  spec.log_z = 0.0;
  // For pictures: v within ±3.3σ, but the wide mouth of the funnel puts ~13% of the mass
  // (D = 10) outside the box.
  spec.plot_box = cube(dim, -10, 10);
  spec.description = "Neal's funnel: v ~ N(0, 9), x_i | v ~ N(0, e^v) (Neal 2003)";
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Many-well (FAB, Midgley et al. 2023):
// D/2 independent copies of the 2-D double well exp(−x⁴ + 6x² + 0.5x − y²/2).

/// I = ∫ exp(−x⁴ + 6x² + 0.5x) dx by composite Simpson on [−6, 6] with 200001 nodes, in
/// double. The integrand is below e^{−1070} beyond ±6, and the rule's error (h⁴ ~ 1e-16
/// relative) is at rounding level. I ≈ 11784.509.
double double_well_integral() {
  const int64_t n = 200000;  // intervals, even
  const double a = -6;
  const double h = 12.0 / static_cast<double>(n);
  double sum = 0;
  for (int64_t i = 0; i <= n; ++i) {
    const double x = a + h * static_cast<double>(i);
    const double f = std::exp(-x * x * x * x + 6 * x * x + 0.5 * x);
    sum += (i == 0 || i == n) ? f : (i % 2 == 1 ? 4 * f : 2 * f);
  }
  return sum * h / 3;
}

Spec many_well(int64_t dim) {
  Spec spec;
  spec.name = "many-well";
  spec.dim = dim;
  spec.log_density = [](const at::Tensor& x) {
    const at::Tensor a = x.slice(1, 0, x.size(1), 2);  // x_0, x_2, …
    const at::Tensor b = x.slice(1, 1, x.size(1), 2);  // x_1, x_3, …
    return (-a.pow(4) + 6 * a.pow(2) + 0.5 * a - 0.5 * b.pow(2)).sum(1);
  };
  spec.log_z = static_cast<double>(dim / 2) * (std::log(double_well_integral()) + 0.5 * kLog2Pi);
  spec.plot_box = cube(dim, -3, 3);
  spec.description =
      "many-well: Π_k exp(−x_{2k}⁴ + 6x_{2k}² + 0.5x_{2k} − x_{2k+1}²/2) "
      "(FAB, Midgley et al. 2023)";
  return spec;
}

// ---------------------------------------------------------------------------------------------
// The camel (Lepage 1978, VEGAS's test integrand; i-flow, Gao et al. 2020): two Gaussian
// peaks on the diagonal of the unit box, f(x) = ½(a√π)^{−D} [e^{−‖x−⅓‖²/a²} + e^{−‖x−⅔‖²/a²}].

constexpr double kCamelWidth = 0.1;

Spec camel(int64_t dim) {
  const double a = kCamelWidth;
  Spec spec;
  spec.name = "camel";
  spec.dim = dim;
  spec.log_density = [dim, a](const at::Tensor& x) {
    const double log_norm = std::log(0.5) - static_cast<double>(dim) * std::log(a * std::sqrt(kPi));
    const at::Tensor first = -(x - 1.0 / 3).pow(2).sum(1) / (a * a);
    const at::Tensor second = -(x - 2.0 / 3).pow(2).sum(1) / (a * a);
    return at::logaddexp(first, second) + log_norm;
  };
  // Each peak factorises over the box: ∫_0^1 e^{−(x−μ)²/a²} dx = (a√π/2)(erf((1−μ)/a) +
  // erf(μ/a)), the same for μ = ⅓ and ⅔, so Z = Π_i ½(erf(⅔/a) + erf(⅓/a)).
  spec.log_z =
      static_cast<double>(dim) * std::log(0.5 * (std::erf(2.0 / 3 / a) + std::erf(1.0 / 3 / a)));
  spec.domain = Domain::unit_box(dim);
  spec.plot_box = spec.domain;
  spec.description =
      "camel: ½(a√π)^{−D}[e^{−‖x−⅓‖²/a²} + e^{−‖x−⅔‖²/a²}] on [0, 1]^D, a = 0.1 "
      "(Lepage 1978; i-flow, Gao et al. 2020)";
  return spec;
}

std::string builtin_names() {
  std::string names;
  for (const auto& info : builtin_targets()) names += (names.empty() ? "" : ", ") + info.name;
  return names;
}

}  // namespace

std::vector<BuiltinTargetInfo> builtin_targets() {
  return {
      {"u1", 2, false, "Rezende & Mohamed's ring with two lobes"},
      {"u2", 2, false, "Rezende & Mohamed's sine ridge"},
      {"u3", 2, false, "Rezende & Mohamed's split sine ridge"},
      {"u4", 2, false, "Rezende & Mohamed's sine ridge with a sigmoid branch"},
      {"gmm40", 2, false, "FAB's 40 equally weighted Gaussians on [−40, 40]²"},
      {"funnel", 10, true, "Neal's funnel, D ≥ 2"},
      {"many-well", 32, true, "FAB's many-well, 2^(D/2) modes, even D"},
      {"camel", 8, true, "VEGAS's two-peak integrand on [0, 1]^D"},
  };
}

TargetPtr make_builtin_target(const std::string& name, int64_t dim) {
  const auto infos = builtin_targets();
  const auto found = std::find_if(infos.begin(), infos.end(),
                                  [&](const BuiltinTargetInfo& i) { return i.name == name; });
  if (found == infos.end()) {
    throw ConfigError("unknown built-in target '" + name + "' (choices: " + builtin_names() + ")");
  }
  if (dim < 0) {
    throw ConfigError("target " + name + ": --dim must be ≥ 0, got " + std::to_string(dim));
  }
  if (dim == 0) dim = found->default_dim;
  const std::string got = " (got --dim " + std::to_string(dim) + ")";
  if (!found->any_dim && dim != found->default_dim) {
    throw ConfigError("target " + name + " is " + std::to_string(found->default_dim) + "-D" + got);
  }
  if (name == "funnel" && dim < 2) throw ConfigError("target funnel needs D ≥ 2" + got);
  if (name == "many-well" && dim % 2 != 0) {
    throw ConfigError("target many-well needs an even D" + got);
  }

  Spec spec;
  if (name.size() == 2 && name[0] == 'u') {
    spec = rezende(name[1] - '0');
  } else if (name == "gmm40") {
    spec = gmm40();
  } else if (name == "funnel") {
    spec = funnel(dim);
  } else if (name == "many-well") {
    spec = many_well(dim);
  } else {
    spec = camel(dim);
  }
  return std::make_shared<BuiltinTarget>(std::move(spec));
}

TargetPtr resolve_target(const std::string& name_or_file, int64_t dim) {
  for (const auto& info : builtin_targets()) {
    if (info.name == name_or_file) return make_builtin_target(name_or_file, dim);
  }
  const std::filesystem::path path(name_or_file);
  std::error_code ec;
  const std::string extension = path.extension().string();
  if (std::filesystem::exists(path, ec) || extension == ".pt" || extension == ".pth") {
    return load_torchscript_target(name_or_file, dim);
  }
  throw ConfigError("unknown target '" + name_or_file + "': not a built-in (" + builtin_names() +
                    ") and no such file");
}

}  // namespace zflow
