#include "common.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include "zflow/core/error.h"
#include "zflow/core/threads.h"
#include "zflow/data/toy.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/io/table.h"
#include "zflow/train/progress.h"

namespace zflow::cli {

namespace {

bool looks_like_a_name(const std::string& spec) {
  return spec.find('/') == std::string::npos && spec.find('.') == std::string::npos;
}

std::string known_toys() {
  std::string known;
  for (const auto& d : data::toy_datasets()) known += (known.empty() ? "" : ", ") + d.name;
  return known;
}

}  // namespace

// ---- data --------------------------------------------------------------------------------

Data load_data(const std::string& spec, const std::string& columns, const std::string& header,
               int64_t n, uint64_t seed) {
  if (spec.empty()) throw ConfigError("no data given (a file or a built-in dataset name)");
  Data data;
  data.source = spec;
  io::Table table;
  if (data::is_toy_dataset(spec)) {
    if (n <= 0)
      throw ConfigError("--n must be positive for a built-in dataset (got " + std::to_string(n) +
                        ")");
    table.values = data::sample_toy(spec, n, seed);
    table.columns = {"x", "y"};
    data.toy = true;
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(spec, ec) && spec != "-") {
      std::string message = spec + ": no such file";
      if (looks_like_a_name(spec)) message += " (nor a built-in dataset: " + known_toys() + ")";
      throw IOError(message);
    }
    if (std::filesystem::is_directory(spec, ec)) throw IOError(spec + ": is a directory");
    io::CsvReadOptions options;
    options.header = header;
    table = io::read_table(spec, options);
  }
  if (!table.values.defined() || table.values.dim() != 2 || table.values.size(0) == 0) {
    throw DataError(spec + ": no data rows");
  }
  if (table.values.size(1) == 0) throw DataError(spec + ": no columns");
  if (table.columns.size() != static_cast<size_t>(table.values.size(1))) {
    table.columns.assign(static_cast<size_t>(table.values.size(1)), std::string());
  }
  const std::vector<int64_t> chosen = io::parse_column_spec(columns, table.columns);
  if (chosen.empty()) throw ConfigError("column spec '" + columns + "' selects no column");
  at::Tensor values = table.values.to(at::kDouble);
  const bool all = static_cast<int64_t>(chosen.size()) == values.size(1) &&
                   std::is_sorted(chosen.begin(), chosen.end());
  if (!all) {
    values = values.index_select(
        1, at::tensor(std::vector<int64_t>(chosen.begin(), chosen.end()), at::kLong));
  }
  for (int64_t c : chosen) data.columns.push_back(table.columns[static_cast<size_t>(c)]);
  values = values.contiguous();

  // The readers reject NaN and Inf already; check again so that no path lets them through.
  const at::Tensor finite = at::isfinite(values);
  if (!finite.all().item<bool>()) {
    const at::Tensor bad = at::nonzero(finite.logical_not())[0];
    const int64_t row = bad[0].item<int64_t>();
    const int64_t col = bad[1].item<int64_t>();
    const double v = values[row][col].item<double>();
    std::string where = spec + ", row " + std::to_string(row + 1) + ", column " +
                        std::to_string(chosen[static_cast<size_t>(col)] + 1);
    const std::string& name = data.columns[static_cast<size_t>(col)];
    if (!name.empty()) where += " (" + name + ")";
    throw DataError(where + ": " + (std::isnan(v) ? "NaN" : "Inf") +
                    " is not allowed (remove or impute the value)");
  }
  data.values = values;
  return data;
}

std::vector<std::string> header_or_none(const std::vector<std::string>& columns) {
  for (const auto& c : columns) {
    if (c.empty()) return {};
  }
  return columns;
}

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
  if (shape.size() != 1) {
    throw DataError(path + ": the model is not for tabular data (event shape of " +
                    std::to_string(shape.size()) + " dimensions)");
  }
  model.features = shape[0];
  model.dtype = at::kFloat;
  for (auto& [name, tensor] : named_state(*model.flow)) {
    if (tensor.is_floating_point()) {
      model.dtype = tensor.scalar_type();
      break;
    }
  }
  const Json columns = metadata_json(model, "columns");
  if (columns.is_array() && static_cast<int64_t>(columns.size()) == model.features) {
    for (const auto& c : columns)
      model.columns.push_back(c.is_string() ? c.get<std::string>() : "");
  }
  return model;
}

void check_width(const Data& data, const Model& model) {
  const int64_t width = data.values.size(1);
  if (width != model.features) {
    throw DataError(data.source + " has " + std::to_string(width) + " column" +
                    (width == 1 ? "" : "s") + ", the model expects " +
                    std::to_string(model.features) +
                    (width > model.features ? " (choose them with --columns)" : ""));
  }
}

at::Tensor to_model_dtype(const at::Tensor& values, const Model& model) {
  return values.to(model.dtype).contiguous();
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
  threads = train::available_cpus();
  return app
      ->add_option("--threads", threads,
                   "Intra-op threads (default: the CPUs this process may use)")
      ->check(positive())
      ->capture_default_str();
}

void apply_threads(int threads) { zflow::set_threads(threads); }

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
      return (kind.empty() ? std::string("sgemm_ from") : kind) + " (" + path + ")";
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
  c10::AutoGradMode no_grad(false);
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
        double value = 0;
        try {
          size_t used = 0;
          value = std::stod(text, &used);
          if (used != text.size()) throw std::invalid_argument(text);
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

}  // namespace zflow::cli
