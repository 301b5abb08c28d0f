#include "zflow/train/progress.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
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

// Everything written to the standard streams while it lives, at both levels: the C++
// streams (cout, cerr, clog) and file descriptors 1 and 2.
class CaptureStandardStreams {
 public:
  CaptureStandardStreams()
      : cout_(std::cout.rdbuf(cout_text_.rdbuf())),
        cerr_(std::cerr.rdbuf(cerr_text_.rdbuf())),
        clog_(std::clog.rdbuf(clog_text_.rdbuf())) {
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
  }
  ~CaptureStandardStreams() { release(); }
  /// Stops capturing; returns all that was written.
  std::string release() {
    if (released_) return text_;
    released_ = true;
    std::fflush(stdout);
    std::fflush(stderr);
    std::cout.rdbuf(cout_);
    std::cerr.rdbuf(cerr_);
    std::clog.rdbuf(clog_);
    text_ = ::testing::internal::GetCapturedStdout() + ::testing::internal::GetCapturedStderr() +
            cout_text_.str() + cerr_text_.str() + clog_text_.str();
    return text_;
  }

 private:
  std::ostringstream cout_text_, cerr_text_, clog_text_;
  std::streambuf* cout_;
  std::streambuf* cerr_;
  std::streambuf* clog_;
  bool released_ = false;
  std::string text_;
};

TEST(Progress, SilentWithoutStream) {
  ProgressOptions options;
  EXPECT_EQ(options.stream, nullptr);  // silent unless asked
  options.every = 1;
  for (bool terminal : {false, true}) {
    options.terminal = terminal;
    CaptureStandardStreams capture;
    Progress progress("silent", 10, options);
    for (int64_t step = 1; step <= 10; ++step) progress.update(step, "loss 1.5");
    progress.finish("loss 1.2");
    EXPECT_EQ(capture.release(), "") << "terminal " << terminal;
  }
  // The same progress given a stream writes a line per step there, and nothing elsewhere.
  std::ostringstream out;
  options.stream = &out;
  options.terminal = false;
  CaptureStandardStreams capture;
  Progress progress("silent", 3, options);
  for (int64_t step = 1; step <= 3; ++step) progress.update(step, "loss 1.5");
  progress.finish("loss 1.2");
  EXPECT_EQ(capture.release(), "");
  const auto got = lines(out.str());
  ASSERT_EQ(got.size(), 3u) << out.str();
  EXPECT_TRUE(starts_with(got[0], "silent 1/3 (33%) ")) << got[0];
  EXPECT_TRUE(contains(got[0], " loss 1.5")) << got[0];
  EXPECT_TRUE(starts_with(got[1], "silent 2/3 (66%) ")) << got[1];
  EXPECT_TRUE(starts_with(got[2], "silent 3/3 (100%) ")) << got[2];
  EXPECT_TRUE(contains(got[2], " done in ")) << got[2];
  EXPECT_TRUE(contains(got[2], " loss 1.2")) << got[2];
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

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof set, &set), 0) << std::strerror(errno);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

// available_cpus() in a child process restricted to `cpus` (as `taskset -c` would), or -1
// when the restriction is refused.
int available_cpus_in_child(const std::vector<int>& cpus) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : cpus) CPU_SET(cpu, &set);
    int answer = -1;
    if (sched_setaffinity(0, sizeof set, &set) == 0) answer = zflow::train::available_cpus();
    const ssize_t written = ::write(fds[1], &answer, sizeof answer);
    ::_exit(written == sizeof answer ? 0 : 1);
  }
  ::close(fds[1]);
  int answer = -1;
  if (pid < 0 || ::read(fds[0], &answer, sizeof answer) != sizeof answer) answer = -1;
  ::close(fds[0]);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  return answer;
}

TEST(SystemInfo, AvailableCpusCountsTheAffinityMask) {
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_EQ(zflow::train::available_cpus(), static_cast<int>(cpus.size()));
  const unsigned online = std::thread::hardware_concurrency();
  if (online > 0) {
    EXPECT_LE(zflow::train::available_cpus(), static_cast<int>(online));
  }
}

TEST(SystemInfo, AvailableCpusFollowsARestrictedProcess) {
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_EQ(available_cpus_in_child({cpus.front()}), 1);
  if (cpus.size() >= 2) {
    EXPECT_EQ(available_cpus_in_child({cpus[0], cpus[1]}), 2);
  }
}

TEST(SystemInfo, StderrIsTerminalFollowsFileDescriptor2) {
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::dup2(fds[1], STDERR_FILENO);
  const bool pipe_is_terminal = zflow::train::stderr_is_terminal();
  // A pseudo-terminal is a terminal, where the system offers one.
  bool pty_is_terminal = true;
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  const bool have_pty = master >= 0 && ::grantpt(master) == 0 && ::unlockpt(master) == 0;
  if (have_pty) {
    const int follower = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    if (follower >= 0) {
      ::dup2(follower, STDERR_FILENO);
      pty_is_terminal = zflow::train::stderr_is_terminal();
      ::close(follower);
    }
  }
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fds[0]);
  ::close(fds[1]);
  if (master >= 0) ::close(master);
  EXPECT_FALSE(pipe_is_terminal);
  EXPECT_TRUE(pty_is_terminal);
  EXPECT_EQ(zflow::train::stderr_is_terminal(), ::isatty(STDERR_FILENO) == 1);
}

}  // namespace
