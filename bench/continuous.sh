#!/usr/bin/env bash
# Continuous flows on the eight built-in 2-D datasets: a cnf trained by flow matching, the
# same cnf fine-tuned by maximum likelihood through the solver (zflow train --init), and
# nsf-coupling trained by maximum likelihood, each with its test NLL, the gap to the
# dataset's entropy, the training time and, for the cnf, the evaluations of the velocity
# field per sample (NFE) that dopri5 took to score the test set. The table is printed and
# written into docs/benchmarks.md between the continuous markers.
#
# Usage: bench/continuous.sh [--datasets "moons rings"] [--steps N] [--coupling ot]
#                            [--finetune F] [--jobs J] [--no-docs]
# Budget (the defaults): cnf, STEPS (20000) Adam steps of batch 512, lr 2e-3 with cosine
# decay, a velocity MLP of 3 × 128 SiLU with t as an input, independent coupling; then F (300)
# likelihood steps of batch 512 from that model, lr 5e-4 with cosine decay, through dopri5
# (atol = rtol = 1e-5) with the exact trace; nsf-coupling as in bench/quality.sh (4 layers,
# 3000 steps). 50,000 training points; test NLL on 100,000 fresh points (seed 1000000), the
# cnf's by dopri5 (atol = rtol = 1e-5) with the exact trace. J (2) runs at a time, one thread
# each. WORK (a temporary folder) keeps the models and results; a result already there is
# reused, so that an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
datasets="8gaussians checkerboard moons rings circles pinwheel 2spirals swissroll"
steps=20000
coupling=independent
finetune=300
jobs=2
write_docs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --datasets) datasets=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --coupling) coupling=$2; shift 2 ;;
    --finetune) finetune=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --no-docs) write_docs=0; shift ;;
    *) echo "continuous.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
zflow=${ZFLOW:-./build/zflow}
[ -x "$zflow" ] || { echo "continuous.sh: build zflow first (scripts/build.sh)" >&2; exit 1; }
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"

# "NLL gap seconds NFE" of a model trained between START and END, into WORK/NAME.result.
score() {
  local name=$1 ds=$2 start=$3 end=$4 json
  json=$("$zflow" eval --model "$work/$name-$ds.safetensors" --data "$ds" --n 100000 --json --threads 1)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("%.3f %.3f %.0f %s" % (j["nll"], j["gap"], float(sys.argv[3]) - float(sys.argv[2]), ("%.0f" % j["nfe_per_sample"]) if "nfe_per_sample" in j else "–"))' \
    "$json" "$start" "$end" > "$work/$name-$ds.result"
  echo "$name $ds: $(cat "$work/$name-$ds.result") (NLL, gap, s, NFE)" >&2
}

# The cnf by flow matching, then its likelihood fine-tuning (each kept when already there).
run_cnf() {
  local ds=$1 start
  if [ ! -s "$work/cnf-$ds.result" ]; then
    start=$(date +%s.%N)
    "$zflow" train --data "$ds" --n 50000 --model cnf --objective flow-matching \
      --fm-coupling "$coupling" --hidden 128 --depth 3 --steps "$steps" --batch-size 512 \
      --lr 2e-3 --eval-every 1000 --seed 1 --threads 1 --quiet --out "$work/cnf-$ds.safetensors"
    score cnf "$ds" "$start" "$(date +%s.%N)"
  fi
  if [ "$finetune" -gt 0 ] && [ ! -s "$work/cnf-ft-$ds.result" ]; then
    start=$(date +%s.%N)
    "$zflow" train --data "$ds" --n 50000 --init "$work/cnf-$ds.safetensors" \
      --objective likelihood --solver dopri5 --atol 1e-5 --rtol 1e-5 --trace exact \
      --steps "$finetune" --batch-size 512 --lr 5e-4 --eval-every 50 --seed 2 --threads 1 \
      --quiet --out "$work/cnf-ft-$ds.safetensors"
    score cnf-ft "$ds" "$start" "$(date +%s.%N)"
  fi
}

run_nsf() {
  local ds=$1 start
  start=$(date +%s.%N)
  "$zflow" train --data "$ds" --n 50000 --model nsf-coupling --layers 4 --hidden 128 --depth 2 \
    --bins 8 --tail-bound 4 --steps 3000 --batch-size 512 --lr 2e-3 --eval-every 500 --seed 1 \
    --threads 1 --quiet --out "$work/nsf-$ds.safetensors"
  score nsf "$ds" "$start" "$(date +%s.%N)"
}

for ds in $datasets; do
  for model in cnf nsf; do
    if [ "$model" = cnf ]; then
      [ -s "$work/cnf-$ds.result" ] && { [ "$finetune" = 0 ] || [ -s "$work/cnf-ft-$ds.result" ]; } && continue
    else
      [ -s "$work/nsf-$ds.result" ] && continue  # kept from an earlier run in WORK
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    "run_$model" "$ds" &
  done
done
wait

table="| dataset | entropy | cnf (flow matching): NLL | gap | train s | NFE | + likelihood fine-tune: NLL | gap | fine-tune s | NFE | nsf-coupling: NLL | gap | train s |"
table+=$'\n'"|---|---|---|---|---|---|---|---|---|---|---|---|---|"
met=0
met_ft=0
within() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 0.05 else 1)' "$1"; }
for ds in $datasets; do
  entropy=$("$zflow" datasets --json | python3 -c 'import json,sys; d={x["name"]:x["entropy"] for x in json.load(sys.stdin)}; print("%.3f" % d[sys.argv[1]])' "$ds")
  read -r cn cg cs cf < "$work/cnf-$ds.result"
  read -r nn ng ns nf < "$work/nsf-$ds.result"
  fn=– fg=– fs=– ff=–
  [ "$finetune" -gt 0 ] && read -r fn fg fs ff < "$work/cnf-ft-$ds.result"
  within "$cg" && met=$((met + 1))
  [ "$finetune" -gt 0 ] && within "$fg" && met_ft=$((met_ft + 1))
  table+=$'\n'"| $ds | $entropy | $cn | $cg | $cs | $cf | $fn | $fg | $fs | $ff | $nn | $ng | $ns |"
done
count=$(echo $datasets | wc -w)
summary="cnf within 0.05 nats of the entropy on $met of $count datasets by flow matching alone"
[ "$finetune" -gt 0 ] && summary+=", on $met_ft of $count after $finetune likelihood steps"
echo "$table"
echo "$summary"

if [ "$write_docs" = 1 ]; then
  {
    echo "Measured {date} on {machine}: cnf $steps flow-matching steps ($coupling coupling)," \
      "then $finetune likelihood steps (dopri5, exact trace); nsf-coupling 3000 likelihood steps;" \
      "$jobs runs at a time with one thread each. NLL and gap in nats; $summary."
    echo
    echo "$table"
  } | python3 bench/docs_block.py continuous
fi
