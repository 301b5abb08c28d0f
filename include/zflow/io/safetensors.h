#pragma once
/// \file
/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte
/// little-endian header length N, N bytes of JSON header, then the raw little-endian
/// tensor data. The header maps each tensor name to {"dtype", "shape", "data_offsets"}
/// (offsets relative to the end of the header) and may hold a "__metadata__" object of
/// string → string. Files zflow writes open in any safetensors reader, Python's included.
///
/// Example:
///
///     zflow::io::TensorFile file;
///     file.tensors.emplace_back("weight", torch::randn({4, 3}));
///     file.metadata["format"] = "pt";
///     zflow::io::save_safetensors("model.safetensors", file);
///     at::Tensor w = zflow::io::load_safetensors("model.safetensors").at("weight");

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow::io {

/// Named tensors in file order plus the string metadata.
struct TensorFile {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::map<std::string, std::string> metadata;

  /// The tensor called `name`; IOError if there is none.
  const at::Tensor& at(const std::string& name) const;
  /// Whether a tensor called `name` is present.
  bool contains(const std::string& name) const;
};

/// Writes `file` atomically to `path`. Tensors are written contiguous, on the CPU, in their
/// own dtype (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL). Names must be unique.
void save_safetensors(const std::string& path, const TensorFile& file);

/// Reads and validates `path`: header length inside the file, well-formed JSON, known
/// dtypes, shapes whose byte size matches the offsets, offsets inside the data section,
/// non-overlapping and covering it. Any problem throws IOError naming the file and the fault.
TensorFile load_safetensors(const std::string& path);

}  // namespace zflow::io
