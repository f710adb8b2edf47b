"""The cost of the cheap evaluation during training, as a fraction of training time (goal <= 10%).

Two measurements of the same run with the same config (default model, 1 worker, all CPUs):
1. inside one run with eval.every set: the seconds rank 0 spent evaluating (eval_s_total) over the
   train loop's time (fit() wall time minus the time to the first step);
2. side by side: the loop time of that run against the same run with the evaluation off, in
   alternating order (A B B A), so drifts in the machine's load fall on both.

    PYTHONPATH=platform:benchmarks python benchmarks/bench_eval_cost.py [--steps 1000] [--every 500]
"""

from __future__ import annotations

import argparse
import json
import tempfile

from gansweep.config.loading import load_config
from gansweep.run.trainer import check_config, init_ray, run_training


def loop_seconds(summary: dict) -> float:
    return summary["wall_time_s"] - summary["time_to_first_step_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=500, help="eval.every (the default is 500)")
    parser.add_argument("--cheap-samples", type=int, default=1000, help="eval.cheap_samples (the default)")
    args = parser.parse_args()

    common = [
        f"train.steps={args.steps}", "train.log_every=50", "train.checkpoint_every=100000",
        "train.image_every=100000", "eval.n_samples=0", f"eval.cheap_samples={args.cheap_samples}",
        "measurement.name=block_pixel", "measurement.p=0.5",
    ]
    configs = {
        "eval_on": load_config(None, [*common, f"eval.every={args.every}"]),
        "eval_off": load_config(None, [*common, "eval.every=0"]),
    }
    checked = check_config(configs["eval_on"])
    import ray

    started = init_ray()  # one Ray for all four runs: the start-up cost is not what is measured
    loops: dict[str, list[float]] = {"eval_on": [], "eval_off": []}
    fractions = []
    try:
        for name in ("eval_on", "eval_off", "eval_off", "eval_on"):
            with tempfile.TemporaryDirectory() as output:
                summary = run_training(configs[name], output, checked)
            loops[name].append(loop_seconds(summary))
            if name == "eval_on":
                fractions.append(summary["metrics"]["eval_s_total"] / loop_seconds(summary))
            print(f"{name}: loop {loops[name][-1]:.1f} s", flush=True)
    finally:
        if started:
            ray.shutdown()

    on, off = sum(loops["eval_on"]), sum(loops["eval_off"])
    report = {
        "steps": args.steps,
        "eval_every": args.every,
        "cheap_samples": args.cheap_samples,
        "evaluations_per_run": args.steps // args.every + (args.steps % args.every != 0),
        "loop_s_eval_on": [round(x, 1) for x in loops["eval_on"]],
        "loop_s_eval_off": [round(x, 1) for x in loops["eval_off"]],
        "eval_fraction_in_run": [round(f, 4) for f in fractions],
        "loop_ratio_on_over_off": round(on / off, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
