"""The BatchNorm shift of a hidden measurement: the spread of G's feature maps after the injection point on the
training path (train mode, measured) against the sampling path (eval mode, clean), for three ways to set the
statistics the sampler uses:

- measured: what training accumulates on measured maps (hidden.bn_stats measured, the platform before the fix);
- rescale: the kept units scaled by 1/(1-p), as inverted dropout does (not an option of the platform: see below);
- clean: recomputed on clean forwards before sampling (hidden.bn_stats clean, AmbientGAN.calibrate).

Channel Block-Pixel after `project`, G at its initial weights, the running statistics accumulated over 100
training-path forwards of batch 64 (no optimiser). A ratio of 1 means the sampler meets the statistics training
normalised by.

    PYTHONPATH=platform python benchmarks/bench_hidden_bn.py [--width 32] [--p 0.8]
"""

from __future__ import annotations

import argparse

import torch
from gansweep.config.schema import Config
from gansweep.gan.build import build_gan

SHAPE = (1, 28, 28)
FORWARDS = 100  # momentum 0.1: the initial statistics' weight is 0.9^100, nothing


def spreads(bn_stats: str, width: int, p: float, blocks: list[str]) -> dict[str, float]:
    """Per block after the injection point: std on the sampling path / std on the training path."""
    cfg = Config()
    cfg.model.g_width = width
    cfg.hidden.inject_at = "project"
    cfg.hidden.measurement.name, cfg.hidden.measurement.unit, cfg.hidden.measurement.p = "block_pixel", "channel", p
    cfg.hidden.bn_stats = "measured" if bn_stats == "rescale" else bn_stats
    torch.manual_seed(0)
    gan = build_gan(cfg, SHAPE)
    if bn_stats == "rescale":
        measure = gan.hidden_measurement
        gan.hidden_measurement = lambda h, rng: measure(h, rng) / (1 - p)  # inverted dropout's scaling
    generator, out = gan.sampler.generator, {}
    hooks = [generator.blocks[name].register_forward_hook(lambda m, i, o, name=name: out.update({name: o.std().item()}))
             for name in blocks]
    with torch.no_grad():
        for _ in range(FORWARDS):
            gan.fake(64)
        training = dict(out)
        gan.calibrate(FORWARDS)
        gan.sampler.images(torch.randn(512, gan.z_dim, generator=torch.Generator().manual_seed(1)))
    for hook in hooks:
        hook.remove()
    return {name: out[name] / training[name] for name in blocks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--p", type=float, default=0.8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    blocks = ["up1", "up2"]
    print(f"channel Block-Pixel p={args.p} after project, g_width {args.width}; std sampling path / training path")
    print(f"{'statistics':<10}" + "".join(f"{name:>8}" for name in blocks))
    for bn_stats in ("measured", "rescale", "clean"):
        ratios = spreads(bn_stats, args.width, args.p, blocks)
        print(f"{bn_stats:<10}" + "".join(f"{ratios[name]:>8.2f}" for name in blocks))


if __name__ == "__main__":
    main()
