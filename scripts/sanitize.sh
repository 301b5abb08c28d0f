#!/usr/bin/env bash
# Builds the library, the CLI, the tests and the fuzz replays with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc) into ./build-asan and runs the whole test suite under
# them. LibTorch itself is not instrumented; scripts/sanitizer_env.sh sets the options (no
# suppression is needed today; scripts/lsan.supp is where one would go, with its reason).
# Usage: scripts/sanitize.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${ZFLOW_JOBS:-$(nproc)}
# ccache: paths relative to the checkout (as in build.sh), and the debug information's
# folder left out of the hash, so that a fresh clone reuses earlier compilations.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
# gcc's -Wmaybe-uninitialized is unreliable under the sanitizers (it warns inside
# LibTorch's c10::optional<at::Generator> there, never in the ordinary build): off here only.
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
flags+=" -Wno-maybe-uninitialized"
# -O1 -g1 (line tables for the reports): measured as costly to compile as the ordinary -O3
# build, where -O2 -g costs 1.6 times as much.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DZFLOW_BUILD_BENCH=OFF -DZFLOW_BUILD_EXAMPLES=OFF >/dev/null
ninja -C build-asan -j "$jobs"
source scripts/sanitizer_env.sh
# install_and_find_package builds a separate project against the installed library, without
# the sanitizer runtime: it runs in the ordinary build only.
ctest --test-dir build-asan --output-on-failure -j "$jobs" -E '^install_and_find_package$' "$@"
