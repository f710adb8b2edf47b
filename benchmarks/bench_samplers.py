"""TPE, GP and CMA-ES side by side (issue 30): the same small sweep of search_spaces/ambient_balance.yaml's space (the
balance of G and D for AmbientGAN on Block-Pixel p=0.8), run through the real `gansweep sweep` once per sampler, each
seeded alike (search.seed), and the best val fid reached after each trial count.

One search seed and one training seed per sampler: a single run of each, so the curves say how each behaves here, not
which is better (that needs several search seeds). The schedule is shortened so a sampler's sweep fits a laptop's
minutes: --steps training steps per trial (the space's 1,200 by default on its CPU schedule), a cheap FID of
--cheap-samples every --steps / 3 steps, no full evaluation, every trial to its end (fifo: ASHA would stop some, and
the curves would mix stopped and finished trials). --startup: the trials each model-based sampler draws at random first
(TPE's and GP's own default is 10, which would leave a 12-trial sweep almost all random).

    .venv/bin/python benchmarks/bench_samplers.py [--trials 12] [--steps 300] [--startup 4] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from gansweep.sweep import sweep_dir as layout

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "ambient_balance.yaml"
ALGORITHMS = ("tpe", "gp", "cmaes")


def run_sweep(algorithm: str, args, out: Path) -> float:
    """`gansweep sweep` of the shortened space with ALGORITHM into OUT; returns its wall time."""
    every = args.steps // 3
    settings = {
        "num_samples": args.trials, "max_concurrent_trials": 2, "scheduler.name": "fifo",
        "search.algorithm": algorithm, "search.seed": 0, "search.startup_trials": args.startup,
        "train.steps": args.steps, "eval.every": every, "train.checkpoint_every": every, "train.image_every": every,
        "eval.cheap_samples": args.cheap_samples, "eval.n_samples": 0,
    }
    command = [sys.executable, "-m", "gansweep.cli", "sweep", str(SPACE), "--output", str(out)]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{algorithm}: gansweep sweep failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def best_so_far(out: Path) -> list[float | None]:
    """The best value (a finished trial's val fid at its final step: sweep_dir.trial_value) over trials 1..k, for each
    k, in the order the sampler asked for them."""
    curve, best = [], math.inf
    for trial in sorted(layout.read_trials(out) or [], key=lambda t: t["number"]):
        value = trial.get("value")
        if value is not None:
            best = min(best, value)
        curve.append(best if math.isfinite(best) else None)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cheap-samples", type=int, default=500)
    parser.add_argument("--startup", type=int, default=4)
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gansweep-bench-samplers"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    curves, walls = {}, {}
    for algorithm in args.algorithms:
        walls[algorithm] = run_sweep(algorithm, args, args.work / algorithm)
        curves[algorithm] = best_so_far(args.work / algorithm)
        print(f"{algorithm}: {walls[algorithm] / 60:.1f} min, best val fid {curves[algorithm][-1]}", flush=True)
    seed = yaml.safe_load(SPACE.read_text())["fixed"]["train.seed"]
    print(f"\nBest val fid (the cheap FID of {args.cheap_samples} samples against the validation split) after k "
          f"trials; {args.trials} trials of {args.steps} steps, {args.startup} random first; search seed 0, training "
          f"seed {seed}: one run each")
    print("| trials | " + " | ".join(args.algorithms) + " |")
    print("|---|" + "---|" * len(args.algorithms))
    for k in range(args.trials):
        cells = [curves[a][k] if k < len(curves[a]) else None for a in args.algorithms]
        print(f"| {k + 1} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    print("| wall (min) | " + " | ".join(f"{walls[a] / 60:.1f}" for a in args.algorithms) + " |")
    (args.work / "samplers.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                         "best_so_far": curves, "wall_s": walls}, indent=2))


if __name__ == "__main__":
    main()
