// Fuzz target: the .npy reader.

#include <ATen/core/Tensor.h>

#include <cmath>

#include "fuzz_file.h"
#include "zflow/core/error.h"
#include "zflow/io/table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const zflow::io::Table table = zflow::io::read_npy(zflow::fuzz::as_file(data, size));
    if (table.values.dim() != 2 || table.values.numel() < 1 ||
        table.values.numel() * 4 > static_cast<int64_t>(size) ||
        static_cast<int64_t>(table.columns.size()) != table.values.size(1)) {
      zflow::fuzz::invariant_failed();
    }
    const double* v = table.values.data_ptr<double>();
    for (int64_t i = 0; i < table.values.numel(); ++i) {
      if (!std::isfinite(v[i])) zflow::fuzz::invariant_failed();
    }
  } catch (const zflow::Error&) {
  }
  return 0;
}
