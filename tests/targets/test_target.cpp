// Targets from C++ callables and TorchScript files, and the checks of checked_log_density.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"
#include "zflow/targets/builtin.h"
#include "zflow/targets/target.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

/// An unnormalised standard normal in D dimensions.
TargetPtr gauss(int64_t dim) {
  return make_callable_target("gauss", dim,
                              [](const at::Tensor& x) { return -0.5 * x.pow(2).sum(1); });
}

/// A callable target whose answer for x is `answer(x)`.
TargetPtr answering(std::function<at::Tensor(const at::Tensor&)> answer, int64_t dim = 2) {
  return make_callable_target("fake", dim, std::move(answer));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Domains and defaults

TEST(Domain, UnitBoxAndUnbounded) {
  const Domain box = Domain::unit_box(3);
  EXPECT_TRUE(box.bounded());
  EXPECT_EQ(box.low, std::vector<double>(3, 0.0));
  EXPECT_EQ(box.high, std::vector<double>(3, 1.0));
  EXPECT_FALSE(Domain{}.bounded());
}

TEST(CallableTarget, DefaultsAndValues) {
  const auto target = make_callable_target(
      "gauss3", 3, [](const at::Tensor& x) { return -0.5 * x.pow(2).sum(1); }, {},
      1.5 * std::log(2 * M_PI));
  EXPECT_EQ(target->name(), "gauss3");
  EXPECT_EQ(target->dim(), 3);
  EXPECT_FALSE(target->domain().bounded());
  EXPECT_NEAR(*target->log_normalizer(), 1.5 * std::log(2 * M_PI), 1e-15);
  const Domain box = target->plot_box();
  EXPECT_EQ(box.low, std::vector<double>(3, -4.0));
  EXPECT_EQ(box.high, std::vector<double>(3, 4.0));
  const at::Tensor x = at::tensor({1.0, 2.0, 2.0, 0.0, 0.0, 0.0}, at::kDouble).view({2, 3});
  const at::Tensor log_p = checked_log_density(*target, x);
  ASSERT_EQ(log_p.sizes(), at::IntArrayRef({2}));
  EXPECT_DOUBLE_EQ(log_p[0].item<double>(), -4.5);
  EXPECT_DOUBLE_EQ(log_p[1].item<double>(), 0.0);
  EXPECT_FALSE(gauss(2)->log_normalizer().has_value());
}

TEST(CallableTarget, BadArgumentsAreConfigErrors) {
  const auto f = [](const at::Tensor& x) { return x.sum(1); };
  expect_error<ConfigError>([&] { make_callable_target("t", 0, f); }, {"target t", "0"});
  expect_error<ConfigError>([] { make_callable_target("t", 2, nullptr); }, {"target t"});
  Domain inverted;
  inverted.low = {0, 1};
  inverted.high = {1, 0};
  expect_error<ConfigError>([&] { make_callable_target("t", 2, f, inverted); }, {"target t"});
  expect_error<ConfigError>([&] { make_callable_target("t", 3, f, Domain::unit_box(2)); },
                            {"target t", "3"});
}

// ---------------------------------------------------------------------------------------------
// checked_log_density

TEST(CheckedLogDensity, AcceptsAColumnAndKeepsTheDtype) {
  const auto column = answering([](const at::Tensor& x) { return x.sum(1, /*keepdim=*/true); });
  const at::Tensor out = checked_log_density(*column, at::ones({4, 2}, at::kFloat));
  EXPECT_EQ(out.sizes(), at::IntArrayRef({4}));
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  // A target that answers in float64 for float32 x is brought back to float32.
  const auto wider = answering([](const at::Tensor& x) { return x.sum(1).to(at::kDouble); });
  EXPECT_EQ(checked_log_density(*wider, at::ones({3, 2}, at::kFloat)).scalar_type(), at::kFloat);
  // −inf (p̃ = 0) is allowed.
  const auto zero = answering([](const at::Tensor& x) { return at::full({x.size(0)}, -kInf); });
  EXPECT_EQ(checked_log_density(*zero, at::ones({2, 2}))[1].item<double>(), -kInf);
}

TEST(CheckedLogDensity, RejectsBadInputs) {
  const auto target = gauss(2);
  expect_error<Error>(
      [&] {
        checked_log_density(*target, at::zeros({4, 3}));
      },
      {"target gauss", "[B, 2]", "[4, 3]"});
  expect_error<Error>([&] { checked_log_density(*target, at::zeros({4})); },
                      {"target gauss", "[4]"});
  expect_error<Error>(
      [&] {
        checked_log_density(*target, at::zeros({0, 2}));
      },
      {"target gauss", "B ≥ 1"});
  expect_error<Error>(
      [&] {
        checked_log_density(*target, at::zeros({3, 2}, at::kLong));
      },
      {"target gauss", "floating"});
}

TEST(CheckedLogDensity, RejectsBadShapesOfTheResult) {
  const auto wide = answering([](const at::Tensor& x) { return x; });  // [B, 2]
  expect_error<Error>(
      [&] {
        checked_log_density(*wide, at::zeros({5, 2}));
      },
      {"target fake", "[5, 2]", "expected [5]"});
  const auto longer = answering([](const at::Tensor& x) { return at::zeros({x.size(0) + 1}); });
  expect_error<Error>(
      [&] {
        checked_log_density(*longer, at::zeros({5, 2}));
      },
      {"target fake", "[6]", "expected [5]"});
  const auto integers =
      answering([](const at::Tensor& x) { return at::zeros({x.size(0)}, at::kLong); });
  expect_error<Error>(
      [&] {
        checked_log_density(*integers, at::zeros({5, 2}));
      },
      {"target fake", "Long"});
  const auto nothing = answering([](const at::Tensor&) { return at::Tensor(); });
  expect_error<Error>(
      [&] {
        checked_log_density(*nothing, at::zeros({5, 2}));
      },
      {"target fake", "undefined"});
}

TEST(CheckedLogDensity, NamesTheFirstRowWithNaNOrPlusInfinity) {
  const auto nan_at_3 = answering([](const at::Tensor& x) {
    at::Tensor out = at::zeros({x.size(0)}, x.options());
    out[3] = std::nan("");
    out[4] = std::nan("");
    return out;
  });
  expect_error<Error>(
      [&] {
        checked_log_density(*nan_at_3, at::zeros({6, 2}));
      },
      {"target fake", "NaN", "row 3"});
  const auto inf_at_1 = answering([](const at::Tensor& x) {
    at::Tensor out = at::zeros({x.size(0)}, x.options());
    out[1] = kInf;
    return out;
  });
  expect_error<Error>(
      [&] {
        checked_log_density(*inf_at_1, at::zeros({6, 2}));
      },
      {"target fake", "+inf", "row 1"});
}

TEST(CheckedLogDensity, OutsideABoundedDomainIsMinusInfinityWithoutCallingTheTarget) {
  // log of x(1−x) per coordinate: NaN outside [0, 1], which must never be seen.
  auto rows_seen = std::make_shared<std::vector<int64_t>>();
  const auto target = make_callable_target(
      "beta", 2,
      [rows_seen](const at::Tensor& x) {
        rows_seen->push_back(x.size(0));
        return at::log(x * (1 - x)).sum(1);
      },
      Domain::unit_box(2));
  EXPECT_EQ(target->plot_box().high, std::vector<double>(2, 1.0));
  const at::Tensor x = at::tensor({0.5, 0.5, 1.5, 0.5, 0.25, 0.75, -0.1, 0.2}, at::kDouble)
                           .view({4, 2})
                           .requires_grad_(true);
  const at::Tensor log_p = checked_log_density(*target, x);
  ASSERT_EQ(rows_seen->size(), 1u);
  EXPECT_EQ(rows_seen->back(), 2);  // only the inside rows
  EXPECT_NEAR(log_p[0].item<double>(), 2 * std::log(0.25), 1e-15);
  EXPECT_EQ(log_p[1].item<double>(), -kInf);
  EXPECT_NEAR(log_p[2].item<double>(), 2 * std::log(0.25 * 0.75), 1e-15);
  EXPECT_EQ(log_p[3].item<double>(), -kInf);
  // Gradients reach the inside rows (d/dx log(x(1−x)) = 1/x − 1/(1−x)) and are 0 outside.
  const at::Tensor inside_sum = log_p[0] + log_p[2];
  const at::Tensor g = torch::autograd::grad({inside_sum}, {x})[0];
  EXPECT_NEAR(g[0][0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(g[2][0].item<double>(), 4.0 - 4.0 / 3, 1e-12);
  EXPECT_EQ(g[1][0].item<double>(), 0.0);
  EXPECT_TRUE(at::isfinite(g).all().item<bool>());
  // All outside: the target is not called at all.
  const at::Tensor far = at::full({3, 2}, 2.0, at::kFloat);
  const at::Tensor none = checked_log_density(*target, far);
  EXPECT_EQ(rows_seen->size(), 1u);
  EXPECT_EQ(none.scalar_type(), at::kFloat);
  EXPECT_TRUE((none == -kInf).all().item<bool>());
  // All inside: one call with all the rows; the boundary belongs to the box.
  checked_log_density(*target, at::tensor({0.5, 0.5, 0.1, 0.9}, at::kDouble).view({2, 2}));
  EXPECT_EQ(rows_seen->back(), 2);
}

TEST(CheckedLogDensity, NaNInsideABoundedDomainNamesTheCallersRow) {
  const auto target = make_callable_target(
      "boxed", 1, [](const at::Tensor& x) { return at::log(x.squeeze(1) - 0.5); },
      Domain::unit_box(1));
  // Rows 0 and 1 are outside; row 3 (x = 0.2) is the first inside one below 0.5.
  const at::Tensor x = at::tensor({2.0, -1.0, 0.75, 0.2}, at::kDouble).view({4, 1});
  expect_error<Error>([&] { checked_log_density(*target, x); }, {"target boxed", "NaN", "row 3"});
}

// ---------------------------------------------------------------------------------------------
// TorchScript

class TorchScriptTarget : public zflow::testing::TempDirTest {
 protected:
  TorchScriptTarget() : TempDirTest("zflow_test_torchscript_target") {}

  /// Saves a module with `source` as its methods and `dim` (when > 0) as an attribute.
  std::string save(const std::string& name, const std::string& source, int64_t dim = 0) {
    torch::jit::Module m("m");
    if (dim > 0) m.register_attribute("dim", c10::IntType::get(), dim);
    m.define(source);
    const std::string p = path(name);
    m.save(p);
    return p;
  }
};

TEST_F(TorchScriptTarget, RoundTripMatchesTheFormula) {
  const std::string file = save("gauss.pt", R"(
def forward(self, x):
    return -0.5 * (x * x).sum(1)
)",
                                3);
  const auto target = load_torchscript_target(file);
  EXPECT_EQ(target->name(), "gauss.pt");
  EXPECT_EQ(target->dim(), 3);
  EXPECT_FALSE(target->domain().bounded());
  EXPECT_FALSE(target->log_normalizer().has_value());
  for (auto dtype : {at::kFloat, at::kDouble}) {
    const at::Tensor x = at::randn({7, 3}, at::TensorOptions().dtype(dtype)).requires_grad_(true);
    const at::Tensor log_p = checked_log_density(*target, x);
    EXPECT_EQ(log_p.scalar_type(), dtype);
    EXPECT_TRUE(at::allclose(log_p, -0.5 * x.pow(2).sum(1)));
    // Reverse KL differentiates through the module.
    const at::Tensor g = torch::autograd::grad({log_p.sum()}, {x})[0];
    EXPECT_TRUE(at::allclose(g, -x));
  }
  // resolve_target takes the file too, by the same path.
  EXPECT_EQ(resolve_target(file)->dim(), 3);
}

TEST_F(TorchScriptTarget, AttributesGiveLogZAndABox) {
  torch::jit::Module m("m");
  m.register_attribute("dim", c10::IntType::get(), int64_t{2});
  m.register_attribute("log_z", c10::FloatType::get(), 0.25);
  m.register_attribute("low", c10::ListType::ofFloats(), c10::List<double>({0.0, -1.0}));
  m.register_attribute("high", c10::ListType::ofFloats(), c10::List<double>({1.0, 1.0}));
  m.define(R"(
def forward(self, x):
    return x.sum(1)
)");
  const std::string file = path("box.pt");
  m.save(file);
  const auto target = load_torchscript_target(file);
  EXPECT_EQ(*target->log_normalizer(), 0.25);
  ASSERT_TRUE(target->domain().bounded());
  EXPECT_EQ(target->domain().low, std::vector<double>({0.0, -1.0}));
  EXPECT_EQ(target->domain().high, std::vector<double>({1.0, 1.0}));
  const at::Tensor x = at::tensor({0.5, 0.5, 2.0, 0.0}, at::kDouble).view({2, 2});
  const at::Tensor log_p = checked_log_density(*target, x);
  EXPECT_DOUBLE_EQ(log_p[0].item<double>(), 1.0);
  EXPECT_EQ(log_p[1].item<double>(), -kInf);
}

TEST_F(TorchScriptTarget, DimensionFromTheCallerOrTheModule) {
  const std::string source = R"(
def forward(self, x):
    return x.sum(1)
)";
  const std::string plain = save("plain.pt", source);
  expect_error<ConfigError>([&] { load_torchscript_target(plain); }, {plain, "dim"});
  EXPECT_EQ(load_torchscript_target(plain, 4)->dim(), 4);
  const std::string declared = save("declared.pt", source, 3);
  EXPECT_EQ(load_torchscript_target(declared, 3)->dim(), 3);
  expect_error<ConfigError>([&] { load_torchscript_target(declared, 5); }, {declared, "3", "5"});
}

TEST_F(TorchScriptTarget, WrongAnswersAreErrors) {
  const std::string wide = save("wide.pt", R"(
def forward(self, x):
    return x * 2.0
)",
                                2);
  const auto target = load_torchscript_target(wide);
  expect_error<Error>(
      [&] {
        checked_log_density(*target, at::zeros({4, 2}));
      },
      {"wide.pt", "[4, 2]", "expected [4]"});
  const std::string pair = save("pair.pt", R"(
def forward(self, x):
    return (x.sum(1), x.sum(1))
)",
                                2);
  expect_error<Error>(
      [&] {
        checked_log_density(*load_torchscript_target(pair), at::zeros({4, 2}));
      },
      {"pair.pt", "not a Tensor"});
  // An error inside forward (here a shape mismatch) becomes one line naming the file.
  const std::string broken = save("broken.pt", R"(
def forward(self, x):
    return x.sum(1) + x.sum(0)
)",
                                  2);
  try {
    checked_log_density(*load_torchscript_target(broken), at::zeros({4, 2}));
    ADD_FAILURE() << "expected an exception";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("broken.pt"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST_F(TorchScriptTarget, BadFilesAreConfigErrors) {
  const std::string garbage = write_bytes("garbage.pt", "this is not a zip archive\n\x01\x02");
  try {
    load_torchscript_target(garbage);
    ADD_FAILURE() << "expected an exception";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("target " + garbage + ": not a TorchScript module"), std::string::npos)
        << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  const std::string missing = path("missing.pt");
  expect_error<ConfigError>([&] { load_torchscript_target(missing); },
                            {"target " + missing + ": no such file"});
  expect_error<ConfigError>([&] { resolve_target(missing); }, {missing, "no such file"});
  // An existing file with another extension is tried as TorchScript too.
  const std::string text = write_text("notes.txt", "hello");
  expect_error<ConfigError>([&] { resolve_target(text); }, {text, "not a TorchScript module"});
}
