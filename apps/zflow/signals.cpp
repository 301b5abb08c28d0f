#include "signals.h"

#include <unistd.h>

#include "zflow/io/atomic_file.h"

namespace zflow::cli {
namespace {

volatile std::sig_atomic_t g_received = 0;
volatile std::sig_atomic_t g_quiet = 0;

/// Ends the process as the signal's default action would, without a temporary file left.
void end_by(int signal) {
  io::remove_temporary_files();
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

extern "C" void on_fatal_signal(int signal) { end_by(signal); }

extern "C" void on_stop_signal(int signal) {
  if (g_received != 0) {
    end_by(signal);  // the second signal: the user means it
    return;
  }
  g_received = signal;
  if (g_quiet != 0) return;
  static const char note[] = "\nzflow: stopping at the next step (again to quit at once)\n";
  (void)!::write(STDERR_FILENO, note, sizeof(note) - 1);
}

}  // namespace

StopSignals::StopSignals(bool announce) {
  g_received = 0;
  g_quiet = announce ? 0 : 1;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, &old_int_);
  sigaction(SIGTERM, &action, &old_term_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

int StopSignals::received() { return g_received; }

void remove_temporary_files_on_signals() {
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    // A signal the parent ignores (nohup, a background job) stays ignored.
    if (sigaction(signal, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(signal, &action, nullptr);
  }
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal " + std::to_string(signal);
  }
}

}  // namespace zflow::cli
