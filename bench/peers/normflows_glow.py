#!/usr/bin/env python3
"""The Glow of `zflow bench --config glow` built in normflows, timed the same way.

Fashion-MNIST's shape (1x28x28), 2 levels of 8 Glow steps (ActNorm, LU 1x1 convolution,
affine channel coupling with a 3x3 -> 1x1 -> 3x3 conv net of 64 hidden channels), learned
Gaussian priors for the factored-out channels, Adam lr 1e-3, batches of 64, one thread.
Prints steps/s of training, images/s of log_prob and of sampling, as JSON.

Usage (Debian's python3-torch and a normflows checkout):
    PYTHONPATH=path/to/normalizing-flows /usr/bin/python3 bench/peers/normflows_glow.py
"""
import json
import statistics
import sys
import time

import torch
import normflows as nf

TRAIN_BATCH = 64
EVAL_BATCH = 1000


def build(levels=2, steps=8, hidden=64, shape=(1, 28, 28)):
    channels, height, width = shape
    q0, merges, flows = [], [], []
    for i in range(levels):
        blocks = [nf.flows.GlowBlock(channels * 2 ** (levels + 1 - i), hidden,
                                     split_mode="channel", scale=True)
                  for _ in range(steps)]
        blocks.append(nf.flows.Squeeze())
        flows.append(blocks)
        if i > 0:
            merges.append(nf.flows.Merge())
            latent = (channels * 2 ** (levels - i), height // 2 ** (levels - i),
                      width // 2 ** (levels - i))
        else:
            latent = (channels * 2 ** (levels + 1), height // 2 ** levels, width // 2 ** levels)
        q0.append(nf.distributions.GlowBase(latent))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def median_time(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    quick = "--quick" in sys.argv
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build()
    params = sum(p.numel() for p in model.parameters())
    # Dequantised random pixels: the speed does not depend on the data.
    data = (torch.randint(0, 256, (10 * TRAIN_BATCH, 1, 28, 28)).float() + torch.rand(
        10 * TRAIN_BATCH, 1, 28, 28)) / 256.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    offset = [0]

    def step():
        batch = data[offset[0]:offset[0] + TRAIN_BATCH]
        offset[0] = (offset[0] + TRAIN_BATCH) % data.shape[0]
        optimizer.zero_grad()
        loss = model.forward_kld(batch)
        loss.backward()
        optimizer.step()

    step_s = median_time(step, 3, 5 if quick else 40)
    with torch.no_grad():
        eval_data = data[:EVAL_BATCH] if data.shape[0] >= EVAL_BATCH else data.repeat(2, 1, 1, 1)[
            :EVAL_BATCH]
        log_prob_s = median_time(lambda: model.log_prob(eval_data), 1, 2 if quick else 5)
        sample_s = median_time(lambda: model.sample(EVAL_BATCH), 1, 2 if quick else 5)
    print(json.dumps({"library": "normflows", "torch": torch.__version__, "threads": 1,
                      "parameters": params, "train_batch": TRAIN_BATCH,
                      "train_steps_per_s": 1.0 / step_s,
                      "log_prob_images_per_s": EVAL_BATCH / log_prob_s,
                      "sample_images_per_s": EVAL_BATCH / sample_s}, indent=2))


if __name__ == "__main__":
    main()
