#pragma once
// What zflow fit-target and zflow integrate share: the --target and --dim options, the
// target a model was fitted to (from its model card), and importance sampling with a
// progress line.

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common.h"
#include "zflow/targets/target.h"
#include "zflow/variational/importance.h"

namespace zflow::cli {

struct TargetArgs {
  /// A built-in name or a TorchScript file; empty: the model card's.
  std::string target;
  /// D (0: the target's default, or a TorchScript file's `dim`).
  int64_t dim = 0;
};

/// --target (required or not) and --dim.
void add_target_options(CLI::App* sub, TargetArgs& args, bool required);

/// The target named by `args`, or else the one `model` was fitted to (its model card's
/// train.target); ConfigError when there is neither. A TorchScript file named in a model
/// card is looked for where it was, then beside the model file.
TargetPtr load_target(const TargetArgs& args, const Model* model);

/// {"name", "source", "dim", "domain": {"low", "high"} or null, "log_z" or null}: what a
/// model card records of its target.
Json target_json(const Target& target, const std::string& source);

/// The centre of a box and a quarter of its width per dimension: the scale at which a
/// target's plot box becomes [−2, 2]^D (fit-target's standardisation) and the Gaussian
/// plain Monte Carlo proposal of integrate.
struct BoxScale {
  std::vector<double> center;
  std::vector<double> quarter;
};
BoxScale box_scale(const Domain& box);

/// Importance sampling with a progress line on stderr (unless `quiet`) for large runs.
ImportanceSummary importance_sample_with_progress(const Proposal& proposal, const Target& target,
                                                  ImportanceOptions options, bool quiet);

/// The proposal of a flow: its samples and their log densities, without autograd.
Proposal flow_proposal(FlowImpl& flow);

}  // namespace zflow::cli
