#pragma once

// A gtest fixture that gives every test a fresh, empty folder under the system temp folder,
// removed again after the test, with helpers to name, write and read files in it.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <utility>

#include <gtest/gtest.h>

namespace zflow::testing {

/// A fresh directory per test under the system temp folder, removed afterwards. The folder is
/// named PREFIX_PID_TEST, so that tests (and processes running them) never share one.
///
/// A fixture derives from it and names its prefix:
///
///     class IdxTest : public zflow::testing::TempDirTest {
///      protected:
///       IdxTest() : TempDirTest("zflow_test_idx") {}
///     };
///
/// A fixture that overrides SetUp or TearDown calls this class's first.
class TempDirTest : public ::testing::Test {
 protected:
  explicit TempDirTest(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           (prefix_ + "_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  /// The path of `name` inside the test's folder.
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  /// Writes `bytes` to `name` in the test's folder, replacing any file there; returns its path.
  std::string write_bytes(const std::string& name, const std::string& bytes) const {
    const std::string p = path(name);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

  /// write_bytes, for where the contents are text.
  std::string write_text(const std::string& name, const std::string& text) const {
    return write_bytes(name, text);
  }

  /// The whole contents of the file at `p`, or "" where it cannot be read.
  static std::string read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::filesystem::path dir_;

 private:
  std::string prefix_;
};

}  // namespace zflow::testing
