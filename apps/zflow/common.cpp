#include "common.h"

#include "blas_kernels.h"

#include <dlfcn.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "zflow/core/error.h"
#include "zflow/core/threads.h"
#include "zflow/data/images.h"
#include "zflow/data/toy.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/io/image.h"
#include "zflow/io/table.h"
#include "zflow/train/progress.h"

namespace zflow::cli {

// ---- models ------------------------------------------------------------------------------

Model load_model(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw IOError(path + ": no such file");
  if (std::filesystem::is_directory(path, ec)) throw IOError(path + ": is a directory");
  Model model;
  model.path = path;
  Checkpoint checkpoint = load_checkpoint(path);
  model.flow = checkpoint.flow;
  model.metadata = std::move(checkpoint.metadata);
  const auto shape = model.flow->event_shape();
  if (shape.size() != 1 && shape.size() != 3) {
    throw DataError(path + ": the model is neither for tabular data nor for images (event shape " +
                    shape_string(shape) + ")");
  }
  model.features = 1;
  for (auto s : shape) model.features *= s;
  if (shape.size() == 3) model.image_shape = shape;
  model.dtype = at::kFloat;
  for (auto& [name, tensor] : named_state(*model.flow)) {
    if (tensor.is_floating_point()) {
      model.dtype = tensor.scalar_type();
      break;
    }
  }
  model.context_features = model.flow->context_features();
  model.card = ModelCard::from_metadata(model.metadata, model.features, model.context_features);
  model.columns = model.card.columns;
  model.context_columns = model.card.context_columns;
  model.data_indices = model.card.column_indices;
  model.context_indices = model.card.context_column_indices;
  if (model.class_conditional()) {
    model.class_names = model.card.class_names;
    if (model.class_names.empty()) {
      for (int64_t k = 0; k < model.context_features; ++k) {
        model.class_names.push_back(std::to_string(k));
      }
    }
  }
  return model;
}

namespace {

std::string plural(int64_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

data::StoredColumns stored_columns(const Model& model) {
  data::StoredColumns stored;
  stored.model = model.path;
  stored.features = model.features;
  stored.context_features = model.context_features;
  stored.names = model.columns;
  stored.context_names = model.context_columns;
  stored.indices = model.data_indices;
  stored.context_indices = model.context_indices;
  return stored;
}

}  // namespace

std::vector<std::string> Model::data_header() const { return stored_columns(*this).data_header(); }

std::vector<std::string> Model::context_header() const {
  return stored_columns(*this).context_header();
}

std::string Model::describe_context() const { return stored_columns(*this).describe_context(); }

ModelData load_model_data(const Model& model, const std::string& spec, const std::string& columns,
                          const std::string& context_columns, const std::string& header, int64_t n,
                          uint64_t seed) {
  if (model.image()) {
    if (!columns.empty() || !context_columns.empty()) {
      throw ConfigError(model.path +
                        " is an image model: --columns and --context-columns are "
                        "for tabular data");
    }
    return load_model_images(model, spec, n);
  }
  if (data::is_image_source(spec)) {
    throw ConfigError(model.path + " is a model of " + std::to_string(model.features) +
                      " columns; '" + spec + "' is image data");
  }
  return data::load_table_for(stored_columns(model), spec, columns, context_columns, header, n,
                              seed);
}

void add_data_options(CLI::App* app, DataArgs& args) {
  app->add_option("--data", args.data, "A .csv/.npy file, or a built-in dataset name")->required();
  app->add_option("--columns", args.columns, "Columns to use (default: all)");
  add_context_columns_option(app, args.context_columns);
  app->add_option("--header", args.header, "Whether the CSV has a header row")
      ->check(CLI::IsMember({"auto", "yes", "no"}))
      ->capture_default_str();
  app->add_option("--n", args.n, "Points drawn for a built-in dataset")
      ->check(positive())
      ->capture_default_str();
  app->add_option("--seed", args.seed, "Seed for a built-in dataset (distinct from training seeds)")
      ->check(non_negative())
      ->capture_default_str();
}

Data load_image_data(const std::string& spec, const std::string& default_split, int64_t limit) {
  data::ImageSet set = data::load_images(spec, default_split, limit);
  Data out;
  out.values = set.images;
  out.source = set.source;
  out.images = true;
  return out;
}

ClassData load_class_data(const std::string& spec, const std::string& default_split,
                          int64_t limit) {
  data::ImageSet set = data::load_images(spec, default_split, limit);
  if (!set.labels.defined()) {
    throw ConfigError(set.source +
                      " has no labels: a class-conditional model needs labelled images (an IDX "
                      "file with its labels file, a CIFAR folder or PNG class folders)");
  }
  ClassData out;
  out.class_names = set.class_names;
  const int64_t classes = set.class_names.empty()
                              ? (set.labels.numel() > 0 ? set.labels.max().item<int64_t>() + 1 : 0)
                              : static_cast<int64_t>(set.class_names.size());
  if (out.class_names.empty()) {
    for (int64_t k = 0; k < classes; ++k) out.class_names.push_back(std::to_string(k));
  }
  out.data.context.values = one_hot_classes(set.labels, classes, set.source);
  out.data.context.source = set.source;
  out.data.context.columns = out.class_names;
  out.data.x.values = set.images;
  out.data.x.source = set.source;
  out.data.x.images = true;
  return out;
}

ModelData load_model_images(const Model& model, const std::string& spec, int64_t limit) {
  if (!data::is_image_source(spec)) {
    throw ConfigError(model.path + " is an image model; '" + spec +
                      "' is not image data (give fashion-mnist, an IDX file, a CIFAR-10/100 folder "
                      "or a folder of PNGs)");
  }
  ModelData out;
  if (model.class_conditional()) {
    data::ImageSet set = data::load_images(spec, "test", limit);
    if (!set.labels.defined()) {
      throw ConfigError(model.path + " is class-conditional (p(x | class)); " + set.source +
                        " has no labels");
    }
    out.context.values = one_hot_classes(set.labels, model.context_features, set.source);
    out.x.values = set.images;
    out.x.source = set.source;
    out.x.images = true;
  } else {
    out.x = load_image_data(spec, "test", limit);
  }
  const std::vector<int64_t> shape(out.x.values.sizes().begin() + 1, out.x.values.sizes().end());
  if (shape != model.image_shape) {
    throw DataError(out.x.source + ": images of shape " + shape_string(shape) +
                    ", the model is for " + shape_string(model.image_shape));
  }
  return out;
}

at::Tensor one_hot_classes(const at::Tensor& labels, int64_t classes, const std::string& source) {
  const at::Tensor bad = ((labels < 0) | (labels >= classes)).nonzero();
  if (bad.size(0) > 0) {
    const int64_t row = bad[0][0].item<int64_t>();
    throw DataError(source + ": image " + std::to_string(row + 1) + " has label " +
                    std::to_string(labels[row].item<int64_t>()) + ", outside the " +
                    std::to_string(classes) + " classes 0.." + std::to_string(classes - 1));
  }
  return at::one_hot(labels.to(at::kLong), classes).to(at::kDouble);
}

at::Tensor class_context(const Model& model, const std::string& name_or_index) {
  if (!model.class_conditional()) {
    throw ConfigError("--class: " + model.path + " is not a class-conditional image model (train " +
                      "one with 'zflow train --class-conditional')");
  }
  const auto k = static_cast<int64_t>(model.class_names.size());
  int64_t chosen = -1;
  for (int64_t i = 0; i < k; ++i) {
    if (model.class_names[static_cast<size_t>(i)] == name_or_index) chosen = i;
  }
  if (chosen < 0) {
    int64_t index = -1;
    const char* end = name_or_index.data() + name_or_index.size();
    const auto [ptr, ec] = std::from_chars(name_or_index.data(), end, index);
    if (ec == std::errc() && ptr == end && index >= 0 && index < k) chosen = index;
  }
  if (chosen < 0) {
    std::string names;
    for (int64_t i = 0; i < k && i < 20; ++i) {
      names += (names.empty() ? "" : ", ") + model.class_names[static_cast<size_t>(i)];
    }
    throw ConfigError("--class " + name_or_index + ": " + model.path + " has " + std::to_string(k) +
                      " classes, 0.." + std::to_string(k - 1) + " (" + names +
                      (k > 20 ? ", ..." : "") + ")");
  }
  return at::one_hot(at::tensor({chosen}, at::kLong), k).to(at::kDouble);
}

void write_image_grid(const std::string& path, const at::Tensor& images, int64_t rows, int64_t cols,
                      int64_t scale) {
  require_extension(path, ".png", "image output");
  io::write_png(path, data::image_grid(images.to(at::kFloat), rows, cols, /*padding=*/2, scale));
}

bool has_extension(const std::string& path, const std::string& extension) {
  return path.size() >= extension.size() &&
         path.compare(path.size() - extension.size(), extension.size(), extension) == 0;
}

std::pair<int64_t, int64_t> squarest_grid(int64_t n) {
  const auto cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  return {(n + cols - 1) / cols, cols};
}

void require_extension(const std::string& path, const std::string& extension,
                       const std::string& what) {
  if (!has_extension(path, extension)) {
    throw ConfigError(what + " must be a " + extension + " file, got '" + path + "'");
  }
}

void check_picture_size(int64_t rows, int64_t cols, const std::vector<int64_t>& image_shape,
                        int64_t scale) {
  // 16384 is what common viewers and browsers still open; beyond it a picture is a memory
  // problem, not a picture. Computed in double: the factors may be absurd.
  constexpr double kMaxSide = 16384;
  const double h = image_shape.size() == 3 ? static_cast<double>(image_shape[1]) : 1.0;
  const double w = image_shape.size() == 3 ? static_cast<double>(image_shape[2]) : 1.0;
  const double height = static_cast<double>(rows) * h * static_cast<double>(scale);
  const double width = static_cast<double>(cols) * w * static_cast<double>(scale);
  if (height > kMaxSide || width > kMaxSide) {
    throw ConfigError("a grid of " + std::to_string(rows) + "x" + std::to_string(cols) +
                      " images at scale " + std::to_string(scale) + " would be " + fmt(width, 6) +
                      "x" + fmt(height, 6) +
                      " pixels; pictures are limited to 16384 pixels a side (use a smaller "
                      "grid or --scale, or write the samples to a .csv/.npy file)");
  }
}

void add_scale_option(CLI::App* app, int64_t& scale) {
  app->add_option("--scale", scale, "Enlarge every image pixel this many times in the grid")
      ->check(positive())
      ->capture_default_str();
}

ModelData load_model_data(const Model& model, const DataArgs& args) {
  return load_model_data(model, args.data, args.columns, args.context_columns, args.header, args.n,
                         static_cast<uint64_t>(args.seed));
}

void add_context_columns_option(CLI::App* app, std::string& context_columns) {
  app->add_option("--context-columns", context_columns,
                  "Conditional models: the context columns of the data file (default: the "
                  "training names from the header, or the training indices without one)");
}

void add_device_option(CLI::App* app, std::string& device) {
  app->add_option("--device", device,
                  "Where to run the model: cpu, or cuda (a CUDA GPU, with a CUDA-enabled "
                  "LibTorch); data and results stay on the CPU")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
}

void check_device(const std::string& device) {
  if (device == "cpu") return;
  if (device != "cuda") throw ConfigError("--device must be cpu or cuda, got '" + device + "'");
  if (!at::hasCUDA()) {
    throw ConfigError(
        "--device cuda: this zflow is built against a LibTorch without CUDA, or no CUDA GPU is "
        "visible");
  }
}

void use_device(Model& model, const std::string& device) {
  check_device(device);
  if (device == "cpu") return;
  model.device = at::Device(at::kCUDA);
  model.flow->to(model.device);
}

at::Tensor map_with_context(
    const Model& model, const at::Tensor& x, const at::Tensor& context, int64_t chunk,
    const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& on_device) {
  const at::Device device = model.device;
  auto fn = [&](const at::Tensor& rows, const at::Tensor& c) {
    if (device.is_cpu()) return on_device(rows, c);
    return on_device(rows.to(device), c.defined() ? c.to(device) : c).cpu();
  };
  if (!context.defined()) {
    return map_in_chunks(x, chunk, [&](const at::Tensor& rows) { return fn(rows, at::Tensor()); });
  }
  // Rows (flattened: images too) and their contexts side by side, chunked together.
  const int64_t d = x.numel() / std::max<int64_t>(x.size(0), 1);
  const at::Tensor both = at::cat({x.reshape({x.size(0), d}), context.to(x.dtype())}, 1);
  return map_in_chunks(both, chunk, [&](const at::Tensor& rows) {
    std::vector<int64_t> shape{rows.size(0)};
    shape.insert(shape.end(), x.sizes().begin() + 1, x.sizes().end());
    return fn(rows.narrow(1, 0, d).reshape(shape).contiguous(),
              rows.narrow(1, d, rows.size(1) - d).contiguous());
  });
}

at::Tensor log_prob_of(const Model& model, const ModelData& data, int64_t batch_size) {
  const at::Tensor x = to_model_dtype(data.x.values, model);
  const at::Tensor context =
      model.conditional() ? to_model_dtype(data.context.values, model) : at::Tensor();
  return map_with_context(
      model, x, context, batch_size,
      [&](const at::Tensor& rows, const at::Tensor& c) { return model.flow->log_prob(rows, c); });
}

void add_context_options(CLI::App* app, std::string& context, std::string& context_file) {
  auto* value = app->add_option("--context", context,
                                "Conditional models: one context, comma-separated values, e.g. "
                                "'0.5,1.2'");
  auto* file = app->add_option("--context-file", context_file,
                               "Conditional models: a .csv/.npy file with one context per row");
  value->excludes(file);
}

at::Tensor load_context(const Model& model, const std::string& context,
                        const std::string& context_file) {
  const bool given = !context.empty() || !context_file.empty();
  if (!model.conditional()) {
    if (given) {
      throw ConfigError(model.path +
                        " is unconditional: " + (context.empty() ? "--context-file" : "--context") +
                        " is only for conditional models");
    }
    return at::Tensor();
  }
  if (!given) {
    throw ConfigError("this model is conditional on " + model.describe_context() +
                      ": give --context or --context-file");
  }
  if (!context.empty()) {
    std::vector<double> values;
    std::stringstream s(context);
    std::string field;
    while (std::getline(s, field, ',')) {
      const auto first = field.find_first_not_of(" \t");
      const auto last = field.find_last_not_of(" \t");
      const std::string token =
          first == std::string::npos ? std::string() : field.substr(first, last - first + 1);
      double v = 0;
      try {
        size_t used = 0;
        v = std::stod(token, &used);
        if (used != token.size()) throw std::invalid_argument(token);
      } catch (const std::exception&) {
        throw ConfigError("--context '" + context + "': '" + token + "' is not a number");
      }
      if (!std::isfinite(v)) {
        throw ConfigError("--context '" + context + "': " + token + " is not a finite number");
      }
      values.push_back(v);
    }
    if (!context.empty() && context.back() == ',') {
      throw ConfigError("--context '" + context + "' ends with a comma");
    }
    const auto k = static_cast<int64_t>(values.size());
    if (k != model.context_features) {
      throw ConfigError("--context has " + plural(k, "value") + ", the model is conditional on " +
                        model.describe_context());
    }
    return at::tensor(values, at::kDouble).reshape({1, k});
  }
  if (data::is_toy_dataset(context_file)) {
    throw ConfigError("--context-file: '" + context_file +
                      "' is a built-in dataset name, not a context file");
  }
  const RawData raw = data::read_raw_table(context_file, "auto", 0, 0);
  std::vector<int64_t> chosen;
  if (auto found = data::find_by_name(raw, model.context_columns)) {
    chosen = *found;
  } else {
    for (int64_t i = 0; i < raw.values.size(1); ++i) chosen.push_back(i);
  }
  const Data data = select_columns(raw, chosen);
  const int64_t width = data.values.size(1);
  if (width != model.context_features) {
    throw DataError(context_file + " has " + plural(width, "column") +
                    ", the model is conditional on " + model.describe_context());
  }
  return data.values;
}

at::Tensor to_model_dtype(const at::Tensor& values, const Model& model) {
  return values.to(model.dtype).contiguous();
}

double json_number(const Json& object, const std::string& key) {
  if (!object.is_object() || !object.contains(key) || !object.at(key).is_number()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return object.at(key).get<double>();
}

Json metadata_json(const Model& model, const std::string& key) {
  auto it = model.metadata.find(key);
  if (it == model.metadata.end()) return nullptr;
  try {
    return Json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    return it->second;
  }
}

// ---- runtime -------------------------------------------------------------------------------

CLI::Option* add_threads_option(CLI::App* app, int& threads) {
  threads = 0;
  return app
      ->add_option("--threads", threads,
                   "Intra-op threads; auto (0): 1 for tabular data and models, the CPUs this "
                   "process may use for images")
      ->check(non_negative())
      ->default_str("auto");
}

Workload workload_of(const Model& model) {
  return model.image() ? Workload::other : Workload::tabular;
}

int apply_threads(int threads, Workload workload) {
  const int cpus = train::available_cpus();
  if (threads == 0) threads = workload == Workload::tabular ? 1 : cpus;
  if (threads > cpus) {
    // More threads than CPUs only make them wait for each other (and thousands of them
    // exhaust the process).
    std::cerr << "zflow: warning: --threads " << threads << " is more than the " << cpus << " CPU"
              << (cpus == 1 ? "" : "s") << " this process may use; using " << cpus << "\n";
    threads = cpus;
  }
  zflow::set_threads(threads);
  return threads;
}

void seed_torch(uint64_t seed) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(seed);
}

namespace {

/// Names the BLAS implementation a library path belongs to; empty if it is not a BLAS.
std::string blas_kind(const std::string& path) {
  const std::string file = std::filesystem::path(path).filename().string();
  auto starts = [&](const char* prefix) { return file.rfind(prefix, 0) == 0; };
  if (!(starts("libblas") || starts("libopenblas") || starts("libmkl") || starts("libblis") ||
        starts("libflexiblas") || starts("libsatlas") || starts("libtatlas") ||
        starts("libcblas") || starts("libaccelerate"))) {
    return "";
  }
  auto has = [&](const char* s) { return path.find(s) != std::string::npos; };
  if (has("openblas")) return "openblas";
  if (has("mkl")) return "mkl";
  if (has("blis")) return "blis";
  if (has("atlas")) return "atlas";
  if (has("flexiblas")) return "flexiblas";
  if (starts("libblas") && (has("/blas/") || has("netlib"))) return "reference BLAS";
  return "unknown BLAS";
}

std::string canonical_path(const std::string& path) {
  std::error_code ec;
  const auto resolved = std::filesystem::canonical(path, ec);
  return ec ? path : resolved.string();
}

}  // namespace

std::string active_blas() {
  {
    // A small product, so that a lazily loaded BLAS is mapped before we look.
    const at::Tensor a = at::ones({64, 64}, at::kFloat);
    (void)at::mm(a, a).sum().item<float>();
  }
  // The library that the global symbol lookup binds sgemm_ to is the one torch calls (more
  // than one BLAS may be mapped: Debian's LAPACK alternative can pull in libopenblas even
  // when libblas.so.3 is the reference BLAS).
  if (void* symbol = dlsym(RTLD_DEFAULT, "sgemm_")) {
    Dl_info info{};
    if (dladdr(symbol, &info) != 0 && info.dli_fname != nullptr) {
      const std::string path = canonical_path(info.dli_fname);
      const std::string kind = blas_kind(path);
      const std::string kernels = openblas_kernels();
      return (kind.empty() ? std::string("sgemm_ from") : kind) + " (" + path + ")" +
             (kernels.empty() ? "" : ", " + kernels + " kernels");
    }
  }
  // Otherwise: the BLAS libraries mapped into the process, best first.
  std::ifstream maps("/proc/self/maps");
  if (!maps) return "unknown (cannot read /proc/self/maps)";
  std::string line;
  std::map<std::string, std::string> found;  // kind -> first path
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string kind = blas_kind(path);
    if (!kind.empty() && !found.count(kind)) found[kind] = path;
  }
  for (const char* kind :
       {"openblas", "mkl", "blis", "atlas", "flexiblas", "reference BLAS", "unknown BLAS"}) {
    if (found.count(kind)) return std::string(kind) + " (" + found[kind] + ")";
  }
  return "none found (no BLAS library mapped into the process)";
}

bool is_reference_blas(const std::string& blas) { return blas.rfind("reference BLAS", 0) == 0; }

void write_result(const std::string& path, const at::Tensor& values,
                  const std::vector<std::string>& header) {
  io::write_table(path, values, header);
}

at::Tensor map_in_chunks(const at::Tensor& data, int64_t chunk,
                         const std::function<at::Tensor(const at::Tensor&)>& fn) {
  // Inference only: no autograd recording and no version-counter or view bookkeeping.
  c10::InferenceMode inference;
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < data.size(0); start += chunk) {
    const int64_t len = std::min(chunk, data.size(0) - start);
    parts.push_back(fn(data.narrow(0, start, len)));
  }
  if (parts.empty()) return fn(data);
  return at::cat(parts);
}

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    default:
      return c10::toString(dtype);
  }
}

std::string fmt(double value, int precision) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
  return buf;
}

namespace {

CLI::Validator number_check(const std::string& name, bool allow_zero) {
  return CLI::Validator(
      [allow_zero](std::string& text) -> std::string {
        const std::string sign_rule =
            std::string("must be ") + (allow_zero ? "zero or positive" : "positive");
        // A whole number is checked as one: CLI11 would clamp 99999999999999999999 to the
        // largest int64 silently, and read 010 as octal. It is handed on in plain decimal.
        const bool whole =
            !text.empty() && text.find_first_not_of("+-0123456789") == std::string::npos;
        if (whole) {
          const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
          int64_t value = 0;
          const auto [end, error] = std::from_chars(begin, text.data() + text.size(), value);
          if (end != text.data() + text.size()) return "expected a number, got '" + text + "'";
          if (error == std::errc::result_out_of_range) {
            return text[0] == '-'
                       ? sign_rule + ", got " + text
                       : "too large (at most " +
                             std::to_string(std::numeric_limits<int64_t>::max()) + "), got " + text;
          }
          if (value < 0 || (!allow_zero && value == 0)) return sign_rule + ", got " + text;
          text = std::to_string(value);
          return std::string();
        }
        double value = 0;
        try {
          size_t used = 0;
          value = std::stod(text, &used);
          if (used != text.size()) throw std::invalid_argument(text);
        } catch (const std::out_of_range&) {
          return "is out of range, got " + text;
        } catch (const std::exception&) {
          return "expected a number, got '" + text + "'";
        }
        if (!std::isfinite(value) || value < 0 || (!allow_zero && value == 0)) {
          return std::string("must be ") + (allow_zero ? "zero or positive" : "positive") +
                 ", got " + text;
        }
        return std::string();
      },
      name);
}

}  // namespace

const CLI::Validator& positive() {
  static const CLI::Validator v = number_check("POSITIVE", false);
  return v;
}

const CLI::Validator& non_negative() {
  static const CLI::Validator v = number_check("NONNEGATIVE", true);
  return v;
}

void set_example(CLI::App* app, const std::string& example) {
  app->footer("\nExample:\n  " + example + "\n\nSee docs/cli.md for every option and format.");
}

// ---- non-finite results ---------------------------------------------------------------------

void NonFinite::add(const at::Tensor& rows) {
  const int64_t n = rows.dim() == 0 ? 1 : rows.size(0);
  if (n == 0) return;
  const at::Tensor finite = at::isfinite(rows).reshape({n, -1}).all(1);
  const int64_t bad = n - finite.sum().item<int64_t>();
  if (bad > 0 && count == 0) first = total + finite.logical_not().nonzero()[0][0].item<int64_t>();
  count += bad;
  total += n;
}

NonFinite count_non_finite(const at::Tensor& values) {
  NonFinite out;
  out.add(values);
  return out;
}

std::string describe_non_finite(const NonFinite& bad, const std::string& what,
                                const std::string& unit) {
  return std::to_string(bad.count) + " of " + std::to_string(bad.total) + " " + what +
         " (first: " + unit + " " + std::to_string(bad.first + 1) + ")";
}

void warn_non_finite(const NonFinite& bad, const std::string& out, const std::string& why,
                     const std::string& unit) {
  if (bad.count == 0) return;
  std::cerr << "zflow: warning: "
            << describe_non_finite(
                   bad, unit + "s of " + (out == "-" ? "the output" : out) + " are not finite",
                   unit)
            << (why.empty() ? "" : " (" + why + ")") << "\n";
}

int64_t warn_non_finite(const at::Tensor& values, const std::string& out, const std::string& why) {
  const NonFinite bad = count_non_finite(values);
  warn_non_finite(bad, out, why, values.dim() == 4 ? "image" : "row");
  return bad.count;
}

}  // namespace zflow::cli
