#include "zflow/io/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/Functions.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"
#include "zflow/core/error.h"

namespace fs = std::filesystem;
using zflow::io::load_safetensors;
using zflow::io::save_safetensors;
using zflow::io::TensorFile;

namespace {

/// A fresh directory per test under the system temp folder, removed afterwards.
class SafetensorsTest : public zflow::testing::TempDirTest {
 protected:
  SafetensorsTest() : TempDirTest("zflow_safetensors") {}

  /// Expects load_safetensors(p) to throw IOError whose message names the file and `fault`.
  void expect_fault(const std::string& p, const std::string& fault) const {
    try {
      load_safetensors(p);
      ADD_FAILURE() << "expected IOError containing '" << fault << "'";
    } catch (const zflow::IOError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(p), std::string::npos) << what;
      EXPECT_NE(what.find(fault), std::string::npos)
          << "message: " << what << "\nwanted: " << fault;
    }
  }
};

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

/// A file with the given header text (unpadded) and data section.
std::string make_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string floats(const std::vector<float>& v) {
  std::string s(v.size() * sizeof(float), '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

bool same(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && a.device() == b.device() &&
         a.equal(b);
}

TEST_F(SafetensorsTest, RoundTripEveryDtype) {
  TensorFile file;
  file.tensors = {
      {"f64", at::randn({3, 4}, at::kDouble)},
      {"f32", at::randn({5}, at::kFloat)},
      {"f16", at::randn({2, 3}, at::kFloat).to(at::kHalf)},
      {"bf16", at::randn({7}, at::kFloat).to(at::kBFloat16)},
      {"i64", at::arange(-5, 5, at::kLong).reshape({2, 5})},
      {"i32", at::arange(-3, 3, at::kInt)},
      {"i16", at::arange(-300, 300, 7, at::kShort)},
      {"i8", at::arange(-128, 128, at::kChar)},
      {"u8", at::arange(0, 256, at::kByte).reshape({16, 16})},
      {"bool", at::arange(0, 9, at::kLong).remainder(2).eq(0).reshape({3, 3})},
  };
  file.metadata = {{"format", "pt"}, {"note", "ünïcode ✓"}, {"empty", ""}};
  save_safetensors(path("all.safetensors"), file);
  const TensorFile back = load_safetensors(path("all.safetensors"));
  ASSERT_EQ(back.tensors.size(), file.tensors.size());
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    EXPECT_EQ(back.tensors[i].first, file.tensors[i].first);
    EXPECT_TRUE(same(back.tensors[i].second, file.tensors[i].second)) << file.tensors[i].first;
  }
  EXPECT_EQ(back.metadata, file.metadata);
  EXPECT_TRUE(back.contains("bf16"));
  EXPECT_FALSE(back.contains("nope"));
  EXPECT_TRUE(same(back.at("i8"), file.tensors[7].second));
  EXPECT_THROW(back.at("nope"), zflow::IOError);

  // The data section starts 8-byte aligned and the header is valid JSON padded with spaces.
  const std::string bytes = read_bytes(path("all.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
}

TEST_F(SafetensorsTest, RoundTripScalarEmptyAndNonContiguous) {
  TensorFile file;
  at::Tensor base = at::arange(12, at::kFloat).reshape({3, 4});
  file.tensors = {
      {"scalar", at::scalar_tensor(2.5, at::kDouble)},
      {"empty", at::empty({0}, at::kFloat)},
      {"empty2d", at::empty({3, 0}, at::kLong)},
      {"transposed", base.t()},
      {"sliced", base.select(1, 2)},
  };
  save_safetensors(path("x.safetensors"), file);
  const TensorFile back = load_safetensors(path("x.safetensors"));
  ASSERT_EQ(back.tensors.size(), 5u);
  EXPECT_EQ(back.at("scalar").dim(), 0);
  EXPECT_EQ(back.at("scalar").item<double>(), 2.5);
  EXPECT_EQ(back.at("empty").sizes(), at::IntArrayRef({0}));
  EXPECT_EQ(back.at("empty2d").sizes(), at::IntArrayRef({3, 0}));
  EXPECT_EQ(back.at("empty2d").scalar_type(), at::kLong);
  EXPECT_TRUE(same(back.at("transposed"), base.t().contiguous()));
  EXPECT_TRUE(same(back.at("sliced"), base.select(1, 2).contiguous()));
  for (const auto& [name, t] : back.tensors) EXPECT_TRUE(t.is_contiguous()) << name;
}

TEST_F(SafetensorsTest, EmptyFileAndMetadataOnly) {
  save_safetensors(path("none.safetensors"), TensorFile{});
  TensorFile none = load_safetensors(path("none.safetensors"));
  EXPECT_TRUE(none.tensors.empty());
  EXPECT_TRUE(none.metadata.empty());

  TensorFile meta;
  meta.metadata = {{"k", "v"}};
  save_safetensors(path("meta.safetensors"), meta);
  EXPECT_EQ(load_safetensors(path("meta.safetensors")).metadata, meta.metadata);
}

TEST_F(SafetensorsTest, LoadedTensorsOwnTheirMemory) {
  TensorFile file;
  file.tensors = {{"a", at::ones({4}, at::kFloat)}, {"b", at::zeros({4}, at::kFloat)}};
  save_safetensors(path("own.safetensors"), file);
  TensorFile back = load_safetensors(path("own.safetensors"));
  fs::remove(path("own.safetensors"));
  back.tensors[0].second.add_(1);
  EXPECT_TRUE(same(back.at("a"), at::full({4}, 2.0f, at::kFloat)));
  EXPECT_TRUE(same(back.at("b"), at::zeros({4}, at::kFloat)));
}

TEST_F(SafetensorsTest, SaveRejectsBadInput) {
  TensorFile dup;
  dup.tensors = {{"a", at::ones({1})}, {"a", at::ones({1})}};
  EXPECT_THROW(save_safetensors(path("dup.safetensors"), dup), zflow::IOError);
  TensorFile complex;
  complex.tensors = {{"c", at::ones({2}, at::kComplexFloat)}};
  EXPECT_THROW(save_safetensors(path("c.safetensors"), complex), zflow::IOError);
  TensorFile undefined;
  undefined.tensors = {{"u", at::Tensor()}};
  EXPECT_THROW(save_safetensors(path("u.safetensors"), undefined), zflow::IOError);
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(SafetensorsTest, SaveIntoMissingFolderIsIOError) {
  TensorFile file;
  file.tensors = {{"a", at::ones({1})}};
  EXPECT_THROW(save_safetensors(path("missing/a.safetensors"), file), zflow::IOError);
}

// A file assembled byte by byte per the specification, as another writer (Python's
// safetensors) would produce it: unpadded header, keys in arbitrary order, data in an order
// that differs from the header order.
TEST_F(SafetensorsTest, LoadsHandBuiltFile) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"I64","shape":[2],"data_offsets":[8,24]},)"
      R"("a":{"shape":[2],"data_offsets":[0,8],"dtype":"F32"},"z":{"dtype":"U8","shape":[0],)"
      R"("data_offsets":[24,24]},"s":{"dtype":"F64","shape":[],"data_offsets":[24,32]}})";
  std::string data = floats({1.5f, -2.0f});
  int64_t longs[2] = {7, -9};
  data.append(reinterpret_cast<const char*>(longs), sizeof longs);
  double scalar = 3.25;
  data.append(reinterpret_cast<const char*>(&scalar), sizeof scalar);
  write_bytes("hand.safetensors", make_file(header, data));

  const TensorFile file = load_safetensors(path("hand.safetensors"));
  ASSERT_EQ(file.tensors.size(), 4u);
  // File (data) order.
  EXPECT_EQ(file.tensors[0].first, "a");
  EXPECT_EQ(file.tensors[1].first, "b");
  EXPECT_EQ(file.metadata.at("format"), "pt");
  EXPECT_TRUE(same(file.at("a"), at::tensor({1.5f, -2.0f})));
  EXPECT_TRUE(same(file.at("b"), at::tensor(std::vector<int64_t>{7, -9})));
  EXPECT_EQ(file.at("z").numel(), 0);
  EXPECT_EQ(file.at("z").scalar_type(), at::kByte);
  EXPECT_EQ(file.at("s").dim(), 0);
  EXPECT_EQ(file.at("s").item<double>(), 3.25);
}

// What zflow writes is exactly what the spec says, byte for byte.
TEST_F(SafetensorsTest, WritesSpecBytes) {
  TensorFile file;
  file.tensors = {{"w", at::tensor({1.0f, 2.0f})}};
  save_safetensors(path("w.safetensors"), file);
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  EXPECT_EQ(read_bytes(path("w.safetensors")), make_file(header, floats({1.0f, 2.0f})));
}

TEST_F(SafetensorsTest, TruncatedFiles) {
  TensorFile file;
  file.tensors = {{"a", at::randn({4, 4})}, {"b", at::randn({3})}};
  save_safetensors(path("good.safetensors"), file);
  const std::string bytes = read_bytes(path("good.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);

  write_bytes("t.safetensors", "");
  expect_fault(path("t.safetensors"), "too short");
  write_bytes("t.safetensors", bytes.substr(0, 5));
  expect_fault(path("t.safetensors"), "too short");
  write_bytes("t.safetensors", bytes.substr(0, 8));
  expect_fault(path("t.safetensors"), "past the end of the file");
  write_bytes("t.safetensors", bytes.substr(0, 8 + n / 2));
  expect_fault(path("t.safetensors"), "past the end of the file");
  write_bytes("t.safetensors", bytes.substr(0, 8 + n));
  expect_fault(path("t.safetensors"), "outside the data section");
  write_bytes("t.safetensors", bytes.substr(0, bytes.size() - 1));
  expect_fault(path("t.safetensors"), "outside the data section");
  // Trailing bytes are not covered by any tensor.
  write_bytes("t.safetensors", bytes + "xxxx");
  expect_fault(path("t.safetensors"), "not covered by any tensor");
}

TEST_F(SafetensorsTest, BadHeaderLength) {
  const std::string data = floats({1, 2});
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  write_bytes("h.safetensors", le64(uint64_t{1} << 60) + header + data);
  expect_fault(path("h.safetensors"), "absurd");
  write_bytes("h.safetensors", le64(header.size() + data.size() + 1) + header + data);
  expect_fault(path("h.safetensors"), "past the end of the file");
  // Header length too short: the JSON is cut.
  write_bytes("h.safetensors", le64(header.size() - 3) + header + data);
  expect_fault(path("h.safetensors"), "invalid JSON");
  // Byte-swapped (big-endian) length.
  std::string swapped = le64(header.size());
  std::reverse(swapped.begin(), swapped.end());
  write_bytes("h.safetensors", swapped + header + data);
  expect_fault(path("h.safetensors"), "header length");
}

TEST_F(SafetensorsTest, BadJson) {
  const std::string data = floats({1, 2});
  struct Case {
    std::string header;
    std::string fault;
  };
  const std::vector<Case> cases = {
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", "invalid JSON"},
      {R"({"a":{"dtype":"F32",,"shape":[2],"data_offsets":[0,8]}})", "invalid JSON"},
      {"{\"\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "invalid JSON"},
      {R"([1,2,3])", "not a JSON object"},
      {R"("text")", "not a JSON object"},
      {R"({"a":[1]})", "not an object"},
      {R"({"a":{"shape":[2],"data_offsets":[0,8]}})", "missing \"dtype\""},
      {R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", "\"dtype\" is not a string"},
      {R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", "missing \"shape\""},
      {R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", "\"shape\" is not an array"},
      {R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", "is not an integer"},
      {R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", "is not an integer"},
      {R"({"a":{"dtype":"F32","shape":[2]}})", "missing \"data_offsets\""},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", "\"data_offsets\" is not a pair"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})",
       "\"data_offsets\" is not a pair"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", "is before begin"},
      {R"({"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})", "unsupported dtype \"F99\""},
      {R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", "unsupported dtype"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "negative dimension"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "need 12 bytes"},
      {R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", "need 16 bytes"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
       "is too large"},
      // No element, but LibTorch's strides would overflow (found by fuzzing).
      {R"({"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})",
       "is too large"},
      {R"({"a":{"dtype":"U8","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}})",
       "is too large"},
      {R"({"a":{"dtype":"F32","shape":[2,4611686018427387904],"data_offsets":[0,8]}})",
       "is too large"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       "duplicate key 'a'"},
      {R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       "metadata value of 'k' is not a string"},
      {R"({"__metadata__":"x","a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       "\"__metadata__\" is not an object"},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    const std::string p =
        write_bytes("j" + std::to_string(i++) + ".safetensors", make_file(c.header, data));
    expect_fault(p, c.fault);
  }
}

TEST_F(SafetensorsTest, OverlapsAndGaps) {
  struct Case {
    std::string header;
    std::string data;
    std::string fault;
  };
  const std::vector<Case> cases = {
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       std::string(12, '\0'), "overlap"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       std::string(8, '\0'), "overlap"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, '\0'),
       "gap of 4 bytes"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
       std::string(12, '\0'), "gap of 4 bytes before tensor 'b'"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0'),
       "outside the data section"},
      {R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2),
       "BOOL value"},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    const std::string p =
        write_bytes("o" + std::to_string(i++) + ".safetensors", make_file(c.header, c.data));
    expect_fault(p, c.fault);
  }
}

TEST_F(SafetensorsTest, MissingFileIsIOError) {
  expect_fault(path("absent.safetensors"), "No such file");
}

}  // namespace
