#include "zflow/io/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>

#include <ATen/Functions.h>
#include <nlohmann/json.hpp>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "zflow's safetensors code assumes a little-endian host"
#endif

namespace zflow::io {
namespace {

using ordered_json = nlohmann::ordered_json;

/// Header lengths above this are refused as damage (the reference implementation's limit).
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct DtypeName {
  at::ScalarType type;
  const char* name;
};

constexpr DtypeName kDtypes[] = {
    {at::kDouble, "F64"}, {at::kFloat, "F32"}, {at::kHalf, "F16"},  {at::kBFloat16, "BF16"},
    {at::kLong, "I64"},   {at::kInt, "I32"},   {at::kShort, "I16"}, {at::kChar, "I8"},
    {at::kByte, "U8"},    {at::kBool, "BOOL"},
};

const char* dtype_name(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return d.name;
  }
  return nullptr;
}

bool dtype_from_name(const std::string& name, at::ScalarType* type) {
  for (const auto& d : kDtypes) {
    if (name == d.name) {
      *type = d.type;
      return true;
    }
  }
  return false;
}

[[noreturn]] void fault(const std::string& path, const std::string& what) {
  throw IOError(path + ": " + what);
}

/// Parses the header, refusing duplicate keys in any object (nlohmann keeps one silently).
ordered_json parse_header(const std::string& path, const char* begin, const char* end) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  bool has_duplicate = false;
  ordered_json::parser_callback_t callback = [&](int /*depth*/, ordered_json::parse_event_t event,
                                                 ordered_json& parsed) {
    switch (event) {
      case ordered_json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case ordered_json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case ordered_json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
            !has_duplicate) {
          has_duplicate = true;
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  ordered_json header;
  try {
    header = ordered_json::parse(begin, end, callback);
  } catch (const nlohmann::json::exception& e) {
    fault(path, std::string("invalid JSON header: ") + e.what());
  }
  if (has_duplicate) fault(path, "duplicate key '" + duplicate + "' in the header");
  return header;
}

/// Reads a non-negative integer that fits in uint64.
bool get_unsigned(const ordered_json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer()) {
    int64_t v = value.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

struct Entry {
  std::string name;
  at::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
  size_t header_index;
};

Entry parse_entry(const std::string& path, const std::string& name, const ordered_json& info,
                  size_t header_index) {
  const std::string where = "tensor '" + name + "': ";
  if (!info.is_object()) fault(path, where + "entry is not an object");

  auto dtype_it = info.find("dtype");
  if (dtype_it == info.end()) fault(path, where + "missing \"dtype\"");
  if (!dtype_it->is_string()) fault(path, where + "\"dtype\" is not a string");
  Entry entry{name, at::kFloat, {}, 0, 0, header_index};
  const auto dtype = dtype_it->get<std::string>();
  if (!dtype_from_name(dtype, &entry.type))
    fault(path, where + "unsupported dtype \"" + dtype + "\"");

  auto shape_it = info.find("shape");
  if (shape_it == info.end()) fault(path, where + "missing \"shape\"");
  if (!shape_it->is_array()) fault(path, where + "\"shape\" is not an array");
  // LibTorch computes strides as products of the trailing dimensions, zeros or not, so
  // the product with zeros counted as ones must fit in int64 too: [0, 2^62, 2^62] holds no
  // element but its first stride overflows.
  uint64_t numel = 1;
  uint64_t extent = 1;
  bool overflow = false;
  for (const auto& dim : *shape_it) {
    if (dim.is_number_integer() && !dim.is_number_unsigned() && dim.get<int64_t>() < 0) {
      fault(path, where + "negative dimension " + std::to_string(dim.get<int64_t>()));
    }
    uint64_t size = 0;
    if (!get_unsigned(dim, &size))
      fault(path, where + "shape entry " + dim.dump() + " is not an integer");
    if (size > static_cast<uint64_t>(INT64_MAX)) fault(path, where + "dimension too large");
    entry.shape.push_back(static_cast<int64_t>(size));
    overflow = overflow || __builtin_mul_overflow(numel, size, &numel);
    if (__builtin_mul_overflow(extent, std::max<uint64_t>(size, 1), &extent) ||
        extent > static_cast<uint64_t>(INT64_MAX)) {
      fault(path, where + "shape " + shape_it->dump() + " is too large (its strides overflow)");
    }
  }
  const uint64_t item = at::elementSize(entry.type);
  uint64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, item, &bytes);

  auto offsets_it = info.find("data_offsets");
  if (offsets_it == info.end()) fault(path, where + "missing \"data_offsets\"");
  if (!offsets_it->is_array() || offsets_it->size() != 2 ||
      !get_unsigned((*offsets_it)[0], &entry.begin) ||
      !get_unsigned((*offsets_it)[1], &entry.end)) {
    fault(path, where + "\"data_offsets\" is not a pair of non-negative integers");
  }
  if (entry.end < entry.begin) {
    fault(path, where + "data_offsets end " + std::to_string(entry.end) + " is before begin " +
                    std::to_string(entry.begin));
  }
  if (overflow || bytes != entry.end - entry.begin) {
    fault(path, where + "shape and dtype " + dtype + " need " +
                    (overflow ? std::string("more than 2^64") : std::to_string(bytes)) +
                    " bytes but data_offsets span " + std::to_string(entry.end - entry.begin));
  }
  return entry;
}

}  // namespace

const at::Tensor& TensorFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  throw IOError("no tensor named '" + name + "'");
}

bool TensorFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const auto& entry) { return entry.first == name; });
}

void save_safetensors(const std::string& path, const TensorFile& file) {
  std::vector<at::Tensor> data;
  data.reserve(file.tensors.size());
  ordered_json header = ordered_json::object();
  if (!file.metadata.empty()) {
    ordered_json metadata = ordered_json::object();
    for (const auto& [key, value] : file.metadata) metadata[key] = value;
    header["__metadata__"] = std::move(metadata);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    if (name == "__metadata__") fault(path, "\"__metadata__\" cannot be a tensor name");
    if (!names.insert(name).second) fault(path, "duplicate tensor name '" + name + "'");
    if (!tensor.defined()) fault(path, "tensor '" + name + "' is undefined");
    const char* dtype = dtype_name(tensor.scalar_type());
    if (dtype == nullptr) {
      fault(path, "tensor '" + name + "' has dtype " +
                      std::string(c10::toString(tensor.scalar_type())) +
                      ", which safetensors files here cannot hold");
    }
    at::Tensor cpu = tensor.to(at::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(cpu.numel()) * cpu.element_size();
    header[name] = {
        {"dtype", dtype}, {"shape", cpu.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(cpu));
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fault(path,
          std::string("cannot encode the header (names and metadata must be UTF-8): ") + e.what());
  }
  // Pad with spaces so that the data start (8 + header length) is 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = text.size();

  write_atomically(path, [&](std::ostream& out) {
    char prefix[8];
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((length >> (8 * i)) & 0xff);
    out.write(prefix, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : data) {
      const auto bytes = static_cast<std::streamsize>(t.numel() * t.element_size());
      if (bytes > 0) out.write(static_cast<const char*>(t.data_ptr()), bytes);
    }
  });
}

TensorFile load_safetensors(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 8) {
    fault(path, "file is " + std::to_string(bytes.size()) +
                    " bytes, too short for the 8-byte header length");
  }
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) {
    length |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  if (length > kMaxHeaderSize) {
    fault(path, "header length " + std::to_string(length) + " is absurd (more than " +
                    std::to_string(kMaxHeaderSize) + " bytes)");
  }
  if (length > bytes.size() - 8) {
    fault(path, "header length " + std::to_string(length) + " runs past the end of the file (" +
                    std::to_string(bytes.size()) + " bytes)");
  }
  const char* header_begin = bytes.data() + 8;
  const ordered_json header = parse_header(path, header_begin, header_begin + length);
  if (!header.is_object()) fault(path, "header is not a JSON object");

  const char* data = header_begin + length;
  const uint64_t data_size = bytes.size() - 8 - length;

  TensorFile result;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      const auto& metadata = it.value();
      if (metadata.is_null()) continue;
      if (!metadata.is_object()) fault(path, "\"__metadata__\" is not an object");
      for (auto m = metadata.begin(); m != metadata.end(); ++m) {
        if (!m.value().is_string())
          fault(path, "metadata value of '" + m.key() + "' is not a string");
        result.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), it.value(), entries.size()));
  }

  // The tensors must tile the data section exactly: sorted by offset, each starts where the
  // previous one ends, the first at 0 and the last at the end.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.header_index < b.header_index;
  });
  uint64_t position = 0;
  const Entry* previous = nullptr;
  for (const auto& entry : entries) {
    if (entry.end > data_size) {
      fault(path, "tensor '" + entry.name + "': data_offsets [" + std::to_string(entry.begin) +
                      ", " + std::to_string(entry.end) + "] lie outside the data section of " +
                      std::to_string(data_size) + " bytes");
    }
    if (entry.begin < position) {
      fault(path, "tensors '" + previous->name + "' and '" + entry.name + "' overlap");
    }
    if (entry.begin > position) {
      fault(path, "gap of " + std::to_string(entry.begin - position) + " bytes before tensor '" +
                      entry.name + "' at offset " + std::to_string(position));
    }
    position = entry.end;
    previous = &entry;
  }
  if (position != data_size) {
    fault(path, "data section has " + std::to_string(data_size - position) +
                    " bytes not covered by any tensor");
  }

  result.tensors.reserve(entries.size());
  for (const auto& entry : entries) {
    at::Tensor tensor = at::empty(entry.shape, at::TensorOptions().dtype(entry.type));
    const size_t size = entry.end - entry.begin;
    const char* source = data + entry.begin;
    if (entry.type == at::kBool) {
      for (size_t i = 0; i < size; ++i) {
        if (source[i] != 0 && source[i] != 1) {
          fault(path, "tensor '" + entry.name + "': BOOL value other than 0 or 1");
        }
      }
    }
    if (size > 0) std::memcpy(tensor.data_ptr(), source, size);
    result.tensors.emplace_back(entry.name, std::move(tensor));
  }
  return result;
}

}  // namespace zflow::io
