#include "train_state.h"

#include <cstring>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize/archive.h>

#include "zflow/core/error.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/io/safetensors.h"

namespace zflow::train {

namespace {

// Format 2: the optimizer state is FlatAdam's (format 1 held torch::optim::Adam's).
constexpr const char* kStateFormat = "zflow-train-state/2";

}  // namespace

std::vector<std::pair<std::string, Tensor>> clone_state(torch::nn::Module& module) {
  std::vector<std::pair<std::string, Tensor>> copy;
  for (auto& [name, tensor] : named_state(module)) copy.emplace_back(name, tensor.detach().clone());
  return copy;
}

namespace {

Tensor bytes_tensor(const std::string& bytes) {
  Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

void save_state(const std::string& path, FlowImpl& flow, FlatAdam& optimizer, const LoopState& s) {
  io::TensorFile file;
  for (auto& [name, t] : named_state(flow))
    file.tensors.emplace_back("model/" + name, t.detach().cpu());
  for (auto& [name, t] : s.best) file.tensors.emplace_back("best/" + name, t.cpu());
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  file.tensors.emplace_back("optimizer", bytes_tensor(bytes.str()));
  file.tensors.emplace_back("rng", at::detail::getDefaultCPUGenerator().get_state());
  file.metadata = {{"format", kStateFormat},
                   {"spec", flow.spec().dump()},
                   {"step", std::to_string(s.step)},
                   {"best_step", std::to_string(s.best_step)},
                   {"best_val", Json(s.best_val).dump()},
                   {"skipped", std::to_string(s.skipped)},
                   {"evals_without_improvement", std::to_string(s.evals_without_improvement)}};
  io::save_safetensors(path, file);
}

LoopState load_state(const std::string& path, FlowImpl& flow, FlatAdam& optimizer) {
  io::TensorFile file = io::load_safetensors(path);
  if (file.metadata["format"] == "zflow-train-state/1") {
    throw IOError(path +
                  ": this training state was written by an older zflow and cannot be "
                  "resumed; start the training again");
  }
  if (file.metadata["format"] != kStateFormat) throw IOError(path + ": not a zflow training state");
  if (file.metadata["spec"] != flow.spec().dump()) {
    throw ConfigError(path + ": the training state belongs to a different model (spec differs)");
  }
  std::vector<std::pair<std::string, Tensor>> model, best;
  for (auto& [name, t] : file.tensors) {
    if (name.rfind("model/", 0) == 0) model.emplace_back(name.substr(6), t);
    if (name.rfind("best/", 0) == 0) best.emplace_back(name.substr(5), t);
  }
  load_named_state(flow, model, path);
  LoopState s;
  try {
    s.step = std::stoll(file.metadata.at("step"));
    s.best_step = std::stoll(file.metadata.at("best_step"));
    // JSON has no infinity: a state saved before any finite validation stores null.
    const Json best_val = Json::parse(file.metadata.at("best_val"));
    s.best_val =
        best_val.is_null() ? std::numeric_limits<double>::infinity() : best_val.get<double>();
    s.skipped = std::stoll(file.metadata.at("skipped"));
    s.evals_without_improvement = std::stoll(file.metadata.at("evals_without_improvement"));
  } catch (const std::exception&) {
    throw IOError(path + ": damaged counters in the training state");
  }
  const auto options =
      flow.parameters().empty() ? at::TensorOptions() : flow.parameters()[0].options();
  for (auto& [name, t] : best)
    s.best.emplace_back(name, t.to(options.device()).to(options.dtype()));
  if (s.best.empty()) s.best = clone_state(flow);
  const Tensor& opt_bytes = file.at("optimizer");
  torch::serialize::InputArchive archive;
  archive.load_from(reinterpret_cast<const char*>(opt_bytes.data_ptr<uint8_t>()),
                    static_cast<size_t>(opt_bytes.numel()));
  try {
    optimizer.load(archive);
  } catch (const IOError& e) {
    throw IOError(path + ": " + e.what());
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(file.at("rng"));
  return s;
}

}  // namespace zflow::train
