#!/usr/bin/env bash
# Quality benchmark: trains each model on each built-in 2-D dataset with a fixed budget and
# reports the test NLL minus the dataset's entropy (0 is the best achievable). On `torus`
# (a pair of angles) nsf-coupling models the angles on the circle (--circular-columns 0,1);
# the other models treat them as real numbers. The table is
# printed and written into docs/benchmarks.md between the quality markers.
#
# Usage: bench/quality.sh [--models "realnvp glow"] [--datasets "moons rings"] [--steps N]
#                         [--jobs J] [--no-docs]
# Budget (the defaults): STEPS (3000) Adam steps of batch 512, lr 2e-3 with cosine decay,
# conditioners 2 × 128 ReLU (naf: its MADE; bnaf: 2 hidden layers of 128 units in all;
# iresnet: residual blocks of width 128), layers per model below; 50,000 training points; test NLL on
# 100,000 fresh points (seed 1000000). J (2) runs at a time, one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
models="realnvp glow maf nsf-coupling nsf-autoregressive naf bnaf iresnet"
datasets="8gaussians checkerboard moons rings circles pinwheel 2spirals swissroll torus"
steps=3000
jobs=2
write_docs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --datasets) datasets=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --no-docs) write_docs=0; shift ;;
    *) echo "quality.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
zflow=${ZFLOW:-./build/zflow}
[ -x "$zflow" ] || { echo "quality.sh: build zflow first (scripts/build.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Layers per model: flows of similar size (≈ 0.1-0.3 M parameters in 2-D).
layers_for() {
  case "$1" in
    realnvp) echo 8 ;;
    glow) echo 6 ;;
    maf) echo 8 ;;
    nsf-*) echo 4 ;;
    naf | bnaf) echo 4 ;;
    *) echo 8 ;;
  esac
}

run_one() {
  local model=$1 ds=$2 start end json angles=()
  if [ "$ds" = torus ] && [ "$model" = nsf-coupling ]; then angles=(--circular-columns 0,1); fi
  start=$(date +%s.%N)
  "$zflow" train --data "$ds" --n 50000 --model "$model" --layers "$(layers_for "$model")" \
    --hidden 128 --depth 2 --bins 8 --tail-bound 4 --steps "$steps" --batch-size 512 --lr 2e-3 \
    --eval-every 500 --seed 1 --threads 1 --quiet "${angles[@]}" --out "$work/$model-$ds.safetensors"
  end=$(date +%s.%N)
  json=$("$zflow" eval --model "$work/$model-$ds.safetensors" --data "$ds" --n 100000 --json --threads 1)
  python3 -c 'import json,sys; print("%.3f %.0f" % (json.loads(sys.argv[1])["gap"], float(sys.argv[3]) - float(sys.argv[2])))' \
    "$json" "$start" "$end" > "$work/$model-$ds.result"
  echo "$model $ds: gap $(cut -d' ' -f1 "$work/$model-$ds.result") nats ($(cut -d' ' -f2 "$work/$model-$ds.result") s)" >&2
}

for model in $models; do
  for ds in $datasets; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    run_one "$model" "$ds" &
  done
done
wait

table="| dataset | entropy (nats) |"
sep="|---|---|"
for model in $models; do table+=" $model |"; sep+="---|"; done
table+=$'\n'"$sep"
for ds in $datasets; do
  entropy=$("$zflow" datasets --json | python3 -c 'import json,sys; d={x["name"]:x["entropy"] for x in json.load(sys.stdin)}; print("%.3f" % d[sys.argv[1]])' "$ds")
  row="| $ds | $entropy |"
  for model in $models; do
    read -r g s < "$work/$model-$ds.result"
    row+=" $g ($s s) |"
  done
  table+=$'\n'"$row"
done
echo "$table"

if [ "$write_docs" = 1 ]; then
  {
    echo "Measured {date} on {machine}, $steps steps per run, $jobs runs at a time with one" \
      "thread each. Cells: test NLL − entropy in nats (training time in brackets)."
    echo
    echo "$table"
  } | python3 bench/docs_block.py quality
fi
