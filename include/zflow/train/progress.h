#pragma once
/// \file
/// Progress reporting for long work: a one-line bar with rate and ETA, redrawn in place
/// when the stream is a terminal; a plain line every `every` steps otherwise (logs, CI).
///
/// Example:
///
///     zflow::train::Progress progress("sample", n, {&std::cerr,
///     zflow::train::stderr_is_terminal()}); for (int64_t i = 1; i <= n; ++i) progress.update(i);
///     progress.finish();

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace zflow::train {

/// Options for Progress.
struct ProgressOptions {
  /// Where to draw; nullptr disables all output.
  std::ostream* stream = nullptr;
  /// Whether `stream` is a terminal; decided by the caller (isatty(2) for stderr).
  bool terminal = false;
  /// Without a terminal, write a line every this many steps (and at the end).
  int64_t every = 100;
  /// Word for the unit of work ("step", "image").
  std::string unit = "step";
};

/// Reports the progress of `total` steps.
class Progress {
 public:
  Progress(std::string label, int64_t total, ProgressOptions options);
  /// Records that `step` steps (of total) are done; `status` is shown after the numbers
  /// (e.g. "loss 2.913 val 2.950"). Cheap when nothing needs drawing.
  void update(int64_t step, const std::string& status = "");
  /// Draws the final state and ends the line.
  void finish(const std::string& status = "");

 private:
  void draw(int64_t step, const std::string& status, bool final);
  std::string label_;
  int64_t total_;
  ProgressOptions options_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  int64_t last_line_step_ = 0;
  bool finished_ = false;
};

/// "1m05s", "3.2s", "2h04m".
std::string format_duration(double seconds);

/// Number of CPUs this process may run on (sched_getaffinity), at least 1.
int available_cpus();

/// Whether stderr is a terminal.
bool stderr_is_terminal();

}  // namespace zflow::train
