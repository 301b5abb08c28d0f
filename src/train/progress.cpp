#include "zflow/train/progress.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>
#include <utility>

namespace zflow::train {
namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
constexpr int kBarWidth = 20;

std::string format_rate(double rate, const std::string& unit) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.1f %s/s", rate, unit.c_str());
  return buffer;
}

}  // namespace

std::string format_duration(double seconds) {
  if (std::isnan(seconds) || std::isinf(seconds)) return "?";
  if (seconds < 0) seconds = 0;
  char buffer[64];
  // Below a minute: tenths of a second, unless they round up to a whole minute.
  if (std::round(seconds * 10) < 600) {
    std::snprintf(buffer, sizeof buffer, "%.1fs", std::round(seconds * 10) / 10);
    return buffer;
  }
  const double whole = std::round(seconds);
  if (whole < 3600) {
    const auto s = static_cast<long long>(whole);
    std::snprintf(buffer, sizeof buffer, "%lldm%02llds", s / 60, s % 60);
    return buffer;
  }
  const auto minutes = static_cast<long long>(std::round(seconds / 60));
  std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", minutes / 60, minutes % 60);
  return buffer;
}

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, int64_t total, ProgressOptions options)
    : label_(std::move(label)),
      total_(total),
      options_(std::move(options)),
      start_(std::chrono::steady_clock::now()),
      last_draw_() {
  if (options_.every < 1) options_.every = 1;
}

void Progress::update(int64_t step, const std::string& status) {
  if (options_.stream == nullptr || finished_) return;
  // last_line_step_ holds the last step seen; a plain line is due whenever the steps cross a
  // multiple of `every` (the last step is left to finish(), which prints the final line).
  const int64_t previous = last_line_step_;
  last_line_step_ = step;
  if (options_.terminal) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < kRedrawInterval) return;
    last_draw_ = now;
    draw(step, status, false);
    return;
  }
  if (step <= previous || step / options_.every == previous / options_.every) return;
  if (total_ > 0 && step >= total_) return;
  draw(step, status, false);
}

void Progress::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  if (options_.stream == nullptr) return;
  draw(last_line_step_, status, true);
}

void Progress::draw(int64_t step, const std::string& status, bool final) {
  std::ostream& out = *options_.stream;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(step) / elapsed : 0.0;
  const bool known_total = total_ > 0;
  const double fraction =
      known_total ? std::min(1.0, std::max(0.0, static_cast<double>(step) / total_)) : 0.0;
  const int percent = static_cast<int>(std::floor(fraction * 100));

  std::string timing;
  if (final) {
    timing = "done in " + format_duration(elapsed);
  } else if (known_total && rate > 0) {
    timing = "ETA " + format_duration(static_cast<double>(total_ - std::min(step, total_)) / rate);
  } else if (known_total) {
    timing = "ETA ?";
  }

  std::string line;
  if (options_.terminal) {
    const std::string gap = "  ";
    line = "\r" + label_;
    if (known_total) {
      const int filled = static_cast<int>(std::floor(fraction * kBarWidth));
      line += gap + "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '.') + "]";
      line += gap + std::to_string(step) + "/" + std::to_string(total_);
      line += gap + std::to_string(percent) + "%";
    } else {
      line += gap + std::to_string(step) + " " + options_.unit;
    }
    line += gap + format_rate(rate, options_.unit);
    if (!timing.empty()) line += gap + timing;
    if (!status.empty()) line += gap + status;
    line += "\x1b[K";
    if (final) line += "\n";
    out << line << std::flush;
    return;
  }

  line = label_;
  if (known_total) {
    line += " " + std::to_string(step) + "/" + std::to_string(total_) + " (" +
            std::to_string(percent) + "%)";
  } else {
    line += " " + std::to_string(step) + " " + options_.unit;
  }
  line += " " + format_rate(rate, options_.unit);
  if (!timing.empty()) line += " " + timing;
  if (!status.empty()) line += " " + status;
  out << line << '\n' << std::flush;
}

}  // namespace zflow::train
