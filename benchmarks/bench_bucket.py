"""What writing a run to object storage costs, through the real `gansweep train`, against a real S3 server (moto's, on
127.0.0.1, started here: the same code path as AWS S3, without its network).

1. Write cost: one quickstart-sized trial (300 steps, a checkpoint, a cheap FID and image panels every 100 steps,
   the full evaluation at the end) run with --output on the local disk and on the bucket, in pairs whose order
   alternates (local then bucket, bucket then local, ...) so the machine's drift and the order cancel; the cost is
   the bucket's wall time over the local one, pair by pair. Goal <= 2%. A bound that noise cannot hide: the time to upload every object the run left in
   the bucket once more, in one go, over the run's wall time (each checkpoint and TensorBoard flush uploads about
   that much).
2. Resume: each run continued by 100 more steps, from the disk and from the bucket: the CLI's wall time and
   Ray Train's time to the first step (result.json's time_to_first_step_s).

    .venv/bin/python benchmarks/bench_bucket.py [--pairs 3] [--work /tmp/gansweep-bench-bucket]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import boto3  # noqa: E402
from gansweep import storage  # noqa: E402
from gansweep.run.run_dir import read_result  # noqa: E402
from s3_server import start_s3_server, stop_server  # noqa: E402

TRIAL = {  # search_spaces/quickstart.yaml's fixed keys, one of its points
    "data.limit": 6000, "measurement.name": "block_pixel", "measurement.p": 0.5, "model.g_width": 32,
    "model.d_width": 32, "train.steps": 300, "train.checkpoint_every": 100, "train.image_every": 100,
    "train.log_every": 25, "eval.every": 100, "eval.cheap_samples": 500, "eval.n_samples": 2000,
}


def train(output: str, env: dict, **overrides) -> float:
    """`gansweep train` of TRIAL (with OVERRIDES) into OUTPUT; returns its wall time."""
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", output]
    for key, value in {**TRIAL, **overrides}.items():
        args += ["--set", f"{key}={value}"]
    start = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"gansweep train failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return wall


def upload_again(run: str) -> tuple[float, int, int]:
    """(seconds, bytes, objects) to upload every object under RUN once more (copied down first)."""
    with tempfile.TemporaryDirectory() as folder:
        storage.download_folder(run, Path(folder))
        files = [p for p in Path(folder).rglob("*") if p.is_file()]
        start = time.perf_counter()
        storage.upload_folder(Path(folder), run + "-again")
        return time.perf_counter() - start, sum(p.stat().st_size for p in files), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gansweep-bench-bucket"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    server, endpoint = start_s3_server()
    # The cache outside WORK: the evaluation classifier is trained once for every run of the benchmark.
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "GANSWEEP_CACHE": f"{args.work}-cache"}
    os.environ.update(env)
    try:
        boto3.client("s3").create_bucket(Bucket="bench")
        train(str(args.work / "warm-up"), env, **{"train.steps": 10})  # the classifier and the prepared data, once
        rows = []
        for pair in range(args.pairs):
            local, bucket = str(args.work / f"local-{pair}"), f"s3://bench/run-{pair}"
            order = [("local", local), ("bucket", bucket)][:: 1 if pair % 2 == 0 else -1]  # ABBA: no order bias
            walls = {where: train(run, env) for where, run in order}
            loops = {where: read_result(run)["metrics"]["train_loop_s"]
                     for where, run in (("local", local), ("bucket", bucket))}
            seconds, size, objects = upload_again(bucket)
            rows.append({"walls": walls, "loops": loops, "upload_again_s": seconds, "bytes": size, "objects": objects})
            print(f"pair {pair}: wall local {walls['local']:.1f} s, bucket {walls['bucket']:.1f} s "
                  f"(ratio {walls['bucket'] / walls['local']:.3f}); train loop {loops['local']:.1f} / "
                  f"{loops['bucket']:.1f} s; the run's {objects} objects ({size / 1e6:.1f} MB) uploaded again in "
                  f"{seconds:.2f} s = {seconds / walls['bucket']:.2%} of its wall", flush=True)
        ratios = [row["walls"]["bucket"] / row["walls"]["local"] for row in rows]
        bounds = [row["upload_again_s"] / row["walls"]["bucket"] for row in rows]
        print(f"write cost: bucket/local wall median {statistics.median(ratios):.3f} "
              f"(pairs {', '.join(f'{r:.3f}' for r in ratios)}); one more upload of everything: median "
              f"{statistics.median(bounds):.2%} of the wall (goal <= 2%)")

        resumes = {}
        for where, run in (("local", str(args.work / "local-0")), ("bucket", "s3://bench/run-0")):
            wall = train(run, env, **{"train.steps": 400})
            result = read_result(run)
            resumes[where] = {"wall_s": wall, "fit_s": result["wall_time_s"],
                              "time_to_first_step_s": result["time_to_first_step_s"],
                              "train_loop_s": result["metrics"]["train_loop_s"],
                              "resumed_from_step": result["metrics"]["resumed_from_step"]}
            print(f"resume from {where}: CLI wall {wall:.1f} s, of which Ray Train's fit {result['wall_time_s']:.1f} s "
                  f"(to the first step {result['time_to_first_step_s']:.1f} s, train loop "
                  f"{result['metrics']['train_loop_s']:.1f} s, from step {result['metrics']['resumed_from_step']})",
                  flush=True)
        print(json.dumps({"pairs": rows, "resume": resumes}, indent=1))
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
