#!/usr/bin/env bash
# The long Fashion-MNIST run: a larger Glow (2 levels of 16 steps, 256 hidden channels)
# trained for 200,000 steps of 64 images, aiming below the 3.14 test bits/dim the image
# issue names as the published Glow reference. Days on a 2-core CPU; a few hours on a
# CUDA GPU with a CUDA-enabled LibTorch (configure with
# -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')).
#
# Usage: bench/glow_long.sh [--device cuda] [any bench/images.sh option]
# Results: docs/benchmarks.md (block glow-fashion-long) and docs/images/glow-fashion-long-*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bench/images.sh --name glow-fashion-long --out out/images-long --hidden 256 \
  --steps-per-level 16 --steps 200000 --batch-size 64 --lr 1e-3 --warmup 2000 \
  --eval-every 5000 --threads "$(nproc)" "$@"
