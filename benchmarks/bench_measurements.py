"""Time of each measurement f_theta (draw theta + apply) on images and on generator feature maps, CPU.

Also times a per-sample Python-loop Block-Patch against the vectorised one, to show the speedup.
``time_measurements`` returns seconds per call, for comparison with a GAN step's time:

    PYTHONPATH=platform python benchmarks/bench_measurements.py [--batch-size 64] [--repeats 200]

or from Python: ``sys.path.insert(0, "benchmarks"); from bench_measurements import time_measurements``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from typing import Callable

import torch

from gansweep.measurements import BlockPatch, build_measurement

IMAGE = (1, 28, 28)
FEATURE_MAP = (128, 7, 7)
WARMUP = 10
ROUNDS = 5


def specs(shape: tuple[int, int, int]) -> dict[str, dict]:
    """One spec per measurement, sized for `shape` (patch k = half the map, as the config's 14 on 28x28)."""
    k = max(1, min(shape[1:]) // 2)
    return {
        "block_pixel": {"name": "block_pixel", "p": 0.5},
        "block_pixel_channel": {"name": "block_pixel", "p": 0.5, "unit": "channel"},
        "block_patch": {"name": "block_patch", "patch": k},
        "keep_patch": {"name": "keep_patch", "patch": k},
        "extract_patch": {"name": "extract_patch", "patch": k},
        "gaussian_projection": {"name": "gaussian_projection", "projections": 100},
        "convolve_noise": {"name": "convolve_noise", "blur_radius": 1.0, "noise_std": 0.1},
        "cascade": {"name": "cascade", "steps": [{"name": "block_pixel", "p": 0.5}, {"name": "block_patch", "patch": k}]},
    }


def median_call(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, budget_s: float = 0.5) -> dict[str, float]:
    """Seconds per call of each fn: the best round's median, rounds interleaved across the fns.

    Interleaving and taking the best round keep a burst of load from other processes on this machine
    from landing on one measurement only. A round gets repeats / ROUNDS calls, fewer (at least 3)
    where that overruns budget_s: Gaussian-Projection on a feature map draws 40M normals per call.
    """
    calls = {}
    for name, fn in fns.items():
        for _ in range(WARMUP):
            fn()
        calls[name] = max(3, min(repeats // ROUNDS, int(budget_s / median_call(fn, 3))))
    best = {name: float("inf") for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            best[name] = min(best[name], median_call(fn, calls[name]))
    return best


def time_measurements(batch_size: int = 64, repeats: int = 200, shape: tuple[int, int, int] = IMAGE) -> dict[str, float]:
    """Seconds per call of measurement(x, generator) on a (batch_size, *shape) batch, forward only."""
    x = torch.rand(batch_size, *shape)
    generator = torch.Generator().manual_seed(0)
    measurements = {name: build_measurement(spec) for name, spec in specs(shape).items()}
    with torch.no_grad():
        return interleaved({name: partial(m, x, generator) for name, m in measurements.items()}, repeats)


def time_gan_step(batch_size: int) -> float:
    """Seconds per training step of the platform's AmbientGAN (one D step, one G step) on 1x28x28."""
    from gansweep.config import Config
    from gansweep.gan import AmbientGAN

    cfg = Config()
    cfg.measurement.name = "block_pixel"
    gan = AmbientGAN(cfg, IMAGE)
    real = torch.rand(batch_size, *IMAGE)
    return interleaved({"gan_step": partial(gan.step, [real])}, repeats=50, budget_s=5.0)["gan_step"]


def loop_block_patch(m: BlockPatch, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Block-Patch the naive way: the same corners, zeroed one sample at a time."""
    corners = m.sample_theta(x, generator)["corners"].tolist()
    y = x.clone()
    for n, (r, c) in enumerate(corners):
        y[n, :, r : r + m.patch, c : c + m.patch] = 0
    return y


def time_loop_vs_vectorised(batch_size: int, repeats: int, shape: tuple[int, int, int]) -> tuple[float, float]:
    """Seconds per call of the Python-loop and the vectorised Block-Patch; checks they agree."""
    m = build_measurement(specs(shape)["block_patch"])
    x = torch.rand(batch_size, *shape)
    assert torch.equal(loop_block_patch(m, x, torch.Generator().manual_seed(1)), m(x, torch.Generator().manual_seed(1)))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        t = interleaved({"loop": partial(loop_block_patch, m, x, generator), "vectorised": partial(m, x, generator)}, repeats)
    return t["loop"], t["vectorised"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"best of {ROUNDS} interleaved rounds' medians, up to {args.repeats} calls, forward (draw theta + apply)")

    shapes = {"image 1x28x28": IMAGE, "features 128x7x7": FEATURE_MAP}
    results = {label: time_measurements(args.batch_size, args.repeats, shape) for label, shape in shapes.items()}
    print(f"{'measurement':<22}" + "".join(f"{label:>20}" for label in shapes))
    for name in results["image 1x28x28"]:
        print(f"{name:<22}" + "".join(f"{results[label][name] * 1e3:>17.3f} ms" for label in shapes))

    step = time_gan_step(args.batch_size)
    images = results["image 1x28x28"]
    print(f"\nGAN step (AmbientGAN, Block-Pixel, batch {args.batch_size}, 1x28x28): {step * 1e3:.1f} ms")
    for name, seconds in images.items():
        print(f"  {name:<22} {100 * seconds / step:6.2f}% of a step")
    others = sum(v for k, v in images.items() if k != "gaussian_projection")
    print(f"  all measurements together: {100 * sum(images.values()) / step:.2f}% of a step (goal <= 5%); "
          f"all but gaussian_projection: {100 * others / step:.2f}%")

    print("\nBlock-Patch, per-sample Python loop vs vectorised:")
    for label, shape in shapes.items():
        loop, vectorised = time_loop_vs_vectorised(args.batch_size, args.repeats, shape)
        print(f"  {label:<18} loop {loop * 1e3:.3f} ms, vectorised {vectorised * 1e3:.3f} ms, "
              f"speedup x{loop / vectorised:.1f}")


if __name__ == "__main__":
    main()
