#!/usr/bin/env bash
# The CUDA half of distributed training (docs/distributed.md), for a machine with a CUDA
# GPU and a CUDA build of PyTorch 2.x (its LibTorch, with NCCL): builds zflow against that
# LibTorch into ./build-cuda, runs the distributed tests (the NCCL world of one on the
# first GPU, skipped without CUDA), then trains a small Glow with --device cuda on one
# process and with one rank per GPU (NCCL with two GPUs or more; with one GPU, two Gloo
# ranks share it), and compares the two models. Prints what it ran and the all-reduce
# share of a step.
#
# Usage: scripts/check_cuda_distributed.sh
# Needs: nvidia-smi, python3 with torch (CUDA), cmake, ninja; Debian's libgloo-dev is not
# needed (the wheel's LibTorch carries Gloo), but the wheel must use the C++11 ABI, as
# PyTorch's recent wheels do, or Debian's gtest and zflow's other dependencies do not link.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU visible"; print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPUs", torch.cuda.device_count(), "NCCL", torch.cuda.nccl.version())'
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
cmake -S . -B build-cuda -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DZFLOW_BUILD_BENCH=OFF \
  -DZFLOW_BUILD_EXAMPLES=OFF -DZFLOW_WARNINGS_AS_ERRORS=OFF
ninja -C build-cuda zflow_cli zflow_test_distributed
build-cuda/tests/zflow_test_distributed
gpus=$(python3 -c 'import torch; print(torch.cuda.device_count())')
ranks=$(( gpus >= 2 ? gpus : 2 ))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args="--data fashion-mnist -n 2048 --model glow --levels 2 --steps-per-level 4 --hidden 32
      --batch-size 64 --steps 200 --eval-every 100 --device cuda --seed 3"
# shellcheck disable=SC2086  # the options are a list
build-cuda/zflow train $args --out "$work/one.safetensors"
# shellcheck disable=SC2086
build-cuda/zflow train $args --nproc "$ranks" --out "$work/many.safetensors"
build-cuda/zflow eval --model "$work/one.safetensors" --data fashion-mnist:test --n 2000
build-cuda/zflow eval --model "$work/many.safetensors" --data fashion-mnist:test --n 2000
echo "check_cuda_distributed: done ($ranks ranks on $gpus GPU(s))"
