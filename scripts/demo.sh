#!/usr/bin/env bash
# The main job on a built-in default: installs what is missing, builds zflow, trains a
# RealNVP on the built-in 2-D dataset `moons`, prints its test NLL beside the dataset's
# entropy, writes 2000 samples to out/demo/samples.csv, and draws what the flow does: the
# step-by-step figure out/demo/steps.svg and the run report out/demo/report.html.
# Usage: scripts/demo.sh [DATASET] (any name from `zflow datasets`; default moons)
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-moons}
bash scripts/setup.sh
bash scripts/build.sh
out=out/demo
mkdir -p "$out"
./build/zflow train --data "$dataset" --model realnvp --layers 8 --hidden 64 --steps 3000 \
  --lr 2e-3 --batch-size 512 --metrics "$out/metrics.jsonl" --out "$out/model.safetensors" \
  --report "$out/report.html"
./build/zflow eval --model "$out/model.safetensors" --data "$dataset"
./build/zflow sample --model "$out/model.safetensors" -n 2000 --out "$out/samples.csv"
./build/zflow plot steps --model "$out/model.safetensors" --out "$out/steps.svg"
echo "samples written to $out/samples.csv; open $out/steps.svg and $out/report.html in a browser"
