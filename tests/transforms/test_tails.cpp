// The logarithmic tails every ready-made flow ends with: identity within the bound, closed
// forms beyond it, and what they do to the NLL of a far-out point.

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"
#include "zflow/transforms/elementwise.h"

using namespace zflow;

namespace {

TEST(LogTails, IdentityWithinTheBoundClosedFormBeyond) {
  LogTails tails(4.0);
  tails->to(at::kDouble);
  const at::Tensor y = at::tensor({-3.9, 0.0, 2.5, 4.0, 8.0, -100.0}, at::kDouble).view({1, 6});
  const auto out = tails->forward(y);
  const at::Tensor z = out.outputs.view({6});
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(z[i].item<double>(), y[0][i].item<double>());
  EXPECT_NEAR(z[4].item<double>(), 4.0 * (1.0 + std::log(2.0)), 1e-12);
  EXPECT_NEAR(z[5].item<double>(), -4.0 * (1.0 + std::log(25.0)), 1e-12);
  // log|dz/dy| = ln(b / |y|) beyond the bound, 0 within.
  EXPECT_NEAR(out.logabsdet[0].item<double>(), std::log(0.5) + std::log(0.04), 1e-12);
  const auto back = tails->inverse(out.outputs);
  EXPECT_TRUE(at::allclose(back.outputs, y, 1e-12, 1e-12));
  EXPECT_NEAR(back.logabsdet[0].item<double>(), -out.logabsdet[0].item<double>(), 1e-12);
}

TEST(LogTails, FarPointCostsLogSquaredNotSquared) {
  // A point that the layers before carried to z = 100: N(0, 1) charges 100²/2 = 5000
  // nats; through the tails (4 (1 + ln 25))² / 2 + ln 25 ≈ 146.
  auto flow = make_flow({{"type", "flow"},
                         {"transform", {{"type", "log_tails"}, {"bound", 4.0}}},
                         {"base", {{"type", "standard_normal"}, {"shape", {1}}}}});
  flow->to(at::kDouble);
  const double nll = -flow->log_prob(at::full({1, 1}, 100.0, at::kDouble)).item<double>();
  const double g = 4.0 * (1.0 + std::log(25.0));
  EXPECT_NEAR(nll, 0.5 * g * g + 0.5 * std::log(2 * M_PI) + std::log(25.0), 1e-9);
  EXPECT_LT(nll, 200.0);
  // Within the bound, the density is the standard normal's.
  const double inside = -flow->log_prob(at::full({1, 1}, 1.5, at::kDouble)).item<double>();
  EXPECT_NEAR(inside, 0.5 * 1.5 * 1.5 + 0.5 * std::log(2 * M_PI), 1e-12);
}

TEST(LogTails, EveryReadyMadeFlowEndsWithThem) {
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 8;
  // All but the continuous flow: flow matching draws its paths' starts from the base
  // itself, and log tails there would make rare starts enormous.
  for (const auto& [name, description] : builder_names()) {
    const Json spec = build_flow_spec(name, 3, o);
    EXPECT_EQ(spec.at("transform").at("layers").back().at("type"),
              name == "cnf" ? "cnf" : "log_tails")
        << name;
  }
  for (const auto& [name, description] : image_builder_names()) {
    const Json spec = build_image_flow_spec(name, {1, 8, 8}, o);
    EXPECT_EQ(spec.at("transform").at("layers").back().at("type"),
              name == "cnf" ? "cnf" : "log_tails")
        << name;
  }
}

}  // namespace
