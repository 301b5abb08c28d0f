#!/usr/bin/env bash
# Quality benchmark: trains each model on each built-in 2-D dataset with a fixed budget and
# reports the test NLL minus the dataset's entropy (0 is the best achievable). The table is
# printed and written into docs/benchmarks.md between the quality markers.
#
# Usage: bench/quality.sh [--models "realnvp glow"] [--datasets "moons rings"] [--steps N]
#                         [--no-docs]
# Budget (the defaults): 3000 steps of batch 512, lr 2e-3 with cosine decay, 8 layers
# (realnvp) or 6 steps (glow) with 2×128 ReLU conditioners; 50,000 training points;
# test NLL on 100,000 fresh points (seed 1000000). Two threads.
set -euo pipefail
cd "$(dirname "$0")/.."
models="realnvp glow"
datasets="8gaussians checkerboard moons rings circles pinwheel 2spirals swissroll"
steps=3000
write_docs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --datasets) datasets=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --no-docs) write_docs=0; shift ;;
    *) echo "quality.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
zflow=${ZFLOW:-./build/zflow}
[ -x "$zflow" ] || { echo "quality.sh: build zflow first (scripts/build.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

layers_for() { case "$1" in glow) echo 6 ;; *) echo 8 ;; esac; }

declare -A gap
declare -A secs
for model in $models; do
  for ds in $datasets; do
    start=$(date +%s.%N)
    "$zflow" train --data "$ds" --n 50000 --model "$model" --layers "$(layers_for "$model")" \
      --hidden 128 --depth 2 --steps "$steps" --batch-size 512 --lr 2e-3 --eval-every 500 \
      --seed 1 --threads 2 --quiet --out "$work/$model-$ds.safetensors"
    end=$(date +%s.%N)
    json=$("$zflow" eval --model "$work/$model-$ds.safetensors" --data "$ds" --n 100000 --json --threads 2)
    g=$(python3 -c 'import json,sys; print("%.3f" % json.loads(sys.argv[1])["gap"])' "$json")
    gap[$model,$ds]=$g
    secs[$model,$ds]=$(python3 -c "print('%.0f' % ($end - $start))")
    echo "$model $ds gap $g nats (${secs[$model,$ds]} s)" >&2
  done
done

table="| dataset | entropy (nats) |"
sep="|---|---|"
for model in $models; do table+=" $model: NLL − entropy |"; sep+="---|"; done
table+=$'\n'"$sep"
for ds in $datasets; do
  entropy=$("$zflow" datasets --json | python3 -c 'import json,sys; d={x["name"]:x["entropy"] for x in json.load(sys.stdin)}; print("%.3f" % d[sys.argv[1]])' "$ds")
  row="| $ds | $entropy |"
  for model in $models; do row+=" ${gap[$model,$ds]} (${secs[$model,$ds]} s) |"; done
  table+=$'\n'"$row"
done
echo "$table"

if [ "$write_docs" = 1 ]; then
  python3 - "$table" "$steps" <<'PY'
import re, sys, datetime, platform, os
table, steps = sys.argv[1], sys.argv[2]
path = "docs/benchmarks.md"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
block = ("<!-- quality:begin -->\n"
         f"Measured {datetime.date.today()} on {cpu}, {os.cpu_count()} CPUs, 2 threads; {steps} steps per run "
         "(time per run in brackets, training only).\n\n" + table + "\n<!-- quality:end -->")
if "<!-- quality:begin -->" in text:
    text = re.sub(r"<!-- quality:begin -->.*?<!-- quality:end -->", lambda m: block, text, flags=re.S)
else:
    text += "\n" + block + "\n"
open(path + ".tmp", "w").write(text)
os.replace(path + ".tmp", path)
PY
  echo "wrote the table into docs/benchmarks.md" >&2
fi
