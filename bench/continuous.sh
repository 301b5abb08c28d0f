#!/usr/bin/env bash
# Continuous flows on the eight built-in 2-D datasets: a cnf trained by flow matching beside
# nsf-coupling trained by maximum likelihood, each with its test NLL, the gap to the
# dataset's entropy, the training time and, for the cnf, the evaluations of the velocity
# field per sample (NFE) that dopri5 took to score the test set. The table is printed and
# written into docs/benchmarks.md between the continuous markers.
#
# Usage: bench/continuous.sh [--datasets "moons rings"] [--steps N] [--coupling ot]
#                            [--jobs J] [--no-docs]
# Budget (the defaults): cnf, STEPS (20000) Adam steps of batch 512, lr 2e-3 with cosine
# decay, a velocity MLP of 3 × 128 SiLU with t as an input, independent coupling; nsf-coupling
# as in bench/quality.sh (4 layers, 3000 steps). 50,000 training points; test NLL on 100,000
# fresh points (seed 1000000), the cnf's by dopri5 (atol = rtol = 1e-5) with the exact trace.
# J (2) runs at a time, one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
datasets="8gaussians checkerboard moons rings circles pinwheel 2spirals swissroll"
steps=20000
coupling=independent
jobs=2
write_docs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --datasets) datasets=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --coupling) coupling=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --no-docs) write_docs=0; shift ;;
    *) echo "continuous.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
zflow=${ZFLOW:-./build/zflow}
[ -x "$zflow" ] || { echo "continuous.sh: build zflow first (scripts/build.sh)" >&2; exit 1; }
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"

run_one() {
  local model=$1 ds=$2 start end json
  start=$(date +%s.%N)
  if [ "$model" = cnf ]; then
    "$zflow" train --data "$ds" --n 50000 --model cnf --objective flow-matching \
      --fm-coupling "$coupling" --hidden 128 --depth 3 --steps "$steps" --batch-size 512 \
      --lr 2e-3 --eval-every 1000 --seed 1 --threads 1 --quiet --out "$work/$model-$ds.safetensors"
  else
    "$zflow" train --data "$ds" --n 50000 --model nsf-coupling --layers 4 --hidden 128 --depth 2 \
      --bins 8 --tail-bound 4 --steps 3000 --batch-size 512 --lr 2e-3 --eval-every 500 --seed 1 \
      --threads 1 --quiet --out "$work/$model-$ds.safetensors"
  fi
  end=$(date +%s.%N)
  json=$("$zflow" eval --model "$work/$model-$ds.safetensors" --data "$ds" --n 100000 --json --threads 1)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("%.3f %.3f %.0f %s" % (j["nll"], j["gap"], float(sys.argv[3]) - float(sys.argv[2]), ("%.0f" % j["nfe_per_sample"]) if "nfe_per_sample" in j else "–"))' \
    "$json" "$start" "$end" > "$work/$model-$ds.result"
  echo "$model $ds: $(cat "$work/$model-$ds.result") (NLL, gap, s, NFE)" >&2
}

for ds in $datasets; do
  for model in cnf nsf; do
    [ -s "$work/$model-$ds.result" ] && continue  # kept from an earlier run in WORK
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    run_one "$model" "$ds" &
  done
done
wait

table="| dataset | entropy | cnf (flow matching): NLL | gap | train s | NFE per sample | nsf-coupling: NLL | gap | train s |"
table+=$'\n'"|---|---|---|---|---|---|---|---|---|"
met=0
for ds in $datasets; do
  entropy=$("$zflow" datasets --json | python3 -c 'import json,sys; d={x["name"]:x["entropy"] for x in json.load(sys.stdin)}; print("%.3f" % d[sys.argv[1]])' "$ds")
  read -r cn cg cs cf < "$work/cnf-$ds.result"
  read -r nn ng ns nf < "$work/nsf-$ds.result"
  if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 0.05 else 1)' "$cg"; then met=$((met + 1)); fi
  table+=$'\n'"| $ds | $entropy | $cn | $cg | $cs | $cf | $nn | $ng | $ns |"
done
echo "$table"
echo "cnf within 0.05 nats of the entropy on $met of $(echo $datasets | wc -w) datasets"

if [ "$write_docs" = 1 ]; then
  {
    echo "Measured {date} on {machine}: cnf $steps flow-matching steps ($coupling coupling), nsf-coupling" \
      "3000 likelihood steps, $jobs runs at a time with one thread each. NLL and gap in nats;" \
      "cnf within 0.05 nats of the entropy on $met of $(echo $datasets | wc -w) datasets."
    echo
    echo "$table"
  } | python3 bench/docs_block.py continuous
fi
