#pragma once
/// \file
/// Reading and writing 2-D float tables as CSV or NumPy .npy, chosen by file extension:
/// the tabular data a flow trains on ([N, D] float64 with optional column names) and the
/// samples it writes. Errors name the file, and for CSV the line and column.
///
/// Example:
///
///     zflow::io::Table t = zflow::io::read_table("data.csv");  // header auto-detected
///     std::vector<int64_t> cols = zflow::io::parse_column_spec("0,2-4,price", t.columns);
///     at::Tensor x = t.values.index_select(1, torch::tensor(cols));
///     zflow::io::write_table("subset.npy", x);

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow::io {

/// How to read a CSV file.
struct CsvReadOptions {
  /// "auto" (a first row of text is a header, one of numbers is data, one that mixes them
  /// is a DataError asking for "yes" or "no"), "yes" or "no".
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

/// Reads a .npy file holding a 1-D or 2-D float32/float64 array in C order (little endian;
/// int32/int64 are converted too). 1-D arrays become [N, 1]. IOError for a damaged header or
/// a short file, DataError for an unsupported dtype, Fortran order, more than two
/// dimensions, an empty array or a NaN/Inf value (naming its row and column).
///
/// A regular file of float64 is memory-mapped, not read: the values are a float64 tensor
/// over a private, copy-on-write mapping of the file (mmap PROT_READ | PROT_WRITE,
/// MAP_PRIVATE), unmapped when the last tensor or view using it is gone (the Table may go
/// first). Pages are read from disk on first touch and belong to the page cache: the kernel
/// can drop them under memory pressure and read them again where they are touched next, so
/// a file larger than memory can be used. Loading checks every value for NaN/Inf, which
/// reads the file once, in order; later, only the pages a caller touches (the rows it
/// gathers) are read back. Writing into the tensor is allowed: the pages written to become
/// private copies (counted as the process's own memory), and the file never changes.
///
/// While the tensor lives, the file must not be truncated or rewritten in place by another
/// process: touching a page past the new end of the file kills the process with SIGBUS, and
/// a page not yet written to may show the new contents. Replacing the file by rename, as
/// write_table and write_npy do, is safe: the mapping keeps the old file. There is no cheap
/// guard: reading everything up front would undo the mapping, and a SIGBUS handler cannot
/// resume the code that touched the page.
///
/// float32 and integer data, and float64 data not 8-byte aligned in the file (a header
/// padded by hand), are converted into a float64 tensor of their own, as before: from the
/// mapping, which is then released. Pipes, devices, "-" (standard input) and files that
/// cannot be mapped are read whole first, as before.
Table read_npy(const std::string& path);

/// Dispatches on the extension (.csv, .npy; anything else is read as CSV).
Table read_table(const std::string& path, const CsvReadOptions& options = {});

/// The index of the column called `name`, or nothing when there is none. ConfigError when
/// several columns have that name (naming it and their 0-based indices): taking the first
/// would silently pick one of them.
std::optional<int64_t> find_column(const std::vector<std::string>& columns,
                                   const std::string& name);

/// Selects columns by spec: a comma-separated list of 0-based indices, ranges "a-b"
/// (inclusive) or column names, e.g. "0,2-4,price". Empty spec = all columns.
/// ConfigError for an index out of range, an unknown name or a name that several columns
/// share.
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

/// Writes a table of a known size to a stream piece by piece, as CSV (with an optional
/// header row) or .npy, so that a large result never has to be held in memory at once
/// (`zflow sample` streams its output through it). write_csv and write_npy use it too.
class TableStream {
 public:
  /// `rows` × `cols` values of `dtype` (float32 or float64) will follow; `npy` chooses the
  /// format. The CSV header is left out when every name is empty.
  TableStream(std::ostream& out, bool npy, int64_t rows, int64_t cols, at::ScalarType dtype,
              const std::vector<std::string>& header = {});
  /// Writes the next rows [r, cols] (converted to the stream's dtype).
  void write(const at::Tensor& rows);
  /// DataError unless exactly the announced number of rows was written.
  void finish() const;

 private:
  /// IOError once the stream has failed.
  void check_stream() const;
  std::ostream& out_;
  bool npy_;
  int64_t rows_;
  int64_t cols_;
  at::ScalarType dtype_;
  int64_t written_ = 0;
};

/// Whether `path` is written as .npy (its extension; "-" is always CSV).
bool is_npy_path(const std::string& path);

}  // namespace zflow::io
