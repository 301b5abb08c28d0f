#!/usr/bin/env bash
# Image benchmark: trains Glow on Fashion-MNIST on this CPU with a fixed budget and reports
# test bits/dim (10,000 test images), training and sampling speed in images per second, and
# peak memory; draws the sample, reconstruction and interpolation pictures into docs/images
# and writes the table into docs/benchmarks.md between the images markers.
#
# Usage: bench/images.sh [--model glow|cnf] [--out DIR] [--steps N] [--hidden H] [--steps-per-level K]
#                        [--batch-size B] [--lr LR] [--warmup W] [--eval-every E]
#                        [--threads T] [--device cpu|cuda] [--name NAME] [--no-train] [--no-docs]
#                        [--eval-n N] [--solver S --ode-steps K] [--eval-tol TOL]
# Defaults: the budget of the table in docs/benchmarks.md (20,000 steps of 64 images,
# Adam lr 1e-3 with 500 warm-up steps and cosine decay, Glow with 2 levels of 8 steps and
# 64 hidden channels, one thread). --no-train reuses DIR/glow.safetensors and DIR/train.log
# from an earlier run (to redo the measurements and pictures only). NAME (glow-fashion)
# names the pictures docs/images/NAME-*.png (with --no-docs: DIR/NAME-*.png) and the block
# of docs/benchmarks.md.
# --model cnf trains a continuous flow with a U-Net velocity field by flow matching instead
# (docs/continuous.md; --hidden is then the U-Net's width, default 32) and scores it with
# Hutchinson's trace and dopri5 at atol = rtol = TOL (--eval-tol, 1e-5) on the first N test
# images (--eval-n; the ODE makes the whole test split slow on a CPU). Sampling and the
# pictures use the solver given (default rk4 with 8 steps): a coarse fixed-step solver draws
# good pictures, but its log-density is off by several hundredths of a bit per dimension.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/images
model_kind=glow
eval_n=0
solver=rk4
ode_steps=8
eval_tol=1e-5
steps=20000
hidden=64
per_level=8
batch=64
threads=1
device=cpu
lr=1e-3
warmup=500
eval_every=2000
name=glow-fashion
train=1
write_docs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --model) model_kind=$2; shift 2 ;;
    --eval-n) eval_n=$2; shift 2 ;;
    --solver) solver=$2; shift 2 ;;
    --ode-steps) ode_steps=$2; shift 2 ;;
    --eval-tol) eval_tol=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --hidden) hidden=$2; shift 2 ;;
    --steps-per-level) per_level=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --eval-every) eval_every=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --no-train) train=0; shift ;;
    --no-docs) write_docs=0; shift ;;
    *) echo "images.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
zflow=${ZFLOW:-./build/zflow}
[ -x "$zflow" ] || { echo "images.sh: build zflow first (scripts/build.sh)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "images.sh: needs GNU time (apt install time)" >&2; exit 1; }
mkdir -p "$out"
model="$out/$model_kind.safetensors"
model_options=(--model glow --steps-per-level "$per_level")
ode_options=()
eval_ode_options=()
if [ "$model_kind" = cnf ]; then
  model_options=(--model cnf --objective flow-matching)
  ode_options=(--solver "$solver" --ode-steps "$ode_steps")
  eval_ode_options=(--solver dopri5 --atol "$eval_tol" --rtol "$eval_tol")
  [ "$name" = glow-fashion ] && name=cnf-fashion
  [ "$hidden" = 64 ] && hidden=32
fi
eval_limit=()
[ "$eval_n" -gt 0 ] && eval_limit=(--n "$eval_n")

if [ "$train" = 1 ]; then
  /usr/bin/time -v "$zflow" train --data fashion-mnist "${model_options[@]}" --hidden "$hidden" \
    --steps "$steps" --batch-size "$batch" --lr "$lr" \
    --warmup "$warmup" --eval-every "$eval_every" --val-fraction 0.05 --threads "$threads" \
    --device "$device" --metrics "$out/metrics.jsonl" --out "$model" \
    2> >(tee "$out/train.log" >&2)
fi
[ -f "$model" ] && [ -f "$out/train.log" ] || { echo "images.sh: no $model or $out/train.log; run without --no-train" >&2; exit 1; }

# Test bits/dim on the test split (the first N images with --eval-n).
eval_json=$("$zflow" eval --model "$model" --data fashion-mnist:test --json --threads "$threads" \
  "${eval_limit[@]}" "${eval_ode_options[@]}")

# Sampling speed: 1000 images, timed as a whole (loading the model included).
sample_start=$(date +%s.%N)
/usr/bin/time -v "$zflow" sample --model "$model" -n 1000 --seed 1 --threads "$threads" "${ode_options[@]}" \
  -o "$out/samples.npy" 2> "$out/sample.log"
sample_end=$(date +%s.%N)

# Pictures go into docs/images with the table, into the output folder with --no-docs.
pictures=docs/images
[ "$write_docs" = 1 ] || pictures="$out"
mkdir -p "$pictures"
"$zflow" sample --model "$model" --grid 8x8 --temperature 0.7 --scale 2 --seed 3 \
  -o "$pictures/$name-samples.png" --threads "$threads" "${ode_options[@]}"
"$zflow" sample --model "$model" --grid 8x8 --temperature 1.0 --scale 2 --seed 3 \
  -o "$pictures/$name-samples-t1.png" --threads "$threads" "${ode_options[@]}"
"$zflow" reconstruct --model "$model" --grid 2x8 --scale 2 -o "$pictures/$name-reconstruct.png" \
  --threads "$threads" "${ode_options[@]}"
"$zflow" interpolate --model "$model" --pairs 4 --steps 9 --scale 2 \
  -o "$pictures/$name-interpolate.png" --threads "$threads" "${ode_options[@]}"
info_json=$("$zflow" info --model "$model" --json)

table=$(python3 - "$eval_json" "$info_json" "$out/train.log" "$out/sample.log" "$sample_start" "$sample_end" \
  "$solver" "$ode_steps" "$eval_tol" <<'PY'
import json, re, sys
ev, info = json.loads(sys.argv[1]), json.loads(sys.argv[2])
train_log, sample_log = open(sys.argv[3]).read(), open(sys.argv[4]).read()
t0, t1 = float(sys.argv[5]), float(sys.argv[6])
solver, ode_steps, eval_tol = sys.argv[7], sys.argv[8], sys.argv[9]
def peak_mib(log):
    m = re.findall(r"Maximum resident set size \(kbytes\): (\d+)", log)
    return int(m[-1]) / 1024 if m else float("nan")
opts, res = info["train"]["options"], info["train"]["result"]
images_per_s = res["steps"] * opts["batch_size"] / res["seconds"]
cnf = opts["model"] == "cnf"
if cnf:
    model_row = f"cnf, U-Net velocity field of {opts['hidden']} channels, {info['parameters']} parameters, flow matching"
    val_row = ("validation flow-matching loss (best)", f"{res['best_val_loss']:.4f} at step {res['best_step']}")
else:
    model_row = f"glow, 2 levels × {opts.get('steps_per_level') or 8} steps, {opts['hidden']} hidden channels, {info['parameters']} parameters"
    val_row = ("validation bits/dim (best)", f"{res['best_val_nll'] / (ev['features'] * 0.6931471805599453):.3f} at step {res['best_step']}")
rows = [
    ("model", model_row),
    ("budget", f"{res['steps']} steps × {opts['batch_size']} images, {res['seconds'] / 60:.1f} min training"),
    (f"test bits/dim ({ev['points']:,} images)", f"**{ev['bits_per_dim']:.3f}** ± {ev['nll_stderr'] / (ev['features'] * 0.6931471805599453):.3f}"
     + (f" (dopri5 at atol = rtol = {eval_tol}, Hutchinson's trace: {ev['nfe_per_sample']:.0f} evaluations of the velocity field per image)" if "nfe_per_sample" in ev else "")),
    val_row,
    ("training speed", f"{images_per_s:.0f} images/s (validation included)"),
    ("sampling speed", f"{1000 / (t1 - t0):.0f} images/s (1000 images, model loading included"
     + (f"; {solver}" + (f" with {ode_steps} steps" if solver != "dopri5" else "") if cnf else "") + ")"),
    ("peak memory", f"training {peak_mib(train_log):.0f} MiB, sampling {peak_mib(sample_log):.0f} MiB (resident set)"),
]
print("| what | measured |\n|---|---|")
for k, v in rows:
    print(f"| {k} | {v} |")
PY
)
echo "$table"

if [ "$write_docs" = 1 ]; then
  where="{machine}, $threads thread(s)"
  [ "$device" = cuda ] && where="a CUDA GPU (training), $where (evaluation and sampling)"
  { echo "Measured {date} on $where, float32."; echo; echo "$table"; } |
    python3 bench/docs_block.py "$name"
fi
