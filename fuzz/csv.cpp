// Fuzz target: the CSV reader. The first byte chooses the header mode and the delimiter,
// the rest is the file.

#include <ATen/core/Tensor.h>

#include <cmath>

#include "fuzz_file.h"
#include "zflow/core/error.h"
#include "zflow/io/table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  zflow::io::CsvReadOptions options;
  const char* headers[] = {"auto", "yes", "no"};
  const char delimiters[] = {',', '\t', ' ', ';'};
  options.header = headers[data[0] % 3];
  options.delimiter = delimiters[(data[0] / 3) % 4];
  try {
    const zflow::io::Table table =
        zflow::io::read_csv(zflow::fuzz::as_file(data + 1, size - 1), options);
    // What read_csv promises: [N, D] float64 values, all finite, a name per column.
    if (table.values.dim() != 2 || table.values.size(0) < 1 ||
        table.values.scalar_type() != at::kDouble ||
        static_cast<int64_t>(table.columns.size()) != table.values.size(1)) {
      zflow::fuzz::invariant_failed();
    }
    const double* v = table.values.data_ptr<double>();
    for (int64_t i = 0; i < table.values.numel(); ++i) {
      if (!std::isfinite(v[i])) zflow::fuzz::invariant_failed();
    }
    // Columns chosen by the names read: each name must select a column in range.
    for (const auto& name : table.columns) {
      if (name.empty() || name.find(',') != std::string::npos) continue;
      try {
        for (int64_t c : zflow::io::parse_column_spec(name, table.columns)) {
          if (c < 0 || c >= table.values.size(1)) zflow::fuzz::invariant_failed();
        }
      } catch (const zflow::Error&) {
      }
    }
  } catch (const zflow::Error&) {
  }
  return 0;
}
