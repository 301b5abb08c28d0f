#pragma once
// A fixture for tests that run the built command-line tool (ZFLOW_BINARY) in a fresh folder
// and check its exit code, output and one-line errors.
//
// Example:
//
//     class MyTest : public zflow::testing::CliTest {
//      protected:
//       MyTest() : CliTest("zflow_my") {}
//     };
//     TEST_F(MyTest, Help) { EXPECT_EQ(zflow("--help").code, 0); }

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace zflow::testing {

/// What a command did.
struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

/// The whole contents of the file at `path`, or "" where it cannot be read.
inline std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Runs `zflow ARGS` (the built tool) in `dir`, its output in out.txt and err.txt there.
inline Outcome run_zflow_in(const std::filesystem::path& dir, const std::string& args) {
  const std::string command =
      "cd '" + dir.string() + "' && '" ZFLOW_BINARY "' " + args + " > out.txt 2> err.txt";
  const int status = std::system(command.c_str());
  Outcome r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = file_bytes(dir / "out.txt");
  r.err = file_bytes(dir / "err.txt");
  return r;
}

class CliTest : public TempDirTest {
 protected:
  explicit CliTest(std::string prefix) : TempDirTest(std::move(prefix)) {}

  /// Runs a shell command line in the test's folder with `zflow` meaning the built tool.
  Outcome shell(const std::string& line) const {
    // A fixture whose SetUp() skipped this class's would run in the current folder.
    if (dir_.empty()) throw std::logic_error("CliTest: the base class's SetUp() did not run");
    // $Z is the binary itself (a background "$Z ... &" is then the process, not a shell).
    const std::string command = "cd '" + dir_.string() +
                                "' && Z='" ZFLOW_BINARY "' && zflow() { \"$Z\" \"$@\"; } && { " +
                                line + "; } > run_stdout.txt 2> run_stderr.txt";
    const int status = std::system(command.c_str());
    Outcome r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_bytes(path("run_stdout.txt"));
    r.err = read_bytes(path("run_stderr.txt"));
    return r;
  }
  Outcome zflow(const std::string& args) const { return shell("zflow " + args); }

  /// Expects exit `code` and exactly one stderr line "zflow: error: ..." holding `part`.
  static void expect_error(const Outcome& r, int code, const std::string& part) {
    EXPECT_EQ(r.code, code) << r.err;
    std::istringstream lines(r.err);
    std::string line;
    int count = 0;
    std::string first;
    while (std::getline(lines, line)) {
      if (line.empty()) continue;
      if (count++ == 0) first = line;
    }
    EXPECT_EQ(count, 1) << r.err;
    EXPECT_EQ(first.rfind("zflow: error: ", 0), 0u) << first;
    EXPECT_NE(first.find(part), std::string::npos) << first << "\nmissing: " << part;
  }
};

}  // namespace zflow::testing
