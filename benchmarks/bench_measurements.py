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
from gansweep.nets.measurements import BlockPatch, build_measurement

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


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, budget_s: float | dict[str, float] = 0.5) -> dict[str, float]:
    """Seconds per call of each fn: the best round's median, rounds interleaved across the fns.

    Interleaving and taking the best round keep a burst of load from other processes on this machine
    from landing on one measurement only. A round gets repeats / ROUNDS calls, fewer (at least 3)
    where that overruns budget_s: Gaussian-Projection on a feature map draws 40M normals per call.
    budget_s may be a dict, one budget per fn name (default 0.5 s).
    """
    calls = {}
    for name, fn in fns.items():
        for _ in range(WARMUP):
            fn()
        budget = budget_s.get(name, 0.5) if isinstance(budget_s, dict) else budget_s
        calls[name] = max(3, min(repeats // ROUNDS, int(budget / median_call(fn, 3))))
    best = {name: float("inf") for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            best[name] = min(best[name], median_call(fn, calls[name]))
    return best


def measurement_calls(batch_size: int, shape: tuple[int, int, int]) -> dict[str, Callable[[], object]]:
    """One no-argument call per measurement: measurement(x, generator) on a (batch_size, *shape) batch,
    forward only (no autograd graph)."""
    x = torch.rand(batch_size, *shape)
    generator = torch.Generator().manual_seed(0)

    def forward(m):
        def call():
            with torch.no_grad():
                return m(x, generator)

        return call

    return {name: forward(build_measurement(spec)) for name, spec in specs(shape).items()}


def matrix_back_projection_call(batch_size: int, shape: tuple[int, int, int], m: int = 100) -> Callable[[], object]:
    """Gaussian-Projection's back-projection (D/m) A^T A x with the m x D matrix A drawn per sample, as the
    measurement did before it drew the same law from m + D normals: the reference for its cost."""
    x = torch.rand(batch_size, *shape).flatten(1)
    d = x.shape[1]
    generator = torch.Generator().manual_seed(0)

    def call():
        with torch.no_grad():
            a = torch.randn(batch_size, m, d, generator=generator) / d**0.5
            return (d / m) * torch.bmm(a.transpose(1, 2), torch.bmm(a, x.unsqueeze(2))).squeeze(2)

    return call


def time_measurements(batch_size: int = 64, repeats: int = 200, shape: tuple[int, int, int] = IMAGE) -> dict[str, float]:
    """Seconds per call of measurement(x, generator) on a (batch_size, *shape) batch, forward only."""
    return interleaved(measurement_calls(batch_size, shape), repeats)


def gan_step_call(batch_size: int) -> tuple[Callable[[], object], str]:
    """One training step of the platform's AmbientGAN (one D step, one G step, Block-Pixel) on a
    batch of 1x28x28 images in [0, 1], and the device it runs on."""
    from gansweep.config.schema import Config
    from gansweep.gan.build import build_gan

    cfg = Config()
    cfg.measurement.name = "block_pixel"
    gan = build_gan(cfg, IMAGE)
    real = torch.rand(batch_size, *IMAGE)
    return partial(gan.step, [real]), str(gan.sampler.device)


def time_gan_step(batch_size: int) -> float:
    """Seconds per training step of the platform's AmbientGAN on 1x28x28."""
    return interleaved({"gan_step": gan_step_call(batch_size)[0]}, repeats=50, budget_s=5.0)["gan_step"]


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
    print("patch k = 14 on 1x28x28, 3 on 7x7 maps (14 does not fit); gaussian_projection m=100; "
          "convolve_noise r=1 s=0.1; cascade = block_pixel p=0.5 then block_patch k")
    # Every measurement and the GAN step in the same interleaved rounds: a burst of load from other
    # processes hits the step and the measurements alike, so the ratios stay meaningful.
    fns = {(label, name): fn for label, shape in shapes.items() for name, fn in measurement_calls(args.batch_size, shape).items()}
    step_fn, device = gan_step_call(args.batch_size)
    fns[("gan", "step")] = step_fn
    fns[("matrix", "image")] = matrix_back_projection_call(args.batch_size, IMAGE)
    times = interleaved(fns, args.repeats, budget_s={("gan", "step"): 3.0})
    step = times.pop(("gan", "step"))
    matrix = times.pop(("matrix", "image"))
    results = {label: {name: t for (lab, name), t in times.items() if lab == label} for label in shapes}

    print(f"\nGAN step (AmbientGAN, Block-Pixel, batch {args.batch_size}, 1x28x28, {device}): {step * 1e3:.2f} ms")
    print("ratio = measurement time / GAN step time (goal: sum of all <= 0.05)\n")
    header = "".join(f"{label + ' ms':>22}{'ratio':>9}" for label in shapes)
    print(f"{'measurement':<22}{header}")
    for name in results["image 1x28x28"]:
        row = "".join(f"{results[label][name] * 1e3:>22.3f}{results[label][name] / step:>9.4f}" for label in shapes)
        print(f"{name:<22}{row}")
    totals = {label: sum(results[label].values()) for label in shapes}
    print(f"{'SUM of all':<22}" + "".join(f"{totals[label] * 1e3:>22.3f}{totals[label] / step:>9.4f}" for label in shapes))
    others = {label: totals[label] - results[label]["gaussian_projection"] for label in shapes}
    print(f"{'SUM w/o gauss. proj.':<22}" + "".join(f"{others[label] * 1e3:>22.3f}{others[label] / step:>9.4f}" for label in shapes))
    drawn = results["image 1x28x28"]["gaussian_projection"]
    print(f"\ngaussian_projection m=100 on images: {drawn * 1e3:.3f} ms from m + D normals per sample, "
          f"{matrix * 1e3:.3f} ms with A drawn as a matrix ({matrix / step:.4f} of a step): x{matrix / drawn:.1f}")
    ratio = totals["image 1x28x28"] / step
    print(f"\nsum of all measurements / GAN step (images): {ratio:.4f} -> "
          f"{'meets' if ratio <= 0.05 else 'MISSES'} the goal of <= 0.05")

    print("\nBlock-Patch, per-sample Python loop vs vectorised (same corners, outputs checked equal):")
    cases = [(args.batch_size, "image 1x28x28", IMAGE), (args.batch_size, "features 128x7x7", FEATURE_MAP),
             (8 * args.batch_size, "image 1x28x28", IMAGE)]
    for batch, label, shape in cases:
        loop, vectorised = time_loop_vs_vectorised(batch, args.repeats, shape)
        print(f"  batch {batch:<4} {label:<18} loop {loop * 1e3:8.3f} ms, vectorised {vectorised * 1e3:7.3f} ms, "
              f"speed-up x{loop / vectorised:.1f}")


if __name__ == "__main__":
    main()
