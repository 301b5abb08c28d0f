#include "zflow/transforms/neural_autoregressive.h"

#include <cmath>
#include <limits>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/utils.h>

#include "zflow/core/error.h"
#include "zflow/functional/monotone_root.h"

namespace zflow {

namespace {

/// log(1 − tanh²(u)) = 2 (log 2 − u − softplus(−2u)), exact for any u (the direct form
/// rounds to log 0 for |u| above about 9 in float32).
Tensor log_tanh_slope(const Tensor& u) { return 2 * (std::log(2.0) - u - at::softplus(-2 * u)); }

/// The log-space product log Σ_k exp(block[d, j, k] + log_j[b, d, k]) → [B, D, out], for
/// `block` [D, out, in] and `log_j` [B, D, in] (the chain rule through positive diagonal
/// blocks, De Cao et al. eq. 12). As a matrix product of the exponentials, each shifted by
/// its largest entry (so both lie in (0, 1] with a 1 in every row): one batched GEMM
/// instead of a log-sum-exp over [B, D, out, in]. `zflow train --model bnaf` on moons
/// (hidden 128, 4 layers, batch 512) took 6.3 s for 200 steps this way and 22.7 s with the
/// log-sum-exp. A sum can only underflow if the entries span more than the dtype's range
/// (e^±69 in float32 at the threshold 1e-30); then the exact log-sum-exp is taken instead.
Tensor log_matmul(const Tensor& block, const Tensor& log_j) {
  const Tensor block_max = block.amax(-1, true).detach();  // [D, out, 1]
  const Tensor j_max = log_j.amax(-1, true).detach();      // [B, D, 1]
  // [D, B, in] × [D, in, out] → [D, B, out] → [B, D, out].
  const Tensor sums =
      at::bmm(at::exp(log_j - j_max).transpose(0, 1), at::exp(block - block_max).transpose(1, 2))
          .transpose(0, 1);
  const double tiny = log_j.scalar_type() == at::kDouble ? 1e-290 : 1e-30;
  if ((sums < tiny).any().item<bool>()) {
    return at::logsumexp(block.unsqueeze(0) + log_j.unsqueeze(2), -1);
  }
  return at::log(sums) + j_max + block_max.squeeze(-1).unsqueeze(0);
}

/// The deep sigmoidal units' slopes a_k = softplus(â_k + c) + a_min from the raw â, with
/// softplus(c) = 1 − a_min so that â = 0 gives a = 1.
Tensor unit_slopes(const Tensor& raw_slopes) {
  constexpr double kMin = DeepSigmoidalTransformer::kMinSlope;
  return at::softplus(raw_slopes + std::log(std::expm1(1.0 - kMin))) + kMin;
}

}  // namespace

// ---- deep sigmoidal transformer ---------------------------------------------------------

DeepSigmoidalTransformer::DeepSigmoidalTransformer(int64_t units, int64_t max_iterations,
                                                   const std::string& owner)
    : units_(units), max_iterations_(max_iterations) {
  require_positive(owner + ": units", units_);
  require_positive(owner + ": max_iterations", max_iterations_);
}

Json DeepSigmoidalTransformer::spec() const {
  return {{"units", units_}, {"max_iterations", max_iterations_}};
}

std::string DeepSigmoidalTransformer::describe() const {
  return ", " + std::to_string(units_) + " sigmoid units";
}

std::pair<Tensor, Tensor> DeepSigmoidalTransformer::evaluate(const Tensor& x,
                                                             const Tensor& params) const {
  const auto chunks = params.chunk(3, -1);
  const Tensor a = unit_slopes(chunks[0]);
  const Tensor& b = chunks[1];
  const Tensor omega =
      -at::arange(units_, params.options()) / static_cast<double>(units_);  // fixed, unequal
  const Tensor log_w = at::log_softmax(chunks[2] + omega, -1);
  const Tensor u = a * x.unsqueeze(-1) + b;
  const Tensor log_sig = at::log_sigmoid(u);
  const Tensor log_sig_neg = at::log_sigmoid(-u);
  const Tensor log_y = at::logsumexp(log_w + log_sig, -1);
  const Tensor log_one_minus_y = at::logsumexp(log_w + log_sig_neg, -1);
  const Tensor z = log_y - log_one_minus_y;
  const Tensor log_slope =
      at::logsumexp(log_w + at::log(a) + log_sig + log_sig_neg, -1) - log_y - log_one_minus_y;
  return {z, log_slope};
}

TransformOutput DeepSigmoidalTransformer::apply(const Tensor& inputs, const Tensor& params,
                                                bool inverse) const {
  TORCH_CHECK(params.dim() == inputs.dim() + 1 && params.size(-1) == 3 * units_,
              "deep_sigmoidal: expected parameters [..., ", 3 * units_, "], got ", params.sizes());
  const auto per_sample = [](const Tensor& log_slope) {
    return log_slope.reshape({log_slope.size(0), -1}).sum(1);
  };
  if (!inverse) {
    auto [z, log_slope] = evaluate(inputs, params);
    return {z, per_sample(log_slope)};
  }
  // z lies between min_k u_k and max_k u_k at the root (a convex combination of σ(u_k)
  // under the increasing logit), which brackets x by (z − b_k)/a_k.
  const Tensor z = inputs;
  const Tensor raw = params.detach().to(at::kDouble);
  // Non-finite parameters of an element (from non-finite inputs earlier in the
  // autoregressive order) pass through as NaN, as non-finite inputs do.
  const Tensor target = z.detach().to(at::kDouble) + 0 * raw.sum(-1);
  const auto chunks = raw.chunk(3, -1);
  const Tensor ends = (target.unsqueeze(-1) - chunks[1]) / unit_slopes(chunks[0]);
  const Tensor lower = std::get<0>(ends.min(-1));
  const Tensor upper = std::get<0>(ends.max(-1));
  const Tensor raw_rows = raw.reshape({-1, 3 * units_});  // element i's parameters in row i
  Tensor root = functional::solve_increasing(
      [&](const Tensor& v, const Tensor& index) {
        auto [value, log_slope] = evaluate(v, raw_rows.index_select(0, index));
        return std::make_pair(value, log_slope.exp());
      },
      target, lower, upper, 0.5 * (lower + upper), max_iterations_, "deep_sigmoidal inverse");
  Tensor x = root.to(inputs.scalar_type());
  if (at::GradMode::is_enabled()) {
    // One Newton step under autograd, x − r/τ' with r = τ(x) − z, whose value is kept
    // (r/τ' is subtracted and added back detached: in float32 r is rounding noise) and
    // whose derivatives are the implicit function's, ∂x/∂z = 1/τ', ∂x/∂θ = −(∂τ/∂θ)/τ'.
    auto [at_root, log_slope_at_root] = evaluate(x, params);
    const Tensor step = (at_root - z) / log_slope_at_root.detach().exp();
    x = x - step + step.detach();
  }
  return {x, -per_sample(evaluate(x, params).second)};
}

NeuralAutoregressiveImpl::NeuralAutoregressiveImpl(const NeuralAutoregressiveOptions& o)
    : AutoregressiveTransformImpl("neural_autoregressive", o.features(),
                                  std::make_shared<DeepSigmoidalTransformer>(
                                      o.units(), o.max_iterations(), "neural_autoregressive"),
                                  o.conditioner(), o.context_features(),
                                  o.inverse_autoregressive()) {}

// ---- block neural autoregressive --------------------------------------------------------

namespace {

/// The D × D block masks of a [D·out, D·in] matrix: the diagonal blocks, and the blocks
/// strictly below them.
std::pair<Tensor, Tensor> block_masks(int64_t features, int64_t out, int64_t in,
                                      const at::TensorOptions& options) {
  const Tensor eye = at::eye(features, options.dtype(at::kBool));
  const Tensor below = at::ones({features, features}, options.dtype(at::kBool)).tril(-1);
  const Tensor block = at::ones({out, in}, options.dtype(at::kBool));
  return {at::kron(eye, block).to(at::kBool), at::kron(below, block).to(at::kBool)};
}

/// Sizes a_l of layer l's units per feature: 1, a, …, a, 1.
std::vector<int64_t> unit_sizes(const BlockNeuralAutoregressiveOptions& o) {
  std::vector<int64_t> sizes(o.layers() + 2, o.hidden_units());
  sizes.front() = sizes.back() = 1;
  return sizes;
}

/// What feature i's solve needs of the network at x (x_<i final): per layer l, the part of
/// feature i's pre-activations that comes from the units of the features before it, the
/// bias and (first layer) the context — [B, a_l], fixed while x_i moves, since those units
/// depend on x_<i only.
std::vector<Tensor> fixed_pre_activations(int64_t i, const Tensor& x, const Tensor& context,
                                          const std::vector<Tensor>& matrix,
                                          const std::vector<Tensor>& bias,
                                          const Tensor& context_weight,
                                          const std::vector<int64_t>& sizes) {
  std::vector<Tensor> fixed;
  Tensor h = x;
  for (size_t l = 0; l < matrix.size(); ++l) {
    const int64_t in = sizes[l], out = sizes[l + 1];
    // The rows of features ≤ i, fed by the units of features < i only: feature i's part
    // is what its solve holds fixed, the rest is the next layer's input from features < i.
    Tensor pre = at::addmm(bias[l].slice(0, 0, (i + 1) * out), h.slice(1, 0, i * in),
                           matrix[l].slice(0, 0, (i + 1) * out).slice(1, 0, i * in).t());
    if (l == 0 && context_weight.defined()) {
      pre = pre + at::matmul(context, context_weight.slice(0, 0, (i + 1) * out).t());
    }
    fixed.push_back(pre.slice(1, i * out));
    h = at::tanh(pre.slice(1, 0, i * out));
  }
  return fixed;
}

}  // namespace

BlockNeuralAutoregressiveImpl::BlockNeuralAutoregressiveImpl(
    const BlockNeuralAutoregressiveOptions& options)
    : TransformImpl("block_neural_autoregressive"), options_(options) {
  const std::string who = "block_neural_autoregressive";
  require_positive(who + ": features", options_.features());
  require_positive(who + ": hidden_units", options_.hidden_units());
  require_positive(who + ": layers", options_.layers());
  require_positive(who + ": max_iterations", options_.max_iterations());
  if (options_.context_features() < 0)
    throw ConfigError(who + ": context_features must be 0 or positive");
  const int64_t d = options_.features();
  const auto sizes = unit_sizes(options_);
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    const int64_t in = sizes[l], out = sizes[l + 1];
    // Every row's used entries drawn as a linear layer's (U(±1/√fan-in)); the diagonal
    // blocks' raw values are logs, so they start at log U(0, 1/√fan-in), made positive by
    // exp. Rows are normalised, so only directions matter, and their norms start at
    // 1/√in: a unit's diagonal inputs are all positive and all increasing in x_i, so they
    // add up coherently, and with norm 1 the sum of `in` of them would saturate the next
    // tanh (f would start as a step). The first layer's biases spread its units' centres
    // over U(−2, 2), where standardised data lies.
    const double bound = 1.0 / std::sqrt(static_cast<double>(d * in));
    Tensor w = (at::rand({d * out, d * in}, at::kFloat) * 2 - 1) * bound;
    auto [diagonal, below] = block_masks(d, out, in, w.options());
    w = at::where(diagonal, at::log(at::rand_like(w) * bound + 1e-3), w);
    const std::string n = std::to_string(l);
    const double bias_bound = l == 0 ? 2.0 : bound;
    weights.push_back(register_parameter("weight_" + n, w));
    log_scales.push_back(register_parameter(
        "log_scale_" + n,
        at::full({d * out}, -0.5 * std::log(static_cast<double>(in)), at::kFloat)));
    biases.push_back(
        register_parameter("bias_" + n, (at::rand({d * out}, at::kFloat) * 2 - 1) * bias_bound));
  }
  // σ(g) = σ(−g) = ½. (A gate starting at σ(−g) = 0.9 began nearer the identity but learned
  // more slowly: on moons, 4 layers, lr 2e-3, validation NLL 3.20 after 200 steps against
  // 2.87 from ½.)
  gate = register_parameter("gate", at::zeros({1}, at::kFloat));
  if (options_.context_features() > 0) {
    context_weight = register_parameter(
        "context_weight",
        at::zeros({d * options_.hidden_units(), options_.context_features()}, at::kFloat));
  }
  // Start with ∂f_i/∂x_i = 1 at x = 0 (the last layer's row scales set it), so that
  // ∂z_i/∂x_i = σ(g)·1 + σ(−g) = 1 there and stays between σ(−g) and about 1 over the
  // standardised data: the layer starts close to the identity. (Measured on moons with 4
  // layers: with unit row norms and no such scaling f started as a steep step, and the
  // first training NLLs were near 6 nats, against 3.2 for NAF and RealNVP.)
  torch::NoGradGuard no_grad;
  const Tensor origin = at::zeros({1, d}, at::kFloat);
  const Tensor no_context = options_.context_features() > 0
                                ? at::zeros({1, options_.context_features()}, at::kFloat)
                                : Tensor();
  log_scales.back().sub_(network(origin, no_context, used_weights()).second[0]);
}

Json BlockNeuralAutoregressiveImpl::spec() const {
  return {{"type", type()},
          {"features", options_.features()},
          {"hidden_units", options_.hidden_units()},
          {"layers", options_.layers()},
          {"context_features", options_.context_features()},
          {"max_iterations", options_.max_iterations()}};
}

std::string BlockNeuralAutoregressiveImpl::describe() const {
  std::ostringstream s;
  s << "block_neural_autoregressive (B-NAF), " << options_.features() << " features, "
    << options_.layers() << " hidden layers of " << options_.hidden_units()
    << " units per feature, gated residual";
  if (options_.context_features() > 0) s << ", context " << options_.context_features();
  return s.str();
}

BlockNeuralAutoregressiveImpl::Used BlockNeuralAutoregressiveImpl::used_weights() const {
  // Weight normalisation (De Cao et al. eq. 9): row r of W̃ = exp(W) on the diagonal
  // blocks, W below them, 0 above, scaled to norm g_r = exp(log_scale_r). In log space, so
  // that raw weights whose exponentials (or their squares) overflow or underflow still give
  // finite rows: with s = the row's largest diagonal raw weight and m = its largest free
  // |W| (at least 1e-30; both held constant under autograd),
  //   log ‖W̃_r‖ = ½ logaddexp(2s + log Σ_diag e^(2(W − s)), 2 log m + log Σ_free (W/m)²),
  // where each sum is at least 1 (or the free one 0, kept off log 0 by 1e-30).
  const int64_t d = options_.features();
  const auto sizes = unit_sizes(options_);
  Used used;
  for (size_t l = 0; l < weights.size(); ++l) {
    const Tensor& w = weights[l];
    const int64_t in = sizes[l], out = sizes[l + 1];
    auto [diagonal, below] = block_masks(d, out, in, w.options());
    const Tensor on_diagonal = w * diagonal;  // 0 off the diagonal blocks: exp stays finite
    const Tensor free = w * below;
    const Tensor s =
        at::where(diagonal, w, -std::numeric_limits<double>::infinity()).amax(1, true).detach();
    const Tensor m = free.abs().amax(1, true).clamp_min(1e-30).detach();
    // Masked inside the exp too: off the diagonal blocks e^(−2s) alone could overflow.
    const Tensor diagonal_sum = (at::exp(2 * (on_diagonal - s) * diagonal) * diagonal).sum(1, true);
    const Tensor free_sum = (free / m).square().sum(1, true);
    const Tensor log_norm = 0.5 * at::logaddexp(2 * s + at::log(diagonal_sum),
                                                2 * at::log(m) + at::log(free_sum + 1e-30));
    const Tensor log_factor = log_scales[l].unsqueeze(1) - log_norm;  // [D·out, 1]
    const Tensor log_entries = on_diagonal + log_factor;
    // Free entries as (W/m)·m/‖W̃‖·g; m ≤ ‖W̃‖ whenever a free entry is non-zero, and the
    // clamp keeps an all-zero row's 0·e^(large) from becoming NaN.
    const Tensor free_factor =
        at::exp((at::log(m) - log_norm).clamp_max(0) + log_scales[l].unsqueeze(1));
    used.matrix.push_back(at::exp(log_entries * diagonal) * diagonal + (free / m) * free_factor);
    // The diagonal blocks [D, out, in]: block (i, i) at rows i·out…, columns i·in….
    used.log_diagonal.push_back(
        at::diagonal(log_entries.view({d, out, d, in}), 0, 0, 2).permute({2, 0, 1}));
    used.bias.push_back(biases[l]);
  }
  used.context_weight = context_weight;
  used.gate = gate;
  return used;
}

BlockNeuralAutoregressiveImpl::Used BlockNeuralAutoregressiveImpl::solver_copy(const Used& used) {
  const auto copy = [](const Tensor& t) {
    return t.defined() ? t.detach().to(at::kDouble) : Tensor();
  };
  // The solve takes its slopes in linear space from the matrices: no log-diagonal blocks.
  Used c;
  for (size_t l = 0; l < used.matrix.size(); ++l) {
    c.matrix.push_back(copy(used.matrix[l]));
    c.bias.push_back(copy(used.bias[l]));
  }
  c.context_weight = copy(used.context_weight);
  c.gate = copy(used.gate);
  return c;
}

std::pair<Tensor, Tensor> BlockNeuralAutoregressiveImpl::network(const Tensor& x,
                                                                 const Tensor& context,
                                                                 const Used& used) const {
  const int64_t batch = x.size(0), d = options_.features();
  const size_t last = used.matrix.size() - 1;
  Tensor h = x;
  // log ∂h_(i,j)/∂x_i for every unit j of feature i: [B, D, a_l].
  Tensor log_jacobian = at::zeros({batch, d, 1}, x.options());
  for (size_t l = 0; l <= last; ++l) {
    Tensor pre = at::addmm(used.bias[l], h, used.matrix[l].t());
    if (l == 0 && used.context_weight.defined())
      pre = pre + at::matmul(context, used.context_weight.t());
    // Chain rule through the diagonal blocks, in log space.
    const Tensor& block = used.log_diagonal[l];  // [D, out, in]
    log_jacobian = log_matmul(block, log_jacobian);
    if (l < last) {
      log_jacobian = log_jacobian + log_tanh_slope(pre).view({batch, d, -1});
      h = at::tanh(pre);
    } else {
      h = pre;
    }
  }
  return {h, log_jacobian.squeeze(-1)};
}

std::pair<Tensor, Tensor> BlockNeuralAutoregressiveImpl::evaluate(const Tensor& x,
                                                                  const Tensor& context,
                                                                  const Used& used) const {
  auto [f, log_f_slope] = network(x, context, used);  // [B, D] each
  const Tensor z = at::sigmoid(used.gate) * f + at::sigmoid(-used.gate) * x;
  const Tensor log_slope =
      at::logaddexp(at::log_sigmoid(used.gate) + log_f_slope, at::log_sigmoid(-used.gate));
  return {z, log_slope};
}

void BlockNeuralAutoregressiveImpl::check(const Tensor& inputs, const Tensor& context) const {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == options_.features(), type(), ": expected [B, ",
              options_.features(), "], got ", inputs.sizes());
  if (options_.context_features() > 0) {
    TORCH_CHECK(context.defined() && context.dim() == 2 && context.size(0) == inputs.size(0) &&
                    context.size(1) == options_.context_features(),
                type(), ": expected a context [", inputs.size(0), ", ", options_.context_features(),
                "]");
  }
}

TransformOutput BlockNeuralAutoregressiveImpl::forward_impl(const Tensor& inputs,
                                                            const Tensor& context) {
  check(inputs, context);
  auto [z, log_slope] = evaluate(inputs, context, used_weights());
  return {z, log_slope.sum(1)};
}

TransformOutput BlockNeuralAutoregressiveImpl::inverse_impl(const Tensor& inputs,
                                                            const Tensor& context) {
  check(inputs, context);
  const int64_t d = options_.features();
  const Used used = used_weights();
  const Used solver = solver_copy(used);
  const Tensor target = inputs.detach().to(at::kDouble);
  const Tensor solver_context = context.defined() ? context.detach().to(at::kDouble) : context;
  // z_i = σ(g) f_i + σ(−g) x_i with |f_i| ≤ M_i = Σ_j |W_ij| + |b_i| (last layer on tanh
  // outputs in (−1, 1)): x_i ∈ [(z_i − σ(g) M_i)/σ(−g), (z_i + σ(g) M_i)/σ(−g)].
  const Tensor bound = solver.matrix.back().abs().sum(1) + solver.bias.back().abs();  // [D]
  const Tensor open = at::sigmoid(solver.gate), shut = at::sigmoid(-solver.gate);
  const Tensor lower = (target - open * bound) / shut;
  const Tensor upper = (target + open * bound) / shut;
  // Feature i depends on x_<i only: solve them in order (x_>i do not matter; they hold
  // their starting values).
  Tensor x = target.clone();
  const auto sizes = unit_sizes(options_);
  const size_t last = solver.matrix.size() - 1;
  for (int64_t i = 0; i < d; ++i) {
    // Each step evaluates feature i's own units only (its diagonal blocks, about 1/D of
    // the network) on top of what the features before it contribute. The slope only steers
    // Newton's steps, so it is taken in linear space, tanh' = 1 − tanh²: no logarithms
    // (float64 transcendental functions were most of the sampling time); should it
    // underflow, the step leaves the bracket and bisection takes over.
    const std::vector<Tensor> fixed = fixed_pre_activations(
        i, x, solver_context, solver.matrix, solver.bias, solver.context_weight, sizes);
    const Tensor column = functional::solve_increasing(
        [&](const Tensor& v, const Tensor& rows) {
          Tensor h = v.unsqueeze(1);
          Tensor jacobian = at::ones_like(h);  // ∂(units of feature i)/∂x_i, [n, a_l]
          for (size_t l = 0; l <= last; ++l) {
            const int64_t in = sizes[l], out = sizes[l + 1];
            const Tensor own =
                solver.matrix[l].slice(0, i * out, (i + 1) * out).slice(1, i * in, (i + 1) * in);
            const Tensor pre = at::addmm(fixed[l].index_select(0, rows), h, own.t());
            jacobian = at::matmul(jacobian, own.t());
            if (l < last) {
              h = at::tanh(pre);
              jacobian = jacobian * (1 - h * h);
            } else {
              h = pre;
            }
          }
          return std::make_pair(open * h.squeeze(1) + shut * v, open * jacobian.squeeze(1) + shut);
        },
        // Non-finite earlier features (non-finite inputs) pass through as NaN.
        target.select(1, i) + 0 * x.slice(1, 0, i).sum(1), lower.select(1, i), upper.select(1, i),
        0.5 * (lower.select(1, i) + upper.select(1, i)), options_.max_iterations(),
        "block_neural_autoregressive inverse");
    x.select(1, i).copy_(column);
  }
  // One Newton step per feature under autograd, in order, each with the features before it
  // already carrying their derivatives: x_i − (z_i(x) − z_i)/(∂z_i/∂x_i) gives x_i the
  // implicit function's derivatives (in z, in x_<i, hence in θ).
  const Tensor root = x.to(inputs.scalar_type());
  if (!at::GradMode::is_enabled()) return {root, -evaluate(root, context, used).second.sum(1)};
  std::vector<Tensor> columns;
  for (int64_t i = 0; i < d; ++i) {
    std::vector<Tensor> parts = columns;
    for (int64_t j = i; j < d; ++j) parts.push_back(root.select(1, j));
    auto [z, log_slope] = evaluate(at::stack(parts, 1), context, used);
    // The step is added back detached: the value stays the float64 root, rounded.
    const Tensor step =
        (z.select(1, i) - inputs.select(1, i)) / log_slope.select(1, i).detach().exp();
    columns.push_back(root.select(1, i) - step + step.detach());
  }
  const Tensor result = at::stack(columns, 1);
  return {result, -evaluate(result, context, used).second.sum(1)};
}

}  // namespace zflow
