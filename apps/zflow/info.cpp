// zflow info: what a model file holds, or what this machine runs on.

#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "common.h"
#include "zflow/core/error.h"
#include "zflow/train/progress.h"
#include "zflow/train/trainer.h"
#include "zflow/version.h"

namespace zflow::cli {

namespace {

struct InfoArgs {
  std::string model;
  bool system = false;
  bool json = false;
  int threads = 1;
};

std::string join_numbers(const Json& values) {
  std::string out = "[";
  for (const auto& v : values) {
    if (out.size() > 1) out += ", ";
    out += v.is_number() ? fmt(v.get<double>()) : v.dump();
  }
  return out + "]";
}

std::vector<std::string> layer_descriptions(FlowImpl& flow) {
  std::vector<std::string> out;
  const TransformPtr transform = flow.transform();
  if (auto composite = std::dynamic_pointer_cast<CompositeTransformImpl>(transform)) {
    for (size_t i = 0; i < composite->size(); ++i) out.push_back(composite->layer(i)->describe());
  } else {
    out.push_back(transform->describe());
  }
  return out;
}

/// What `zflow info --model` shows, gathered once for the text and the JSON forms.
struct ModelFacts {
  std::string architecture;
  std::vector<std::string> layers;
  int64_t params = 0;
  std::string written_by;
  Json embedding;
  Json context_standardization = nullptr;
};

ModelFacts model_facts(const Model& model) {
  ModelFacts f;
  std::ostringstream architecture;
  model.flow->pretty_print(architecture);
  f.architecture = architecture.str();
  f.layers = layer_descriptions(*model.flow);
  f.params = count_parameters(*model.flow);
  f.written_by = model.metadata.count("zflow_version") ? model.metadata.at("zflow_version")
                                                       : std::string("unknown");
  const Json flow_spec = model.flow->spec();
  f.embedding = flow_spec.value("embedding", Json());
  if (flow_spec.contains("context_standardize")) {
    const Json& c = flow_spec["context_standardize"];
    f.context_standardization = {{"mean", c.value("mean", Json::array())},
                                 {"std", c.value("std", Json::array())}};
  }
  return f;
}

void print_model_json(const Model& model, const ModelFacts& f) {
  const ModelCard& card = model.card;
  Json out = {
      {"file", model.path},
      {"zflow_version", kVersion},
      {"written_by", f.written_by},
      {"model_card", card.version},
      {"architecture", f.architecture},
      {"layers", f.layers},
      {"base", model.flow->base()->type()},
      {"parameters", f.params},
      {"dtype", dtype_name(model.dtype)},
      {"features", model.features},
      {"image_shape", model.image() ? Json(model.image_shape) : Json(nullptr)},
      {"columns", model.columns},
      {"context_features", model.context_features},
      {"context_columns", model.conditional() ? Json(model.context_header()) : Json::array()},
      {"context_standardization", f.context_standardization},
      {"embedding", f.embedding},
      {"dataset", card.dataset.empty() ? Json(nullptr) : Json(card.dataset)},
      {"train", card.train},
      {"standardization", card.standardization},
      {"spec", metadata_json(model, "spec")}};
  std::cout << out.dump(2) << std::endl;
}

void print_context(const Model& model, const ModelFacts& f) {
  if (!model.conditional()) {
    std::cout << "context:      none (unconditional)\n";
    return;
  }
  std::cout << "context:      " << model.describe_context() << "\n";
  if (f.context_standardization.is_object()) {
    std::cout << "  standardized: mean " << join_numbers(f.context_standardization["mean"])
              << ", std " << join_numbers(f.context_standardization["std"]) << "\n";
  }
  const Json& e = f.embedding;
  if (e.is_object()) {
    std::cout << "  embedding:  " << e.value("type", std::string("mlp")) << " "
              << model.context_features << " -> " << e.value("features", 0) << " (hidden "
              << e.value("hidden", 0) << ", " << e.value("layers", 0) << " layer"
              << (e.value("layers", 0) == 1 ? "" : "s") << ", "
              << e.value("activation", std::string()) << ")\n";
  } else {
    std::cout << "  embedding:  none (the layers see the context directly)\n";
  }
}

/// "1.877 ± 0.032", or the value alone where the error is not a finite number (one sample).
std::string with_error(const Json& object, const std::string& key, const std::string& se_key) {
  const double se = json_number(object, se_key);
  return fmt(json_number(object, key), 5) + (std::isfinite(se) ? " ± " + fmt(se, 2) : "");
}

/// A model written by fit-target: the target, the objective, the best validation loss and
/// the importance-sampling estimate (it has no NLL of data to show).
void print_target_training(const Json& train) {
  const Json& t = train["target"];
  const Json r = train.value("result", Json::object());
  const Json o = train.value("options", Json::object());
  const std::string name = t.value("name", std::string("?"));
  const std::string source = t.value("source", std::string());
  const Json log_z = t.value("log_z", Json());
  std::cout << "target:       " << name << " (D = " << t.value("dim", int64_t{0})
            << (t.value("domain", Json()).is_object() ? ", bounded" : "")
            << (log_z.is_number() ? ", exact log Z " + fmt(log_z.get<double>(), 5) : std::string())
            << ")" << (!source.empty() && source != name ? " from " + source : std::string())
            << "\n"
            << "training:     " << r.value("steps", int64_t{0}) << " steps in "
            << fmt(r.value("seconds", 0.0), 3) << " s by " << o.value("objective", std::string("?"))
            << "; best validation loss " << fmt(json_number(r, "best_val_loss")) << " ("
            << r.value("validation", std::string("validation")) << ") at step "
            << r.value("best_step", int64_t{0}) << "; " << r.value("skipped_steps", int64_t{0})
            << " skipped steps" << (r.value("interrupted", false) ? "; interrupted" : "") << "\n";
  const Json e = train.value("estimate", Json());
  if (e.is_object()) {
    std::cout << "estimate:     log Z = " << with_error(e, "log_z", "log_z_stderr") << " from "
              << e.value("samples", int64_t{0}) << " samples of the flow; ESS "
              << fmt(100 * json_number(e, "ess"), 3) << " %; unweighting efficiency "
              << fmt(100 * json_number(e, "unweighting_efficiency"), 3) << " %"
              << (log_z.is_number()
                      ? "; error " + fmt(json_number(e, "log_z") - log_z.get<double>(), 3)
                      : std::string())
              << "\n";
  } else {
    std::cout << "estimate:     none (fitted with --final-samples 0, or interrupted)\n";
  }
  if (o.is_object()) std::cout << "options:      " << o.dump() << "\n";
}

void print_training(const Model& model) {
  const Json& train = model.card.train;
  if (!train.is_object() || !train.contains("result")) return;
  if (train.contains("target") && train["target"].is_object()) {
    print_target_training(train);
    return;
  }
  const Json& r = train["result"];
  const Json& o = train.value("options", Json::object());
  if (!r.contains("best_val_nll") && r.contains("best_val_loss")) {
    // Flow matching: the score is the regression loss, not an NLL.
    std::cout << "training:     " << r.value("steps", 0) << " steps in "
              << fmt(r.value("seconds", 0.0), 3) << " s; best validation loss "
              << fmt(json_number(r, "best_val_loss")) << " ("
              << o.value("objective", std::string("flow-matching")) << ") at step "
              << r.value("best_step", 0) << "\n";
    if (o.is_object()) std::cout << "options:      " << o.dump() << "\n";
    return;
  }
  std::cout << "training:     " << r.value("steps", 0) << " steps in "
            << fmt(r.value("seconds", 0.0), 3) << " s; best "
            << (r.value("validation", std::string()) == "held-out" ? "validation"
                                                                   : "training-subset")
            << " NLL " << fmt(json_number(r, "best_val_nll"))
            << (model.image()
                    ? " (" +
                          fmt(train::bits_per_dim(json_number(r, "best_val_nll"), model.features)) +
                          " bits/dim)"
                    : std::string())
            << " at step " << r.value("best_step", 0) << "; " << r.value("skipped_steps", 0)
            << " skipped steps\n";
  if (o.is_object()) std::cout << "options:      " << o.dump() << "\n";
}

void model_info(const InfoArgs& a) {
  const Model model = load_model(a.model);
  const ModelFacts f = model_facts(model);
  if (a.json) {
    print_model_json(model, f);
    return;
  }
  std::cout << "model:        " << model.path << "\n"
            << "zflow:        " << kVersion << " (file written by " << f.written_by << ")\n"
            << "architecture: " << f.architecture << "\n";
  for (size_t i = 0; i < f.layers.size(); ++i) {
    std::cout << "  " << (i + 1 < 10 ? " " : "") << (i + 1) << ". " << f.layers[i] << "\n";
  }
  std::cout << "parameters:   " << f.params << "\n"
            << "dtype:        " << dtype_name(model.dtype) << "\n"
            << "features:     " << model.features;
  if (model.image()) std::cout << " (images " << shape_string(model.image_shape) << ")";
  if (!header_or_none(model.columns).empty()) {
    std::string names;
    for (const auto& c : model.columns) names += (names.empty() ? "" : ", ") + c;
    std::cout << " (" << names << ")";
  }
  std::cout << "\n";
  print_context(model, f);
  if (!model.card.dataset.empty()) std::cout << "dataset:      " << model.card.dataset << "\n";
  print_training(model);
  const Json& standardization = model.card.standardization;
  if (standardization.is_object()) {
    std::cout << "standardized: mean " << join_numbers(standardization.value("mean", Json::array()))
              << ", std " << join_numbers(standardization.value("std", Json::array())) << "\n";
  } else if (model.metadata.count("standardization")) {
    std::cout << "standardized: no\n";
  }
}

void system_info(const InfoArgs& a) {
  apply_threads(a.threads, Workload::other);
  const std::string blas = active_blas();
  const int cpus = train::available_cpus();
  if (a.json) {
    Json out = {{"zflow_version", kVersion},
                {"torch_version", TORCH_VERSION},
                {"blas", blas},
                {"reference_blas", is_reference_blas(blas)},
                {"threads", at::get_num_threads()},
                {"interop_threads", at::get_num_interop_threads()},
                {"cpus", cpus}};
    std::cout << out.dump(2) << std::endl;
    return;
  }
  std::cout << "zflow:   " << kVersion << "\n"
            << "torch:   " << TORCH_VERSION << "\n"
            << "BLAS:    " << blas
            << (is_reference_blas(blas) ? "  <- slow; install OpenBLAS (libopenblas0-pthread)" : "")
            << "\n"
            << "threads: " << at::get_num_threads() << " intra-op, "
            << at::get_num_interop_threads() << " inter-op\n"
            << "CPUs:    " << cpus << " usable by this process\n";
}

}  // namespace

void add_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* sub =
      app.add_subcommand("info", "Describe a model file (--model) or this machine (--system)");
  set_example(sub,
              "zflow info --model model.safetensors\n"
              "  zflow info --system");
  auto* model = sub->add_option("--model,-m", a->model,
                                "Model file written by 'zflow train' or 'zflow fit-target'");
  auto* system = sub->add_flag("--system", a->system, "BLAS library, torch version, threads, CPUs");
  model->excludes(system);
  sub->add_flag("--json", a->json, "Print JSON instead of text");
  add_threads_option(sub, a->threads);
  sub->callback([a] {
    if (a->system) {
      system_info(*a);
    } else if (!a->model.empty()) {
      model_info(*a);
    } else {
      throw ConfigError("info needs --model FILE or --system");
    }
  });
}

}  // namespace zflow::cli
