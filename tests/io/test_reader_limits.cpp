// Readers against hostile sizes, and the metrics reader of `zflow report` and `plot curves`.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "support/expect_error.h"
#include "support/temp_dir.h"
#include "zflow/core/error.h"
#include "zflow/io/metrics.h"
#include "zflow/io/table.h"

using zflow::DataError;
using zflow::IOError;
using zflow::testing::expect_error;

namespace {

class ReaderLimitsTest : public zflow::testing::TempDirTest {
 protected:
  ReaderLimitsTest() : TempDirTest("zflow_test_reader_limits") {}

  /// A version 1.0 .npy file with the given dict fields and data.
  std::string npy(const std::string& name, const std::string& shape, const std::string& data) {
    std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
    header += std::string((64 - (header.size() + 11) % 64) % 64, ' ') + "\n";
    std::string bytes("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(header.size() & 0xff);
    bytes += static_cast<char>(header.size() >> 8);
    return write_bytes(name, bytes + header + data);
  }
};

TEST_F(ReaderLimitsTest, NpyShapesWhoseElementCountOverflowsAreRefused) {
  const std::string big = npy("big.npy", "(4611686018427387904, 4)", "");
  expect_error<IOError>([&] { zflow::io::read_npy(big); }, {big, "shape too large"});
  const std::string beyond = npy("beyond.npy", "(99999999999999999999, 1)", "");
  expect_error<IOError>([&] { zflow::io::read_npy(beyond); }, {beyond, "out of range"});
  // A zero with a huge dimension holds no element: refused as empty, never multiplied.
  const std::string zero = npy("zero.npy", "(0, 4611686018427387904)", "");
  expect_error<DataError>([&] { zflow::io::read_npy(zero); }, {zero, "empty"});
}

TEST_F(ReaderLimitsTest, MetricsCurves) {
  const std::string p = write_bytes(
      "m.jsonl",
      "{\"step\": 0, \"train_nll\": 2.5}\n\n{\"step\": 10, \"train_nll\": 2.0, \"val_nll\": 2.2}\n"
      "{\"event\": \"resume\", \"step\": 10}\n{\"step\": 20, \"train_nll\": null, \"val_nll\": "
      "1.9}\n");
  const auto records = zflow::io::read_metrics(p);
  ASSERT_EQ(records.size(), 4u);
  const auto curves = zflow::io::metrics_curves(records);
  EXPECT_FALSE(curves.bits_per_dim);
  EXPECT_EQ(curves.steps, (std::vector<double>{0, 10}));
  EXPECT_EQ(curves.train, (std::vector<double>{2.5, 2.0}));
  EXPECT_EQ(curves.val_steps, (std::vector<double>{10, 20}));
  EXPECT_EQ(curves.val, (std::vector<double>{2.2, 1.9}));

  const auto images = zflow::io::metrics_curves(
      {{{"step", 1}, {"train_bpd", 5.5}, {"train_nll", 3000}}, {{"step", 2}, {"val_bpd", 5.1}}});
  EXPECT_TRUE(images.bits_per_dim);
  EXPECT_EQ(images.train, (std::vector<double>{5.5}));
  EXPECT_EQ(images.val, (std::vector<double>{5.1}));
}

TEST_F(ReaderLimitsTest, DamagedMetricsAreDataErrors) {
  const std::string cut = write_bytes("cut.jsonl", "{\"step\": 1}\n{\"step\":\n");
  expect_error<DataError>([&] { zflow::io::read_metrics(cut); }, {cut, "line 2 is not JSON"});
  // A step that is not a number used to escape as a JSON type error.
  expect_error<DataError>(
      [&] {
        zflow::io::metrics_curves({{{"step", 1}}, {{"step", "ten"}, {"train_nll", 1}}});
      },
      {"metrics record 2", "\"step\" is not a finite number", "\"ten\""});
  const std::string missing = path("missing.jsonl");
  expect_error<IOError>([&] { zflow::io::read_metrics(missing); }, {missing});
}

}  // namespace
