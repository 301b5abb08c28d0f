#pragma once
/// \file
/// Atomic file writing: data go to a temporary file beside the target, are flushed and
/// fsync'ed, and only then renamed over the target, so a crash or a full disk never
/// leaves a half-written file in place of what the user had.

#include <functional>
#include <ostream>
#include <string>

namespace zflow::io {

/// Calls `writer` with a stream on a temporary file in the target's folder, then flushes,
/// fsyncs and renames it to `path`. On any failure the temporary file is removed, the
/// original `path` is untouched, and IOError is thrown naming the path.
void write_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer);

/// Reads a whole file into a string; IOError naming the path if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace zflow::io
