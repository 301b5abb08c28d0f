#pragma once
// The readers take paths: a fuzz input is handed to them as an in-memory file (memfd), so
// that no run touches the disk, named through /proc/self/fd.

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace zflow::fuzz {

class FuzzFile {
 public:
  FuzzFile() : fd_(memfd_create("zflow-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) std::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  FuzzFile(const FuzzFile&) = delete;
  FuzzFile& operator=(const FuzzFile&) = delete;
  ~FuzzFile() { close(fd_); }

  /// Replaces the file's content with `data` and returns its path.
  const std::string& write(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

/// One file per process: libFuzzer runs the inputs one after another.
inline const std::string& as_file(const uint8_t* data, size_t size) {
  static FuzzFile file;
  return file.write(data, size);
}

/// A broken invariant: libFuzzer reports the crash and saves the input.
[[noreturn]] inline void invariant_failed() { __builtin_trap(); }

}  // namespace zflow::fuzz
