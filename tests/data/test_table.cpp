// Tables for training and for trained models (data/table.h): reading a built-in dataset or
// a file, choosing data and context columns, the train/validation split, finding a model's
// columns again by stored names or indices, and the messages of every refusal.

#include "zflow/data/table.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"
#include "zflow/data/toy.h"

using namespace zflow;
using namespace zflow::data;
using zflow::testing::expect_error;

namespace {

std::vector<double> column(const at::Tensor& t, int64_t j) {
  const at::Tensor c = t.select(1, j).to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Rows i = 0..rows-1 of columns a = i, b = 10 + i, c = 20 + i, d = 100 + i.
std::string csv(int64_t rows, bool header = true, const std::string& names = "a,b,c,d") {
  std::string text = header ? names + "\n" : "";
  for (int64_t i = 0; i < rows; ++i) {
    text += std::to_string(i) + "," + std::to_string(10 + i) + "," + std::to_string(20 + i) + "," +
            std::to_string(100 + i) + "\n";
  }
  return text;
}

std::vector<double> range(double from, int64_t n) {
  std::vector<double> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(from + static_cast<double>(i));
  return out;
}

class TableTest : public zflow::testing::TempDirTest {
 protected:
  TableTest() : TempDirTest("zflow_test_table") {}
};

TEST(Table, ReadsABuiltInDataset) {
  const RawTable raw = read_raw_table("moons", "auto", 100, 3);
  EXPECT_TRUE(raw.toy);
  EXPECT_EQ(raw.source, "moons");
  EXPECT_EQ(raw.columns, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(raw.has_header());
  EXPECT_EQ(raw.values.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(raw.values, sample_toy("moons", 100, 3).to(at::kDouble)));
  expect_error<ConfigError>([] { read_raw_table("moons", "auto", 0, 3); }, {"--n", "0"});
  expect_error<ConfigError>([] { read_raw_table("", "auto", 10, 3); }, {"no data given"});
  // A name that is neither a file nor a dataset lists the datasets.
  expect_error<IOError>([] { read_raw_table("moon", "auto", 10, 3); },
                        {"moon: no such file", "built-in dataset", "moons", "8gaussians"});
}

TEST_F(TableTest, ReadsACsvFile) {
  const std::string file = write_text("runs.csv", csv(6));
  const RawTable raw = read_raw_table(file, "auto", 0, 0);
  EXPECT_FALSE(raw.toy);
  EXPECT_EQ(raw.source, file);
  EXPECT_EQ(raw.columns, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(raw.has_header());
  ASSERT_EQ(raw.values.sizes(), (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(raw.values.scalar_type(), at::kDouble);
  EXPECT_EQ(column(raw.values, 3), range(100, 6));

  const std::string bare = write_text("bare.csv", csv(5, false));
  const RawTable headerless = read_raw_table(bare, "auto", 0, 0);
  EXPECT_EQ(headerless.columns, std::vector<std::string>(4, ""));
  EXPECT_FALSE(headerless.has_header());
  EXPECT_EQ(headerless.values.size(0), 5);
  // header "no": the first row is data.
  EXPECT_EQ(read_raw_table(bare, "no", 0, 0).values.size(0), 5);

  expect_error<IOError>([&] { read_raw_table(path("none.csv"), "auto", 0, 0); },
                        {"none.csv: no such file"});
  try {
    read_raw_table(path("none.csv"), "auto", 0, 0);
  } catch (const IOError& e) {
    EXPECT_EQ(std::string(e.what()).find("built-in"), std::string::npos) << e.what();
  }
  expect_error<IOError>([&] { read_raw_table(dir_.string(), "auto", 0, 0); }, {"is a directory"});
  const std::string header_only = write_text("empty.csv", "a,b\n");
  expect_error<Error>([&] { read_raw_table(header_only, "yes", 0, 0); }, {"empty.csv"});
}

TEST(Table, SelectColumnsNamesTheNonFiniteValue) {
  RawTable raw;
  raw.source = "made.csv";
  raw.values = at::arange(12, at::kDouble).reshape({4, 3});
  raw.columns = {"p", "q", "r"};
  const Table t = select_columns(raw, {2, 0});
  EXPECT_EQ(t.columns, (std::vector<std::string>{"r", "p"}));
  EXPECT_EQ(t.indices, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(column(t.values, 0), (std::vector<double>{2, 5, 8, 11}));
  EXPECT_EQ(column(t.values, 1), (std::vector<double>{0, 3, 6, 9}));
  EXPECT_EQ(t.source, "made.csv");

  raw.values[2][2] = std::numeric_limits<double>::quiet_NaN();
  expect_error<DataError>(
      [&] {
        select_columns(raw, {0, 2});
      },
      {"made.csv, row 3, column 3 (r): NaN is not allowed"});
  // A column not chosen may hold anything.
  EXPECT_NO_THROW(select_columns(raw, {0, 1}));
  raw.values[1][0] = -std::numeric_limits<double>::infinity();
  raw.columns = {"", "", ""};
  expect_error<DataError>(
      [&] {
        select_columns(raw, {1, 0});
      },
      {"made.csv, row 2, column 1: Inf is not allowed"});
}

TEST(Table, ParseColumnsNamesTheOption) {
  RawTable raw;
  raw.source = "f.csv";
  raw.values = at::zeros({2, 3}, at::kDouble);
  raw.columns = {"p", "q", "r"};
  EXPECT_EQ(parse_columns("--columns", "r,0-1", raw), (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(parse_columns("--columns", "", raw), (std::vector<int64_t>{0, 1, 2}));
  expect_error<ConfigError>([&] { parse_columns("--columns", "5", raw); },
                            {"--columns: ", "out of range"});
  expect_error<ConfigError>([&] { parse_columns("--context-columns", "zz", raw); },
                            {"--context-columns: ", "zz"});
  expect_error<ConfigError>([&] { parse_columns("--columns", "q,1", raw); },
                            {"--columns: ", "twice"});
}

TEST_F(TableTest, TrainingTableWithContextColumns) {
  const std::string file = write_text("runs.csv", csv(8));
  // The context is "d"; the data are all the other columns.
  const TableWithContext t = load_training_table(file, "", "d", "auto", 0, 0);
  EXPECT_EQ(t.x.columns, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(t.x.indices, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(t.context.columns, (std::vector<std::string>{"d"}));
  EXPECT_EQ(t.context.indices, (std::vector<int64_t>{3}));
  EXPECT_EQ(column(t.context.values, 0), range(100, 8));
  EXPECT_EQ(column(t.x.values, 2), range(20, 8));

  const TableWithContext chosen = load_training_table(file, "c,a", "1", "auto", 0, 0);
  EXPECT_EQ(chosen.x.indices, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(chosen.context.indices, (std::vector<int64_t>{1}));
  EXPECT_EQ(column(chosen.context.values, 0), range(10, 8));

  // Without context columns: the data columns alone, no context.
  const TableWithContext plain = load_training_table(file, "b", "", "auto", 0, 0);
  EXPECT_EQ(plain.x.indices, (std::vector<int64_t>{1}));
  EXPECT_FALSE(plain.context.values.defined());

  expect_error<ConfigError>([&] { load_training_table(file, "a,c", "c", "auto", 0, 0); },
                            {file, "column 2 (c) is both a data column", "--context-columns"});
  expect_error<ConfigError>([&] { load_training_table(file, "", "0-3", "auto", 0, 0); },
                            {"--context-columns '0-3' takes every column", file});
  expect_error<ConfigError>([&] { load_training_table(file, "", "e", "auto", 0, 0); },
                            {"--context-columns: ", "e"});
  expect_error<ConfigError>([] { load_training_table("moons", "", "0", "auto", 100, 1); },
                            {"--context-columns", "'moons'", "no context columns"});
}

TEST(Table, SplitOfABuiltInDatasetDrawsFreshValidationPoints) {
  const TableWithContext t = load_training_table("moons", "", "", "auto", 100, 3);
  const Split s = split_table(t, 0.25, 100, "", "auto", 3);
  EXPECT_TRUE(at::equal(s.train, t.x.values));
  ASSERT_TRUE(s.val.defined());
  EXPECT_TRUE(at::equal(s.val, sample_toy("moons", 25, 4).to(at::kDouble)));
  EXPECT_FALSE(s.train_context.defined());
  EXPECT_FALSE(s.val_context.defined());
  // The validation draw has the same columns; its size is rounded.
  const TableWithContext y = load_training_table("moons", "1", "", "auto", 10, 3);
  const Split sy = split_table(y, 0.25, 10, "1", "auto", 3);
  ASSERT_EQ(sy.val.sizes(), (std::vector<int64_t>{3, 1}));
  EXPECT_TRUE(at::equal(sy.val, sample_toy("moons", 3, 4).to(at::kDouble).narrow(1, 1, 1)));
  // No validation fraction: no validation set.
  EXPECT_FALSE(split_table(t, 0.0, 100, "", "auto", 3).val.defined());
}

TEST_F(TableTest, SplitOfAFileHoldsOutAPermutationOfRows) {
  const std::string file = write_text("runs.csv", csv(10));
  const TableWithContext t = load_training_table(file, "a,b", "d", "auto", 0, 0);
  const Split s = split_table(t, 0.25, 0, "", "auto", 7);
  ASSERT_EQ(s.val.sizes(), (std::vector<int64_t>{2, 2}));  // floor(10 · 0.25)
  // The training rows are not copied: the whole table and the indices of its rows.
  EXPECT_EQ(s.train.data_ptr(), t.x.values.data_ptr());
  EXPECT_EQ(s.train_context.data_ptr(), t.context.values.data_ptr());
  ASSERT_EQ(s.train_size(), 8);
  const at::Tensor train = s.train.index_select(0, s.train_rows);
  const at::Tensor train_context = s.train_context.index_select(0, s.train_rows);
  ASSERT_EQ(s.val_context.sizes(), (std::vector<int64_t>{2, 1}));
  // The permutation drawn with the seed: its first rows are held out.
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(7);
  const at::Tensor order = at::randperm(10, generator, at::TensorOptions(at::kLong));
  EXPECT_EQ(column(s.val, 0), column(order.narrow(0, 0, 2).unsqueeze(1), 0));
  EXPECT_EQ(column(train, 0), column(order.narrow(0, 2, 8).unsqueeze(1), 0));
  // Every row once; contexts stay with their rows.
  std::vector<double> seen = column(s.val, 0);
  for (double v : column(train, 0)) seen.push_back(v);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, range(0, 10));
  EXPECT_TRUE(at::equal(s.val.select(1, 1), s.val.select(1, 0) + 10));
  EXPECT_TRUE(at::equal(s.val_context.select(1, 0), s.val.select(1, 0) + 100));
  EXPECT_TRUE(at::equal(train_context.select(1, 0), train.select(1, 0) + 100));
  // The same seed, the same split; another seed, (here) another.
  EXPECT_TRUE(at::equal(split_table(t, 0.25, 0, "", "auto", 7).val, s.val));
  EXPECT_FALSE(at::equal(split_table(t, 0.25, 0, "", "auto", 8).train_rows, s.train_rows));

  // floor(10 · 0.05) = 0: everything trains.
  const Split none = split_table(t, 0.05, 0, "", "auto", 7);
  EXPECT_FALSE(none.val.defined());
  EXPECT_TRUE(at::equal(none.train, t.x.values));
  EXPECT_TRUE(at::equal(none.train_context, t.context.values));
  // One row left for training is enough; none is an error.
  EXPECT_EQ(split_table(t, 0.95, 0, "", "auto", 7).train_size(), 1);
  expect_error<DataError>([&] { split_table(t, 1.0, 0, "", "auto", 7); },
                          {file, "10 rows leave none for training"});
}

StoredColumns unconditional(int64_t features) {
  StoredColumns m;
  m.model = "m.safetensors";
  m.features = features;
  return m;
}

TEST_F(TableTest, AnUnconditionalModelsTable) {
  const std::string file = write_text("runs.csv", csv(5));
  const TableWithContext t = load_table_for(unconditional(2), file, "b,d", "", "auto", 0, 0);
  EXPECT_EQ(t.x.indices, (std::vector<int64_t>{1, 3}));
  EXPECT_FALSE(t.context.values.defined());
  expect_error<DataError>([&] { load_table_for(unconditional(2), file, "", "", "auto", 0, 0); },
                          {file + " has 4 columns, the model expects 2 (choose them with"});
  expect_error<ConfigError>(
      [&] { load_table_for(unconditional(2), file, "a,b", "c", "auto", 0, 0); },
      {"m.safetensors is unconditional", "--context-columns"});
  EXPECT_EQ(load_table_for(unconditional(2), "moons", "", "", "auto", 7, 1).x.values.size(0), 7);
}

TEST_F(TableTest, AConditionalModelFindsItsColumnsByStoredNames) {
  StoredColumns m;
  m.model = "m.safetensors";
  m.features = 2;
  m.context_features = 1;
  m.names = {"c", "a"};
  m.context_names = {"d"};
  m.indices = {2, 0};
  m.context_indices = {3};
  // Another file with the columns in another order: the names find them.
  const std::string file = write_text("moved.csv", csv(6, true, "b,d,a,c"));
  const TableWithContext t = load_table_for(m, file, "", "", "auto", 0, 0);
  EXPECT_EQ(t.context.indices, (std::vector<int64_t>{1}));
  EXPECT_EQ(t.x.indices, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t.x.columns, (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(column(t.context.values, 0), range(10, 6));  // the file's second column

  // A header without the context's name.
  const std::string other = write_text("other.csv", csv(6, true, "a,b,c,e"));
  expect_error<DataError>([&] { load_table_for(m, other, "", "", "auto", 0, 0); },
                          {"other.csv has no column d", "1 context column (d)"});
  // A built-in dataset has no context.
  expect_error<ConfigError>([&] { load_table_for(m, "moons", "", "", "auto", 10, 0); },
                            {"conditional on 1 context column (d)", "'moons'"});
}

TEST_F(TableTest, AConditionalModelFindsItsColumnsByStoredIndices) {
  StoredColumns m;
  m.model = "m.safetensors";
  m.features = 2;
  m.context_features = 1;
  m.names = {"", ""};
  m.context_names = {""};
  m.indices = {2, 0};
  m.context_indices = {3};
  const std::string file = write_text("bare.csv", csv(6, false));
  const TableWithContext t = load_table_for(m, file, "", "", "auto", 0, 0);
  EXPECT_EQ(t.context.indices, (std::vector<int64_t>{3}));
  EXPECT_EQ(t.x.indices, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(column(t.x.values, 0), range(20, 6));
  EXPECT_EQ(column(t.x.values, 1), range(0, 6));
  EXPECT_EQ(column(t.context.values, 0), range(100, 6));

  // Another context than stored: the stored data indices no longer apply, so the data are
  // all the other columns, which are too many.
  expect_error<DataError>([&] { load_table_for(m, file, "", "1", "auto", 0, 0); },
                          {"3 data columns besides the context", "expects 2"});
  EXPECT_EQ(load_table_for(m, file, "0,2", "1", "auto", 0, 0).x.indices,
            (std::vector<int64_t>{0, 2}));
  // Stored indices beyond the file's width: nothing to go by.
  m.context_indices = {7};
  expect_error<DataError>([&] { load_table_for(m, file, "", "", "auto", 0, 0); },
                          {"no header to find the context columns by", "--context-columns"});
}

TEST(Table, CheckWidthSaysWhatTheModelExpects) {
  Table t;
  t.source = "f.csv";
  t.values = at::zeros({5, 3}, at::kDouble);
  expect_error<DataError>(
      [&] { check_width(t, 2); },
      {"f.csv has 3 columns, the model expects 2 (choose them with --columns)"});
  t.values = at::zeros({5, 1}, at::kDouble);
  try {
    check_width(t, 2);
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), "f.csv has 1 column, the model expects 2");
  }
  EXPECT_NO_THROW(check_width(t, 1));
}

TEST(Table, StoredColumnsHeadersFallBackToNumberedNames) {
  StoredColumns m;
  m.features = 2;
  m.context_features = 2;
  m.names = {"p", "q"};
  m.context_names = {"t", "u"};
  EXPECT_EQ(m.data_header(), (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ(m.context_header(), (std::vector<std::string>{"t", "u"}));
  EXPECT_EQ(m.describe_context(), "2 context columns (t, u)");
  m.names = {"p", ""};
  m.context_names = {};
  EXPECT_EQ(m.data_header(), (std::vector<std::string>{"x1", "x2"}));
  EXPECT_EQ(m.context_header(), (std::vector<std::string>{"c1", "c2"}));
  EXPECT_EQ(m.describe_context(), "2 context columns (c1, c2)");
  m.names = {"p"};  // fewer names than features
  EXPECT_EQ(m.data_header(), (std::vector<std::string>{"x1", "x2"}));
  m.context_features = 1;
  m.context_names = {"temp"};
  EXPECT_EQ(m.describe_context(), "1 context column (temp)");
  EXPECT_EQ(header_or_none({"a", ""}), std::vector<std::string>());
  EXPECT_EQ(header_or_none({"a", "b"}), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
