# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: runtime options of AddressSanitizer,
# LeakSanitizer and UndefinedBehaviorSanitizer for zflow's instrumented code running on an
# uninstrumented LibTorch. Every exception to the defaults is explained here or in lsan.supp.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# halt_on_error, abort_on_error: the first report fails the run. detect_leaks: on, with
# lsan.supp for memory LibTorch's globals might keep (none so far).
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
