#include "zflow/data/table.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "zflow/core/error.h"
#include "zflow/data/toy.h"
#include "zflow/io/table.h"

namespace zflow::data {

namespace {

bool looks_like_a_name(const std::string& spec) {
  return spec.find('/') == std::string::npos && spec.find('.') == std::string::npos;
}

std::string known_toys() {
  std::string known;
  for (const auto& d : toy_datasets()) known += (known.empty() ? "" : ", ") + d.name;
  return known;
}

std::vector<std::string> names_or(const std::vector<std::string>& names, int64_t count,
                                  const std::string& prefix) {
  std::vector<std::string> header = header_or_none(names);
  if (static_cast<int64_t>(header.size()) != count) {
    header.clear();
    for (int64_t i = 0; i < count; ++i) header.push_back(prefix + std::to_string(i + 1));
  }
  return header;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string plural(int64_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

bool in_range(const std::vector<int64_t>& indices, const RawTable& raw) {
  if (indices.empty()) return false;
  for (int64_t i : indices) {
    if (i >= raw.values.size(1)) return false;
  }
  return true;
}

void check_disjoint(const std::vector<int64_t>& data, const std::vector<int64_t>& context,
                    const RawTable& raw) {
  for (int64_t i : data) {
    if (std::find(context.begin(), context.end(), i) != context.end()) {
      const std::string& name = raw.columns[static_cast<size_t>(i)];
      throw ConfigError(raw.source + ": column " + std::to_string(i) +
                        (name.empty() ? "" : " (" + name + ")") +
                        " is both a data column (--columns) and a context column "
                        "(--context-columns)");
    }
  }
}

}  // namespace

bool RawTable::has_header() const {
  if (columns.empty()) return false;
  for (const auto& c : columns) {
    if (c.empty()) return false;
  }
  return true;
}

RawTable read_raw_table(const std::string& spec, const std::string& header, int64_t n,
                        uint64_t seed) {
  if (spec.empty()) throw ConfigError("no data given (a file or a built-in dataset name)");
  RawTable data;
  data.source = spec;
  io::Table table;
  if (is_toy_dataset(spec)) {
    if (n <= 0)
      throw ConfigError("--n must be positive for a built-in dataset (got " + std::to_string(n) +
                        ")");
    table.values = sample_toy(spec, n, seed);
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
  data.values = table.values.to(at::kDouble);
  data.columns = std::move(table.columns);
  return data;
}

Table select_columns(const RawTable& raw, const std::vector<int64_t>& chosen) {
  Table data;
  data.source = raw.source;
  data.toy = raw.toy;
  data.indices = chosen;
  at::Tensor values = raw.values;
  const bool all = static_cast<int64_t>(chosen.size()) == values.size(1) &&
                   std::is_sorted(chosen.begin(), chosen.end());
  if (!all) {
    values = values.index_select(
        1, at::tensor(std::vector<int64_t>(chosen.begin(), chosen.end()), at::kLong));
  }
  for (int64_t c : chosen) data.columns.push_back(raw.columns[static_cast<size_t>(c)]);
  values = values.contiguous();

  // The readers reject NaN and Inf already; check again so that no path lets them through.
  // A chunk of rows at a time: a memory-mapped table is read, never copied.
  constexpr int64_t kChunk = int64_t{1} << 18;
  for (int64_t begin = 0; begin < values.size(0); begin += kChunk) {
    const int64_t count = std::min(kChunk, values.size(0) - begin);
    const at::Tensor finite = at::isfinite(values.narrow(0, begin, count));
    if (finite.all().item<bool>()) continue;
    const at::Tensor bad = at::nonzero(finite.logical_not())[0];
    const int64_t row = begin + bad[0].item<int64_t>();
    const int64_t col = bad[1].item<int64_t>();
    const double v = values[row][col].item<double>();
    std::string where = raw.source + ", row " + std::to_string(row + 1) + ", column " +
                        std::to_string(chosen[static_cast<size_t>(col)] + 1);
    const std::string& name = data.columns[static_cast<size_t>(col)];
    if (!name.empty()) where += " (" + name + ")";
    throw DataError(where + ": " + (std::isnan(v) ? "NaN" : "Inf") +
                    " is not allowed (remove or impute the value)");
  }
  data.values = values;
  return data;
}

std::vector<int64_t> parse_columns(const std::string& option, const std::string& spec,
                                   const RawTable& raw) {
  std::vector<int64_t> chosen;
  try {
    chosen = io::parse_column_spec(spec, raw.columns);
  } catch (const ConfigError& e) {
    throw ConfigError(option + ": " + e.what());
  }
  if (chosen.empty()) throw ConfigError(option + " '" + spec + "' selects no column");
  return chosen;
}

Table load_table(const std::string& spec, const std::string& columns, const std::string& header,
                 int64_t n, uint64_t seed) {
  const RawTable raw = read_raw_table(spec, header, n, seed);
  const std::vector<int64_t> chosen = io::parse_column_spec(columns, raw.columns);
  if (chosen.empty()) throw ConfigError("column spec '" + columns + "' selects no column");
  return select_columns(raw, chosen);
}

std::optional<std::vector<int64_t>> find_by_name(const RawTable& raw,
                                                 const std::vector<std::string>& names) {
  if (!raw.has_header() || names.empty() || header_or_none(names).empty()) return std::nullopt;
  std::vector<int64_t> out;
  for (const auto& name : names) {
    std::optional<int64_t> index;
    try {
      index = io::find_column(raw.columns, name);
    } catch (const ConfigError& e) {
      throw ConfigError(raw.source + ": " + e.what());
    }
    if (!index) return std::nullopt;
    out.push_back(*index);
  }
  return out;
}

std::vector<std::string> header_or_none(const std::vector<std::string>& columns) {
  for (const auto& c : columns) {
    if (c.empty()) return {};
  }
  return columns;
}

TableWithContext load_training_table(const std::string& spec, const std::string& columns,
                                     const std::string& context_columns, const std::string& header,
                                     int64_t n, uint64_t seed) {
  TableWithContext out;
  if (context_columns.empty()) {
    out.x = load_table(spec, columns, header, n, seed);
    return out;
  }
  if (is_toy_dataset(spec)) {
    throw ConfigError("--context-columns: the built-in dataset '" + spec +
                      "' has no context columns (give a .csv/.npy file)");
  }
  const RawTable raw = read_raw_table(spec, header, n, seed);
  const std::vector<int64_t> context = parse_columns("--context-columns", context_columns, raw);
  std::vector<int64_t> data;
  if (!columns.empty()) {
    data = parse_columns("--columns", columns, raw);
  } else {
    for (int64_t i = 0; i < raw.values.size(1); ++i) {
      if (std::find(context.begin(), context.end(), i) == context.end()) data.push_back(i);
    }
    if (data.empty()) {
      throw ConfigError("--context-columns '" + context_columns + "' takes every column of " +
                        spec + "; no data columns are left");
    }
  }
  check_disjoint(data, context, raw);
  out.x = select_columns(raw, data);
  out.context = select_columns(raw, context);
  return out;
}

std::vector<std::string> StoredColumns::data_header() const {
  return names_or(names, features, "x");
}

std::vector<std::string> StoredColumns::context_header() const {
  return names_or(context_names, context_features, "c");
}

std::string StoredColumns::describe_context() const {
  return plural(context_features, "context column") + " (" + join(context_header()) + ")";
}

void check_width(const Table& table, int64_t features) {
  const int64_t width = table.values.size(1);
  if (width != features) {
    throw DataError(table.source + " has " + std::to_string(width) + " column" +
                    (width == 1 ? "" : "s") + ", the model expects " + std::to_string(features) +
                    (width > features ? " (choose them with --columns)" : ""));
  }
}

TableWithContext load_table_for(const StoredColumns& model, const std::string& spec,
                                const std::string& columns, const std::string& context_columns,
                                const std::string& header, int64_t n, uint64_t seed) {
  TableWithContext out;
  if (!(model.context_features > 0)) {
    if (!context_columns.empty()) {
      throw ConfigError(model.model +
                        " is unconditional: --context-columns is only for conditional models");
    }
    out.x = load_table(spec, columns, header, n, seed);
    check_width(out.x, model.features);
    return out;
  }
  if (is_toy_dataset(spec)) {
    throw ConfigError("this model is conditional on " + model.describe_context() + "; '" + spec +
                      "' is a built-in dataset without context columns (give a .csv/.npy file)");
  }
  const RawTable raw = read_raw_table(spec, header, n, seed);

  // The context columns.
  std::vector<int64_t> context;
  if (!context_columns.empty()) {
    context = parse_columns("--context-columns", context_columns, raw);
  } else if (auto found = find_by_name(raw, model.context_names)) {
    context = *found;
  } else if (!raw.has_header() && in_range(model.context_indices, raw)) {
    context = model.context_indices;
  } else {
    std::string why;
    if (raw.has_header() && !header_or_none(model.context_names).empty()) {
      std::vector<std::string> missing;
      for (const auto& name : model.context_names) {
        if (std::find(raw.columns.begin(), raw.columns.end(), name) == raw.columns.end())
          missing.push_back(name);
      }
      why = " has no column " + join(missing);
    } else {
      why = raw.has_header() ? "'s header does not name the context columns"
                             : " has no header to find the context columns by";
    }
    throw DataError(spec + why + "; the model is conditional on " + model.describe_context() +
                    ": choose them with --context-columns");
  }

  // The data columns.
  std::vector<int64_t> data;
  if (!columns.empty()) {
    data = parse_columns("--columns", columns, raw);
  } else if (auto found = find_by_name(raw, model.names)) {
    data = *found;
  } else if (!raw.has_header() && in_range(model.indices, raw) &&
             model.context_indices == context) {
    data = model.indices;
  } else {
    for (int64_t i = 0; i < raw.values.size(1); ++i) {
      if (std::find(context.begin(), context.end(), i) == context.end()) data.push_back(i);
    }
    if (data.empty()) {
      throw DataError(spec + ": no columns left for the data besides the context columns");
    }
  }
  check_disjoint(data, context, raw);

  out.x = select_columns(raw, data);
  out.context = select_columns(raw, context);
  const auto k = static_cast<int64_t>(context.size());
  if (k != model.context_features) {
    throw DataError(spec + ": " + plural(k, "context column") + " chosen, the model is " +
                    "conditional on " + model.describe_context());
  }
  const int64_t width = out.x.values.size(1);
  if (width != model.features) {
    throw DataError(spec + " has " + plural(width, "data column") + " besides the context, the " +
                    "model expects " + std::to_string(model.features) +
                    (width > model.features ? " (choose them with --columns)" : ""));
  }
  return out;
}

Split split_table(const TableWithContext& table, double val_fraction, int64_t n,
                  const std::string& columns, const std::string& header, uint64_t seed) {
  const Table& data = table.x;
  const at::Tensor& context = table.context.values;
  Split split;
  if (data.toy) {
    split.train = data.values;
    const auto n_val = static_cast<int64_t>(std::llround(static_cast<double>(n) * val_fraction));
    if (n_val > 0) {
      split.val = load_table(data.source, columns, header, n_val, seed + 1).values;
    }
    return split;
  }
  const int64_t rows = data.values.size(0);
  const auto n_val = static_cast<int64_t>(std::floor(static_cast<double>(rows) * val_fraction));
  if (n_val == 0) {
    split.train = data.values;
    split.train_context = context;
    return split;
  }
  if (rows - n_val < 1) {
    throw DataError(data.source + ": " + std::to_string(rows) +
                    " rows leave none for training after the validation split");
  }
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor order = at::randperm(rows, generator, at::TensorOptions(at::kLong));
  split.val = data.values.index_select(0, order.narrow(0, 0, n_val)).contiguous();
  split.train = data.values;
  split.train_rows = order.narrow(0, n_val, rows - n_val).clone();
  if (context.defined()) {
    split.val_context = context.index_select(0, order.narrow(0, 0, n_val)).contiguous();
    split.train_context = context;
  }
  return split;
}

}  // namespace zflow::data
