#include "zflow/transforms/continuous.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

void check_choice(const std::string& what, const std::string& value,
                  const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return;
  std::string list;
  for (size_t i = 0; i < choices.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
  }
  throw ConfigError("cnf: unknown " + what + " '" + value + "' (choose " + list + ")");
}

/// The gradient of `output` (weighted by `weights`) with respect to `input`; zeros where the
/// output does not depend on it.
Tensor vector_jacobian(const Tensor& output, const Tensor& input, const Tensor& weights,
                       bool create_graph) {
  auto grads = torch::autograd::grad({output}, {input}, {weights}, /*retain_graph=*/true,
                                     create_graph, /*allow_unused=*/true);
  return grads[0].defined() ? grads[0] : at::zeros_like(input);
}

}  // namespace

void check_continuous_options(const ContinuousOptions& o) {
  ode::check_options(o.solver);
  check_choice("trace", o.trace, {"exact", "hutchinson"});
  check_choice("training_trace", o.training_trace, {"exact", "hutchinson"});
  check_choice("probe", o.probe, {"rademacher", "gaussian"});
}

ContinuousOptions continuous_options_from_spec(const Json& spec,
                                               const ContinuousOptions& defaults) {
  ContinuousOptions o = defaults;
  if (spec.contains("solver")) {
    const Json& s = spec.at("solver");
    if (!s.is_object()) throw ConfigError("cnf: 'solver' must be an object");
    reject_unknown_fields(s, {"method", "steps", "atol", "rtol", "max_steps"});
    o.solver.method = spec_optional(s, "method", o.solver.method);
    o.solver.steps = spec_optional(s, "steps", o.solver.steps);
    o.solver.atol = spec_optional(s, "atol", o.solver.atol);
    o.solver.rtol = spec_optional(s, "rtol", o.solver.rtol);
    o.solver.max_steps = spec_optional(s, "max_steps", o.solver.max_steps);
  }
  o.trace = spec_optional(spec, "trace", o.trace);
  o.training_trace = spec_optional(spec, "training_trace", o.training_trace);
  o.probe = spec_optional(spec, "probe", o.probe);
  check_continuous_options(o);
  return o;
}

Json continuous_options_spec(const ContinuousOptions& o) {
  return {{"solver",
           {{"method", o.solver.method},
            {"steps", o.solver.steps},
            {"atol", o.solver.atol},
            {"rtol", o.solver.rtol},
            {"max_steps", o.solver.max_steps}}},
          {"trace", o.trace},
          {"training_trace", o.training_trace},
          {"probe", o.probe}};
}

ContinuousFlowImpl::ContinuousFlowImpl(const Json& spec) : TransformImpl("cnf") {
  reject_unknown_fields(spec, {"shape", "velocity", "context_features", "solver", "trace",
                               "training_trace", "probe", "time"});
  shape_ = spec_required<std::vector<int64_t>>(spec, "shape");
  if (shape_.size() != 1 && shape_.size() != 3) {
    throw ConfigError("cnf: shape must be [D] or [C, H, W], got " + shape_string(shape_));
  }
  for (auto s : shape_) require_positive("cnf: shape", s);
  context_features_ = spec_optional<int64_t>(spec, "context_features", 0);
  if (context_features_ < 0) throw ConfigError("cnf: context_features must be >= 0");
  const auto time = spec_optional<std::vector<double>>(spec, "time", {0.0, 1.0});
  if (time.size() != 2 || !(time[0] >= 0 && time[0] < time[1] && time[1] <= 1)) {
    throw ConfigError("cnf: time must be [begin, end] with 0 <= begin < end <= 1");
  }
  time_begin_ = time[0];
  time_end_ = time[1];
  const ContinuousOptions defaults;
  options_ = continuous_options_from_spec(spec, defaults);
  velocity_ = register_module(
      "velocity", nn::make_velocity_field(spec_optional<Json>(spec, "velocity", Json::object()),
                                          shape_, context_features_));
}

Json ContinuousFlowImpl::spec() const {
  Json s = {{"type", "cnf"}, {"shape", shape_}, {"velocity", velocity_->spec()}};
  if (context_features_ > 0) s["context_features"] = context_features_;
  s.update(continuous_options_spec(options_));
  if (time_begin_ != 0.0 || time_end_ != 1.0) s["time"] = {time_begin_, time_end_};
  return s;
}

std::vector<TransformPtr> ContinuousFlowImpl::segments(int64_t count) {
  require_positive("cnf segments", count);
  std::vector<TransformPtr> parts;
  const double length = (time_end_ - time_begin_) / static_cast<double>(count);
  for (int64_t k = count - 1; k >= 0; --k) {
    Json s = spec();
    s["time"] = {time_begin_ + length * static_cast<double>(k),
                 k + 1 == count ? time_end_ : time_begin_ + length * static_cast<double>(k + 1)};
    s["solver"]["steps"] = std::max<int64_t>(1, options_.solver.steps / count);
    auto part = std::make_shared<ContinuousFlowImpl>(s);
    // The same field: replace the copy's own by this layer's.
    part->velocity_ = part->replace_module("velocity", velocity_);
    part->to(velocity_->parameters().empty() ? at::kFloat
                                             : velocity_->parameters()[0].scalar_type());
    part->train(is_training());  // the same trace as this layer
    parts.push_back(part);
  }
  return parts;
}

std::string ContinuousFlowImpl::describe() const {
  std::ostringstream s;
  s << "cnf(" << shape_string(shape_) << ", " << options_.solver.method;
  if (ode::is_fixed_step(options_.solver.method)) {
    s << " " << options_.solver.steps << " steps";
  } else {
    s << " atol " << options_.solver.atol << " rtol " << options_.solver.rtol;
  }
  s << ", " << options_.trace << " trace";
  if (context_features_ > 0) s << ", " << context_features_ << " context";
  if (time_begin_ != 0.0 || time_end_ != 1.0) s << ", t " << time_begin_ << "–" << time_end_;
  s << ")";
  return s.str();
}

void ContinuousFlowImpl::set_options(const ContinuousOptions& options) {
  check_continuous_options(options);
  options_ = options;
}

void ContinuousFlowImpl::check_event(const Tensor& inputs) const {
  TORCH_CHECK(inputs.dim() == static_cast<int64_t>(shape_.size()) + 1 &&
                  inputs.sizes().slice(1) == at::IntArrayRef(shape_),
              "cnf: inputs must be [B, ", at::IntArrayRef(shape_), "], got ", inputs.sizes());
}

Tensor ContinuousFlowImpl::velocity(const Tensor& t, const Tensor& x, const Tensor& context) {
  if (context_features_ > 0) {
    TORCH_CHECK(context.defined() && context.dim() == 2 && context.size(1) == context_features_ &&
                    context.size(0) == x.size(0),
                "cnf: the context must be [", x.size(0), ", ", context_features_, "], got ",
                context.defined() ? context.sizes() : at::IntArrayRef{});
  }
  return velocity_->forward(t, x, context_features_ > 0 ? context : Tensor());
}

std::pair<Tensor, Tensor> ContinuousFlowImpl::velocity_and_divergence(double t, const Tensor& x,
                                                                      const Tensor& context,
                                                                      const std::string& trace,
                                                                      const Tensor& probe,
                                                                      bool create_graph) {
  TORCH_CHECK(x.requires_grad(), "cnf: velocity_and_divergence needs x to require grad");
  at::AutoGradMode enable(true);
  const int64_t batch = x.size(0);
  const Tensor v = velocity(at::full({batch}, t, x.options()), x, context);
  if (trace == "hutchinson") {
    return {v, sum_except_batch(vector_jacobian(v, x, probe, create_graph) * probe)};
  }
  // tr(∂v/∂x) = Σ_i e_iᵀ (∂v/∂x) e_i: one vector-Jacobian product per dimension.
  const Tensor flat_v = v.reshape({batch, -1});
  const Tensor ones = at::ones({batch}, x.options());
  Tensor divergence = at::zeros({batch}, x.options());
  for (int64_t i = 0; i < flat_v.size(1); ++i) {
    divergence = divergence + vector_jacobian(flat_v.select(1, i), x, ones, create_graph)
                                  .reshape({batch, -1})
                                  .select(1, i);
  }
  return {v, divergence};
}

namespace {

/// One evaluation of (v, tr ∂v/∂x) as a single autograd node whose inner graph starts at
/// leaf copies of x and the context. Without it, every vector-Jacobian product of a later
/// solver step would walk the graph of all the steps before it (autograd's dependency
/// count visits everything reachable), making a differentiable solve quadratic in its
/// steps; the adjoint method isolates steps the same way (Chen et al. 2018, §2). The
/// backward pass differentiates the saved inner graph.
struct StepArguments {
  ContinuousFlowImpl* flow;
  double t;
  const std::string* trace;
  const Tensor* probe;
  bool has_context;
};

class IsolatedStep : public torch::autograd::Function<IsolatedStep> {
 public:
  // tensors: x, [context], then the velocity field's parameters.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                at::TensorList tensors, const StepArguments* step) {
    at::AutoGradMode enable(true);
    const Tensor x = tensors[0].detach().requires_grad_(true);
    Tensor context;
    if (step->has_context) {
      context = tensors[1].detach();
      if (tensors[1].requires_grad()) context.requires_grad_(true);
    }
    auto [v, divergence] =
        step->flow->velocity_and_divergence(step->t, x, context, *step->trace, *step->probe,
                                            /*create_graph=*/true);
    std::vector<Tensor> leaves{x};
    if (step->has_context) leaves.push_back(context);
    for (size_t i = step->has_context ? 2 : 1; i < tensors.size(); ++i) {
      leaves.push_back(tensors[i]);
    }
    ctx->saved_data["v"] = v;
    ctx->saved_data["divergence"] = divergence;
    ctx->saved_data["leaves"] = leaves;
    return {v.detach(), divergence.detach()};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const Tensor v = ctx->saved_data["v"].toTensor();
    const Tensor divergence = ctx->saved_data["divergence"].toTensor();
    const std::vector<Tensor> leaves = ctx->saved_data["leaves"].toTensorVector();
    std::vector<Tensor> inputs;
    std::vector<size_t> positions;
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (leaves[i].requires_grad()) {
        inputs.push_back(leaves[i]);
        positions.push_back(i);
      }
    }
    torch::autograd::variable_list result(leaves.size() + 1);  // + the StepArguments
    if (inputs.empty()) return result;
    at::AutoGradMode enable(true);
    const auto g = torch::autograd::grad({v, divergence}, inputs, {grads[0], grads[1]},
                                         /*retain_graph=*/true, /*create_graph=*/false,
                                         /*allow_unused=*/true);
    for (size_t k = 0; k < positions.size(); ++k) result[positions[k]] = g[k];
    return result;
  }
};

}  // namespace

TransformOutput ContinuousFlowImpl::solve(const Tensor& inputs, const Tensor& context, double t0,
                                          double t1) {
  check_event(inputs);
  const std::string& trace = is_training() ? options_.training_trace : options_.trace;
  const int64_t batch = inputs.size(0);
  Tensor probe;
  if (trace == "hutchinson") {
    // One probe per sample for the whole path (FFJORD §3.1).
    probe = options_.probe == "gaussian"
                ? at::randn_like(inputs)
                : at::randint(0, 2, inputs.sizes(), inputs.options()).mul_(2).sub_(1);
  }
  std::vector<Tensor> parameters;
  for (const auto& p : velocity_->parameters()) {
    if (p.requires_grad()) parameters.push_back(p);
  }
  // With autograd on (training, or a caller differentiating the result) each evaluation is
  // an isolated node; without it, each enables autograd locally for its vector-Jacobian
  // products and returns plain values.
  const bool differentiable =
      at::GradMode::is_enabled() && (inputs.requires_grad() || !parameters.empty() ||
                                     (context.defined() && context.requires_grad()));
  const bool has_context = context_features_ > 0;
  auto dynamics = [&](double t, const ode::State& y) -> ode::State {
    ++evaluations_;
    if (!differentiable) {
      // Autograd for the vector-Jacobian products, also under c10::InferenceMode: the
      // copies are ordinary tensors that autograd may record (inference tensors may not).
      c10::InferenceMode recordable(false);
      at::AutoGradMode enable(true);
      const Tensor x = y[0].detach().clone().requires_grad_(true);
      const Tensor c = context.defined() ? context.detach().clone() : context;
      auto [v, divergence] = velocity_and_divergence(t, x, c, trace, probe, false);
      return {v.detach(), divergence.detach()};
    }
    std::vector<Tensor> tensors{y[0]};
    if (has_context) tensors.push_back(context);
    tensors.insert(tensors.end(), parameters.begin(), parameters.end());
    const StepArguments step{this, t, &trace, &probe, has_context};
    auto out = IsolatedStep::apply(at::TensorList(tensors), &step);
    return {out[0], out[1]};
  };
  const ode::Solution solution = ode::integrate(
      dynamics, {inputs, at::zeros({batch}, inputs.options())}, t0, t1, options_.solver);
  ++solves_;
  return {solution.state[0], solution.state[1]};
}

Tensor ContinuousFlowImpl::solve_outputs(const Tensor& inputs, const Tensor& context, double t0,
                                         double t1, const ode::SolverOptions& solver) {
  check_event(inputs);
  const int64_t batch = inputs.size(0);
  auto dynamics = [&](double t, const ode::State& y) -> ode::State {
    ++evaluations_;
    return {velocity(at::full({batch}, t, y[0].options()), y[0], context)};
  };
  const ode::Solution solution = ode::integrate(dynamics, {inputs}, t0, t1, solver);
  ++solves_;
  return solution.state[0];
}

TransformOutput ContinuousFlowImpl::forward_impl(const Tensor& inputs, const Tensor& context) {
  return solve(inputs, context, time_end_, time_begin_);
}

TransformOutput ContinuousFlowImpl::inverse_impl(const Tensor& inputs, const Tensor& context) {
  return solve(inputs, context, time_begin_, time_end_);
}

Tensor ContinuousFlowImpl::forward_outputs_impl(const Tensor& inputs, const Tensor& context) {
  return solve_outputs(inputs, context, time_end_, time_begin_, options_.solver);
}

Tensor ContinuousFlowImpl::inverse_outputs_impl(const Tensor& inputs, const Tensor& context) {
  return solve_outputs(inputs, context, time_begin_, time_end_, options_.solver);
}

std::vector<Tensor> ContinuousFlowImpl::path(const Tensor& noise, const Tensor& context,
                                             const std::vector<double>& times) {
  std::vector<Tensor> points;
  Tensor x = noise;
  double t = 0.0;
  ode::SolverOptions segment = options_.solver;
  for (double next : times) {
    if (!(next >= t && next <= 1.0)) {
      throw ConfigError("cnf path: times must be increasing within [0, 1]");
    }
    if (next > t) {
      // A fixed-step solver keeps its step length: each segment gets its share of steps.
      if (ode::is_fixed_step(segment.method)) {
        segment.steps = std::max<int64_t>(
            1, std::llround(static_cast<double>(options_.solver.steps) * (next - t)));
      }
      x = solve_outputs(x, context, t, next, segment);
      t = next;
    }
    points.push_back(x);
  }
  return points;
}

std::vector<ContinuousFlowImpl*> continuous_layers(TransformImpl& transform) {
  std::vector<ContinuousFlowImpl*> layers;
  if (auto* self = dynamic_cast<ContinuousFlowImpl*>(&transform)) layers.push_back(self);
  for (const auto& module : transform.modules(/*include_self=*/false)) {
    if (auto* layer = dynamic_cast<ContinuousFlowImpl*>(module.get())) layers.push_back(layer);
  }
  return layers;
}

}  // namespace zflow
