#pragma once
/// \file
/// Reading and writing 2-D float tables as CSV or NumPy .npy, chosen by file extension.

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow::io {

/// How to read a CSV file.
struct CsvReadOptions {
  /// "auto" (a first row that does not parse as numbers is a header), "yes" or "no".
  std::string header = "auto";
  /// Field separator.
  char delimiter = ',';
};

/// A table read from disk: values [N, D] (float64) and the column names (empty strings
/// where the file has none).
struct Table {
  at::Tensor values;
  std::vector<std::string> columns;
};

/// Reads a CSV of numbers. Rows must all have the same number of fields; empty lines and
/// lines starting with '#' are skipped. DataError (with file, line and column) for a field
/// that is not a number or a ragged row; IOError if the file cannot be read.
Table read_csv(const std::string& path, const CsvReadOptions& options = {});

/// Reads a .npy file holding a 1-D or 2-D float32/float64 array in C order (little endian).
/// 1-D arrays become [N, 1]. IOError for a damaged header or a short file, DataError for
/// an unsupported dtype, Fortran order or more than two dimensions.
Table read_npy(const std::string& path);

/// Dispatches on the extension (.csv, .npy; anything else is read as CSV).
Table read_table(const std::string& path, const CsvReadOptions& options = {});

/// Selects columns by spec: a comma-separated list of 0-based indices, ranges "a-b"
/// (inclusive) or column names, e.g. "0,2-4,price". Empty spec = all columns.
/// ConfigError for an index out of range or an unknown name.
std::vector<int64_t> parse_column_spec(const std::string& spec,
                                       const std::vector<std::string>& columns);

/// Writes a [N, D] tensor (any float dtype) as CSV with an optional header row, full
/// round-trip precision (%.17g for float64, %.9g for float32). Path "-" writes to stdout.
void write_csv(const std::string& path, const at::Tensor& values,
               const std::vector<std::string>& header = {});

/// Writes a [N, D] or [N] tensor as .npy (float32 or float64, as the tensor is).
void write_npy(const std::string& path, const at::Tensor& values);

/// Dispatches on the extension (.npy, otherwise CSV; "-" is CSV on stdout). Atomic.
void write_table(const std::string& path, const at::Tensor& values,
                 const std::vector<std::string>& header = {});

}  // namespace zflow::io
