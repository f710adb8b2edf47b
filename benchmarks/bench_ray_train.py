"""Ray Train's costs on this machine: the fixed start-up cost of a TorchTrainer run (seconds from fit()
to the end of the first step), the data-wait fraction while training, and (one worker) the platform's
train loop through Ray Train against a plain PyTorch loop with the same model and batch, run right after
it in this process (sequential, so noisier than bench_train_step.py's interleaved rounds).

    PYTHONPATH=platform python benchmarks/bench_ray_train.py [--steps 300] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from bench_train_step import images_per_s, plain_loop
from gansweep.config.loading import load_config
from gansweep.run.trainer import check_config, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    overrides = [
        f"train.steps={args.steps}", f"train.batch_size={args.batch_size}", f"train.workers={args.workers}",
        "train.log_every=50", "train.checkpoint_every=100000", "train.image_every=100000",
        "data.limit=12800", "measurement.name=block_pixel", "measurement.p=0.5",
    ]
    cfg = load_config(None, overrides)
    checked = check_config(cfg)
    with tempfile.TemporaryDirectory() as output:
        start = time.time()
        summary = run_training(cfg, output, checked)
        total = time.time() - start
    metrics = summary["metrics"]

    report = {
        "workers": args.workers,
        "steps": args.steps,
        "fit_wall_s": round(summary["wall_time_s"], 1),
        "time_to_first_step_s": round(summary["time_to_first_step_s"], 1),
        "data_wait_frac_last_window": round(metrics["data_wait_frac"], 4),
        "platform_images_per_s_last_window": round(metrics["images_per_s"], 1),
        "process_wall_s": round(total, 1),
    }
    if args.workers == 1:
        # The plain loop with the threads the Ray Train worker had (OMP_NUM_THREADS = its CPUs).
        torch.set_num_threads(max(1, int(summary["resources"]["cpus_per_worker"])))
        real = torch.rand(args.batch_size, 1, 28, 28)
        step = plain_loop(args.batch_size, 0.5)
        images_per_s(step, real, 3)
        plain_rate = images_per_s(step, real, 50)
        report["plain_images_per_s"] = round(plain_rate, 1)
        report["ratio_platform_over_plain"] = round(metrics["images_per_s"] / plain_rate, 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
