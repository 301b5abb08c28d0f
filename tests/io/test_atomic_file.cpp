#include "zflow/io/atomic_file.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "support/expect_error.h"
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

// ---- output safety: what is at the path decides how it is written ----------------------

TEST_F(AtomicFileTest, SymlinkStaysALinkAndItsTargetIsReplaced) {
  { std::ofstream(path("real.txt")) << "old"; }
  fs::create_symlink("real.txt", dir_ / "link.txt");
  zflow::io::write_atomically(path("link.txt"), [](std::ostream& out) { out << "new"; });
  EXPECT_TRUE(fs::is_symlink(dir_ / "link.txt"));
  EXPECT_EQ(read_bytes(path("real.txt")), "new");
  EXPECT_EQ(entries(), 2u);
}

TEST_F(AtomicFileTest, ChainOfLinksAndDanglingLinkCreateTheFinalTarget) {
  fs::create_directories(dir_ / "sub");
  fs::create_symlink("sub/second", dir_ / "first");
  fs::create_symlink("target.txt", dir_ / "sub" / "second");  // relative to sub/
  EXPECT_EQ(zflow::io::output_kind(path("first")), zflow::io::OutputKind::missing);
  zflow::io::write_atomically(path("first"), [](std::ostream& out) { out << "x"; });
  EXPECT_TRUE(fs::is_symlink(dir_ / "first"));
  EXPECT_TRUE(fs::is_symlink(dir_ / "sub" / "second"));
  EXPECT_EQ(read_bytes((dir_ / "sub" / "target.txt").string()), "x");
}

TEST_F(AtomicFileTest, SymlinkLoopIsIOError) {
  fs::create_symlink("b", dir_ / "a");
  fs::create_symlink("a", dir_ / "b");
  zflow::testing::expect_error<zflow::IOError>(
      [&] { zflow::io::write_atomically(path("a"), [](std::ostream& out) { out << "x"; }); },
      {path("a")});
  EXPECT_TRUE(fs::is_symlink(dir_ / "a"));
}

TEST_F(AtomicFileTest, FifoIsWrittenAsAStreamAndStaysAFifo) {
  ASSERT_EQ(::mkfifo(path("pipe").c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] { received = read_bytes(path("pipe")); });
  zflow::io::write_atomically(path("pipe"), [](std::ostream& out) { out << "through the pipe"; });
  reader.join();
  EXPECT_EQ(received, "through the pipe");
  EXPECT_EQ(zflow::io::output_kind(path("pipe")), zflow::io::OutputKind::stream);
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, DevNullStaysACharacterDevice) {
  zflow::io::write_atomically("/dev/null", [](std::ostream& out) { out << "discarded"; });
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

// As root, a device node made in the test's folder (the same device as /dev/null) must
// stay a device: the atomic rename would have replaced it with a regular file.
TEST_F(AtomicFileTest, DeviceNodeInAFolderStaysADevice) {
  if (::geteuid() != 0) GTEST_SKIP() << "mknod of a device needs root";
  struct stat null_st {};
  ASSERT_EQ(::stat("/dev/null", &null_st), 0);
  if (::mknod(path("dev").c_str(), S_IFCHR | 0666, null_st.st_rdev) != 0) {
    GTEST_SKIP() << "mknod refused here (a container without CAP_MKNOD)";
  }
  zflow::io::write_atomically(path("dev"), [](std::ostream& out) { out << "data"; });
  struct stat st {};
  ASSERT_EQ(::lstat(path("dev").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, null_st.st_rdev);
}

TEST_F(AtomicFileTest, FullDeviceGivesTheSystemsReason) {
  zflow::testing::expect_error<zflow::IOError>(
      [&] {
        zflow::io::write_atomically("/dev/full", [](std::ostream& out) {
          const std::string chunk(1 << 17, 'x');
          out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        });
      },
      {"/dev/full", "No space left on device"});
}

TEST_F(AtomicFileTest, DirectoryIsRefusedWithItsReason) {
  fs::create_directories(dir_ / "folder");
  zflow::testing::expect_error<zflow::IOError>(
      [&] { zflow::io::write_atomically(path("folder"), [](std::ostream& out) { out << "x"; }); },
      {"folder", "directory"});
  EXPECT_EQ(zflow::io::output_kind(path("folder")), zflow::io::OutputKind::directory);
}

TEST_F(AtomicFileTest, ReplacedFileKeepsItsPermissions) {
  { std::ofstream(path("private.txt")) << "secret"; }
  fs::permissions(path("private.txt"), fs::perms::owner_read | fs::perms::owner_write);
  zflow::io::write_atomically(path("private.txt"), [](std::ostream& out) { out << "new"; });
  EXPECT_EQ(fs::status(path("private.txt")).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(AtomicFileTest, SameFileSeesThroughLinks) {
  { std::ofstream(path("data.csv")) << "1,2\n"; }
  fs::create_symlink("data.csv", dir_ / "alias.csv");
  fs::create_hard_link(dir_ / "data.csv", dir_ / "hard.csv");
  EXPECT_TRUE(zflow::io::same_file(path("alias.csv"), path("data.csv")));
  EXPECT_TRUE(zflow::io::same_file(path("hard.csv"), path("data.csv")));
  EXPECT_TRUE(zflow::io::same_file(path("./data.csv"), path("data.csv")));
  EXPECT_FALSE(zflow::io::same_file(path("missing.csv"), path("data.csv")));
  EXPECT_FALSE(zflow::io::same_file("-", "-"));
}

TEST_F(AtomicFileTest, LineAppenderAppendsWholeLines) {
  {
    zflow::io::LineAppender lines(path("m.jsonl"), /*append=*/false);
    lines.write_line("{\"step\":1}");
  }
  {
    zflow::io::LineAppender lines(path("m.jsonl"), /*append=*/true);
    lines.write_line("{\"step\":2}");
  }
  EXPECT_EQ(read_bytes(path("m.jsonl")), "{\"step\":1}\n{\"step\":2}\n");
  {
    zflow::io::LineAppender lines(path("m.jsonl"), /*append=*/false);
    lines.write_line("fresh");
  }
  EXPECT_EQ(read_bytes(path("m.jsonl")), "fresh\n");
}

// A line that does not fit (RLIMIT_FSIZE standing in for a full disk) is cut back off:
// the file ends with the last whole line, and the error carries the system's reason.
TEST_F(AtomicFileTest, LineAppenderNeverLeavesHalfALine) {
  const std::string target = path("m.jsonl");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit {};
    limit.rlim_cur = limit.rlim_max = 100;
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) std::_Exit(3);
    try {
      zflow::io::LineAppender lines(target, false);
      lines.write_line(std::string(60, 'a'));
      lines.write_line(std::string(60, 'b'));  // crosses the limit part-way
    } catch (const zflow::IOError& e) {
      std::_Exit(std::string(e.what()).find("File too large") != std::string::npos ? 0 : 2);
    } catch (...) {
      std::_Exit(4);
    }
    std::_Exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error, 2: no reason, 3: setrlimit, 4: wrong type";
  EXPECT_EQ(read_bytes(target), std::string(60, 'a') + "\n");
}

}  // namespace
