#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang-14 under AddressSanitizer and
# UndefinedBehaviorSanitizer into ./build-fuzz, runs each target in turn with its seed
# corpus, and prints executions, time, executions per second and coverage per target.
#
# Usage: [FUZZ_RUNS=N] scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS   how long each target runs at most (default 60)
#   FUZZ_RUNS stop a target after N inputs if that comes first
#   TARGET    csv npy idx png metrics safetensors spec (default: all)
# New inputs go to build-fuzz/corpus/<target> (the seeds in fuzz/corpus stay as they are),
# crashes to build-fuzz/artifacts/, logs to build-fuzz/logs/<target>.log. Exit status 1 if
# any target found a crash, a leak or a sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csv npy idx png metrics safetensors spec)
limit_flag=("-max_total_time=$limit")
[ -z "${FUZZ_RUNS:-}" ] || limit_flag+=("-runs=$FUZZ_RUNS")

# clang-14 and its runtime (libFuzzer, the sanitizers) are needed here only, not by the
# ordinary build: installed on demand, like scripts/setup.sh does for the rest.
bash scripts/setup.sh
if ! command -v clang++-14 >/dev/null 2>&1 ||
  ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "install ok installed"; then
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "fuzz: run as root or install sudo" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  echo "fuzz: installing clang-14 libclang-rt-14-dev" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev >/dev/null
fi

jobs=${ZFLOW_JOBS:-$(nproc)}
CXX=clang++-14 CC=clang-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DZFLOW_BUILD_FUZZERS=ON -DZFLOW_BUILD_TESTS=OFF -DZFLOW_BUILD_BENCH=OFF \
  -DZFLOW_BUILD_EXAMPLES=OFF -DZFLOW_WARNINGS_AS_ERRORS=OFF >/dev/null
ninja -C build-fuzz -j "$jobs" "${targets[@]/#/zflow_fuzz_}"

source scripts/sanitizer_env.sh
mkdir -p build-fuzz/logs build-fuzz/artifacts
printf '%-12s %12s %8s %9s %7s %7s %8s  %s\n' target executions seconds exec/s cov ft rss_mb result
failed=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  log="build-fuzz/logs/$t.log"
  status=0
  "build-fuzz/fuzz/zflow_fuzz_$t" "${limit_flag[@]}" -print_final_stats=1 \
    -timeout=60 -rss_limit_mb=4096 -artifact_prefix="build-fuzz/artifacts/$t-" \
    "build-fuzz/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1 || status=$?
  final_stat() { grep -a "^stat::$1:" "$log" | awk '{print $2}' | tail -1; }
  runs=$(final_stat number_of_executed_units)
  rate=$(final_stat average_exec_per_sec)
  rss=$(final_stat peak_rss_mb)
  seconds=$(grep -ao 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{print $5}' | tail -1)
  cov=$(grep -ao 'cov: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  ft=$(grep -ao 'ft: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  result=ok
  if [ "$status" -ne 0 ]; then
    result="FAILED (exit $status, see $log)"
    failed=1
  fi
  printf '%-12s %12s %8s %9s %7s %7s %8s  %s\n' "$t" "${runs:--}" "${seconds:--}" "${rate:--}" \
    "${cov:--}" "${ft:--}" "${rss:--}" "$result"
done
exit $failed
