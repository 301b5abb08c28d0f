#include "zflow/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <streambuf>
#include <vector>

#include <c10/util/Exception.h>

#include "zflow/core/error.h"

namespace zflow::io {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

/// Writes all of `size` bytes to `fd`, retrying on EINTR and short writes. Returns 0 or errno.
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

/// A buffered output streambuf over a POSIX file descriptor that remembers the errno of the
/// first failed write, so that the caller can report e.g. "No space left on device".
class FdStreambuf : public std::streambuf {
 public:
  explicit FdStreambuf(int fd) : fd_(fd), buffer_(1 << 16) {
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }
  FdStreambuf(const FdStreambuf&) = delete;
  FdStreambuf& operator=(const FdStreambuf&) = delete;

  /// errno of the first failed write, 0 if none.
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (flush_buffer() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }

  int sync() override { return flush_buffer() == 0 ? 0 : -1; }

  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (error_ != 0) return 0;
    auto room = static_cast<std::streamsize>(epptr() - pptr());
    if (n <= room) {
      std::memcpy(pptr(), s, static_cast<size_t>(n));
      pbump(static_cast<int>(n));
      return n;
    }
    // Large writes go straight to the file after what is buffered.
    if (flush_buffer() != 0) return 0;
    int err = write_all(fd_, s, static_cast<size_t>(n));
    if (err != 0) {
      error_ = err;
      return 0;
    }
    return n;
  }

 private:
  int flush_buffer() {
    if (error_ != 0) return -1;
    auto size = static_cast<size_t>(pptr() - pbase());
    if (size > 0) {
      int err = write_all(fd_, pbase(), size);
      if (err != 0) {
        error_ = err;
        return -1;
      }
    }
    setp(buffer_.data(), buffer_.data() + buffer_.size());
    return 0;
  }

  int fd_;
  std::vector<char> buffer_;
  int error_ = 0;
};

/// Closes a descriptor and removes the temporary file unless released.
// The temporary files of writes in progress, for remove_temporary_files() in a signal
// handler: plain C strings in lock-free slots, the only state a handler may touch.
constexpr int kTempSlots = 16;
std::atomic<char*> g_temp_slots[kTempSlots];

class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {
    char* copy = ::strdup(path_.c_str());
    for (int i = 0; copy != nullptr && i < kTempSlots; ++i) {
      char* expected = nullptr;
      if (g_temp_slots[i].compare_exchange_strong(expected, copy)) {
        slot_ = i;
        return;
      }
    }
    std::free(copy);  // more writes at once than slots: this one is just not tracked
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
    if (slot_ >= 0) std::free(g_temp_slots[slot_].exchange(nullptr));
  }
  /// Closes the descriptor; returns 0 or errno.
  int close() {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR) return errno;
    return 0;
  }
  void commit() { committed_ = true; }
  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_;
  bool committed_ = false;
  int slot_ = -1;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw IOError("cannot write " + path + ": " + what);
}

}  // namespace

namespace {

/// Runs `writer` on a stream over `buffer` and flushes it. Any failure becomes an IOError
/// naming `name`, with the system's reason when a write failed: a writer that stopped on
/// a failed stream knows only that it failed, the buffer knows why.
void run_writer(FdStreambuf& buffer, const std::string& name,
                const std::function<void(std::ostream&)>& writer) {
  std::ostream stream(&buffer);
  try {
    writer(stream);
    stream.flush();
  } catch (const c10::Error& e) {
    // LibTorch's own errors (an allocation too large) carry a backtrace: leave it out.
    if (buffer.error() != 0) fail(name, errno_text(buffer.error()));
    fail(name, e.what_without_backtrace());
  } catch (const std::exception& e) {
    if (buffer.error() != 0) fail(name, errno_text(buffer.error()));
    if (dynamic_cast<const IOError*>(&e) != nullptr) throw;
    fail(name, e.what());
  } catch (...) {
    fail(name, "unknown error while writing");
  }
  if (buffer.error() != 0) fail(name, errno_text(buffer.error()));
  if (!stream) fail(name, "the stream reported a write error");
}

/// Streams `writer`'s output straight to an open descriptor (a device, a FIFO, stdout).
void write_stream(int fd, const std::string& name,
                  const std::function<void(std::ostream&)>& writer) {
  FdStreambuf buffer(fd);
  run_writer(buffer, name, writer);
}

/// Writes a device or FIFO in place: opened without creating or truncating it, so that
/// /dev/null stays a device and a FIFO's reader gets the data.
void write_in_place(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    fail(path, errno_text(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  write_stream(fd, path, writer);
}

}  // namespace

void remove_temporary_files() noexcept {
  for (auto& slot : g_temp_slots) {
    if (const char* temp = slot.load()) ::unlink(temp);
  }
}

std::string resolve_links(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path current(path);
  // The kernel's own limit on a chain of links (MAXSYMLINKS) is 40.
  for (int depth = 0; depth < 40; ++depth) {
    struct stat st {};
    if (::lstat(current.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return current.string();
    std::error_code ec;
    const fs::path target = fs::read_symlink(current, ec);
    if (ec) throw IOError("cannot write " + path + ": cannot read the link: " + ec.message());
    current = target.is_absolute() ? target : current.parent_path() / target;
  }
  throw IOError("cannot write " + path + ": too many levels of symbolic links");
}

OutputKind output_kind(const std::string& path) {
  if (path == "-") return OutputKind::stream;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return OutputKind::missing;
  if (S_ISREG(st.st_mode)) return OutputKind::regular;
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return OutputKind::stream;
  if (S_ISDIR(st.st_mode)) return OutputKind::directory;
  return OutputKind::other;
}

bool same_file(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty() || a == "-" || b == "-") return false;
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void write_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  static std::atomic<unsigned long> counter{0};
  namespace fs = std::filesystem;
  if (path == "-") {
    std::cout.flush();
    write_stream(STDOUT_FILENO, "standard output", writer);
    return;
  }
  switch (output_kind(path)) {
    case OutputKind::stream:
      write_in_place(path, writer);
      return;
    case OutputKind::directory:
      fail(path, "it is a directory");
    case OutputKind::other:
      fail(path, "it is neither a regular file nor a character device or FIFO");
    case OutputKind::missing:
    case OutputKind::regular:
      break;
  }
  // A symbolic link stays a link: its final target is what gets replaced.
  const fs::path target(resolve_links(path));
  if (path.empty() || !target.has_filename()) fail(path, "not a file name");
  fs::path dir = target.parent_path();
  const std::string dir_name = dir.empty() ? std::string(".") : dir.string();
  const std::string temp = (dir / ("." + target.filename().string() + ".tmp-" +
                                   std::to_string(::getpid()) + "-" + std::to_string(++counter)))
                               .string();

  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    int err = errno;
    fail(path, "cannot create a temporary file in " + dir_name + ": " + errno_text(err));
  }
  TempFile file(temp, fd);
  // A replaced file keeps its permissions (a private 0600 file stays private).
  struct stat old {};
  if (::stat(target.c_str(), &old) == 0 && S_ISREG(old.st_mode)) {
    (void)::fchmod(fd, old.st_mode & 07777);
  }

  FdStreambuf buffer(fd);
  run_writer(buffer, path, writer);

  if (::fsync(fd) != 0) {
    int err = errno;
    fail(path, "fsync: " + errno_text(err));
  }
  if (int err = file.close(); err != 0) fail(path, "close: " + errno_text(err));
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    int err = errno;
    fail(path, "rename: " + errno_text(err));
  }
  file.commit();

  // Make the rename itself durable; best effort, as some file systems refuse it.
  int dir_fd = ::open(dir_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

LineAppender::LineAppender(const std::string& path, bool append) : path_(path) {
  const OutputKind kind = output_kind(path);
  if (kind == OutputKind::directory) fail(path, "it is a directory");
  if (kind == OutputKind::other) {
    fail(path, "it is neither a regular file nor a character device or FIFO");
  }
  int flags = O_WRONLY | O_CLOEXEC | O_NOCTTY;
  if (kind != OutputKind::stream) flags |= O_CREAT | O_APPEND | (append ? 0 : O_TRUNC);
  fd_ = path == "-" ? ::dup(STDOUT_FILENO) : ::open(path.c_str(), flags, 0666);
  if (fd_ < 0) {
    int err = errno;
    fail(path, errno_text(err));
  }
  struct stat st {};
  seekable_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
}

LineAppender::~LineAppender() {
  if (fd_ >= 0) ::close(fd_);
}

void LineAppender::write_line(const std::string& line) {
  const std::string whole = line + '\n';
  const off_t before = seekable_ ? ::lseek(fd_, 0, SEEK_END) : -1;
  if (int err = write_all(fd_, whole.data(), whole.size()); err != 0) {
    // Cut a partial line back off, so that readers never meet half a record.
    if (before >= 0) (void)::ftruncate(fd_, before);
    fail(path_, errno_text(err));
  }
}

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    throw IOError("cannot read " + path + ": " + errno_text(err));
  }
  std::string data;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    data.reserve(static_cast<size_t>(st.st_size));
  }
  std::vector<char> chunk(1 << 16);
  while (true) {
    ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      throw IOError("cannot read " + path + ": " + errno_text(err));
    }
    if (n == 0) break;
    data.append(chunk.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

}  // namespace zflow::io
