"""The cost of a KDE-GAN iteration (Kilcher et al., Algorithm 2: reverse a real batch, re-estimate the KDE prior,
then one GAN step) against a plain GAN step, at 5, 20 and 50 reversal steps, side by side in one process, and
the reconstruction error each reaches. The paper reports 1.9x, 4.9x and 9.8x in its TensorFlow implementation.
The levers: the warm start (each image's code from its last reversal), and prior.refresh_every > 1 (one
reversal amortised over several GAN steps, outside Algorithm 2).

    .venv/bin/python benchmarks/bench_kde_gan.py [--iterations 12] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gansweep.config.loading import load_config
from gansweep.data.sources import load_source
from gansweep.gan.build import build_gan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=12,
                        help="timed iterations per arm and round (a multiple of 4: the /4 arm refreshes on every 4th)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the arms, interleaved (noise)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cycle", type=int, default=8,
                        help="distinct real batches, revisited in turn (as epochs revisit images): the warm start's case")
    parser.add_argument("--pretrain", type=int, default=300,
                        help="plain GAN steps first, shared by every arm: reversing an untrained G reconstructs nothing")
    args = parser.parse_args()

    images = load_source("fashion_mnist", None, limit=6000).images
    batches = [torch.as_tensor(images[i * args.batch_size:(i + 1) * args.batch_size], dtype=torch.float32) / 255
               for i in range(len(images) // args.batch_size)]
    # name: (reversal steps, warm start, prior.refresh_every); None: the plain GAN.
    arms = {"plain": None, "kde 5": (5, False, 1), "kde 5 warm": (5, True, 1), "kde 20": (20, False, 1),
            "kde 50": (50, False, 1), "kde 20 warm /4": (20, True, 4)}
    gans = {}
    for name, arm in arms.items():
        overrides = ["mode=clean", "measurement.name=none", f"train.batch_size={args.batch_size}"]
        if arm:
            steps, warm, every = arm
            overrides += ["prior.name=kde", f"reversal.max_steps={steps}", f"reversal.warm_start={warm}",
                          f"prior.refresh_every={every}"]
        gans[name] = build_gan(load_config(None, overrides), (1, 28, 28))
    for i in range(args.pretrain):
        gans["plain"].step([batches[i % len(batches)]])
    for name in arms:
        gans[name].load_state_dict(gans["plain"].state_dict())
    seconds = {name: [] for name in arms}
    errors = {name: [] for name in arms}

    def iteration(name: str, i: int) -> None:
        gan, real = gans[name], batches[i % args.cycle]
        if gan.prior.due(i + 1):  # the train loop's rule
            indices = torch.arange(i % args.cycle * args.batch_size, (i % args.cycle + 1) * args.batch_size)
            errors[name].append(gan.prior.refresh(real, indices)["reversal_error"])
        gan.step([real])

    for name in arms:  # warm-up
        iteration(name, 0)
    for _ in range(args.rounds):
        for name in arms:
            start = time.perf_counter()
            for i in range(args.iterations):
                iteration(name, i)
            seconds[name].append((time.perf_counter() - start) / args.iterations)
    plain = np.median(seconds["plain"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, DCGAN width 64, "
          f"after {args.pretrain} plain steps; {args.cycle} real batches in turn; median of {args.rounds} interleaved "
          f"rounds of {args.iterations} iterations")
    for name in arms:
        median = np.median(seconds[name])
        error = f", reconstruction error reached {np.mean(errors[name]):.4f} (mean squared, [-1, 1] pixels)" \
            if errors[name] else ""
        print(f"{name:>14}: {1000 * median:7.1f} ms/iteration = {median / plain:5.2f}x plain{error}")


if __name__ == "__main__":
    main()
