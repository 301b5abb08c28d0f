#include "zflow/io/idx.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"

namespace zflow::io {
namespace {

constexpr unsigned kTypeUnsignedByte = 0x08;
constexpr unsigned kMaxDims = 4;
/// zlib counts input and output in 32-bit uInt: larger buffers are fed in pieces.
constexpr size_t kZlibChunk = size_t{1} << 30;

[[noreturn]] void fault(const std::string& path, const std::string& what) {
  throw IOError(path + ": " + what);
}

std::string hex(uint32_t value, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*x", digits, static_cast<unsigned>(value));
  return buf;
}

/// The IDX element types of the format description; nullptr for a code it does not define.
const char* type_name(unsigned code) {
  switch (code) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return nullptr;
  }
}

uint32_t load_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

struct Header {
  std::vector<int64_t> dims;
  /// Bytes taken by the magic and the dimensions.
  size_t size = 0;
  /// Bytes of data the dimensions announce.
  size_t data_size = 0;
};

/// How many leading bytes parse_header needs to decide: the magic, then the dimensions.
size_t header_bytes_needed(const unsigned char* bytes, size_t size) {
  return size < 4 ? 4 : 4 + 4 * size_t{bytes[3]};
}

/// Parses and checks the header at the start of `bytes`. `decompressed` only changes the
/// wording of the messages.
Header parse_header(const std::string& path, const unsigned char* bytes, size_t size,
                    bool decompressed) {
  const std::string file = decompressed ? "the decompressed file" : "the file";
  if (size < 4) {
    fault(path, "not an IDX file (" + file + " has only " + std::to_string(size) +
                    " bytes, fewer than the 4-byte magic)");
  }
  const uint32_t magic = load_be32(bytes);
  if (bytes[0] != 0 || bytes[1] != 0) {
    std::string hint;
    if (bytes[0] == 0x1f && bytes[1] == 0x8b) hint = "; gzip-compressed twice?";
    fault(path, "not an IDX file (bad magic " + hex(magic, 8) + hint + ")");
  }
  const unsigned type = bytes[2];
  if (type != kTypeUnsignedByte) {
    const char* name = type_name(type);
    fault(path, std::string(name ? "unsupported" : "unknown") + " IDX element type " +
                    hex(type, 2) + (name ? " (" + std::string(name) + ")" : std::string()) +
                    "; only 0x08 (unsigned byte) is supported");
  }
  const unsigned ndim = bytes[3];
  if (ndim < 1 || ndim > kMaxDims) {
    fault(path,
          "the IDX header declares " + std::to_string(ndim) + " dimensions; 1 to 4 are supported");
  }
  Header header;
  header.size = 4 + 4 * size_t{ndim};
  if (size < header.size) {
    fault(path, "truncated: the header needs " + std::to_string(header.size) + " bytes for " +
                    std::to_string(ndim) + " dimensions, " + file + " has " + std::to_string(size));
  }
  for (unsigned i = 0; i < ndim; ++i) header.dims.push_back(load_be32(bytes + 4 + 4 * i));
  uint64_t count = 1;
  bool overflow = false;
  for (unsigned i = 0; i < ndim; ++i) {
    if (header.dims[i] == 0) {
      fault(path, "dimension " + std::to_string(i) + " of " + dims_text(header.dims) +
                      " is 0; every dimension must be positive");
    }
    overflow =
        overflow || __builtin_mul_overflow(count, static_cast<uint64_t>(header.dims[i]), &count);
  }
  if (overflow || count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    fault(path, "dimensions " + dims_text(header.dims) + " describe more than 2^63 bytes");
  }
  header.data_size = static_cast<size_t>(count);
  return header;
}

/// Checks that the data after the header has exactly the announced length.
void check_data_size(const std::string& path, const Header& header, uint64_t have,
                     bool decompressed) {
  const std::string suffix = decompressed ? " after decompression" : "";
  if (have < header.data_size) {
    fault(path, "truncated: header says " + std::to_string(header.data_size) +
                    " bytes of data, file has " + std::to_string(have) + suffix);
  }
  if (have > header.data_size) {
    fault(path, std::to_string(have - header.data_size) + " trailing bytes" + suffix +
                    " after the " + std::to_string(header.data_size) +
                    " bytes of data the header announces for " + dims_text(header.dims));
  }
}

bool is_gzip(const std::string& bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

/// Frees a zlib stream on every path out of a function.
class InflateGuard {
 public:
  explicit InflateGuard(z_stream* s) : s_(s) {}
  InflateGuard(const InflateGuard&) = delete;
  InflateGuard& operator=(const InflateGuard&) = delete;
  ~InflateGuard() { inflateEnd(s_); }

 private:
  z_stream* s_;
};

/// Decompresses a gzip file holding an IDX array and returns the array. The header is
/// checked as soon as it has been decompressed, so that damaged content fails early, and
/// bytes beyond the announced size are only counted, not stored: a file of trailing
/// garbage (or a gzip bomb) cannot exhaust memory.
IdxArray read_gzip_idx(const std::string& path, const std::string& in) {
  z_stream s{};
  if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) fault(path, "cannot initialise zlib");
  InflateGuard guard(&s);

  std::vector<uint8_t> out;
  size_t used = 0;
  bool have_header = false;
  Header header;
  size_t limit = std::numeric_limits<size_t>::max();  // header + data, once known
  uint64_t extra = 0;                                 // decompressed bytes beyond `limit`
  std::vector<unsigned char> scratch;
  size_t in_pos = 0;

  while (true) {
    if (s.avail_in == 0 && in_pos < in.size()) {
      const size_t n = std::min(in.size() - in_pos, kZlibChunk);
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + in_pos));
      s.avail_in = static_cast<uInt>(n);
      in_pos += n;
    }
    const bool counting_only = used >= limit;
    if (counting_only) {
      scratch.resize(1 << 16);
      s.next_out = scratch.data();
      s.avail_out = static_cast<uInt>(scratch.size());
    } else {
      if (used == out.size()) {
        size_t grow = std::max<size_t>(out.size(), std::max<size_t>(in.size() * 2, 1 << 16));
        out.resize(std::min(limit, out.size() + std::min(grow, kZlibChunk)));
      }
      s.next_out = out.data() + used;
      s.avail_out = static_cast<uInt>(std::min(out.size() - used, kZlibChunk));
    }
    const uInt before = s.avail_out;
    const int rc = inflate(&s, Z_NO_FLUSH);
    const size_t produced = before - s.avail_out;
    if (counting_only) {
      extra += produced;
    } else {
      used += produced;
    }

    if (!have_header && used >= header_bytes_needed(out.data(), used)) {
      header = parse_header(path, out.data(), used, /*decompressed=*/true);
      have_header = true;
      limit = header.size + header.data_size;
      if (used > limit) {
        extra += used - limit;
        used = limit;
      }
      // Resize only down to what is needed; a later grow never passes the limit.
      if (out.size() > limit) out.resize(limit);
    }

    const size_t remaining = s.avail_in + (in.size() - in_pos);
    if (rc == Z_STREAM_END) {
      if (remaining == 0) break;
      // Another gzip member may follow (what `cat a.gz b.gz` gives); anything else is damage.
      if (is_gzip(in.substr(in.size() - remaining, 2))) {
        if (inflateReset(&s) != Z_OK) fault(path, "cannot reset zlib");
        continue;
      }
      fault(path, std::to_string(remaining) + " bytes of garbage after the gzip stream");
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && remaining == 0) {
      fault(path, "truncated gzip stream (the compressed data end before the stream does; " +
                      std::to_string(used + extra) + " bytes decompressed)");
    }
    if (rc == Z_MEM_ERROR) fault(path, "out of memory while decompressing");
    fault(path, std::string("damaged gzip stream (zlib: ") + (s.msg ? s.msg : "error") + ")");
  }

  out.resize(used);
  if (!have_header) header = parse_header(path, out.data(), used, /*decompressed=*/true);
  check_data_size(path, header, used - header.size + extra, /*decompressed=*/true);
  IdxArray array;
  array.dims = header.dims;
  out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(header.size));
  array.data = std::move(out);
  return array;
}

/// Compresses `bytes` into a gzip stream without a time stamp.
std::string gzip_compress(const std::string& path, const std::string& bytes) {
  z_stream s{};
  if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw IOError("cannot write " + path + ": cannot initialise zlib");
  }
  std::string out;
  size_t in_pos = 0;
  size_t used = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (s.avail_in == 0 && in_pos < bytes.size()) {
      const size_t n = std::min(bytes.size() - in_pos, kZlibChunk);
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + in_pos));
      s.avail_in = static_cast<uInt>(n);
      in_pos += n;
    }
    if (used == out.size()) out.resize(out.size() + std::max<size_t>(1 << 16, out.size() / 2));
    s.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    s.avail_out = static_cast<uInt>(std::min(out.size() - used, kZlibChunk));
    const uInt before = s.avail_out;
    const bool last = in_pos == bytes.size();
    rc = deflate(&s, last ? Z_FINISH : Z_NO_FLUSH);
    used += before - s.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      const std::string message = s.msg ? s.msg : "error " + std::to_string(rc);
      deflateEnd(&s);
      throw IOError("cannot write " + path + ": gzip compression failed (zlib: " + message + ")");
    }
  }
  deflateEnd(&s);
  out.resize(used);
  return out;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  const std::string bytes = read_file(path);
  if (is_gzip(bytes)) return read_gzip_idx(path, bytes);

  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const Header header = parse_header(path, data, bytes.size(), /*decompressed=*/false);
  check_data_size(path, header, bytes.size() - header.size, /*decompressed=*/false);
  IdxArray array;
  array.dims = header.dims;
  array.data.assign(data + header.size, data + bytes.size());
  return array;
}

void write_idx(const std::string& path, const IdxArray& array, bool gzip) {
  const auto invalid = [&](const std::string& what) {
    throw ConfigError("cannot write " + path + ": " + what);
  };
  if (array.dims.empty() || array.dims.size() > kMaxDims) {
    invalid("an IDX array has 1 to 4 dimensions, not " + std::to_string(array.dims.size()));
  }
  uint64_t count = 1;
  for (size_t i = 0; i < array.dims.size(); ++i) {
    const int64_t d = array.dims[i];
    if (d < 1 || d > int64_t{UINT32_MAX}) {
      invalid("dimension " + std::to_string(i) + " of " + dims_text(array.dims) +
              " is outside 1 to 4294967295");
    }
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count)) {
      invalid("dimensions " + dims_text(array.dims) + " are too large");
    }
  }
  if (count != array.data.size()) {
    invalid("dimensions " + dims_text(array.dims) + " need " + std::to_string(count) +
            " bytes of data, the array has " + std::to_string(array.data.size()));
  }

  std::string bytes;
  bytes.reserve(4 + 4 * array.dims.size() + array.data.size());
  bytes += '\0';
  bytes += '\0';
  bytes += static_cast<char>(kTypeUnsignedByte);
  bytes += static_cast<char>(array.dims.size());
  for (int64_t d : array.dims) {
    const auto v = static_cast<uint32_t>(d);
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((v >> shift) & 0xff);
  }
  bytes.append(reinterpret_cast<const char*>(array.data.data()), array.data.size());
  if (gzip) bytes = gzip_compress(path, bytes);
  write_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

}  // namespace zflow::io
