// zflow fit-target and zflow integrate: their shared target handling (target_options.h).

#include "target_options.h"

#include <filesystem>
#include <iostream>

#include <c10/core/GradMode.h>

#include "zflow/core/error.h"
#include "zflow/targets/builtin.h"
#include "zflow/train/progress.h"

namespace zflow::cli {

void add_target_options(CLI::App* sub, TargetArgs& args, bool required) {
  std::string names;
  for (const auto& info : builtin_targets()) names += (names.empty() ? "" : ", ") + info.name;
  auto* option =
      sub->add_option("--target", args.target,
                      "A built-in target (" + names +
                          ") or a TorchScript file whose forward maps [B, D] to [B] log densities" +
                          (required ? std::string() : std::string(" (default: the model's)")));
  if (required) option->required();
  sub->add_option("--dim", args.dim,
                  "Dimension D of the target (0: its default; a TorchScript file may declare "
                  "its own)")
      ->check(non_negative())
      ->capture_default_str();
}

TargetPtr load_target(const TargetArgs& args, const Model* model) {
  if (!args.target.empty()) return resolve_target(args.target, args.dim);
  if (model) {
    const Json card_train = metadata_json(*model, "train");
    if (card_train.is_object() && card_train.contains("target") &&
        card_train["target"].is_object()) {
      const Json& t = card_train["target"];
      std::string source = t.value("source", "");
      const int64_t dim = args.dim > 0 ? args.dim : t.value("dim", int64_t{0});
      std::error_code ec;
      if (!source.empty() && !std::filesystem::exists(source, ec)) {
        // A TorchScript file moved along with the model.
        const auto beside = std::filesystem::path(model->path).parent_path() /
                            std::filesystem::path(source).filename();
        if (std::filesystem::exists(beside, ec)) source = beside.string();
      }
      if (!source.empty()) return resolve_target(source, dim);
    }
  }
  throw ConfigError(
      "no target: give --target (a built-in name or a TorchScript file); the model file does not "
      "name the target it was fitted to");
}

Json target_json(const Target& target, const std::string& source) {
  const Domain domain = target.domain();
  const std::optional<double> log_z = target.log_normalizer();
  return {{"name", target.name()},
          {"source", source},
          {"dim", target.dim()},
          {"domain", domain.bounded() ? Json{{"low", domain.low}, {"high", domain.high}} : Json()},
          {"log_z", log_z ? Json(*log_z) : Json()}};
}

BoxScale box_scale(const Domain& box) {
  BoxScale scale;
  for (size_t i = 0; i < box.low.size(); ++i) {
    scale.center.push_back(0.5 * (box.low[i] + box.high[i]));
    scale.quarter.push_back(0.25 * (box.high[i] - box.low[i]));
  }
  return scale;
}

ImportanceSummary importance_sample_with_progress(const Proposal& proposal, const Target& target,
                                                  ImportanceOptions options, bool quiet) {
  const bool show = !quiet && (options.samples >= 1000000 ||
                               (train::stderr_is_terminal() && options.samples >= 100000));
  train::Progress progress("integrate", options.samples,
                           {show ? &std::cerr : nullptr, train::stderr_is_terminal(),
                            std::max<int64_t>(options.samples / 10, 1), "sample"});
  auto user = options.on_batch;
  options.on_batch = [&](const at::Tensor& x, const at::Tensor& log_w, int64_t done) {
    if (user) user(x, log_w, done);
    progress.update(done);
  };
  ImportanceSummary summary = importance_sample(proposal, target, options);
  progress.finish();
  return summary;
}

Proposal flow_proposal(FlowImpl& flow) {
  return [&flow](int64_t n) {
    c10::AutoGradMode no_grad(false);
    return flow.sample_and_log_prob(n);
  };
}

}  // namespace zflow::cli
