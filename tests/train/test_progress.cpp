#include "zflow/train/progress.h"

#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using zflow::train::format_duration;
using zflow::train::Progress;
using zflow::train::ProgressOptions;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(Progress, PlainLinesEveryNSteps) {
  std::ostringstream out;
  ProgressOptions options;
  options.stream = &out;
  options.terminal = false;
  options.every = 10;
  Progress progress("train", 25, options);
  for (int64_t step = 1; step <= 25; ++step) progress.update(step, "loss 1.5");
  progress.finish("loss 1.2");
  const std::string text = out.str();
  EXPECT_FALSE(contains(text, "\r"));
  EXPECT_FALSE(contains(text, "\x1b"));
  const auto got = lines(text);
  ASSERT_EQ(got.size(), 3u) << text;
  EXPECT_TRUE(starts_with(got[0], "train 10/25 (40%) ")) << got[0];
  EXPECT_TRUE(contains(got[0], " step/s ETA ")) << got[0];
  EXPECT_TRUE(contains(got[0], " loss 1.5")) << got[0];
  EXPECT_TRUE(starts_with(got[1], "train 20/25 (80%) ")) << got[1];
  EXPECT_TRUE(starts_with(got[2], "train 25/25 (100%) ")) << got[2];
  EXPECT_TRUE(contains(got[2], " done in ")) << got[2];
  EXPECT_TRUE(contains(got[2], " loss 1.2")) << got[2];
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, PlainLinesWhenStepsSkipMultiples) {
  std::ostringstream out;
  ProgressOptions options;
  options.stream = &out;
  options.every = 10;
  options.unit = "image";
  Progress progress("eval", 100, options);
  for (int64_t step : {7, 14, 21, 28, 35}) progress.update(step);
  progress.finish();
  const auto got = lines(out.str());
  ASSERT_EQ(got.size(), 4u) << out.str();
  EXPECT_TRUE(starts_with(got[0], "eval 14/100 (14%) ")) << got[0];
  EXPECT_TRUE(contains(got[0], " image/s")) << got[0];
  EXPECT_TRUE(starts_with(got[1], "eval 21/100 ")) << got[1];
  EXPECT_TRUE(starts_with(got[2], "eval 35/100 (35%) ")) << got[2];
  EXPECT_TRUE(starts_with(got[3], "eval 35/100 (35%) ")) << got[3];
  EXPECT_TRUE(contains(got[3], "done in")) << got[3];
}

TEST(Progress, TerminalRedrawsOneLine) {
  std::ostringstream out;
  ProgressOptions options;
  options.stream = &out;
  options.terminal = true;
  Progress progress("fit", 2000, options);
  for (int64_t step = 1; step <= 2000; ++step) progress.update(step, "loss 2.9");
  progress.finish("done");
  const std::string text = out.str();
  // Fast updates are throttled: far fewer draws than steps.
  size_t draws = 0;
  for (char c : text) draws += c == '\r';
  EXPECT_GE(draws, 2u);
  EXPECT_LT(draws, 100u);
  // A single line, ended once.
  EXPECT_EQ(lines(text).size(), 1u);
  EXPECT_EQ(text.back(), '\n');
  const std::string last = text.substr(text.rfind('\r'));
  EXPECT_TRUE(starts_with(last, "\rfit  [####################]  2000/2000  100%  ")) << last;
  EXPECT_TRUE(contains(last, " step/s  done in ")) << last;
  EXPECT_TRUE(contains(last, "  done\x1b[K\n")) << last;
  const std::string first = text.substr(0, text.find('\r', 1));
  EXPECT_TRUE(starts_with(first, "\rfit  [....................]  1/2000  0%  ")) << first;
  EXPECT_TRUE(contains(first, "ETA ")) << first;
}

TEST(Progress, SilentWithoutStream) {
  Progress progress("x", 10, ProgressOptions{});
  for (int64_t step = 1; step <= 10; ++step) progress.update(step);
  progress.finish();
  SUCCEED();
}

TEST(Progress, FinishTwiceDrawsOnce) {
  std::ostringstream out;
  ProgressOptions options;
  options.stream = &out;
  options.every = 1;
  Progress progress("x", 3, options);
  progress.update(3);
  progress.finish();
  progress.finish();
  progress.update(3);
  EXPECT_EQ(lines(out.str()).size(), 1u) << out.str();
}

TEST(Progress, UnknownTotal) {
  std::ostringstream out;
  ProgressOptions options;
  options.stream = &out;
  options.every = 5;
  Progress progress("read", 0, options);
  for (int64_t step = 1; step <= 12; ++step) progress.update(step);
  progress.finish();
  const auto got = lines(out.str());
  ASSERT_EQ(got.size(), 3u) << out.str();
  EXPECT_TRUE(starts_with(got[0], "read 5 step ")) << got[0];
  EXPECT_FALSE(contains(got[0], "ETA")) << got[0];
  EXPECT_TRUE(starts_with(got[2], "read 12 step ")) << got[2];
}

TEST(FormatDuration, Cases) {
  EXPECT_EQ(format_duration(0), "0.0s");
  EXPECT_EQ(format_duration(3.2), "3.2s");
  EXPECT_EQ(format_duration(3.24), "3.2s");
  EXPECT_EQ(format_duration(59.9), "59.9s");
  EXPECT_EQ(format_duration(59.96), "1m00s");
  EXPECT_EQ(format_duration(65), "1m05s");
  EXPECT_EQ(format_duration(600), "10m00s");
  EXPECT_EQ(format_duration(3599.4), "59m59s");
  EXPECT_EQ(format_duration(3599.6), "1h00m");
  EXPECT_EQ(format_duration(7440), "2h04m");
  EXPECT_EQ(format_duration(100 * 3600), "100h00m");
  EXPECT_EQ(format_duration(-1), "0.0s");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::infinity()), "?");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::quiet_NaN()), "?");
}

TEST(SystemInfo, AvailableCpus) {
  EXPECT_GE(zflow::train::available_cpus(), 1);
  // Just exercise it; the answer depends on how the tests are run.
  (void)zflow::train::stderr_is_terminal();
}

}  // namespace
