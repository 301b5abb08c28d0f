#!/usr/bin/env bash
# Configures and builds zflow (Release, Ninja, ccache) into ./build.
# Usage: scripts/build.sh [extra CMake arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${ZFLOW_JOBS:-$(nproc)}
# ccache: paths relative to the checkout, so that a fresh clone elsewhere (CI) reuses what
# an earlier build compiled.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
ninja -C build -j "$jobs"
