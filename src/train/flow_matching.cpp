#include "zflow/train/flow_matching.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/train/assignment.h"
#include "zflow/transforms/continuous.h"

namespace zflow::train {

namespace {

/// The flow split around its continuous layer.
struct Parts {
  std::vector<TransformPtr> before;  // data side, in forward order
  ContinuousFlowImpl* continuous = nullptr;
  std::vector<TransformPtr> after;  // noise side, in forward order
};

Parts split_flow(FlowImpl& flow) {
  Parts parts;
  TransformPtr transform = flow.transform();
  std::vector<TransformPtr> layers;
  if (auto composite = std::dynamic_pointer_cast<CompositeTransformImpl>(transform)) {
    for (size_t i = 0; i < composite->size(); ++i) layers.push_back(composite->layer(i));
  } else {
    layers.push_back(transform);
  }
  for (const auto& layer : layers) {
    auto* continuous = dynamic_cast<ContinuousFlowImpl*>(layer.get());
    if (continuous && parts.continuous) {
      throw ConfigError("flow matching trains one continuous layer; this flow has several");
    }
    if (continuous) {
      parts.continuous = continuous;
    } else {
      (parts.continuous ? parts.after : parts.before).push_back(layer);
    }
  }
  if (!parts.continuous) {
    throw ConfigError(
        "flow matching needs a continuous flow (a cnf layer, e.g. --model cnf) among the "
        "flow's top layers");
  }
  // Every parameter must be one that the regression reaches.
  auto check_fixed = [](torch::nn::Module& module, const std::string& what) {
    for (const auto& p : module.named_parameters()) {
      if (p.value().requires_grad()) {
        throw ConfigError("flow matching trains the velocity field only, but the " + what +
                          " has the parameter '" + p.key() +
                          "'; use layers without parameters around the cnf layer");
      }
    }
  };
  for (const auto& layer : parts.before) check_fixed(*layer, layer->type() + " layer");
  for (const auto& layer : parts.after) check_fixed(*layer, layer->type() + " layer");
  check_fixed(*flow.base(), "base distribution");
  if (flow.base()->context_features() > 0) {
    throw ConfigError("flow matching needs an unconditional base distribution");
  }
  return parts;
}

/// The regression loss of one batch: mean over rows and coordinates of ‖v − u‖².
Tensor batch_loss(FlowImpl& flow, const Parts& parts, const Tensor& data, const Tensor& context,
                  const FlowMatchingOptions& o) {
  const int64_t n = data.size(0);
  const Tensor c = flow.embed_context(context);
  Tensor x1, x0;
  {
    at::NoGradGuard no_grad;
    x1 = data;
    for (const auto& layer : parts.before) x1 = layer->forward_outputs(x1, c);
    x0 = flow.base()->sample(n).to(x1.options());
    for (auto it = parts.after.rbegin(); it != parts.after.rend(); ++it) {
      x0 = (*it)->inverse_outputs(x0, c);
    }
    if (o.coupling == "ot" && n > 1) {
      // Rows: data, columns: noise; data row i gets noise column[i].
      const Tensor flat1 = x1.reshape({n, -1});
      const Tensor flat0 = x0.reshape({n, -1});
      const Tensor cost = (flat1.unsqueeze(1) - flat0.unsqueeze(0)).pow(2).sum(2);
      const auto column = linear_assignment(cost);
      x0 = x0.index_select(0, at::tensor(column, at::TensorOptions(at::kLong)).to(x0.device()));
    }
  }
  const Tensor t = at::rand({n}, x1.options());
  std::vector<int64_t> shape(static_cast<size_t>(x1.dim()), 1);
  shape[0] = n;
  const Tensor tb = t.view(shape);
  const double keep = 1.0 - o.sigma_min;
  const Tensor xt = (1 - keep * tb) * x0 + tb * x1;
  const Tensor target = x1 - keep * x0;
  const Tensor v = parts.continuous->velocity(t, xt, c);
  return (v - target).pow(2).mean();
}

}  // namespace

void check_flow_matching_options(const FlowMatchingOptions& o) {
  if (o.coupling != "independent" && o.coupling != "ot") {
    throw ConfigError("flow matching: unknown coupling '" + o.coupling +
                      "' (choose independent or ot)");
  }
  if (!(o.sigma_min >= 0 && o.sigma_min < 1)) {
    throw ConfigError("flow matching: sigma_min must be in [0, 1), got " +
                      std::to_string(o.sigma_min));
  }
  if (o.validation_batch < 1) throw ConfigError("flow matching: validation_batch must be >= 1");
}

FlowMatching::FlowMatching(FlowMatchingOptions options) : options_(std::move(options)) {
  check_flow_matching_options(options_);
}

std::string FlowMatching::name() const {
  return options_.coupling == "ot" ? "flow-matching (minibatch OT)" : "flow-matching";
}

Tensor FlowMatching::loss(FlowImpl& flow, const Batch& batch) {
  const Parts parts = split_flow(flow);
  if (options_.coupling == "ot" && batch.context.defined()) {
    throw ConfigError(
        "flow matching: minibatch OT pairs noise and data regardless of the context, which "
        "would bias a conditional flow; use the independent coupling");
  }
  return batch_loss(flow, parts, batch.data, batch.context, options_);
}

double FlowMatching::validation_loss(FlowImpl& flow, const Tensor& data, const Tensor& context) {
  const Parts parts = split_flow(flow);
  at::NoGradGuard no_grad;
  const int64_t rows = data.size(0);
  double total = 0.0;
  for (int64_t start = 0; start < rows; start += options_.validation_batch) {
    const int64_t count = std::min(options_.validation_batch, rows - start);
    const Tensor c = context.defined() ? context.narrow(0, start, count) : Tensor();
    total += batch_loss(flow, parts, data.narrow(0, start, count), c, options_).item<double>() *
             static_cast<double>(count);
  }
  return rows == 0 ? 0.0 : total / static_cast<double>(rows);
}

}  // namespace zflow::train
