#include "zflow/train/objective.h"

#include "zflow/core/error.h"
#include "zflow/train/flow_matching.h"
#include "zflow/train/trainer.h"

namespace zflow::train {

double Objective::validation_loss(FlowImpl& flow, const Tensor& data, const Tensor& context) {
  return mean_nll(flow, data, context);
}

Tensor MaximumLikelihood::loss(FlowImpl& flow, const Batch& batch) {
  return -flow.log_prob(batch.data, batch.context).mean();
}

std::shared_ptr<Objective> make_objective(const std::string& name) {
  if (name == "likelihood") return std::make_shared<MaximumLikelihood>();
  if (name == "flow-matching") return std::make_shared<FlowMatching>();
  throw ConfigError("unknown objective '" + name + "' (choose likelihood or flow-matching)");
}

}  // namespace zflow::train
