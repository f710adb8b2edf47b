"""A sweep on an autoscaling cluster whose worker nodes are not up yet: Ray's fake autoscaler (tests/fake_autoscaler.py)
with cluster.yaml's node types, v1 (what `ray up` starts) and v2. gansweep plans the trial for the node type the
autoscaler can add (read from the config its head runs with: Ray's GCS holds none), the autoscaler adds the node, and
the trial runs there."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from conftest import TINY_SWEEP, needs_fashion
from gansweep.sweep import sweep_dir as layout
from s3_server import S3_ENV, start_s3_server, stop_server

from cluster import seed_classifier
from fake_autoscaler import autoscaler_config, start_fake_cluster, stop_fake_cluster

REPO = Path(__file__).resolve().parents[1]
pytestmark = needs_fashion


# v1 is what `ray up` starts; v2 (Ray's opt-in) in the slow run.
@pytest.mark.parametrize("version", ["v1", pytest.param("v2", marks=pytest.mark.slow)])
def test_a_trial_planned_for_a_node_the_autoscaler_adds_runs_there(tmp_path, monkeypatch, version):
    """The head has 1 CPU, each (fake) GPU worker 2: a trial of 1.5 CPUs fits only a worker, none of which is up."""
    server, endpoint = start_s3_server()
    s3 = {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    config = autoscaler_config(REPO / "cluster.yaml", cpus_per_gpu_node=2)
    cluster = start_fake_cluster(tmp_path / "cluster", config, version, env=s3)
    try:
        assert [node["is_head_node"] for node in cluster.alive()] == [True]
        boto3.client("s3").create_bucket(Bucket="autoscaled")
        out = "s3://autoscaled/sweep"
        seed_classifier(f"{out}/cache")
        sets = [f"{key}={value}" for key, value in TINY_SWEEP.items()] + [
            "search.algorithm=random", "num_samples=1", "scheduler.name=fifo", "resources.cpus_per_worker=1.5"]
        env = {**cluster.env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
        result = subprocess.run(
            [sys.executable, "-m", "gansweep.cli", "sweep", "search_spaces/quickstart.yaml", "--output", out,
             *[arg for item in sets for arg in ("--set", item)]],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "1 trials, 1 at a time, 1 worker(s) x 1.5 CPU each" in result.stdout
        workers = [node for node in cluster.nodes() if not node["is_head_node"]]
        assert workers and all(node["resources_total"]["CPU"] == 2 for node in workers), workers
        trials = layout.read_trials(out)
        assert [trial["status"] for trial in trials] == ["finished"], trials
    finally:
        stop_fake_cluster(cluster)
        stop_server(server)
