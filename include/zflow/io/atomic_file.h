#pragma once
/// \file
/// Safe output: data go to a temporary file beside the target, are flushed and fsync'ed,
/// and only then renamed over the target, so a crash or a full disk never leaves a
/// half-written file in place of what the user had. What is at the path decides how it is
/// written (docs/reliability.md, "Output safety"):
/// - a regular file or nothing: replaced atomically (an existing file keeps its mode);
/// - a symbolic link: followed; the link stays and its final target is replaced atomically;
/// - a character device (/dev/null, a terminal) or a FIFO, and "-" (standard output):
///   written directly, as a stream;
/// - a directory, a block device or a socket: refused with IOError.
///
/// Example:
///
///     zflow::io::write_atomically("out/model.json",
///                                 [&](std::ostream& out) { out << spec.dump(2) << '\n'; });
///     zflow::io::LineAppender metrics("out/metrics.jsonl", /*append=*/true);
///     metrics.write_line(R"({"step": 100, "train_nll": 1.23})");

#include <functional>
#include <ostream>
#include <string>

namespace zflow::io {

/// Calls `writer` with a stream on a temporary file in the target's folder, then flushes,
/// fsyncs and renames it to `path` (or streams directly to a device, a FIFO or stdout, see
/// above). On any failure the temporary file is removed, the original `path` is untouched,
/// and IOError is thrown naming the path and the system's reason.
void write_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer);

/// What is at an output path, after following symbolic links.
enum class OutputKind {
  /// Nothing yet (a dangling link counts: its target will be created).
  missing,
  regular,
  /// "-", a character device or a FIFO: written as a stream, never replaced.
  stream,
  directory,
  /// A block device or a socket: never written.
  other,
};

/// The kind of `path` ("-" is standard output).
OutputKind output_kind(const std::string& path);

/// The path a write to `path` replaces: `path` itself unless it is a symbolic link, whose
/// chain is then followed to its final target (which need not exist). IOError for a loop.
std::string resolve_links(const std::string& path);

/// Whether `a` and `b` name the same existing file (same device and inode, links followed).
bool same_file(const std::string& a, const std::string& b);

/// A file that grows by whole lines (metrics as JSON lines): each line is written with one
/// write(2) call, and a write that fails part-way is cut back, so that a full disk leaves
/// no half line; every failure is an IOError with the system's reason.
class LineAppender {
 public:
  /// Opens `path` for appending (creating it), or empties it first unless `append`.
  /// A character device or FIFO is written as it is.
  LineAppender(const std::string& path, bool append);
  ~LineAppender();
  LineAppender(const LineAppender&) = delete;
  LineAppender& operator=(const LineAppender&) = delete;
  /// Writes `line` and a newline.
  void write_line(const std::string& line);

 private:
  std::string path_;
  int fd_ = -1;
  bool seekable_ = false;
};

/// Removes the temporary files of the writes in progress. Async-signal-safe: for a
/// handler of a signal that is about to end the process (the CLI installs one), so that
/// a write cut short leaves nothing behind in the target's folder.
void remove_temporary_files() noexcept;

/// Reads a whole file into a string; IOError naming the path if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace zflow::io
