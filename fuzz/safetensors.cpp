// Fuzz target: the safetensors reader, and the model loader for files that carry a zflow
// model's metadata (spec and dtype checks).

#include <ATen/core/Tensor.h>

#include "fuzz_file.h"
#include "fuzz_spec.h"
#include "zflow/core/error.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = zflow::fuzz::as_file(data, size);
  zflow::io::TensorFile file;
  try {
    file = zflow::io::load_safetensors(path);
  } catch (const zflow::Error&) {
    return 0;
  }
  uint64_t bytes = 0;
  for (const auto& [name, tensor] : file.tensors) {
    if (!tensor.defined() || !tensor.is_contiguous()) zflow::fuzz::invariant_failed();
    bytes += static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
  }
  if (bytes > size) zflow::fuzz::invariant_failed();

  const auto spec = file.metadata.find("spec");
  if (spec == file.metadata.end()) return 0;
  const zflow::Json parsed = zflow::Json::parse(spec->second, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !zflow::fuzz::small_enough(parsed)) return 0;
  try {
    zflow::load_checkpoint(path);
  } catch (const zflow::Error&) {
  }
  return 0;
}
