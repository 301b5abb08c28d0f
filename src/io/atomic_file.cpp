#include "zflow/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <streambuf>
#include <vector>

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
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
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
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw IOError("cannot write " + path + ": " + what);
}

}  // namespace

void write_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  static std::atomic<unsigned long> counter{0};
  namespace fs = std::filesystem;
  const fs::path target(path);
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

  FdStreambuf buffer(fd);
  std::ostream stream(&buffer);
  try {
    writer(stream);
  } catch (const IOError&) {
    throw;
  } catch (const std::exception& e) {
    fail(path, e.what());
  } catch (...) {
    fail(path, "unknown error while writing");
  }
  stream.flush();
  if (buffer.error() != 0) fail(path, errno_text(buffer.error()));
  if (!stream) fail(path, "the stream reported a write error");

  if (::fsync(fd) != 0) {
    int err = errno;
    fail(path, "fsync: " + errno_text(err));
  }
  if (int err = file.close(); err != 0) fail(path, "close: " + errno_text(err));
  if (::rename(temp.c_str(), path.c_str()) != 0) {
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
