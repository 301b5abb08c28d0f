#include "zflow/io/atomic_file.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "support/temp_dir.h"
#include "zflow/core/error.h"

namespace fs = std::filesystem;

namespace {

/// A fresh directory per test under the system temp folder, removed afterwards.
class AtomicFileTest : public zflow::testing::TempDirTest {
 protected:
  AtomicFileTest() : TempDirTest("zflow_atomic") {}

  /// How many entries the test's folder holds.
  size_t entries() const {
    return static_cast<size_t>(
        std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }
};

TEST_F(AtomicFileTest, WritesNewFile) {
  zflow::io::write_atomically(path("a.txt"), [](std::ostream& out) { out << "hello\n"; });
  EXPECT_EQ(read_bytes(path("a.txt")), "hello\n");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, ReplacesExistingFile) {
  { std::ofstream(path("a.txt")) << "old contents that are longer"; }
  zflow::io::write_atomically(path("a.txt"), [](std::ostream& out) { out << "new"; });
  EXPECT_EQ(read_bytes(path("a.txt")), "new");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, LargeWrite) {
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4097) big[i] = static_cast<char>('a' + i % 26);
  zflow::io::write_atomically(path("big.bin"), [&](std::ostream& out) {
    out << 'A';
    out.write(big.data(), static_cast<std::streamsize>(big.size()));
    out << 'Z';
  });
  EXPECT_EQ(zflow::io::read_file(path("big.bin")), "A" + big + "Z");
}

TEST_F(AtomicFileTest, WriterThrowingLeavesOriginalAndNoTempFile) {
  { std::ofstream(path("a.txt")) << "original"; }
  try {
    zflow::io::write_atomically(path("a.txt"), [](std::ostream& out) {
      out << "partial data";
      out.flush();
      throw std::runtime_error("boom");
    });
    FAIL() << "expected IOError";
  } catch (const zflow::IOError& e) {
    EXPECT_NE(std::string(e.what()).find(path("a.txt")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(path("a.txt")), "original");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, WriterThrowingIOErrorIsPassedOn) {
  EXPECT_THROW(zflow::io::write_atomically(
                   path("b.txt"), [](std::ostream&) { throw zflow::IOError("inner failure"); }),
               zflow::IOError);
  EXPECT_FALSE(fs::exists(path("b.txt")));
  EXPECT_EQ(entries(), 0u);
}

TEST_F(AtomicFileTest, MissingFolderIsIOError) {
  const std::string target = path("missing/sub/a.txt");
  try {
    zflow::io::write_atomically(target, [](std::ostream& out) { out << "x"; });
    FAIL() << "expected IOError";
  } catch (const zflow::IOError& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(entries(), 0u);
}

TEST_F(AtomicFileTest, RenameOntoDirectoryFailsCleanly) {
  fs::create_directories(dir_ / "target");
  EXPECT_THROW(zflow::io::write_atomically(path("target"), [](std::ostream& out) { out << "x"; }),
               zflow::IOError);
  EXPECT_TRUE(fs::is_directory(dir_ / "target"));
  EXPECT_EQ(entries(), 1u);
}

// A failing write (here EFBIG from RLIMIT_FSIZE, as a full disk gives ENOSPC) is reported
// with strerror, and neither the original nor a temporary file is harmed or left behind.
// Runs in a child process so that the limit does not touch the rest of the tests.
TEST_F(AtomicFileTest, WriteErrorIsIOError) {
  { std::ofstream(path("a.txt")) << "original"; }
  const std::string target = path("a.txt");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit {};
    limit.rlim_cur = limit.rlim_max = 1 << 16;
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) std::_Exit(3);
    try {
      zflow::io::write_atomically(target, [](std::ostream& out) {
        const std::string chunk(1 << 20, 'x');
        out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      });
    } catch (const zflow::IOError& e) {
      const std::string what = e.what();
      const bool named = what.find(target) != std::string::npos;
      const bool reason = what.find("File too large") != std::string::npos;
      std::_Exit(named && reason ? 0 : 2);
    } catch (...) {
      std::_Exit(4);
    }
    std::_Exit(1);  // the write should have failed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error, 2: bad message, 3: setrlimit, 4: wrong type";
  EXPECT_EQ(read_bytes(path("a.txt")), "original");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, StreamStateErrorIsIOError) {
  { std::ofstream(path("a.txt")) << "original"; }
  EXPECT_THROW(zflow::io::write_atomically(path("a.txt"),
                                           [](std::ostream& out) {
                                             out << "data";
                                             out.setstate(std::ios::badbit);
                                           }),
               zflow::IOError);
  EXPECT_EQ(read_bytes(path("a.txt")), "original");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, ReadFile) {
  const std::string bytes("a\0b\r\n\xff", 6);
  { std::ofstream(path("r.bin"), std::ios::binary).write(bytes.data(), 6); }
  EXPECT_EQ(zflow::io::read_file(path("r.bin")), bytes);
  { std::ofstream(path("empty.bin"), std::ios::binary); }
  EXPECT_EQ(zflow::io::read_file(path("empty.bin")), "");
}

TEST_F(AtomicFileTest, ReadMissingFileNamesPath) {
  try {
    zflow::io::read_file(path("nope.bin"));
    FAIL() << "expected IOError";
  } catch (const zflow::IOError& e) {
    EXPECT_NE(std::string(e.what()).find(path("nope.bin")), std::string::npos) << e.what();
  }
  EXPECT_THROW(zflow::io::read_file(dir_.string()), zflow::IOError);
}

}  // namespace
