#pragma once
/// \file
/// Checks on the files a command will write, made before any work starts, so that a long
/// run never ends by destroying one of its own inputs (docs/reliability.md, "Output
/// safety"). How each kind of path is then written is io::write_atomically's job.

#include <string>
#include <vector>

namespace zflow::cli {

/// A file named on the command line, with the option that named it ("--out").
struct PathArg {
  std::string option;
  std::string path;
};

/// ConfigError (exit 2) when an output is a directory, a block device or a socket, or
/// resolves (links followed) to the same file as an input or as another output. Empty
/// paths are skipped; "-", devices and FIFOs are streams and never clash.
void check_outputs(const std::vector<PathArg>& outputs, const std::vector<PathArg>& inputs);

}  // namespace zflow::cli
