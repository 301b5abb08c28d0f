#pragma once
/// \file
/// One file per model, in the safetensors format: every parameter and buffer under its
/// module path, and in "__metadata__" the flow's spec (JSON), the standardisation, the
/// zflow version and any user entries (`zflow train` writes its model card there,
/// flows/model_card.h). Safetensors: https://github.com/huggingface/safetensors. See
/// docs/conventions.md.
///
/// Example:
///
///     zflow::save_checkpoint("model.safetensors", *flow, {{"note", "first try"}});
///     zflow::Checkpoint back = zflow::load_checkpoint("model.safetensors");
///     at::Tensor logp = back.flow->log_prob(x);    // the same model, in eval mode

#include <map>
#include <string>

#include "zflow/flows/flow.h"

namespace zflow {

/// A loaded model.
struct Checkpoint {
  FlowPtr flow;
  /// Everything in "__metadata__" (spec, version, user entries).
  std::map<std::string, std::string> metadata;
};

/// Writes the flow (spec + weights) atomically; `metadata` entries are added to the
/// header ("spec", "format", "zflow_version" and "dtype", the model's floating-point dtype
/// such as "float32", are reserved).
void save_checkpoint(const std::string& path, FlowImpl& flow,
                     const std::map<std::string, std::string>& metadata = {});

/// Reads a checkpoint, rebuilds the flow from its spec (sizes checked before anything is
/// allocated, see spec_size.h) and loads the weights, checking that every tensor is present
/// with the right shape and exactly the dtype the model expects: the floating-point dtype
/// the metadata records ("dtype"; in older files, that of the first floating-point
/// tensor), the module's own for integer buffers. IOError naming the file and the fault
/// otherwise. The flow comes back in that dtype, in eval mode.
Checkpoint load_checkpoint(const std::string& path);

/// The flow's parameters and buffers by their module path, as stored in a checkpoint.
std::vector<std::pair<std::string, Tensor>> named_state(torch::nn::Module& module);

/// Copies `state` into the module's parameters and buffers (names and shapes checked).
void load_named_state(torch::nn::Module& module,
                      const std::vector<std::pair<std::string, Tensor>>& state,
                      const std::string& source);

}  // namespace zflow
