// Fuzz target: the IDX reader (plain and gzip-compressed).

#include "zflow/io/idx.h"
#include "fuzz_file.h"
#include "zflow/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const zflow::io::IdxArray array = zflow::io::read_idx(zflow::fuzz::as_file(data, size));
    uint64_t count = 1;
    for (int64_t d : array.dims) {
      if (d < 1) zflow::fuzz::invariant_failed();
      count *= static_cast<uint64_t>(d);
    }
    if (array.dims.empty() || array.dims.size() > 4 || count != array.data.size()) {
      zflow::fuzz::invariant_failed();
    }
  } catch (const zflow::Error&) {
  }
  return 0;
}
