// The property suite: every registered transform, on random inputs and random parameters,
// must keep shapes and dtype, invert exactly, report the log|det| of its autograd Jacobian,
// pass gradients to every parameter and survive spec and checkpoint round trips.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include <filesystem>
#include <functional>
#include <set>

#include "zflow/distributions/normal.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/registry.h"

using namespace zflow;

namespace {

constexpr int64_t kFeatures = 4;
constexpr int64_t kBatch = 6;
constexpr int64_t kContext = 3;

struct Case {
  std::string name;
  Json spec;
  int64_t context = 0;
  // Draws inputs in the transform's domain.
  std::function<Tensor(at::ScalarType)> inputs = [](at::ScalarType dtype) {
    return at::randn({kBatch, kFeatures}, at::TensorOptions(dtype));
  };
  // A quantiser: inverse is piecewise constant (no Jacobian, forward(inverse(z)) ≠ z) and
  // forward is random; its own tests check it instead.
  bool discrete_inverse = false;
  // Forward's log|det| also carries −log q(u | x) of a learned noise density (variational
  // dequantisation): it is a term of a bound, not the Jacobian of x ↦ y, nor the negative
  // of the quantiser's; test_variational_dequantize.cpp checks it against q's own flow.
  bool noise_density = false;
  // How close inverse(forward(x)) comes to x and log|det| to the autograd Jacobian's in
  // float64: exact up to rounding for closed forms; the solver's accuracy for a
  // continuous flow (dopri5 at tolerance 1e-9, rk4 with fixed steps).
  double tolerance = 1e-9;
  // The same in float32.
  double float32_tolerance = 1e-4;
};

// Small images, so that the autograd Jacobian stays small (D = C·H·W).
std::function<Tensor(at::ScalarType)> images(int64_t channels, int64_t height, int64_t width) {
  return [=](at::ScalarType dtype) {
    return at::randn({kBatch, channels, height, width}, at::TensorOptions(dtype));
  };
}

Json mlp(int64_t hidden = 16) {
  return {{"type", "mlp"}, {"hidden", hidden}, {"layers", 2}, {"activation", "tanh"}};
}

std::vector<Case> cases() {
  const Json mask = {1, 0, 1, 0};
  std::vector<Case> c;
  c.push_back(
      {"affine_coupling", {{"type", "affine_coupling"}, {"mask", mask}, {"conditioner", mlp()}}});
  c.push_back({"affine_coupling_resmlp",
               {{"type", "affine_coupling"},
                {"mask", {0, 0, 1, 1}},
                {"conditioner", {{"type", "resmlp"}, {"hidden", 8}, {"layers", 1}}},
                {"scale_bound", 1.5}}});
  c.push_back({"affine_coupling_context",
               {{"type", "affine_coupling"},
                {"mask", mask},
                {"conditioner", mlp()},
                {"context_features", kContext}},
               kContext});
  c.push_back({"additive_coupling",
               {{"type", "additive_coupling"}, {"mask", mask}, {"conditioner", mlp()}}});
  c.push_back({"additive_coupling_context",
               {{"type", "additive_coupling"},
                {"mask", {1, 1, 1, 0}},
                {"conditioner", mlp()},
                {"context_features", kContext}},
               kContext});
  c.push_back({"permutation_reverse",
               {{"type", "permutation"}, {"features", kFeatures}, {"kind", "reverse"}}});
  c.push_back(
      {"permutation_random",
       {{"type", "permutation"}, {"features", kFeatures}, {"kind", "random"}, {"seed", 7}}});
  c.push_back({"actnorm", {{"type", "actnorm"}, {"features", kFeatures}}});
  c.push_back(
      {"lu_linear_softplus",
       {{"type", "lu_linear"}, {"features", kFeatures}, {"diagonal", "softplus"}, {"seed", 3}}});
  c.push_back(
      {"lu_linear_exp", {{"type", "lu_linear"}, {"features", kFeatures}, {"diagonal", "exp"}}});
  c.push_back({"elementwise_affine", {{"type", "elementwise_affine"}, {"features", kFeatures}}});
  c.push_back(
      {"standardize",
       {{"type", "standardize"}, {"mean", {1.0, -2.0, 0.5, 3.0}}, {"std", {2.0, 0.5, 1.0, 4.0}}}});
  c.push_back({"sigmoid", {{"type", "sigmoid"}, {"lower", -1.0}, {"upper", 3.0}}});
  // A bound of 0.5 puts random inputs on both sides of it: the identity and the tails.
  c.push_back({"log_tails", {{"type", "log_tails"}, {"bound", 0.5}}});
  Case logit{"logit", {{"type", "logit"}, {"lower", -2.0}, {"upper", 2.0}, {"eps", 1e-6}}};
  logit.inputs = [](at::ScalarType dtype) {
    return at::rand({kBatch, kFeatures}, at::TensorOptions(dtype)) * 3.6 - 1.8;
  };
  c.push_back(logit);
  const Json made = {{"hidden", {16, 16}}, {"activation", "tanh"}};
  c.push_back(
      {"maf_affine",
       {{"type", "masked_affine_autoregressive"}, {"features", kFeatures}, {"made", made}}});
  c.push_back(
      {"maf_affine_context",
       {{"type", "masked_affine_autoregressive"},
        {"features", kFeatures},
        {"made", {{"hidden", {16}}, {"ordering", "random"}, {"seed", 5}, {"residual", false}}},
        {"context_features", kContext}},
       kContext});
  c.push_back(
      {"iaf", {{"type", "inverse_autoregressive"}, {"features", kFeatures}, {"made", made}}});
  c.push_back({"iaf_context",
               {{"type", "inverse_autoregressive"},
                {"features", kFeatures},
                {"made", {{"hidden", {16, 16}}, {"residual", true}, {"ordering", "reversed"}}},
                {"context_features", kContext}},
               kContext});
  c.push_back({"maf_spline",
               {{"type", "masked_spline_autoregressive"},
                {"features", kFeatures},
                {"made", made},
                {"bins", 5}}});
  c.push_back({"maf_spline_context",
               {{"type", "masked_spline_autoregressive"},
                {"features", kFeatures},
                {"made", made},
                {"bins", 4},
                {"tail_bound", 2.5},
                {"context_features", kContext}},
               kContext});
  c.push_back({"spline_coupling",
               {{"type", "spline_coupling"}, {"mask", mask}, {"conditioner", mlp()}, {"bins", 6}}});
  c.push_back({"spline_coupling_context",
               {{"type", "spline_coupling"},
                {"mask", {0, 1, 1, 0}},
                {"conditioner", mlp()},
                {"bins", 3},
                {"tail_bound", 2.0},
                {"context_features", kContext}},
               kContext});
  // Image transforms on [B, C, H, W].
  Case squeeze{"squeeze", {{"type", "squeeze"}, {"factor", 2}}};
  squeeze.inputs = images(2, 4, 4);
  c.push_back(squeeze);
  Case actnorm_image{"actnorm_image", {{"type", "actnorm"}, {"features", 2}}};
  actnorm_image.inputs = images(2, 3, 4);
  c.push_back(actnorm_image);
  Case conv1x1{"invertible_conv1x1",
               {{"type", "lu_linear"}, {"features", 4}, {"diagonal", "exp"}, {"seed", 5}}};
  conv1x1.inputs = images(4, 2, 3);
  c.push_back(conv1x1);
  auto conv_coupling = [](int64_t channels, const std::string& mask, bool flip,
                          const std::string& transformer) {
    return Json{{"type", "conv_coupling"},
                {"channels", channels},
                {"mask", mask},
                {"flip", flip},
                {"hidden", 8},
                {"transformer", transformer}};
  };
  Case channel_affine{"conv_coupling_channel", conv_coupling(2, "channel", false, "affine")};
  channel_affine.inputs = images(2, 4, 4);
  c.push_back(channel_affine);
  Case channel_odd{"conv_coupling_channel_odd_flip", conv_coupling(3, "channel", true, "affine")};
  channel_odd.inputs = images(3, 2, 2);
  c.push_back(channel_odd);
  Case checkerboard{"conv_coupling_checkerboard",
                    conv_coupling(1, "checkerboard", false, "affine")};
  checkerboard.inputs = images(1, 4, 4);
  c.push_back(checkerboard);
  Case checker_additive{"conv_coupling_checkerboard_additive",
                        conv_coupling(2, "checkerboard", true, "additive")};
  checker_additive.inputs = images(2, 3, 3);
  c.push_back(checker_additive);
  Case channel_additive{"conv_coupling_channel_additive",
                        conv_coupling(4, "channel", true, "additive")};
  channel_additive.inputs = images(4, 2, 2);
  c.push_back(channel_additive);
  Case multiscale{
      "multiscale",
      {{"type", "multiscale"},
       {"shape", {2, 4, 4}},
       {"levels",
        {{{"type", "composite"},
          {"layers",
           {{{"type", "squeeze"}},
            {{"type", "actnorm"}, {"features", 8}},
            {{"type", "lu_linear"}, {"features", 8}, {"seed", 2}},
            conv_coupling(8, "channel", false, "affine")}}},
         {{"type", "composite"},
          {"layers", {{{"type", "squeeze"}}, conv_coupling(16, "channel", true, "affine")}}}}}}};
  multiscale.inputs = images(2, 4, 4);
  c.push_back(multiscale);
  // The class-conditional prior (a random context stands in for the one-hot class): on the
  // last level's output only, and on every latent part.
  for (bool split : {false, true}) {
    Json spec = multiscale.spec;
    spec["context_features"] = kContext;
    spec["split_context"] = split;
    Case conditional{split ? "multiscale_context_every_prior" : "multiscale_context", spec,
                     kContext};
    conditional.inputs = images(2, 4, 4);
    c.push_back(conditional);
  }
  Case dequantize{"dequantize", {{"type", "dequantize"}, {"bits", 8}}};
  dequantize.inputs = [](at::ScalarType dtype) {
    return at::randint(0, 256, {kBatch, 2, 2, 3}, at::TensorOptions(dtype));
  };
  dequantize.discrete_inverse = true;
  c.push_back(dequantize);
  Case variational{
      "variational_dequantize",
      {{"type", "variational_dequantize"}, {"channels", 2}, {"hidden", 4}, {"steps", 2}}};
  variational.inputs = dequantize.inputs;
  variational.discrete_inverse = true;
  variational.noise_density = true;
  c.push_back(variational);
  // Continuous flows: the exact trace in evaluation, Hutchinson's in training (the
  // gradient test runs in train mode).
  auto cnf = [](const Json& shape, const Json& velocity, const Json& solver) {
    return Json{{"type", "cnf"}, {"shape", shape}, {"velocity", velocity}, {"solver", solver}};
  };
  const Json tight = {{"method", "dopri5"}, {"atol", 1e-9}, {"rtol", 1e-9}};
  Case cnf_mlp{"cnf_dopri5", cnf({kFeatures},
                                 {{"type", "mlp"},
                                  {"hidden", 16},
                                  {"layers", 2},
                                  {"activation", "tanh"},
                                  {"time_embedding", "sinusoidal"},
                                  {"embedding_size", 4}},
                                 tight)};
  cnf_mlp.tolerance = 1e-6;
  c.push_back(cnf_mlp);
  Json cnf_context_spec = cnf(
      {kFeatures}, {{"type", "mlp"}, {"hidden", 16}, {"layers", 1}, {"time_embedding", "linear"}},
      {{"method", "rk4"}, {"steps", 200}});
  cnf_context_spec["context_features"] = kContext;
  cnf_context_spec["training_trace"] = "exact";
  Case cnf_context{"cnf_rk4_context", cnf_context_spec, kContext};
  cnf_context.tolerance = 1e-6;
  c.push_back(cnf_context);
  // Small (D = 4): the autograd Jacobian takes D backward passes through every step.
  Json cnf_image_spec = cnf(
      {1, 2, 2},
      {{"type", "unet"}, {"hidden", 4}, {"levels", 2}, {"groups", 2}, {"time_embedding", "linear"}},
      {{"method", "rk4"}, {"steps", 32}});
  cnf_image_spec["probe"] = "gaussian";
  Case cnf_image{"cnf_unet", cnf_image_spec};
  cnf_image.inputs = images(1, 2, 2);
  // RK4's own error at 32 steps on this random field; the solver's accuracy is the
  // business of cnf_dopri5 and the ode tests (dopri5 at 1e-8 passes 1e-6 here, in minutes).
  cnf_image.tolerance = 1e-4;
  // Its log-determinants are sums of large traces (a random U-Net's GroupNorms on 2×2
  // images): float32 keeps about 1e-4 of them relative.
  cnf_image.float32_tolerance = 0.05;
  c.push_back(cnf_image);
  // Angles (columns 0 and 2 here) anywhere in [−π, π), real features normal.
  auto angles_and_reals = [](at::ScalarType dtype) {
    const auto options = at::TensorOptions(dtype);
    Tensor x = at::randn({kBatch, kFeatures}, options);
    Tensor angles = (at::rand({kBatch, kFeatures}, options) * 2 - 1) * 3.14159;
    return at::where(at::tensor({1.0, 0.0, 1.0, 0.0}).view({1, kFeatures}) > 0.5, angles, x);
  };
  Case circular_mixed{"circular_spline_coupling",
                      {{"type", "circular_spline_coupling"},
                       {"mask", {1, 1, 0, 0}},
                       {"circular", {1, 0, 1, 0}},
                       {"conditioner", mlp()},
                       {"bins", 5}}};
  circular_mixed.inputs = angles_and_reals;
  c.push_back(circular_mixed);
  Case circular_torus{"circular_spline_coupling_torus",
                      {{"type", "circular_spline_coupling"},
                       {"mask", {0, 1, 0, 1}},
                       {"conditioner", mlp()},
                       {"bins", 3},
                       {"context_features", kContext}},
                      kContext};
  circular_torus.inputs = [](at::ScalarType dtype) {
    return (at::rand({kBatch, kFeatures}, at::TensorOptions(dtype)) * 2 - 1) * 3.14159;
  };
  c.push_back(circular_torus);
  // Normalisation and orthogonal layers, tabular and on images (per channel).
  c.push_back({"batch_norm", {{"type", "batch_norm"}, {"features", kFeatures}}});
  Case batch_norm_image{"batch_norm_image",
                        {{"type", "batch_norm"}, {"features", 2}, {"momentum", 0.5}}};
  batch_norm_image.inputs = images(2, 3, 2);
  c.push_back(batch_norm_image);
  c.push_back({"householder", {{"type", "householder"}, {"features", kFeatures}}});
  Case householder_image{"householder_image",
                         {{"type", "householder"}, {"features", 3}, {"reflections", 2}}};
  householder_image.inputs = images(3, 2, 2);
  c.push_back(householder_image);
  c.push_back({"orthogonal_exp", {{"type", "orthogonal_linear"}, {"features", kFeatures}}});
  c.push_back({"orthogonal_cayley",
               {{"type", "orthogonal_linear"}, {"features", kFeatures}, {"map", "cayley"}}});
  Case orthogonal_image{"orthogonal_image", {{"type", "orthogonal_linear"}, {"features", 3}}};
  orthogonal_image.inputs = images(3, 2, 2);
  c.push_back(orthogonal_image);
  // Planar, radial and Sylvester flows: closed form from noise to data, forward by
  // root-finding to machine precision (planar, Sylvester) or a quadratic (radial).
  c.push_back({"planar", {{"type", "planar"}, {"features", kFeatures}}});
  c.push_back({"radial", {{"type", "radial"}, {"features", kFeatures}}});
  c.push_back(
      {"sylvester", {{"type", "sylvester"}, {"features", kFeatures}, {"num_reflections", 3}}});
  c.push_back({"sylvester_triangular",
               {{"type", "sylvester"}, {"features", kFeatures}, {"num_reflections", 0}}});
  // An invertible residual layer: fixed-point inverse, exact log-determinant in eval mode.
  c.push_back(
      {"iresnet", {{"type", "iresnet"}, {"features", kFeatures}, {"hidden", 16}, {"layers", 1}}});
  // Neural autoregressive flows: monotonic networks per feature, inverted by root-finding
  // on exact brackets (float64), with the implicit derivatives.
  c.push_back(
      {"naf",
       {{"type", "neural_autoregressive"}, {"features", kFeatures}, {"made", made}, {"units", 4}}});
  c.push_back({"iaf_neural_context",
               {{"type", "neural_autoregressive"},
                {"features", kFeatures},
                {"made", {{"hidden", {16}}, {"ordering", "reversed"}}},
                {"units", 3},
                {"inverse_autoregressive", true},
                {"context_features", kContext}},
               kContext});
  c.push_back({"bnaf",
               {{"type", "block_neural_autoregressive"},
                {"features", kFeatures},
                {"hidden_units", 3},
                {"layers", 2}}});
  c.push_back({"bnaf_context",
               {{"type", "block_neural_autoregressive"},
                {"features", kFeatures},
                {"hidden_units", 2},
                {"layers", 1},
                {"context_features", kContext}},
               kContext});
  c.push_back({"inverse", {{"type", "inverse"}, {"transform", c[0].spec}}});
  c.push_back({"composite",
               {{"type", "composite"},
                {"layers", {c[7].spec, c[8].spec, c[0].spec, c[5].spec, c[3].spec}}}});
  return c;
}

// Random parameters, so that no layer sits at its (often trivial) initialisation.
void randomize(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.add_(at::randn_like(p) * 0.3);
}

TransformPtr build(const Case& c, at::ScalarType dtype) {
  auto t = make_transform(c.spec);
  t->to(dtype);
  // ActNorm's data-dependent initialisation runs once in training mode; then eval.
  t->train();
  t->forward(c.inputs(dtype),
             c.context ? at::randn({kBatch, c.context}, at::TensorOptions(dtype)) : Tensor());
  t->eval();
  randomize(*t);
  return t;
}

Tensor context_for(const Case& c, at::ScalarType dtype) {
  return c.context ? at::randn({kBatch, c.context}, at::TensorOptions(dtype)) : Tensor();
}

// log|det J| per sample from the autograd Jacobian (one backward pass per output column;
// samples are independent, so each pass gives one row of every sample's Jacobian).
Tensor autograd_logabsdet(TransformImpl& t, const Tensor& x, const Tensor& context) {
  // Images are flattened: the Jacobian is over all C·H·W elements.
  Tensor input = x.detach().requires_grad_(true);
  Tensor y = t.forward(input, context).outputs.reshape({x.size(0), -1});
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < y.size(1); ++i) {
    auto grad = torch::autograd::grad({y.select(1, i).sum()}, {input}, {}, /*retain_graph=*/true,
                                      /*create_graph=*/false, /*allow_unused=*/true)[0];
    rows.push_back((grad.defined() ? grad : at::zeros_like(input)).reshape({x.size(0), -1}));
  }
  Tensor jacobian = at::stack(rows, 1);  // [B, D_out, D_in]
  return std::get<1>(at::linalg_slogdet(jacobian));
}

// Readable test names in failure reports instead of byte dumps.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class TransformProperties : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { torch::manual_seed(1234); }
};

TEST_P(TransformProperties, KeepsShapeAndDtype) {
  for (auto dtype : {at::kFloat, at::kDouble}) {
    auto t = build(GetParam(), dtype);
    Tensor x = GetParam().inputs(dtype);
    auto out = t->forward(x, context_for(GetParam(), dtype));
    // Only reshaping layers (squeeze) change the shape, as forward_shape says.
    const std::vector<int64_t> event(x.sizes().begin() + 1, x.sizes().end());
    const auto expected = t->forward_shape(event);
    EXPECT_EQ(out.outputs.sizes().slice(1), at::IntArrayRef(expected));
    EXPECT_EQ(out.outputs.numel(), x.numel());
    EXPECT_EQ(t->inverse_shape(expected), event);
    EXPECT_EQ(out.outputs.scalar_type(), dtype);
    EXPECT_EQ(out.logabsdet.sizes(), at::IntArrayRef({kBatch}));
    EXPECT_EQ(out.logabsdet.scalar_type(), dtype);
  }
}

TEST_P(TransformProperties, InverseUndoesForwardFloat64) {
  auto t = build(GetParam(), at::kDouble);
  Tensor x = GetParam().inputs(at::kDouble);
  Tensor ctx = context_for(GetParam(), at::kDouble);
  auto fwd = t->forward(x, ctx);
  auto inv = t->inverse(fwd.outputs, ctx);
  const double tolerance = GetParam().tolerance;
  EXPECT_LT((inv.outputs - x).abs().max().item<double>(), tolerance);
  if (GetParam().noise_density) return;
  EXPECT_LT((fwd.logabsdet + inv.logabsdet).abs().max().item<double>(), tolerance);
  if (GetParam().discrete_inverse) return;
  // Without the log-determinant, the same outputs (a continuous flow's adaptive solver
  // may then take other steps, within its tolerance).
  EXPECT_LT((t->forward_outputs(x, ctx) - fwd.outputs).abs().max().item<double>(), tolerance);
  EXPECT_LT((t->inverse_outputs(fwd.outputs, ctx) - inv.outputs).abs().max().item<double>(),
            tolerance);
  // And the other way round: forward(inverse(z)) = z.
  Tensor z = at::randn_like(fwd.outputs).clamp(-2, 2);
  if (GetParam().name == "logit") z = fwd.outputs;
  if (GetParam().name == "sigmoid") z = at::rand_like(x) * 3.6 - 0.8;
  auto back = t->forward(t->inverse(z, ctx).outputs, ctx);
  EXPECT_LT((back.outputs - z).abs().max().item<double>(), tolerance);
}

TEST_P(TransformProperties, InverseUndoesForwardFloat32) {
  auto t = build(GetParam(), at::kFloat);
  Tensor x = GetParam().inputs(at::kFloat);
  Tensor ctx = context_for(GetParam(), at::kFloat);
  auto fwd = t->forward(x, ctx);
  auto inv = t->inverse(fwd.outputs, ctx);
  const double tolerance = GetParam().float32_tolerance;
  EXPECT_LT((inv.outputs - x).abs().max().item<double>(), tolerance);
  if (GetParam().noise_density) return;
  EXPECT_LT((fwd.logabsdet + inv.logabsdet).abs().max().item<double>(), tolerance);
}

TEST_P(TransformProperties, LogabsdetMatchesAutogradJacobian) {
  if (GetParam().noise_density) GTEST_SKIP() << "a bound's term, not a Jacobian";
  auto t = build(GetParam(), at::kDouble);
  Tensor x = GetParam().inputs(at::kDouble);
  Tensor ctx = context_for(GetParam(), at::kDouble);
  Tensor expected = autograd_logabsdet(*t, x, ctx);
  Tensor actual = t->forward(x, ctx).logabsdet;
  const double tolerance = std::max(GetParam().tolerance, 1e-8);
  EXPECT_LT((actual - expected).abs().max().item<double>(), tolerance)
      << "expected " << expected << "\nactual " << actual;
  if (GetParam().discrete_inverse) return;
  // The inverse's logabsdet is that of its own Jacobian, at the noise point.
  auto inv_t = std::make_shared<InverseTransformImpl>(t);
  Tensor z = t->forward(x, ctx).outputs.detach();
  EXPECT_LT((inv_t->forward(z, ctx).logabsdet - autograd_logabsdet(*inv_t, z, ctx))
                .abs()
                .max()
                .item<double>(),
            tolerance);
}

TEST_P(TransformProperties, GradientsReachEveryParameter) {
  auto t = build(GetParam(), at::kDouble);
  t->train();
  Tensor x = GetParam().inputs(at::kDouble).requires_grad_(true);
  auto out = t->forward(x, context_for(GetParam(), at::kDouble));
  (out.outputs.pow(2).sum() + out.logabsdet.sum()).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
  for (const auto& p : t->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key() << " gets no gradient";
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0)
        << p.key() << " has a zero gradient";
    EXPECT_TRUE(at::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

TEST_P(TransformProperties, SpecRoundTripGivesIdenticalOutputs) {
  auto t = build(GetParam(), at::kDouble);
  auto rebuilt = make_transform(t->spec());
  rebuilt->to(at::kDouble);
  load_named_state(*rebuilt, named_state(*t), "copy");
  rebuilt->eval();
  EXPECT_EQ(rebuilt->spec(), t->spec());
  Tensor x = GetParam().inputs(at::kDouble);
  Tensor ctx = context_for(GetParam(), at::kDouble);
  // The same random stream for both (dequantisation draws noise in forward).
  torch::manual_seed(7);
  auto a = t->forward(x, ctx);
  torch::manual_seed(7);
  auto b = rebuilt->forward(x, ctx);
  EXPECT_TRUE(at::equal(a.outputs, b.outputs));
  EXPECT_TRUE(at::equal(a.logabsdet, b.logabsdet));
}

TEST_P(TransformProperties, CheckpointRoundTripGivesIdenticalOutputs) {
  auto t = build(GetParam(), at::kDouble);
  const Tensor sample = GetParam().inputs(at::kDouble);
  const auto event =
      t->forward_shape(std::vector<int64_t>(sample.sizes().begin() + 1, sample.sizes().end()));
  auto flow = std::make_shared<FlowImpl>(t, std::make_shared<StandardNormalImpl>(event),
                                         GetParam().context);
  flow->to(at::kDouble);
  flow->eval();
  const auto path =
      (std::filesystem::temp_directory_path() / ("zflow_prop_" + GetParam().name + ".safetensors"))
          .string();
  save_checkpoint(path, *flow);
  auto loaded = load_checkpoint(path);
  std::filesystem::remove(path);
  Tensor x = GetParam().inputs(at::kDouble);
  Tensor ctx = context_for(GetParam(), at::kDouble);
  torch::manual_seed(7);
  const Tensor expected = flow->log_prob(x, ctx);
  torch::manual_seed(7);
  EXPECT_TRUE(at::equal(expected, loaded.flow->log_prob(x, ctx)));
}

INSTANTIATE_TEST_SUITE_P(AllTransforms, TransformProperties, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

TEST(TransformContext, OutputDependsOnContext) {
  torch::manual_seed(99);
  int conditional = 0;
  for (const auto& c : cases()) {
    if (c.context == 0) continue;
    ++conditional;
    auto t = build(c, at::kDouble);
    Tensor x = c.inputs(at::kDouble);
    auto a = t->forward(x, context_for(c, at::kDouble)).outputs;
    auto b = t->forward(x, context_for(c, at::kDouble)).outputs;
    EXPECT_GT((a - b).abs().max().item<double>(), 1e-6) << c.name;
  }
  EXPECT_GE(conditional, 2);
}

TEST(TransformRegistry, EveryRegisteredTransformIsInThePropertySuite) {
  std::set<std::string> covered;
  for (const auto& c : cases()) covered.insert(c.spec["type"].get<std::string>());
  for (const auto& type : registered_transforms()) {
    EXPECT_TRUE(covered.count(type)) << type << " is registered but not in the property suite";
  }
}

TEST(TransformRegistry, UnknownTypeAndBadFieldsAreConfigErrors) {
  EXPECT_THROW(make_transform({{"type", "nope"}}), ConfigError);
  EXPECT_THROW(make_transform({{"type", "actnorm"}}), ConfigError);
  EXPECT_THROW(make_transform({{"type", "actnorm"}, {"features", 2}, {"featurs", 3}}), ConfigError);
  EXPECT_THROW(make_transform({{"type", "permutation"}, {"indices", {0, 0}}}), ConfigError);
  EXPECT_THROW(make_transform({{"type", "affine_coupling"}, {"mask", {1, 1}}}), ConfigError);
  EXPECT_THROW(make_transform({{"type", "lu_linear"}, {"features", 2}, {"diagonal", "abs"}}),
               ConfigError);
}

TEST(TransformContract, WrongWidthsAreClearErrors) {
  auto t = make_transform({{"type", "lu_linear"}, {"features", 3}});
  try {
    t->forward(at::randn({2, 4}));
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("lu_linear"), std::string::npos);
  }
}

}  // namespace
