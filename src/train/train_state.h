#pragma once
// The resumable training state (internal to the trainer): current and best weights, the
// optimizer (LibTorch's own archive, stored as bytes), torch's RNG and the loop's counters,
// in one safetensors file.

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "zflow/flows/flow.h"
#include "zflow/train/flat_adam.h"

namespace zflow::train {

struct LoopState {
  /// Steps done.
  int64_t step = 0;
  int64_t best_step = 0;
  double best_val = std::numeric_limits<double>::infinity();
  int64_t skipped = 0;
  int64_t evals_without_improvement = 0;
  std::vector<std::pair<std::string, Tensor>> best;
};

/// A detached copy of the module's parameters and buffers.
std::vector<std::pair<std::string, Tensor>> clone_state(torch::nn::Module& module);

void save_state(const std::string& path, FlowImpl& flow, FlatAdam& optimizer, const LoopState& s);

/// Restores the flow, the optimizer and torch's generator; IOError or ConfigError naming
/// `path` for a foreign, damaged or other model's state.
LoopState load_state(const std::string& path, FlowImpl& flow, FlatAdam& optimizer);

}  // namespace zflow::train
