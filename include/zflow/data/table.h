#pragma once
/// \file
/// Tables of data for a flow, read from a built-in 2-D dataset, a CSV or an NPY file, with
/// the choice of columns: the data columns x and, for a conditional flow p(x | c), the
/// context columns c of the same rows. Column choices are indices, ranges and names
/// ("0,2-4,price"; io::parse_column_spec). Every value is checked finite, and every error
/// names the file, the row and the column.
///
/// Example:
///
///     // Train on columns 0-3 of runs.csv, conditional on its column "temp".
///     zflow::data::TableWithContext t =
///         zflow::data::load_training_table("runs.csv", "0-3", "temp", "auto", 0, 0);
///     at::Tensor x = t.x.values, c = t.context.values;  // [N, 4], [N, 1], float64

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow::data {

/// A whole table as read, before choosing columns: values [N, W] float64 and the column
/// names (empty strings where the file has none).
struct RawTable {
  at::Tensor values;
  std::vector<std::string> columns;
  /// The built-in dataset's name or the file path, as given.
  std::string source;
  bool toy = false;
  /// Whether every column has a name (a CSV header row).
  bool has_header() const;
};

/// Chosen columns: values [N, D] float64 (images: [N, C, H, W] pixel values 0..255), their
/// names, where from, and their 0-based indices in the file.
struct Table {
  at::Tensor values;
  std::vector<std::string> columns;
  std::string source;
  bool toy = false;
  std::vector<int64_t> indices;
  bool images = false;
};

/// Data and, for a conditional flow, its context, row by row.
struct TableWithContext {
  Table x;
  /// [N, K]; `values` undefined for an unconditional flow.
  Table context;
};

/// `spec` is a built-in toy name (then n points are drawn with `seed`) or a .csv/.npy
/// file (`header` is auto|yes|no). DataError for no rows, IOError for an unreadable file.
RawTable read_raw_table(const std::string& spec, const std::string& header, int64_t n,
                        uint64_t seed);

/// The columns `chosen` of `raw`. DataError for NaN/Inf values (naming file, row, column).
Table select_columns(const RawTable& raw, const std::vector<int64_t>& chosen);

/// io::parse_column_spec with ConfigError naming `option` when nothing is selected.
std::vector<int64_t> parse_columns(const std::string& option, const std::string& spec,
                                   const RawTable& raw);

/// read_raw_table, then the columns chosen by `columns` (all when empty).
Table load_table(const std::string& spec, const std::string& columns, const std::string& header,
                 int64_t n, uint64_t seed);

/// The positions of `names` in `raw`'s header, or nothing when any is missing (or the
/// table has no header).
std::optional<std::vector<int64_t>> find_by_name(const RawTable& raw,
                                                 const std::vector<std::string>& names);

/// The column names to write for data with these names: empty if any name is missing.
std::vector<std::string> header_or_none(const std::vector<std::string>& columns);

/// For training: the data columns and, when `context_columns` is given, the context
/// columns of the same file (the data columns are then `columns`, default: all the
/// others). ConfigError for context columns with a built-in dataset or a column chosen as
/// both.
TableWithContext load_training_table(const std::string& spec, const std::string& columns,
                                     const std::string& context_columns, const std::string& header,
                                     int64_t n, uint64_t seed);

/// Training and validation rows (and their contexts; undefined where there are none).
/// The validation rows are copies; the training rows of a file are not: `train` (and
/// `train_context`) is then the whole table, as read (a memory-mapped .npy file stays
/// mapped), and `train_rows` says which of its rows are for training.
struct Split {
  at::Tensor train;
  /// Undefined when there is no validation set.
  at::Tensor val;
  at::Tensor train_context;
  at::Tensor val_context;
  /// int64 indices into `train` of the training rows, in the split's order; undefined:
  /// every row of `train`.
  at::Tensor train_rows;
  /// The number of training rows.
  int64_t train_size() const { return train_rows.defined() ? train_rows.numel() : train.size(0); }
};

/// Splits `table` for training. A built-in dataset keeps every row for training and draws
/// round(n · val_fraction) fresh points (seed + 1, same `columns`) for validation; a file
/// holds out floor(rows · val_fraction) rows chosen by a permutation drawn with `seed`.
/// DataError when no training rows would be left.
Split split_table(const TableWithContext& table, double val_fraction, int64_t n,
                  const std::string& columns, const std::string& header, uint64_t seed);

/// What a trained model knows of its columns (flows/model_card.h holds it).
struct StoredColumns {
  /// Where the model was read from, for messages.
  std::string model;
  int64_t features = 0;
  int64_t context_features = 0;
  /// Names at training time (possibly empty strings) and file indices (empty if unknown).
  std::vector<std::string> names;
  std::vector<std::string> context_names;
  std::vector<int64_t> indices;
  std::vector<int64_t> context_indices;
  /// Names for output headers: the stored names, or x1..xD / c1..cK when any is missing.
  std::vector<std::string> data_header() const;
  std::vector<std::string> context_header() const;
  /// "2 context columns (c1, c2)".
  std::string describe_context() const;
};

/// The data of a tabular model from `spec`. Unconditional: load_table and a width check
/// (ConfigError if `context_columns` is given). Conditional: the context columns by
/// `context_columns`, else by the stored names when the file has a header with them, else
/// (no header) by the stored indices; the data columns by `columns`, else by the stored
/// names, else by the stored indices (headerless file, context as stored), else all the
/// other columns. DataError when widths differ from the model's.
TableWithContext load_table_for(const StoredColumns& model, const std::string& spec,
                                const std::string& columns, const std::string& context_columns,
                                const std::string& header, int64_t n, uint64_t seed);

/// "FILE has 3 columns, the model expects 2" (DataError) unless the widths agree.
void check_width(const Table& table, int64_t features);

}  // namespace zflow::data
