#include "zflow/io/idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"

namespace fs = std::filesystem;
using zflow::ConfigError;
using zflow::IOError;
using zflow::io::IdxArray;
using zflow::io::read_idx;
using zflow::io::write_idx;

namespace {

using zflow::testing::expect_error;

/// A fresh directory per test under the system temp folder, removed afterwards.
class IdxTest : public zflow::testing::TempDirTest {
 protected:
  IdxTest() : TempDirTest("zflow_test_idx") {}
};

/// Expects read_idx(p) to fail with an IOError that starts with the path and holds `fault`.
void expect_read_fault(const std::string& p, const std::string& fault) {
  try {
    read_idx(p);
    ADD_FAILURE() << "expected IOError containing '" << fault << "'";
  } catch (const IOError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(p + ": ", 0), 0u) << "message does not start with the path: " << what;
    EXPECT_NE(what.find(fault), std::string::npos) << "message: " << what << "\nwanted: " << fault;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "not one line: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

/// An IDX header by hand: magic 0 0 type ndim, then big-endian dimensions.
std::string header(const std::vector<uint32_t>& dims, unsigned type = 0x08) {
  std::string out;
  out += '\0';
  out += '\0';
  out += static_cast<char>(type);
  out += static_cast<char>(dims.size());
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((d >> shift) & 0xff);
  }
  return out;
}

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 37 + 11) & 0xff);
  return v;
}

std::string as_string(const std::vector<uint8_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

/// A gzip stream of `bytes`, made here with zlib independently of write_idx.
std::string gzip(const std::string& bytes) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&s, bytes.size()) + 64, '\0');
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  s.avail_in = static_cast<uInt>(bytes.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&s, Z_FINISH), Z_STREAM_END);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

}  // namespace

TEST_F(IdxTest, RoundTripsPlainAndGzipFor1D3DAnd4D) {
  const std::vector<std::vector<int64_t>> shapes = {{7}, {3, 4, 5}, {2, 3, 4, 3}};
  for (const auto& dims : shapes) {
    size_t n = 1;
    for (int64_t d : dims) n *= static_cast<size_t>(d);
    const IdxArray array{dims, pattern(n)};
    for (bool compressed : {false, true}) {
      SCOPED_TRACE(std::to_string(dims.size()) + "-D, gzip " + std::to_string(compressed));
      const std::string p = path(std::string("a-ubyte") + (compressed ? ".gz" : ""));
      write_idx(p, array, compressed);
      const std::string bytes = read_bytes(p);
      ASSERT_GE(bytes.size(), 2u);
      EXPECT_EQ(bytes[0] == '\x1f' && bytes[1] == '\x8b', compressed);
      if (!compressed) {
        std::vector<uint32_t> d32(dims.begin(), dims.end());
        EXPECT_EQ(bytes, header(d32) + as_string(array.data));  // the exact file layout
      }
      const IdxArray back = read_idx(p);
      EXPECT_EQ(back.dims, dims);
      EXPECT_EQ(back.data, array.data);
    }
  }
}

TEST_F(IdxTest, ReadsHandMadeFilesAndConcatenatedGzipMembers) {
  const std::vector<uint8_t> data = pattern(2 * 3);
  const std::string plain = header({2, 3}) + as_string(data);
  IdxArray a = read_idx(write_bytes("plain.idx", plain));
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data, data);

  // `cat header.gz data.gz` is a valid gzip file of the concatenation.
  const std::string p = write_bytes("cat.idx.gz", gzip(header({2, 3})) + gzip(as_string(data)));
  a = read_idx(p);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data, data);
}

TEST_F(IdxTest, GzipOutputIsDeterministic) {
  const IdxArray array{{10, 10}, pattern(100)};
  write_idx(path("a.gz"), array, true);
  write_idx(path("b.gz"), array, true);
  EXPECT_EQ(read_bytes(path("a.gz")), read_bytes(path("b.gz")));
}

TEST_F(IdxTest, DamagedHeadersNameTheFileAndTheFault) {
  const std::string data = as_string(pattern(6));
  expect_read_fault(write_bytes("magic", "\x01\x02\x08\x01" + header({6}).substr(4) + data),
                    "not an IDX file (bad magic 0x01020801)");
  expect_read_fault(write_bytes("float", header({6}, 0x0D) + data),
                    "unsupported IDX element type 0x0d (float32); only 0x08");
  expect_read_fault(write_bytes("int32", header({6}, 0x0C) + data), "0x0c (int32)");
  expect_read_fault(write_bytes("unknown", header({6}, 0x07) + data),
                    "unknown IDX element type 0x07");
  expect_read_fault(write_bytes("zero-dims", header({}) + data), "declares 0 dimensions");
  expect_read_fault(write_bytes("five-dims", header({1, 1, 1, 1, 6}) + data),
                    "declares 5 dimensions; 1 to 4 are supported");
  expect_read_fault(write_bytes("zero-dim", header({2, 0, 3}) + data),
                    "dimension 1 of [2, 0, 3] is 0");
  expect_read_fault(write_bytes("short-header", header({2, 3, 1}).substr(0, 10)),
                    "truncated: the header needs 16 bytes for 3 dimensions, the file has 10");
  expect_read_fault(write_bytes("tiny", std::string("\0\0", 2)), "not an IDX file");
  expect_read_fault(write_bytes("empty", ""), "the file has only 0 bytes");
  // A product of dimensions beyond 2^63 is caught before any allocation.
  expect_read_fault(write_bytes("huge", header({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}) + data),
                    "describe more than 2^63 bytes");
}

TEST_F(IdxTest, WrongDataLengthIsAnError) {
  const std::string h = header({2, 3, 4});
  expect_read_fault(write_bytes("short", h + as_string(pattern(20))),
                    "truncated: header says 24 bytes of data, file has 20");
  expect_read_fault(write_bytes("long", h + as_string(pattern(27))), "3 trailing bytes after");
  expect_read_fault(write_bytes("short.gz", gzip(h + as_string(pattern(20)))),
                    "truncated: header says 24 bytes of data, file has 20 after decompression");
  expect_read_fault(write_bytes("long.gz", gzip(h + as_string(pattern(25)))),
                    "1 trailing bytes after decompression");
  // Trailing bytes are counted, not stored: a megabyte of them after 24 bytes of data.
  expect_read_fault(write_bytes("bomb.gz", gzip(h + std::string(24 + (1 << 20), '\0'))),
                    "1048576 trailing bytes after decompression");
}

TEST_F(IdxTest, DamagedGzipStreamsAreClearErrors) {
  const std::string good = gzip(header({50, 20}) + as_string(pattern(1000)));
  ASSERT_GT(good.size(), 40u);
  expect_read_fault(write_bytes("cut.gz", good.substr(0, good.size() - 20)),
                    "truncated gzip stream");
  expect_read_fault(write_bytes("no-trailer.gz", good.substr(0, good.size() - 4)),
                    "truncated gzip stream");
  std::string bad_block = good;
  bad_block[10] = '\xff';  // first deflate block header: BTYPE 11 is reserved
  expect_read_fault(write_bytes("block.gz", bad_block), "damaged gzip stream (zlib: ");
  std::string bad_crc = good;
  bad_crc[bad_crc.size() - 8] ^= 0x55;
  expect_read_fault(write_bytes("crc.gz", bad_crc),
                    "damaged gzip stream (zlib: incorrect data check)");
  expect_read_fault(write_bytes("garbage.gz", good + "junk"),
                    "4 bytes of garbage after the gzip stream");
  expect_read_fault(write_bytes("twice.gz", gzip(good)),
                    "not an IDX file (bad magic 0x1f8b0800; gzip-compressed twice?)");
  expect_read_fault(write_bytes("only-magic.gz", "\x1f\x8b"), "truncated gzip stream");
}

TEST_F(IdxTest, MissingFileIsAnIOErrorNamingIt) {
  const std::string p = path("nope-ubyte.gz");
  expect_error<IOError>([&] { read_idx(p); }, {p, "No such file"});
}

TEST_F(IdxTest, WriteRefusesInvalidArraysAndReportsUnwritablePaths) {
  const std::string p = path("bad-ubyte");
  expect_error<ConfigError>([&] { write_idx(p, IdxArray{{}, {}}); }, {p, "1 to 4 dimensions"});
  expect_error<ConfigError>([&] { write_idx(p, IdxArray{{1, 1, 1, 1, 1}, {0}}); }, {p, "not 5"});
  expect_error<ConfigError>(
      [&] {
        write_idx(p, IdxArray{{2, 0}, {}});
      },
      {p, "dimension 1 of [2, 0]"});
  expect_error<ConfigError>(
      [&] {
        write_idx(p, IdxArray{{2, 3}, pattern(5)});
      },
      {p, "need 6 bytes of data, the array has 5"});
  expect_error<ConfigError>(
      [&] {
        write_idx(p, IdxArray{{int64_t{1} << 32}, {}});
      },
      {p, "outside 1 to 4294967295"});
  EXPECT_FALSE(fs::exists(p));
  const std::string missing = path("no-such-folder/x-ubyte");
  expect_error<IOError>([&] { write_idx(missing, IdxArray{{1}, {7}}); }, {missing});
}
