"""The cost of checking the MMD stopping rule once per window of steps (reversal.MMD_CHECK_EVERY) instead of after
every step: the time of one KDE-GAN reversal with the MMD rule at window 1 and at the windows given, side by side,
for thresholds that stop it at chosen steps, and without the rule (no sync in the loop at all).

On a CPU nothing runs asynchronously, so a sync costs nothing there and the window shows only what it wastes: the
steps computed past the stop, up to window - 1. On a GPU a sync stalls the device every time (the CPU waits for it
to drain, then it waits for the CPU to launch the next kernels), which the window saves. Each reversal is timed
once per round, the arms interleaved so that machine noise hits them alike; medians over the rounds.

    PYTHONPATH=platform .venv/bin/python benchmarks/bench_reversal_syncs.py [--device cpu] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import _generator  # noqa: E402  (the tests' G: weights whose images respond to z)
from gansweep.config.schema import ModelConfig, ReversalConfig
from gansweep.gan import reversal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64, help="reals (as many fakes alongside)")
    parser.add_argument("--max-steps", type=int, default=ReversalConfig.max_steps)
    parser.add_argument("--windows", type=int, nargs="+", default=[reversal.MMD_CHECK_EVERY])
    parser.add_argument("--stops", type=int, nargs="+", default=[1, 4, 5, 10, 17],
                        help="steps at which the rule stops (thresholds set from a trace); plus never")
    args = parser.parse_args()
    device = torch.device(args.device)

    generator = _generator(0, width=ModelConfig.g_width).to(device)  # the project's default G
    forwards = [0]
    generator.register_forward_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
    with torch.no_grad():  # reals from another code distribution than the fakes: the MMD^2 grows step by step
        reals = generator(torch.randn(args.batch_size, generator.z_dim, device=device) * 0.5 + 1.0)
        fakes = generator(torch.randn(args.batch_size, generator.z_dim, device=device))

    def run(window: int, threshold: float | None) -> tuple[float, reversal.Reversed, int]:
        """One reversal: its seconds, its result and G's forward passes (the steps computed)."""
        forwards[0] = 0
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = reversal.reverse(generator, reals, fakes=fakes if threshold is not None else None, lr=0.01,
                                  max_steps=args.max_steps, init_std=1e-4, mmd_bandwidth=4.0,
                                  mmd_threshold=threshold, rng=torch.Generator(device).manual_seed(1),
                                  check_every=window)
        result.errors  # the error trace on the host: part of every reversal's cost
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, result, forwards[0]

    trace = run(1, 10.0)[1].mmd2  # never stops (MMD^2 <= 2)
    arms: dict[str, float | None] = {"no MMD rule": None}
    for stop in args.stops:
        if not 1 <= stop <= args.max_steps or (stop > 1 and trace[stop - 1] <= max(trace[: stop - 1])):
            raise SystemExit(f"the trace {trace} does not first pass a threshold at step {stop}")
        below = max(trace[: stop - 1], default=0.0)
        arms[f"stops at {stop}"] = (below + trace[stop - 1]) / 2
    arms["never stops"] = 10.0
    windows = sorted({1, *args.windows})

    run(1, 10.0)  # warm-up
    seconds: dict[tuple[str, int], list[float]] = {}
    computed: dict[tuple[str, int], int] = {}
    for _ in range(args.rounds):
        for name, threshold in arms.items():
            for window in windows if threshold is not None else [windows[-1]]:
                elapsed, result, steps = run(window, threshold)
                seconds.setdefault((name, window), []).append(elapsed)
                computed[name, window] = steps

    print(f"reversal of {args.batch_size} reals (+{args.batch_size} fakes with the MMD rule) on {device}, "
          f"{torch.get_num_threads()} threads, max_steps={args.max_steps}; median of {args.rounds} rounds")
    header = "".join(f"  {f'window {w}':>18}" for w in windows)
    print(f"{'':>14}{header}  (seconds, steps computed)")
    for name, threshold in arms.items():
        cells = []
        for window in windows:
            if (name, window) not in seconds:
                cells.append(f"  {'':>18}")
                continue
            cells.append(f"  {statistics.median(seconds[name, window]):9.3f} s {computed[name, window]:3d} st")
        ratio = ""
        if threshold is not None:
            base = statistics.median(seconds[name, 1])
            ratio = "  " + " ".join(f"x{statistics.median(seconds[name, w]) / base:.3f}" for w in windows[1:])
        print(f"{name:>14}{''.join(cells)}{ratio}")


if __name__ == "__main__":
    main()
