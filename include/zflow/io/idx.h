#pragma once
/// \file
/// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte
/// magic 0x00 0x00 TT NN (TT the element type, NN the number of dimensions), NN big-endian
/// uint32 dimensions, then the elements in row-major order. The distributed files are
/// gzip-compressed; both forms are read. Only unsigned bytes (TT = 0x08) are supported, the
/// type every image and label file of those datasets uses.
///
/// Example:
///
///     zflow::io::IdxArray a = zflow::io::read_idx(dir + "/t10k-images-idx3-ubyte.gz");
///     // a.dims == {10000, 28, 28}, a.data.size() == 7840000
///     zflow::io::write_idx("copy-images-idx3-ubyte.gz", a, /*gzip=*/true);

#include <cstdint>
#include <string>
#include <vector>

namespace zflow::io {

/// An IDX array (the MNIST file format: magic 0x0000 TT NN, NN big-endian uint32 dimensions,
/// then the data row-major).
struct IdxArray {
  /// The dimensions, outermost first (e.g. {60000, 28, 28} for an image file).
  std::vector<int64_t> dims;
  /// The elements in row-major order; element type 0x08 (unsigned byte) only.
  std::vector<uint8_t> data;
};

/// Reads an IDX file, gzip-compressed (detected by the 1f 8b magic, decompressed with zlib;
/// concatenated gzip members are accepted) or plain.
///
/// The header is checked in full: the two zero bytes, the element type (only 0x08), 1 to 4
/// dimensions, every dimension positive, and the data length equal to the product of the
/// dimensions exactly, so that a truncated download or trailing bytes are reported rather
/// than read as images. Every failure is an IOError whose message starts with `path` and
/// says in one line what is wrong, e.g. "x: truncated: header says 47040000 bytes of data,
/// file has 1000". For a gzip file the checks apply to the decompressed bytes.
IdxArray read_idx(const std::string& path);

/// Writes an IDX file of unsigned bytes (plain, or gzip when `gzip` is true), atomically.
/// ConfigError naming `path` if `array` is not a valid IDX array (1 to 4 dimensions, each
/// between 1 and 2^32 - 1, data size equal to their product); IOError if the file cannot be
/// written. The gzip output is deterministic (no time stamp), so equal arrays give equal
/// files.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

}  // namespace zflow::io
