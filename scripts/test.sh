#!/usr/bin/env bash
# Installs what is missing, builds zflow and runs the whole test suite (fuzz corpus replays
# included), then builds it again with AddressSanitizer and UndefinedBehaviorSanitizer and
# runs the suite once more under them (scripts/sanitize.sh; ZFLOW_SANITIZE=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "${ZFLOW_JOBS:-$(nproc)}"
if [ "${ZFLOW_SANITIZE:-1}" != 0 ]; then
  bash scripts/sanitize.sh
fi
