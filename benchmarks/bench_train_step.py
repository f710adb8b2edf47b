"""The platform's GAN step against a plain PyTorch loop with the same models and batch, side by side.

Prints images/s of both and their ratio (goal >= 0.95 on one worker). Both run in this process with
the same torch threads, interleaved in rounds so that machine noise hits both alike.

    PYTHONPATH=platform python benchmarks/bench_train_step.py [--batch-size 64] [--rounds 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from gansweep.config.schema import Config
from gansweep.gan.build import build_gan
from gansweep.nets.models import Discriminator, Generator
from gansweep.nets.pixels import to_unit

SHAPE = (1, 28, 28)


def plain_loop(batch_size: int, p: float):
    """A hand-written AmbientGAN step (Block-Pixel) with no platform code but the nets (models, pixel range)."""
    torch.manual_seed(0)
    G, D = Generator(SHAPE), Discriminator(SHAPE)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def measure(x):
        return x * (torch.rand_like(x) >= p)

    def step(real):
        with torch.no_grad():
            fake = measure(to_unit(G(torch.randn(batch_size, G.z_dim))))
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        fake = measure(to_unit(G(torch.randn(batch_size, G.z_dim))))
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step


def platform_loop(p: float):
    cfg = Config()
    cfg.measurement.name, cfg.measurement.p = "block_pixel", p
    gan = build_gan(cfg, SHAPE)
    return lambda real: gan.step([real])


def images_per_s(step, real: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step(real)
    return steps * len(real) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--p", type=float, default=0.5)
    args = parser.parse_args()

    real = torch.rand(args.batch_size, *SHAPE) * (torch.rand(args.batch_size, *SHAPE) >= args.p)
    plain, platform = plain_loop(args.batch_size, args.p), platform_loop(args.p)
    for step in (plain, platform):  # warm-up
        images_per_s(step, real, 3)

    plain_rates, platform_rates = [], []
    for _ in range(args.rounds):
        plain_rates.append(images_per_s(plain, real, args.steps))
        platform_rates.append(images_per_s(platform, real, args.steps))
    plain_rate, platform_rate = statistics.median(plain_rates), statistics.median(platform_rates)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps")
    print(f"plain PyTorch loop : {plain_rate:8.1f} images/s (median)")
    print(f"gansweep AmbientGAN: {platform_rate:8.1f} images/s (median)")
    print(f"ratio platform/plain: {platform_rate / plain_rate:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
