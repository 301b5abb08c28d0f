// Fuzz target: the PNG reader.

#include "fuzz_file.h"
#include "zflow/core/error.h"
#include "zflow/io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const zflow::io::Image image = zflow::io::read_png(zflow::fuzz::as_file(data, size));
    if (image.width < 1 || image.height < 1 || (image.channels != 1 && image.channels != 3) ||
        image.pixels.size() != static_cast<size_t>(image.width * image.height * image.channels)) {
      zflow::fuzz::invariant_failed();
    }
  } catch (const zflow::Error&) {
  }
  return 0;
}
