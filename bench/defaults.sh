#!/usr/bin/env bash
# Defaults benchmark: trains `zflow train --data DS` with nothing but the dataset (plus
# --quiet, --threads 1 and a fixed seed) on each built-in 2-D dataset and reports the test
# NLL minus the dataset's entropy ("gap", 0 is the best achievable, 100,000 fresh test
# points) and the training time: wall-clock seconds, and the CPU seconds of the training
# process (user + system), which vary less when the machine is busy. It checks that the
# defaults of `zflow train` fit these datasets: the goal is a gap of at most 0.05 nats on
# six of the eight, 0.1 on all.
#
# Usage: bench/defaults.sh
# Environment:
#   ZFLOW     the zflow binary (default ./build/zflow)
#   EXTRA     more options for `zflow train`, e.g. EXTRA="--model realnvp --steps 2000"
#             (default: none, so that the plain command is measured)
#   SEED      --seed of every training run (default 1)
#   DATASETS  the datasets (default: all eight 2-D toy datasets)
# One run at a time, one thread each; the whole benchmark takes a few minutes per dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
zflow=${ZFLOW:-./build/zflow}
extra=${EXTRA:-}
seed=${SEED:-1}
datasets=${DATASETS:-"8gaussians checkerboard moons rings circles pinwheel 2spirals swissroll"}
[ -x "$zflow" ] || { echo "defaults.sh: build zflow first (scripts/build.sh), or set ZFLOW" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "# $zflow train --data DS --seed $seed${extra:+ $extra}"
printf '%-14s %8s %8s %8s\n' dataset gap seconds cpu_s
results=""
for ds in $datasets; do
  TIMEFORMAT='%R %U %S'
  # shellcheck disable=SC2086  # EXTRA is a list of options
  { time "$zflow" train --data "$ds" --out "$work/m.safetensors" --quiet --threads 1 --seed "$seed" \
      $extra 2> "$work/train.err"; } 2> "$work/time" || { cat "$work/train.err" >&2; exit 1; }
  read -r wall user sys < "$work/time"
  json=$("$zflow" eval --model "$work/m.safetensors" --data "$ds" --n 100000 --json --threads 1)
  line=$(python3 -c 'import json,sys; print("%.3f %.0f %.0f" % (json.loads(sys.argv[1])["gap"], float(sys.argv[2]), float(sys.argv[3]) + float(sys.argv[4])))' \
    "$json" "$wall" "$user" "$sys")
  read -r gap secs cpu <<< "$line"
  printf '%-14s %8s %8s %8s\n' "$ds" "$gap" "$secs" "$cpu"
  results+="$gap $secs $cpu"$'\n'
  rm -f "$work/m.safetensors" "$work/m.safetensors.state"
done
printf '%s' "$results" | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
gaps = [float(r[0]) for r in rows]
print("summary: %d of %d within 0.05 nats, %d within 0.1, max gap %.3f, training %.0f s in all (%.0f CPU s)"
      % (sum(g <= 0.05 for g in gaps), len(gaps), sum(g <= 0.1 for g in gaps), max(gaps),
         sum(float(r[1]) for r in rows), sum(float(r[2]) for r in rows)))'
