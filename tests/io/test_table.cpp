#include "zflow/io/table.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"

namespace fs = std::filesystem;
using zflow::ConfigError;
using zflow::DataError;
using zflow::IOError;
using zflow::io::CsvReadOptions;
using zflow::io::parse_column_spec;
using zflow::io::read_csv;
using zflow::io::read_npy;
using zflow::io::read_table;
using zflow::io::Table;
using zflow::io::write_csv;
using zflow::io::write_npy;
using zflow::io::write_table;

namespace {

using zflow::testing::expect_error;

/// A fresh directory per test under the system temp folder, removed afterwards.
class TableTest : public zflow::testing::TempDirTest {
 protected:
  TableTest() : TempDirTest("zflow_test_table") {}
};

at::Tensor make_tensor(const std::vector<double>& v, int64_t rows, int64_t cols,
                       at::ScalarType type = at::kDouble) {
  at::Tensor t = at::empty({rows, cols}, at::TensorOptions().dtype(at::kDouble));
  std::memcpy(t.data_ptr<double>(), v.data(), v.size() * sizeof(double));
  return t.to(type);
}

std::vector<double> to_vec(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

/// Builds a .npy file by hand.
std::string npy(const std::string& descr, bool fortran, const std::string& shape,
                const std::string& payload, int major = 1) {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': " + (fortran ? "True" : "False") +
                       ", 'shape': " + shape + ", }";
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += static_cast<char>(0);
  const size_t n = header.size();
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (major != 1) {
    out += '\0';
    out += '\0';
  }
  return out + header + payload;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

const std::vector<double> kValues = {1.0, -2.5, 0.1, 1e-300, 3.141592653589793, -1.0 / 3.0};

/// The file this process has mapped at address `p` ("/path", or "/path (deleted)" once it
/// was replaced), from /proc/self/maps; "" where `p` lies in no mapping of a file.
std::string mapped_file_at(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto address = reinterpret_cast<uintptr_t>(p);
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long long low = 0, high = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &low, &high) != 2) continue;
    if (address < low || address >= high) continue;
    const size_t slash = line.find('/');
    return slash == std::string::npos ? std::string() : line.substr(slash);
  }
  return "";
}

/// How many mappings of the file at `path` this process holds.
int mappings_of(const std::string& path) {
  const std::string name = fs::canonical(path).string();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int count = 0;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash != std::string::npos && line.substr(slash) == name) ++count;
  }
  return count;
}

/// A .npy file of float64 [2, 2] whose data starts at an offset that is 4 modulo 8 (a
/// header padded by hand, not to 64 bytes as NumPy does).
std::string unaligned_npy(const std::vector<double>& values) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
  while ((10 + header.size() + 1) % 8 != 4) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + raw<double>(values);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

TEST_F(TableTest, CsvRoundTripWithHeaderIsExact) {
  const at::Tensor t = make_tensor(kValues, 3, 2);
  const std::string p = path("a.csv");
  write_csv(p, t, {"x", "y"});
  const Table table = read_csv(p);
  EXPECT_EQ(table.columns, (std::vector<std::string>{"x", "y"}));
  ASSERT_EQ(table.values.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(table.values.scalar_type(), at::kDouble);
  EXPECT_EQ(to_vec(table.values), kValues);  // %.17g round-trips exactly
}

TEST_F(TableTest, CsvRoundTripWithoutHeader) {
  const std::string p = path("a.csv");
  write_csv(p, make_tensor(kValues, 2, 3));
  EXPECT_EQ(read_bytes(p).find_first_of("xy"), std::string::npos);
  const Table table = read_csv(p);
  EXPECT_EQ(table.columns, (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(to_vec(table.values), kValues);
}

TEST_F(TableTest, CsvRoundTripFloat32UsesNineDigits) {
  const at::Tensor t = make_tensor(kValues, 3, 2, at::kFloat);
  const std::string p = path("f.csv");
  write_csv(p, t);
  const std::string text = read_bytes(p);
  EXPECT_NE(text.find("0.100000001"), std::string::npos) << text;  // %.9g of float(0.1)
  const Table table = read_csv(p);
  EXPECT_EQ(to_vec(table.values.to(at::kFloat)), to_vec(t));
}

TEST_F(TableTest, CsvOneDimensionalTensorIsOneColumn) {
  at::Tensor t = make_tensor({1, 2, 3}, 3, 1).reshape({3});
  const std::string p = path("v.csv");
  write_csv(p, t);
  const Table table = read_csv(p);
  EXPECT_EQ(table.values.sizes(), (std::vector<int64_t>{3, 1}));
}

TEST_F(TableTest, CsvDelimiters) {
  CsvReadOptions semi;
  semi.delimiter = ';';
  Table a = read_csv(write_text("s.csv", "a;b\n1;2\n3;4\n"), semi);
  EXPECT_EQ(a.columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(to_vec(a.values), (std::vector<double>{1, 2, 3, 4}));

  CsvReadOptions tab;
  tab.delimiter = '\t';
  Table b = read_csv(write_text("t.tsv", "1\t 2.5\n-3\t4e2\n"), tab);
  EXPECT_EQ(to_vec(b.values), (std::vector<double>{1, 2.5, -3, 400}));

  CsvReadOptions space;
  space.delimiter = ' ';
  Table c = read_csv(write_text("w.txt", "  1   2\t3\n4 5 6  \n"), space);
  EXPECT_EQ(c.values.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(to_vec(c.values), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

TEST_F(TableTest, CsvCrlfCommentsBlankLinesAndBom) {
  const std::string p = write_text(
      "c.csv", "\xEF\xBB\xBF# made by hand\r\nx, y\r\n\r\n1,2\r\n  # note\r\n3,4\r\n\r\n");
  const Table table = read_csv(p);
  EXPECT_EQ(table.columns, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(to_vec(table.values), (std::vector<double>{1, 2, 3, 4}));
  // No final newline.
  EXPECT_EQ(to_vec(read_csv(write_text("d.csv", "1,2\n3,4")).values),
            (std::vector<double>{1, 2, 3, 4}));
}

TEST_F(TableTest, CsvQuotedHeaderNames) {
  const Table table = read_csv(write_text("q.csv", "\"a,b\",\"say \"\"hi\"\"\"\n1,2\n"));
  EXPECT_EQ(table.columns, (std::vector<std::string>{"a,b", "say \"hi\""}));
  // And they survive a round trip.
  write_csv(path("r.csv"), table.values, table.columns);
  EXPECT_EQ(read_csv(path("r.csv")).columns, table.columns);
}

TEST_F(TableTest, CsvHeaderModes) {
  const std::string numeric = write_text("n.csv", "1,2\n3,4\n");
  CsvReadOptions yes;
  yes.header = "yes";
  const Table a = read_csv(numeric, yes);
  EXPECT_EQ(a.columns, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(a.values.size(0), 1);
  EXPECT_EQ(read_csv(numeric).values.size(0), 2);  // auto: numbers are data

  CsvReadOptions no;
  no.header = "no";
  expect_error<DataError>([&] { read_csv(write_text("h.csv", "x,y\n1,2\n"), no); },
                          {"h.csv", "line 1", "column 1", "\"x\"", "not a number"});

  CsvReadOptions bad;
  bad.header = "maybe";
  expect_error<ConfigError>([&] { read_csv(numeric, bad); }, {"maybe"});
  CsvReadOptions bad_delim;
  bad_delim.delimiter = '"';
  EXPECT_THROW(read_csv(numeric, bad_delim), ConfigError);
}

TEST_F(TableTest, CsvAutoHeaderRefusesAFirstRowOfTextAndNumbers) {
  // A typo in the first data row must not turn it into a header silently.
  expect_error<DataError>([&] { read_csv(write_text("t.csv", "1.O,2.5\n3,4\n")); },
                          {"t.csv", "line 1", "\"1.O\" in column 1", "\"2.5\" in column 2",
                           "--header yes", "--header no"});
  // Nor a header with a numeric name; comment lines before it do not count as the first row.
  expect_error<DataError>([&] { read_csv(write_text("h.csv", "# x\nx,2020\n1,2\n")); },
                          {"h.csv", "line 2", "\"x\" in column 1", "\"2020\" in column 2"});
  // Saying which it is reads the file.
  CsvReadOptions yes;
  yes.header = "yes";
  EXPECT_EQ(read_csv(path("h.csv"), yes).columns, (std::vector<std::string>{"x", "2020"}));
  CsvReadOptions no;
  no.header = "no";
  expect_error<DataError>([&] { read_csv(path("t.csv"), no); }, {"line 1", "\"1.O\""});
  // An empty field counts as neither: a row of numbers with a gap is data (and its gap an
  // error), a row of names with an empty one (an index column) is a header.
  expect_error<DataError>([&] { read_csv(write_text("g.csv", "1,,2\n3,4,5\n")); },
                          {"g.csv", "line 1", "column 2", "empty field"});
  EXPECT_EQ(read_csv(write_text("i.csv", ",a,b\n1,2,3\n")).columns,
            (std::vector<std::string>{"", "a", "b"}));
  // Rows of text only or numbers only are still told apart.
  EXPECT_EQ(read_csv(write_text("a.csv", "a,b\n1,2\n")).columns,
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read_csv(write_text("n.csv", "1,2\n3,4\n")).values.size(0), 2);
}

TEST_F(TableTest, CsvMissingFile) {
  const std::string p = path("nope.csv");
  expect_error<IOError>([&] { read_csv(p); }, {p});
  expect_error<IOError>([&] { read_table(p); }, {p});
  expect_error<IOError>([&] { read_csv(dir_.string()); }, {dir_.string()});
}

TEST_F(TableTest, CsvRaggedRow) {
  const std::string p = write_text("r.csv", "a,b\n1,2\n3,4,5\n");
  expect_error<DataError>([&] { read_csv(p); }, {"r.csv", "line 3", "expected 2", "found 3"});
  expect_error<DataError>([&] { read_csv(write_text("s.csv", "1,2\n3\n")); },
                          {"s.csv", "line 2", "found 1"});
  expect_error<DataError>([&] { read_csv(write_text("t.csv", "a,b,c\n1,2\n")); },
                          {"t.csv", "line 2", "expected 3"});
}

TEST_F(TableTest, CsvNonNumber) {
  expect_error<DataError>([&] { read_csv(write_text("x.csv", "a,b\n1,2\n3,abc\n")); },
                          {"x.csv", "line 3", "column 2", "(b)", "\"abc\"", "not a number"});
  CsvReadOptions no_header;
  no_header.header = "no";
  expect_error<DataError>([&] { read_csv(write_text("y.csv", "1,2.5x\n"), no_header); },
                          {"y.csv", "line 1", "column 2", "2.5x"});
  expect_error<DataError>([&] { read_csv(write_text("z.csv", "1,2\n3,2.5x\n")); },
                          {"z.csv", "line 2", "column 2", "2.5x"});
  expect_error<DataError>([&] { read_csv(write_text("e.csv", "1,2\n3,\n")); },
                          {"e.csv", "line 2", "column 2", "empty"});
}

TEST_F(TableTest, CsvRejectsNanAndInf) {
  for (const std::string bad : {"nan", "NaN", "-nan", "inf", "-Infinity", "1e999"}) {
    const std::string p = write_text("n.csv", "x,y\n1,2\n3," + bad + "\n");
    expect_error<DataError>([&] { read_csv(p); }, {"n.csv", "line 3", "column 2", bad, "finite"});
  }
  // "nan" in the first row is a value, not a header name.
  expect_error<DataError>([&] { read_csv(write_text("m.csv", "nan,1\n")); },
                          {"m.csv", "line 1", "column 1"});
}

TEST_F(TableTest, CsvEmptyFiles) {
  expect_error<DataError>([&] { read_csv(write_text("e.csv", "")); }, {"e.csv", "no data"});
  expect_error<DataError>([&] { read_csv(write_text("c.csv", "# only\n\n  \n")); },
                          {"c.csv", "no data"});
  expect_error<DataError>([&] { read_csv(write_text("h.csv", "x,y\n")); },
                          {"h.csv", "no data", "header"});
}

TEST_F(TableTest, WriteCsvChecksHeaderWidth) {
  EXPECT_THROW(write_csv(path("w.csv"), make_tensor({1, 2}, 1, 2), {"only"}), DataError);
  EXPECT_FALSE(fs::exists(path("w.csv")));
}

TEST_F(TableTest, WriteCsvToStdout) {
  ::testing::internal::CaptureStdout();
  write_table("-", make_tensor({1, 2.5}, 1, 2), {"a", "b"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, "a,b\n1,2.5\n");
}

TEST_F(TableTest, WriteIsAtomicAndReplaces) {
  const std::string p = write_text("o.csv", "old\n");
  write_table(p, make_tensor({7, 8}, 1, 2));
  EXPECT_EQ(read_bytes(p), "7,8\n");
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1u);  // no temporary left behind
  expect_error<IOError>([&] { write_table(path("no/such/dir/x.csv"), make_tensor({1}, 1, 1)); },
                        {"no/such/dir/x.csv"});
}

// ---------------------------------------------------------------------------------------
// Column specs
// ---------------------------------------------------------------------------------------

TEST(ColumnSpec, ParsesIndicesRangesAndNames) {
  const std::vector<std::string> cols = {"a", "b", "price", "d", "e", "f"};
  EXPECT_EQ(parse_column_spec("", cols), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(parse_column_spec("  ", cols), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(parse_column_spec("0,3-4,price", cols), (std::vector<int64_t>{0, 3, 4, 2}));
  EXPECT_EQ(parse_column_spec(" 5 , 1 - 2 ", cols), (std::vector<int64_t>{5, 1, 2}));
  EXPECT_EQ(parse_column_spec("2-2", cols), (std::vector<int64_t>{2}));
  EXPECT_EQ(parse_column_spec("1", {"", ""}), (std::vector<int64_t>{1}));
}

TEST(ColumnSpec, Errors) {
  const std::vector<std::string> cols = {"a", "b", "c"};
  expect_error<ConfigError>([&] { parse_column_spec("3", cols); }, {"3", "out of range"});
  expect_error<ConfigError>([&] { parse_column_spec("1-7", cols); }, {"1-7", "out of range"});
  expect_error<ConfigError>([&] { parse_column_spec("price", cols); }, {"price", "a, b, c"});
  expect_error<ConfigError>([&] { parse_column_spec("2-1", cols); }, {"2-1"});
  expect_error<ConfigError>([&] { parse_column_spec("0,,1", cols); }, {"empty"});
  expect_error<ConfigError>([&] { parse_column_spec("0,0-1", cols); }, {"twice"});
  expect_error<ConfigError>([&] { parse_column_spec("-1", cols); }, {"-1"});
  expect_error<ConfigError>([&] { parse_column_spec("x", {"", ""}); }, {"no column names"});
}

TEST(ColumnSpec, DuplicateNamesAreAnErrorWhenChosenByName) {
  const std::vector<std::string> cols = {"a", "b", "a", "c", "a"};
  expect_error<ConfigError>([&] { parse_column_spec("b,a", cols); },
                            {"'b,a'", "3 columns named 'a'", "0, 2 and 4"});
  expect_error<ConfigError>([&] { zflow::io::find_column(cols, "a"); }, {"'a'", "0, 2 and 4"});
  // The other names and plain indices still work.
  EXPECT_EQ(parse_column_spec("c,b,2", cols), (std::vector<int64_t>{3, 1, 2}));
  EXPECT_EQ(parse_column_spec("", cols).size(), 5u);
  EXPECT_EQ(zflow::io::find_column(cols, "c"), std::optional<int64_t>(3));
  EXPECT_EQ(zflow::io::find_column(cols, "z"), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// NPY
// ---------------------------------------------------------------------------------------

TEST_F(TableTest, NpyRoundTripFloat64) {
  const std::string p = path("a.npy");
  write_npy(p, make_tensor(kValues, 3, 2));
  const std::string bytes = read_bytes(p);
  ASSERT_GT(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 6), std::string("\x93NUMPY", 6));
  EXPECT_EQ(bytes[6], 1);
  EXPECT_EQ(bytes[7], 0);
  const size_t header_len = static_cast<unsigned char>(bytes[8]) |
                            (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(bytes[10 + header_len - 1], '\n');
  const std::string header = bytes.substr(10, header_len);
  EXPECT_NE(header.find("'descr': '<f8'"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (3, 2)"), std::string::npos) << header;
  EXPECT_EQ(bytes.size(), 10 + header_len + 6 * 8);

  const Table table = read_npy(p);
  EXPECT_EQ(table.values.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(table.columns, (std::vector<std::string>{"", ""}));
  EXPECT_EQ(to_vec(table.values), kValues);
}

TEST_F(TableTest, NpyRoundTripFloat32AndOneDimensional) {
  const at::Tensor f = make_tensor(kValues, 2, 3, at::kFloat);
  write_table(path("f.npy"), f);
  const std::string bytes = read_bytes(path("f.npy"));
  EXPECT_NE(bytes.find("'<f4'"), std::string::npos);
  const Table a = read_table(path("f.npy"));
  EXPECT_EQ(a.values.scalar_type(), at::kDouble);
  EXPECT_EQ(to_vec(a.values), to_vec(f));

  const at::Tensor v = make_tensor({1, 2, 3, 4}, 4, 1).reshape({4});
  write_npy(path("v.npy"), v);
  EXPECT_NE(read_bytes(path("v.npy")).find("'shape': (4,)"), std::string::npos);
  const Table b = read_npy(path("v.npy"));
  EXPECT_EQ(b.values.sizes(), (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(to_vec(b.values), (std::vector<double>{1, 2, 3, 4}));
}

TEST_F(TableTest, NpyVersion2AndIntegerTypes) {
  const std::string p =
      write_text("i.npy", npy("<i8", false, "(2, 2)", raw<int64_t>({1, -2, 3, 4}), 2));
  EXPECT_EQ(to_vec(read_npy(p).values), (std::vector<double>{1, -2, 3, 4}));
  const std::string q = write_text("j.npy", npy("<i4", false, "(3,)", raw<int32_t>({5, 6, -7})));
  EXPECT_EQ(to_vec(read_npy(q).values), (std::vector<double>{5, 6, -7}));
  const std::string r =
      write_text("k.npy", npy("<f4", false, "(1, 2)", raw<float>({0.5f, 2.f}), 3));
  EXPECT_EQ(to_vec(read_npy(r).values), (std::vector<double>{0.5, 2}));
}

TEST_F(TableTest, NpyDamagedFiles) {
  const std::string good = npy("<f8", false, "(2, 2)", raw<double>({1, 2, 3, 4}));
  // Truncated data.
  const std::string t = write_text("t.npy", good.substr(0, good.size() - 3));
  expect_error<IOError>([&] { read_npy(t); }, {"t.npy", "truncated"});
  // Truncated header.
  expect_error<IOError>([&] { read_npy(write_text("h.npy", good.substr(0, 40))); },
                        {"h.npy", "truncated"});
  // Bad magic.
  std::string bad = good;
  bad[1] = 'X';
  expect_error<IOError>([&] { read_npy(write_text("m.npy", bad)); }, {"m.npy", "magic"});
  expect_error<IOError>([&] { read_npy(write_text("e.npy", "")); }, {"e.npy"});
  // A CSV mistakenly named .npy.
  expect_error<IOError>([&] { read_table(write_text("c.npy", "1,2\n3,4\n")); }, {"c.npy"});
  // Unsupported version.
  std::string v9 = good;
  v9[6] = 9;
  expect_error<IOError>([&] { read_npy(write_text("v.npy", v9)); }, {"v.npy", "version"});
  // Garbled header dict.
  std::string garbled = good;
  garbled.replace(garbled.find("'shape'"), 7, "'shxpe'");
  expect_error<IOError>([&] { read_npy(write_text("g.npy", garbled)); }, {"g.npy", "header"});
  // Missing file.
  expect_error<IOError>([&] { read_npy(path("missing.npy")); }, {"missing.npy"});
}

TEST_F(TableTest, NpyUnsupportedContents) {
  const std::string payload = raw<double>({1, 2, 3, 4});
  expect_error<DataError>(
      [&] { read_npy(write_text("f.npy", npy("<f8", true, "(2, 2)", payload))); },
      {"f.npy", "Fortran"});
  expect_error<DataError>(
      [&] { read_npy(write_text("b.npy", npy(">f8", false, "(2, 2)", payload))); },
      {"b.npy", ">f8"});
  expect_error<DataError>(
      [&] { read_npy(write_text("c.npy", npy("<c16", false, "(2,)", payload))); },
      {"c.npy", "<c16"});
  expect_error<DataError>(
      [&] { read_npy(write_text("d.npy", npy("<f8", false, "(1, 2, 2)", payload))); },
      {"d.npy", "3 dimensions"});
  expect_error<DataError>([&] { read_npy(write_text("s.npy", npy("<f8", false, "()", payload))); },
                          {"s.npy"});
  expect_error<DataError>([&] { read_npy(write_text("z.npy", npy("<f8", false, "(0, 2)", ""))); },
                          {"z.npy", "empty"});
  expect_error<DataError>(
      [&] {
        read_npy(write_text("n.npy", npy("<f8", false, "(2, 2)", raw<double>({1, 2, NAN, 4}))));
      },
      {"n.npy", "row 2", "column 1", "NaN"});
  expect_error<DataError>(
      [&] {
        read_npy(write_text("i.npy", npy("<f4", false, "(2,)", raw<float>({1, -INFINITY}))));
      },
      {"i.npy", "row 2", "Inf"});
}

// .npy files are memory-mapped (copy-on-write) where they hold float64.

TEST_F(TableTest, NpyFloat64IsMappedFromTheFile) {
  if (!fs::exists("/proc/self/maps")) GTEST_SKIP() << "needs /proc/self/maps";
  const std::string p = path("a.npy");
  write_npy(p, make_tensor(kValues, 3, 2));
  const Table a = read_npy(p);
  EXPECT_EQ(a.values.scalar_type(), at::kDouble);
  EXPECT_TRUE(a.values.is_contiguous());
  EXPECT_EQ(a.values.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(to_vec(a.values), kValues);
  EXPECT_EQ(mapped_file_at(a.values.data_ptr()), fs::canonical(p).string());
  EXPECT_EQ(mappings_of(p), 1);
  // Used like any tensor: gathered rows are copies of their own.
  const at::Tensor rows = a.values.index_select(0, at::arange(2, -1, -2, at::kLong));
  EXPECT_EQ(to_vec(rows), (std::vector<double>{kValues[4], kValues[5], kValues[0], kValues[1]}));
  EXPECT_EQ(mapped_file_at(rows.data_ptr()), "");

  // 1-D: [N, 1] over the same kind of mapping.
  const std::string q = path("v.npy");
  write_npy(q, make_tensor({1, 2, 3, 4}, 4, 1).reshape({4}));
  const Table b = read_npy(q);
  EXPECT_EQ(b.values.sizes(), (std::vector<int64_t>{4, 1}));
  EXPECT_TRUE(b.values.is_contiguous());
  EXPECT_EQ(to_vec(b.values), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(mapped_file_at(b.values.data_ptr()), fs::canonical(q).string());
}

TEST_F(TableTest, NpyOtherTypesAndUnalignedDataAreConvertedIntoTensorsOfTheirOwn) {
  if (!fs::exists("/proc/self/maps")) GTEST_SKIP() << "needs /proc/self/maps";
  // float32: float64 values, as before, and the mapping used to read it is gone.
  const at::Tensor f = make_tensor(kValues, 2, 3, at::kFloat);
  const std::string p = path("f.npy");
  write_npy(p, f);
  const Table a = read_npy(p);
  EXPECT_EQ(a.values.scalar_type(), at::kDouble);
  EXPECT_EQ(to_vec(a.values), to_vec(f));
  EXPECT_EQ(mapped_file_at(a.values.data_ptr()), "");
  EXPECT_EQ(mappings_of(p), 0);

  // Data at an offset that is not a multiple of 8: read into an aligned tensor.
  const std::string u = write_bytes("u.npy", unaligned_npy({1, -2, 3.5, 4}));
  const Table b = read_npy(u);
  EXPECT_EQ(to_vec(b.values), (std::vector<double>{1, -2, 3.5, 4}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.values.data_ptr()) % alignof(double), 0u);
  EXPECT_EQ(mappings_of(u), 0);

  // Empty arrays and NaN stay errors, and leave no mapping behind.
  const std::string e = write_text("e.npy", npy("<f8", false, "(0,)", ""));
  expect_error<DataError>([&] { read_npy(e); }, {"e.npy", "empty"});
  EXPECT_EQ(mappings_of(e), 0);
  const std::string n = write_text("n.npy", npy("<f8", false, "(1, 2)", raw<double>({1, NAN})));
  expect_error<DataError>([&] { read_npy(n); }, {"n.npy", "row 1", "column 2", "NaN"});
  EXPECT_EQ(mappings_of(n), 0);
}

TEST_F(TableTest, NpyWritingIntoTheValuesLeavesTheFileAlone) {
  const std::string p = path("a.npy");
  write_npy(p, make_tensor(kValues, 3, 2));
  const std::string before = read_bytes(p);
  const Table a = read_npy(p);
  const Table b = read_npy(p);
  a.values.fill_(7.0);
  a.values.select(0, 1).mul_(2.0);
  EXPECT_EQ(to_vec(a.values), (std::vector<double>{7, 7, 14, 14, 7, 7}));
  EXPECT_EQ(read_bytes(p), before);
  EXPECT_EQ(to_vec(b.values), kValues);
  EXPECT_EQ(to_vec(read_npy(p).values), kValues);
}

TEST_F(TableTest, NpyMappedValuesOutliveTheTable) {
  if (!fs::exists("/proc/self/maps")) GTEST_SKIP() << "needs /proc/self/maps";
  const std::string p = path("a.npy");
  write_npy(p, make_tensor(kValues, 3, 2));
  at::Tensor rows;
  {
    const Table t = read_npy(p);
    rows = t.values.narrow(0, 1, 2).select(1, 1);
  }
  EXPECT_EQ(mappings_of(p), 1);
  EXPECT_EQ(to_vec(rows), (std::vector<double>{kValues[3], kValues[5]}));
  rows.reset();
  EXPECT_EQ(mappings_of(p), 0);  // unmapped with the last view

  // Replacing the file (write_npy renames a new one into place) leaves the mapping intact.
  const Table old = read_npy(p);
  write_npy(p, make_tensor({9, 8}, 1, 2));
  EXPECT_EQ(to_vec(old.values), kValues);
  EXPECT_EQ(mapped_file_at(old.values.data_ptr()), fs::canonical(p).string() + " (deleted)");
  EXPECT_EQ(to_vec(read_npy(p).values), (std::vector<double>{9, 8}));
}

TEST_F(TableTest, NpyFromAPipeIsReadAsAStream) {
  const std::string fifo = path("pipe.npy");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Sends `bytes` through the pipe while read_npy reads it; the table, or the error.
  auto through_pipe = [&](const std::string& bytes) {
    std::thread writer([&] {
      std::ofstream out(fifo, std::ios::binary);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    });
    std::optional<Table> table;
    std::string error;
    try {
      table = read_npy(fifo);
    } catch (const std::exception& e) {
      error = e.what();
    }
    // Should read_npy have failed without opening the pipe, open it so the writer finishes.
    const int fd = table ? -1 : ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    writer.join();
    if (fd >= 0) ::close(fd);
    return std::make_pair(std::move(table), error);
  };

  const auto [table, error] = through_pipe(npy("<f8", false, "(2, 2)", raw<double>({1, 2, 3, 4})));
  ASSERT_TRUE(table.has_value()) << error;
  EXPECT_EQ(table->values.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(to_vec(table->values), (std::vector<double>{1, 2, 3, 4}));

  const std::string good = npy("<f8", false, "(2, 2)", raw<double>({1, 2, 3, 4}));
  const auto [none, truncated] = through_pipe(good.substr(0, good.size() - 3));
  EXPECT_FALSE(none.has_value());
  EXPECT_NE(truncated.find("pipe.npy: truncated .npy file"), std::string::npos) << truncated;
}
