#pragma once
/// \file
/// SIGINT and SIGTERM during long work: the first one asks the work to stop at its next
/// safe point (training saves its state and the best model so far); a second one ends
/// the process at once, as the signal's default would.

#include <csignal>
#include <string>

#include "zflow/core/error.h"

namespace zflow::cli {

/// Catches SIGINT and SIGTERM while it lives, and restores the previous handlers after.
class StopSignals {
 public:
  /// `announce`: say on stderr that work stops at the next step (off for the processes of
  /// a distributed run other than rank 0, so that the line appears once).
  explicit StopSignals(bool announce = true);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  /// The signal received (SIGINT or SIGTERM), or 0.
  static int received();

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

/// Until the process ends: SIGINT, SIGTERM and SIGHUP (unless ignored) first remove the
/// temporary files of writes in progress, then end the process as they would have.
void remove_temporary_files_on_signals();

/// "SIGINT" / "SIGTERM".
std::string signal_name(int signal);

/// Thrown when work was stopped by a signal after saving what it could; main prints the
/// message and exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as
/// shells expect of a program a signal ended.
class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& message) : Error(message), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace zflow::cli
