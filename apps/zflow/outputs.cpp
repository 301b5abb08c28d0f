#include "outputs.h"

#include <filesystem>
#include <system_error>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"

namespace zflow::cli {

namespace {

/// Whether two outputs would write the same file: the same existing file, or the same path
/// once links are followed and the path is made absolute (files that do not exist yet).
bool same_output(const std::string& a, const std::string& b) {
  if (io::same_file(a, b)) return true;
  std::error_code ea, eb;
  const auto pa = std::filesystem::weakly_canonical(io::resolve_links(a), ea);
  const auto pb = std::filesystem::weakly_canonical(io::resolve_links(b), eb);
  return !ea && !eb && pa == pb;
}

}  // namespace

void check_outputs(const std::vector<PathArg>& outputs, const std::vector<PathArg>& inputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const PathArg& out = outputs[i];
    if (out.path.empty()) continue;
    const io::OutputKind kind = io::output_kind(out.path);
    if (kind == io::OutputKind::directory) {
      throw ConfigError(out.option + " " + out.path + " is a directory; give a file name");
    }
    if (kind == io::OutputKind::other) {
      throw ConfigError(out.option + " " + out.path +
                        " is neither a regular file nor a character device or FIFO; zflow "
                        "will not write it");
    }
    // A stream has nothing to lose; only a file that would be replaced or created can clash.
    if (kind == io::OutputKind::stream) continue;
    for (const PathArg& in : inputs) {
      if (io::same_file(out.path, in.path)) {
        throw ConfigError(out.option + " " + out.path + " is the input " + in.option + " " +
                          in.path + "; writing it would destroy the input (choose another file)");
      }
    }
    for (size_t j = 0; j < i; ++j) {
      if (!outputs[j].path.empty() && io::output_kind(outputs[j].path) != io::OutputKind::stream &&
          same_output(out.path, outputs[j].path)) {
        throw ConfigError(out.option + " and " + outputs[j].option + " are the same file (" +
                          out.path + ")");
      }
    }
  }
}

}  // namespace zflow::cli
