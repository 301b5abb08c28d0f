// Targets from TorchScript files: a module saved by Python (torch.jit.script(m).save(path))
// whose forward maps x [B, D] to log p̃ [B].

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <torch/script.h>

#include "zflow/core/error.h"
#include "zflow/targets/target.h"

namespace zflow {

namespace {

/// The first line of an exception's message: c10::Error appends a C++ or TorchScript
/// backtrace after it, and zflow's messages are one line.
std::string first_line(const std::string& text) {
  const auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

[[noreturn]] void config_error(const std::string& path, const std::string& what) {
  throw ConfigError("target " + path + ": " + what);
}

/// A float or int attribute as a double; ConfigError for anything else.
double number_attribute(const std::string& path, const std::string& name,
                        const c10::IValue& value) {
  if (value.isDouble()) return value.toDouble();
  if (value.isInt()) return static_cast<double>(value.toInt());
  config_error(path, "attribute '" + name + "' must be a float, got " + value.tagKind());
}

/// A list of floats (or ints) attribute; ConfigError for anything else.
std::vector<double> list_attribute(const std::string& path, const std::string& name,
                                   const c10::IValue& value) {
  if (!value.isList()) {
    config_error(path, "attribute '" + name + "' must be a list of floats, got " + value.tagKind());
  }
  std::vector<double> out;
  for (const c10::IValue& element : value.toListRef()) {
    out.push_back(number_attribute(path, name, element));
  }
  return out;
}

class TorchScriptTarget final : public Target {
 public:
  TorchScriptTarget(std::string path, torch::jit::Module module, int64_t dim, Domain domain,
                    std::optional<double> log_z)
      : path_(std::move(path)),
        module_(std::move(module)),
        dim_(dim),
        domain_(std::move(domain)),
        log_z_(log_z) {}

  std::string name() const override { return std::filesystem::path(path_).filename().string(); }
  int64_t dim() const override { return dim_; }
  Domain domain() const override { return domain_; }
  std::optional<double> log_normalizer() const override { return log_z_; }
  Domain plot_box() const override { return domain_.bounded() ? domain_ : Target::plot_box(); }

  // x goes to the module as it is (float32 or float64, with its autograd graph: reverse KL
  // differentiates through the module, so no NoGradGuard here). A module written for one
  // dtype only fails inside forward; that failure becomes a zflow::Error.
  at::Tensor log_density(const at::Tensor& x) const override {
    c10::IValue out;
    try {
      // Module is a handle onto shared state; forward is non-const only in its signature.
      torch::jit::Module module = module_;
      out = module.forward({x});
    } catch (const std::exception& e) {
      throw Error("target " + path_ + ": forward failed (" + first_line(e.what()) + ")");
    }
    if (!out.isTensor()) {
      throw Error("target " + path_ + ": forward returned " + out.tagKind() + ", not a Tensor");
    }
    return out.toTensor();
  }

 private:
  std::string path_;
  torch::jit::Module module_;
  int64_t dim_;
  Domain domain_;
  std::optional<double> log_z_;
};

}  // namespace

TargetPtr load_torchscript_target(const std::string& path, int64_t dim) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) config_error(path, "no such file");
  torch::jit::Module module;
  try {
    module = torch::jit::load(path);
  } catch (const std::exception& e) {
    config_error(path, "not a TorchScript module (" + first_line(e.what()) + ")");
  }
  if (!module.find_method("forward")) config_error(path, "the module has no forward method");

  // D: the caller's when given, else the module's `dim`; both given must agree.
  if (module.hasattr("dim")) {
    const c10::IValue value = module.attr("dim");
    if (!value.isInt())
      config_error(path, "attribute 'dim' must be an int, got " + value.tagKind());
    const int64_t declared = value.toInt();
    if (dim > 0 && declared != dim) {
      config_error(path, "the module's dim is " + std::to_string(declared) + " (got --dim " +
                             std::to_string(dim) + ")");
    }
    dim = declared;
  }
  if (dim <= 0) {
    config_error(path, "the dimension is unknown: give --dim or an int attribute 'dim'");
  }

  std::optional<double> log_z;
  if (module.hasattr("log_z")) log_z = number_attribute(path, "log_z", module.attr("log_z"));

  Domain domain;
  const bool has_low = module.hasattr("low");
  if (has_low != module.hasattr("high")) {
    config_error(path, "a bounded domain needs both attributes 'low' and 'high'");
  }
  if (has_low) {
    domain.low = list_attribute(path, "low", module.attr("low"));
    domain.high = list_attribute(path, "high", module.attr("high"));
    if (domain.low.size() != static_cast<size_t>(dim) ||
        domain.high.size() != static_cast<size_t>(dim)) {
      config_error(path, "'low' and 'high' must have " + std::to_string(dim) + " entries");
    }
    for (size_t i = 0; i < domain.low.size(); ++i) {
      if (!(domain.low[i] < domain.high[i])) {
        config_error(
            path, "low[" + std::to_string(i) + "] must be below high[" + std::to_string(i) + "]");
      }
    }
  }
  return std::make_shared<TorchScriptTarget>(path, std::move(module), dim, std::move(domain),
                                             log_z);
}

}  // namespace zflow
