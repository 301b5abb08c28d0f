#include "zflow/flows/checkpoint.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/flows/registry.h"
#include "zflow/io/safetensors.h"
#include "zflow/version.h"

namespace zflow {

namespace {

constexpr const char* kFormat = "zflow-flow/1";

/// The floating-point dtypes a model can be stored in, by their name in the metadata.
constexpr std::pair<at::ScalarType, const char*> kFloatDtypes[] = {{at::kFloat, "float32"},
                                                                   {at::kDouble, "float64"},
                                                                   {at::kHalf, "float16"},
                                                                   {at::kBFloat16, "bfloat16"}};

const char* float_dtype_name(at::ScalarType type) {
  for (const auto& [t, name] : kFloatDtypes) {
    if (t == type) return name;
  }
  return c10::toString(type);
}

/// The dtype of the model's floating-point tensors (float32 when it has none).
at::ScalarType model_dtype(torch::nn::Module& module) {
  for (const auto& [name, tensor] : named_state(module)) {
    if (tensor.is_floating_point()) return tensor.scalar_type();
  }
  return at::kFloat;
}

/// The dtype every floating-point tensor of the file must have: the one its metadata
/// records, or (files written before it was recorded) that of its first such tensor.
at::ScalarType stored_dtype(const std::string& path, const io::TensorFile& file) {
  const auto recorded = file.metadata.find("dtype");
  if (recorded != file.metadata.end()) {
    for (const auto& [type, name] : kFloatDtypes) {
      if (recorded->second == name) return type;
    }
    throw IOError(path + ": unknown model dtype \"" + recorded->second +
                  "\" in the metadata (float32, float64, float16 or bfloat16)");
  }
  for (const auto& [name, tensor] : file.tensors) {
    if (tensor.is_floating_point()) return tensor.scalar_type();
  }
  return at::kFloat;
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> named_state(torch::nn::Module& module) {
  std::vector<std::pair<std::string, Tensor>> state;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    state.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    state.emplace_back(item.key(), item.value());
  return state;
}

void load_named_state(torch::nn::Module& module,
                      const std::vector<std::pair<std::string, Tensor>>& state,
                      const std::string& source) {
  std::map<std::string, Tensor> stored(state.begin(), state.end());
  torch::NoGradGuard no_grad;
  auto targets = named_state(module);
  for (auto& [name, target] : targets) {
    auto it = stored.find(name);
    if (it == stored.end()) throw IOError(source + ": tensor '" + name + "' is missing");
    const Tensor& value = it->second;
    if (value.sizes() != target.sizes()) {
      std::ostringstream msg;
      msg << source << ": tensor '" << name << "' has shape " << value.sizes()
          << ", the model expects " << target.sizes();
      throw IOError(msg.str());
    }
    if (value.is_floating_point() != target.is_floating_point()) {
      throw IOError(source + ": tensor '" + name + "' has dtype " +
                    std::string(c10::toString(value.scalar_type())) + ", the model expects " +
                    c10::toString(target.scalar_type()));
    }
    if (value.is_floating_point() && !at::isfinite(value).all().item<bool>()) {
      throw IOError(source + ": tensor '" + name + "' holds NaN or Inf values");
    }
    target.copy_(value);
    stored.erase(it);
  }
  if (!stored.empty())
    throw IOError(source + ": unexpected tensor '" + stored.begin()->first + "'");
}

void save_checkpoint(const std::string& path, FlowImpl& flow,
                     const std::map<std::string, std::string>& metadata) {
  io::TensorFile file;
  file.metadata = metadata;
  file.metadata["format"] = kFormat;
  file.metadata["zflow_version"] = kVersion;
  file.metadata["spec"] = flow.spec().dump();
  file.metadata["dtype"] = float_dtype_name(model_dtype(flow));
  for (auto& [name, tensor] : named_state(flow))
    file.tensors.emplace_back(name, tensor.detach().cpu());
  io::save_safetensors(path, file);
}

Checkpoint load_checkpoint(const std::string& path) {
  io::TensorFile file = io::load_safetensors(path);
  auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != kFormat) {
    throw IOError(path + ": not a zflow model (its metadata has no \"format\": \"" + kFormat +
                  "\")");
  }
  auto spec_text = file.metadata.find("spec");
  if (spec_text == file.metadata.end()) throw IOError(path + ": the metadata has no model spec");
  Json spec;
  try {
    spec = Json::parse(spec_text->second);
  } catch (const nlohmann::json::exception& e) {
    throw IOError(path + ": the model spec is not valid JSON (" + e.what() + ")");
  }
  FlowPtr flow;
  try {
    flow = make_flow(spec);
  } catch (const ConfigError& e) {
    throw IOError(path + ": the model spec cannot be built: " + e.what());
  }
  // The stored floating-point dtype decides the model's dtype; every tensor must then have
  // exactly the dtype of the model's own (a single F64 or BF16 tensor in a float32 model is
  // damage, not a reason to convert the model).
  const at::ScalarType dtype = stored_dtype(path, file);
  flow->to(dtype);
  std::map<std::string, at::ScalarType> expected;
  for (const auto& [name, tensor] : named_state(*flow)) expected[name] = tensor.scalar_type();
  for (const auto& [name, tensor] : file.tensors) {
    const auto it = expected.find(name);
    if (it != expected.end() && tensor.scalar_type() != it->second) {
      throw IOError(path + ": tensor '" + name + "' is stored as " +
                    float_dtype_name(tensor.scalar_type()) + ", the model is " +
                    float_dtype_name(dtype) + " and expects " + float_dtype_name(it->second));
    }
  }
  load_named_state(*flow, file.tensors, path);
  flow->eval();
  return {flow, file.metadata};
}

}  // namespace zflow
