"""gansweep on a multi-node Ray cluster built on this machine (tests/cluster.py: a 0-CPU head and three 1-CPU worker
nodes, each worker with a private /tmp and HOME; moto's S3 server as the bucket; token auth). Needs root.

1. `--what loss`: a node lost mid-trial, for a one-worker and a DDP (2 workers) sweep trial of 120 steps
   (checkpoints every 20). Once the run's checkpoint of step 40 is in the bucket, the raylet of the node its rank 0
   trains on is SIGKILLed. Printed: the seconds from the kill to the run's `resuming at step S` line (the run
   started again on another node and restored), S, and the steps redone: those the run had trained past S when it
   was killed (from its last progress line: an upper bound at the cheap evaluation's granularity, `eval.every` 10).
2. `--what scale`: the quickstart's sweep, shrunk as tests/test_cluster.py shrinks it (3 trials, 2 at a time, 40
   steps each, the full evaluation of 200 samples), submitted with `ray job submit` to the 3-node cluster with its
   output and cache in the bucket, and to a one-node Ray head of 3 CPUs with both on the head's disk, alternately,
   REPEATS times each: wall time (submit to end) of each, and the ratio cluster / one node (the price of the
   network, the bucket and the nodes' own processes).

    .venv/bin/python benchmarks/bench_cluster.py --what loss|scale [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
import boto3  # noqa: E402
from gansweep import storage  # noqa: E402
from gansweep.run import run_dir  # noqa: E402
from gansweep.sweep import sweep_dir as layout  # noqa: E402
from local_head import RAY_ENV, job_logs, job_status, start_head, stop_head, stop_job, submit_job  # noqa: E402

from s3_server import S3_ENV  # noqa: E402

from cluster import seed_classifier, start_cluster, stop_cluster  # noqa: E402

TINY = ["data.limit=512", "model.g_width=16", "model.d_width=16", "train.steps=40", "train.batch_size=32",
        "train.log_every=10", "train.checkpoint_every=20", "train.image_every=20", "eval.every=20",
        "eval.cheap_samples=100", "eval.n_samples=200", "measurement.name=block_pixel"]
SWEEP = ["python", "jobs/sweep.py", "search_spaces/quickstart.yaml"]


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def _bucket(env: dict[str, str], name: str) -> str:
    """A new bucket on the cluster's S3 server; this process then reads and writes it too (the classifier's copy,
    trials.json)."""
    os.environ.update({key: env[key] for key in (*S3_ENV, "AWS_ENDPOINT_URL")})
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"


def _driver_log(job_id: str) -> Path:
    """The job driver's log on the head (this machine's /tmp): read as it grows, without a `ray job logs` call."""
    found = sorted(Path("/tmp/ray").glob(f"session_*/logs/job-driver-{job_id}.log"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else Path("/nonexistent")


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while (value := predicate()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout:.0f} s")
        time.sleep(poll)
    return value


def node_loss(cluster, workers: int) -> dict:
    env = cluster.env
    out = f"{_bucket(env, f'loss-{workers}-{int(time.time())}')}/sweep"
    seed_classifier(f"{out}/cache")
    if len(cluster.alive()) < 2 + workers:  # the head, the run's nodes, one to resume on
        cluster.add_worker()
    job_id = f"bench-loss-{workers}-{int(time.time())}"
    items = [*TINY, "num_samples=1", "scheduler.name=fifo", "train.steps=120", "eval.every=10",
             "eval.n_samples=0", f"resources.workers={workers}"]
    submit_job(cluster.head.dashboard, job_id, [*SWEEP, "--output", out, *_sets(items)], cwd=REPO, env=env)
    try:
        def checkpoint_40():
            trials = layout.read_trials(out) or []
            latest = run_dir.latest_checkpoint(layout.trial_dir(out, trials[0]["name"])) if trials else None
            return True if latest is not None and run_dir.checkpoint_step(latest) >= 40 else None

        _wait_for(checkpoint_40, 600, "checkpoint at step 40", poll=0.5)
        text = _driver_log(job_id).read_text()
        node = re.findall(r"starting step 0/120 on nodes? ([^,\n]+)", text)[0]
        steps = [int(s) for s in re.findall(r"\[gansweep\] step (\d+): fid", text)]
        killed_at = time.monotonic()
        cluster.kill_node(re.search(r"\((\w+)\)", node).group(1))
        resumed = _wait_for(lambda: re.search(r"resuming at step (\d+)/120 on nodes? (.+)",
                                              _driver_log(job_id).read_text()), 600, "resume")
        seconds = time.monotonic() - killed_at
        _wait_for(lambda: None if job_status(cluster.head.dashboard, job_id, env) in ("RUNNING", "PENDING")
                  else True, 900, "job end", poll=2)
        status = job_status(cluster.head.dashboard, job_id, env)
    finally:
        stop_job(cluster.head.dashboard, job_id, env)
    start = int(resumed.group(1))
    return {"workers": workers, "status": status, "lost": node, "resumed_on": resumed.group(2),
            "kill_to_resumed_s": round(seconds, 1), "resumed_at_step": start,
            "last_step_seen_before_kill": max(steps, default=0),
            "steps_redone_at_most": max(steps, default=start) - start + 10}


def _timed_job(dashboard: str, env: dict[str, str], job_id: str, output: str) -> float:
    started = time.monotonic()
    submit_job(dashboard, job_id, [*SWEEP, "--output", output, *_sets([*TINY, "num_samples=3",
                                                                       "scheduler.grace_period=20"])],
               cwd=REPO, env=env)
    try:
        _wait_for(lambda: None if job_status(dashboard, job_id, env) in ("RUNNING", "PENDING") else True, 1800,
                  "job end", poll=1)
        wall = time.monotonic() - started
        status = job_status(dashboard, job_id, env)
        if status != "SUCCEEDED":
            raise RuntimeError(f"{job_id}: {status}\n{job_logs(dashboard, job_id, env)[-3000:]}")
    finally:
        stop_job(dashboard, job_id, env)
    return wall


def scale(root: Path, repeats: int) -> None:
    cluster_walls, node_walls = [], []
    for repeat in range(repeats):
        cluster = start_cluster(root / f"cluster-{repeat}")
        try:
            out = f"{_bucket(cluster.env, f'scale-{repeat}-{int(time.time())}')}/sweep"
            seed_classifier(f"{out}/cache")
            cluster_walls.append(_timed_job(cluster.head.dashboard, cluster.env, f"bench-scale-c{repeat}", out))
        finally:
            stop_cluster(cluster)
        home = root / f"one-{repeat}-home"
        home.mkdir(parents=True)
        head = start_head(3, root / f"one-{repeat}.log", env={**RAY_ENV, "HOME": str(home)})
        try:
            # The same classifier, on the one node's own disk.
            seed_classifier(str(home / ".cache" / "gansweep"))
            node_walls.append(_timed_job(head.dashboard, RAY_ENV, f"bench-scale-n{repeat}",
                                         str(root / f"one-{repeat}")))
        finally:
            stop_head(head)
        print(f"repeat {repeat}: 3 nodes x 1 CPU, bucket {cluster_walls[-1]:.1f} s; one node of 3 CPUs, local disk "
              f"{node_walls[-1]:.1f} s; ratio {cluster_walls[-1] / node_walls[-1]:.2f}", flush=True)
    ratios = [c / n for c, n in zip(cluster_walls, node_walls)]
    print(f"cluster / one node: {statistics.mean(ratios):.2f} (each: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"cluster {statistics.mean(cluster_walls):.1f} s, one node {statistics.mean(node_walls):.1f} s, "
          f"n={repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--what", choices=["loss", "scale"], required=True)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    if args.what == "scale":
        scale(root, args.repeats)
        return
    cluster = start_cluster(root / "cluster")
    try:
        for workers in (1, 2):
            for _ in range(args.repeats):
                print(node_loss(cluster, workers), flush=True)
    finally:
        stop_cluster(cluster)


if __name__ == "__main__":
    main()
