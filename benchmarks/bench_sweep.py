"""Sweep overhead and throughput on this machine's CPUs, through the real `gansweep sweep`.

1. Per-trial overhead: two ~2-minute trials one after the other (the first starts every process anew, the second
   may reuse the first's idle ones); each one's wall time (trial start to end, as the sweep's driver sees it)
   against the time spent inside its train loop (train_loop_s, measured by rank 0): the fixed cost (goal <= 8 s)
   and the overhead (goal <= 15%). With --against REV, the same sweep is run first by an earlier commit (checked out
   in a temporary git worktree, run with this venv), side by side. The full evaluation is off (eval.n_samples=0; its
   cost is in BENCHMARKS.md); the cheap FID stays on. Where the fixed cost goes, from the trial's result.json:
   outside training (the trial actor's start, run_training's checks and plan, Tune's bookkeeping and teardown),
   from training's start to the train loop's (a one-worker trial in its own process: the nets built and restored;
   on Ray Train: its controller, worker group and placement group too), and after the loop (the last checkpoint;
   on Ray Train, the worker group's shutdown). The stream's first batch is inside the loop: printed beside. A trial's
   wall time starts when its Tune actor is up: the second trial's cost end to end (from the first's end to its own,
   less its loop) also counts Tune ending the first trial's actor and starting its own.
2. Throughput: the same sweep of short trials run with 1 and with 2 trials at a time (trials per hour).

    .venv/bin/python benchmarks/bench_sweep.py [--output runs/bench_sweep] [--overhead-only] [--against REV]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from gansweep.run.run_dir import read_result
from gansweep.sweep.sweep_dir import read_trials, trial_dir

FIXED = {
    "data.limit": 6000,
    "measurement.name": "block_pixel",
    "model.g_width": 32,
    "model.d_width": 32,
    "train.log_every": 25,
    "train.checkpoint_every": 200,
    "train.image_every": 200,
    "eval.every": 200,
    "eval.cheap_samples": 500,
    "eval.n_samples": 0,
}


REPO = Path(__file__).resolve().parents[1]


def sweep(output: Path, name: str, steps: int, num_samples: int, concurrent: int,
          tree: Path = REPO) -> tuple[float, list[dict]]:
    """Run one sweep with the gansweep of TREE (this repository, or an earlier commit's worktree); returns its wall
    time and trials.json's entries."""
    space = output / f"{name}.yaml"
    space.write_text(yaml.safe_dump({
        "name": name, "num_samples": num_samples, "max_concurrent_trials": concurrent,
        "fixed": {**FIXED, "train.steps": steps},
        "space": {"measurement.p": {"uniform": [0.3, 0.7]}},
        "scheduler": {"name": "fifo"}, "search": {"algorithm": "random", "seed": 0},
    }))
    target = output / name
    shutil.rmtree(target, ignore_errors=True)
    # PYTHONPATH first: the venv's editable install of gansweep would otherwise win (Ray's workers inherit it).
    env = {**os.environ, "PYTHONPATH": str(tree / "platform")}
    start = time.time()
    with (output / f"{name}.log").open("w") as log:
        code = subprocess.run([sys.executable, "-m", "gansweep.cli", "sweep", str(space), "--output", str(target)],
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tree).returncode
    wall = time.time() - start
    if code != 0:
        raise SystemExit(f"sweep {name} failed (exit {code}); see {output / (name + '.log')}")
    return wall, read_trials(target)


@contextlib.contextmanager
def worktree(rev: str):
    """REV checked out in a temporary git worktree, removed after."""
    folder = Path(tempfile.mkdtemp()) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", str(folder), rev], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)], check=True)


def fixed_cost(trial: dict, result: dict) -> dict[str, float]:
    """The seconds of a trial outside its train loop (its wall time less train_loop_s), by where they go (see the
    module's docstring)."""
    fit, to_loop, loop = result["wall_time_s"], result["time_to_loop_start_s"], trial["metrics"]["train_loop_s"]
    return {
        "outside training (actor, checks, plan, Tune)": trial["wall_s"] - fit,
        "training's start to the loop (nets; on Ray Train its processes too)": to_loop,
        "after the loop (last checkpoint; on Ray Train its shutdown)": fit - to_loop - loop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("runs/bench_sweep"))
    parser.add_argument("--overhead-steps", type=int, default=1400, help="steps of the ~2-minute trial")
    parser.add_argument("--throughput-steps", type=int, default=400)
    parser.add_argument("--throughput-trials", type=int, default=4)
    parser.add_argument("--overhead-only", action="store_true", help="measure the per-trial overhead only")
    parser.add_argument("--against", metavar="REV", help="an earlier commit whose overhead is measured first")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)

    with contextlib.ExitStack() as stack:
        trees = {"this tree": REPO}
        if args.against:
            trees = {args.against: stack.enter_context(worktree(args.against)), **trees}
        for name, tree in trees.items():  # side by side: one run of each, in turn
            tag = "overhead" if tree == REPO else "overhead_against"
            wall, trials = sweep(args.output, tag, args.overhead_steps, 2, 1, tree)
            trials.sort(key=lambda entry: entry["started_unix"])
            for which, trial in zip(("first", "second"), trials):
                loop = trial["metrics"]["train_loop_s"]
                result = read_result(trial_dir(str(args.output / tag), trial["name"]))
                costs = fixed_cost(trial, result)
                print(f"{name}, {which} trial ({result.get('trains_in', 'ray train')}): wall {trial['wall_s']:.1f} s, "
                      f"in the train loop {loop:.1f} s -> overhead "
                      f"{100 * (trial['wall_s'] - loop) / trial['wall_s']:.1f}% (goal <= 15%); fixed cost "
                      f"{sum(costs.values()):.1f} s (goal <= 8 s): "
                      + "; ".join(f"{what} {seconds:.1f} s" for what, seconds in costs.items())
                      + f"; inside the loop, the stream's first batch and step "
                      f"{result['time_to_first_step_s'] - result['time_to_loop_start_s']:.1f} s", flush=True)
            # What the trial's wall time leaves out: Tune ending the first trial's actor and starting the second's.
            first, second = trials
            between_ends = second["started_unix"] + second["wall_s"] - first["started_unix"] - first["wall_s"]
            print(f"{name}, second trial end to end (the first's end to its own, less its loop): "
                  f"{between_ends - second['metrics']['train_loop_s']:.1f} s (goal <= 8 s)", flush=True)
            print(f"{name}: whole sweep command {wall:.1f} s", flush=True)
    if args.overhead_only:
        return

    rates = {}
    for concurrent in (1, 2):
        wall, trials = sweep(args.output, f"throughput_{concurrent}", args.throughput_steps,
                             args.throughput_trials, concurrent)
        assert all(t["status"] == "finished" for t in trials), trials
        rates[concurrent] = len(trials) / wall * 3600
        mean_wall = sum(t["wall_s"] for t in trials) / len(trials)
        print(f"throughput, {concurrent} at a time: {len(trials)} trials of {args.throughput_steps} steps in "
              f"{wall:.1f} s -> {rates[concurrent]:.0f} trials/hour (mean trial wall {mean_wall:.1f} s)", flush=True)
    print(f"throughput ratio 2 vs 1 at a time: {rates[2] / rates[1]:.2f}", flush=True)


if __name__ == "__main__":
    main()
