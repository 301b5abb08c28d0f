#!/usr/bin/env bash
# Distributed-training benchmark: for the reference configurations (maf, realnvp, nsf on
# 8-D data, batch 512; the builders' versions of `zflow bench`'s three) and the
# Fashion-MNIST Glow (2 levels × 8 steps, 64 hidden channels, batch 64), it trains with
# one process and with `--nproc 2` and reports the time per optimizer step, the time of
# the gradient all-reduce per step (rank 0's, including any wait for the other process)
# and its share of the step, all from the same run's model card
# (train.result.step_seconds, sync_seconds, timed_steps; validation excluded).
#
# Usage: bench/distributed.sh
# Environment:
#   ZFLOW    the zflow binary (default ./build/zflow)
#   CONFIGS  which configurations (default: "maf realnvp nsf glow")
#   STEPS    optimizer steps of the tabular runs (default 300; Glow runs STEPS/5)
#   THREADS  intra-op threads per process (default 1)
#   BUCKETS  the --dist-buckets of the 2-process runs (default "1 4": one all-reduce after
#            the backward pass, and 4 buckets overlapped with it)
# Every run uses the same global batch, so 1 and 2 processes do the same work per step.
set -euo pipefail
cd "$(dirname "$0")/.."
zflow=${ZFLOW:-./build/zflow}
configs=${CONFIGS:-"maf realnvp nsf glow"}
steps=${STEPS:-300}
threads=${THREADS:-1}
buckets_list=${BUCKETS:-"1 4"}
[ -x "$zflow" ] || { echo "distributed.sh: build zflow first (scripts/build.sh), or set ZFLOW" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 8-D standard normal rows: the speed does not depend on the values.
python3 - "$work/d8.csv" <<'PY'
import random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for _ in range(50000):
        f.write(",".join("%.6f" % random.gauss(0, 1) for _ in range(8)) + "\n")
PY

args_of() {
  case "$1" in
    maf) echo "--data $work/d8.csv --model maf --layers 5 --hidden 128 --depth 2 --batch-size 512 --steps $steps" ;;
    realnvp) echo "--data $work/d8.csv --model realnvp --layers 8 --hidden 128 --depth 2 --batch-size 512 --steps $steps" ;;
    nsf) echo "--data $work/d8.csv --model nsf-coupling --layers 4 --hidden 128 --depth 2 --bins 8 --tail-bound 3 --batch-size 512 --steps $steps" ;;
    glow) echo "--data fashion-mnist -n 6400 --model glow --levels 2 --steps-per-level 8 --hidden 64 --batch-size 64 --steps $((steps / 5))" ;;
    *) echo "distributed.sh: unknown configuration $1" >&2; exit 2 ;;
  esac
}

echo "# zflow train ... --threads $threads, 1 process and --nproc 2 (global batch unchanged)"
printf '%-8s %6s %8s %10s %10s %14s %8s %8s\n' config procs buckets params ms/step allreduce_ms share speedup
for config in $configs; do
  base_ms=""
  for run in "1 1" $(for b in $buckets_list; do echo "2_$b"; done); do
    procs=${run%%[ _]*}
    buckets=${run##*[ _]}
    # shellcheck disable=SC2046  # the options are a list
    "$zflow" train $(args_of "$config") --eval-every 100000 --val-fraction 0.02 \
      --threads "$threads" --nproc "$procs" --dist-buckets "$buckets" --seed 1 \
      --out "$work/m.safetensors" --quiet 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
    line=$("$zflow" info --model "$work/m.safetensors" --json | python3 -c '
import json, sys
info = json.load(sys.stdin)
r = info["train"]["result"]
n = max(r["timed_steps"], 1)
print("%d %.3f %.3f" % (info["parameters"], 1000 * r["step_seconds"] / n, 1000 * r["sync_seconds"] / n))')
    read -r params ms sync <<< "$line"
    [ -n "$base_ms" ] || base_ms=$ms
    share=$(python3 -c "print('%.1f%%' % (100 * $sync / $ms))")
    speedup=$(python3 -c "print('%.2f' % ($base_ms / $ms))")
    printf '%-8s %6s %8s %10s %10s %14s %8s %8s\n' "$config" "$procs" "$buckets" "$params" "$ms" "$sync" "$share" "$speedup"
  done
done
