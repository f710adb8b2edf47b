"""run/cluster.py without a cluster: the nodes a plan counts (up, and addable by the autoscaler's config) and where
the cache goes on a cluster of several nodes. The real multi-node cluster: tests/test_cluster.py."""

import pytest
import yaml
from gansweep.config.errors import ConfigError
from gansweep.run import cluster
from gansweep.run.cluster import ClusterShape, shared_cache

# cluster.yaml's shape: a CPU head and up to four 1-GPU workers, one of them up.
CONFIG = {
    "max_workers": 4, "head_node_type": "ray.head.default",
    "available_node_types": {
        "ray.head.default": {"resources": {"CPU": 8, "GPU": 0}, "max_workers": 0},
        "ray.worker.gpu": {"resources": {"CPU": 4, "GPU": 1}, "min_workers": 0, "max_workers": 4},
    },
}
HEAD = {"Alive": True, "Resources": {"CPU": 8.0, "node:__internal_head__": 1.0, "memory": 1e10}, "Labels": {}}
GPU_NODE = {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0, "memory": 1e10}, "Labels": {}}
DEAD = {"Alive": False, "Resources": {"CPU": 4.0, "GPU": 1.0}, "Labels": {}}


def test_an_autoscaling_cluster_counts_the_nodes_its_worker_types_can_add(monkeypatch):
    import ray

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setattr(ray, "nodes", lambda: [HEAD, GPU_NODE, DEAD])
    monkeypatch.setattr(cluster, "_autoscaler_config", lambda: CONFIG)
    shape = cluster.cluster_shape()
    assert shape.up == [{"CPU": 8.0}, {"CPU": 4.0, "GPU": 1.0}]
    assert shape.addable == [{"CPU": 4.0, "GPU": 1.0}] * 3  # max_workers 4, one up
    # Without an autoscaler (a head started by hand, or a local Ray): what is up.
    monkeypatch.setattr(cluster, "_autoscaler_config", lambda: None)
    assert cluster.cluster_shape().addable == []


def test_the_autoscaler_config_is_read_from_the_monitor_of_this_cluster(tmp_path, monkeypatch):
    """Ray publishes no node types to its GCS (get_max_resources_from_cluster_config() is None on `ray up`): the
    config is the file the head's autoscaler was started with, matched by the cluster's GCS address."""
    import psutil

    mine, other = tmp_path / "mine.yaml", tmp_path / "other.yaml"
    mine.write_text(yaml.safe_dump(CONFIG))
    other.write_text(yaml.safe_dump({"max_workers": 99}))

    class Process:
        def __init__(self, cmdline):
            self.info = {"cmdline": cmdline}

    monitor = ".../ray/autoscaler/_private/monitor.py"
    monkeypatch.setattr(psutil, "process_iter", lambda attrs: [
        Process(["python", monitor, "--gcs-address=10.0.0.2:6379", f"--autoscaling-config={other}"]),
        Process(None),
        Process(["python", monitor, "--gcs-address=10.0.0.1:6379", f"--autoscaling-config={mine}", ""]),
    ])
    assert cluster._read_autoscaler_config("10.0.0.1:6379") == CONFIG
    assert cluster._read_autoscaler_config("10.0.0.3:6379") is None


def test_the_default_cache_moves_into_a_bucket_output_when_other_nodes_cannot_read_it(monkeypatch, capsys):
    three = ClusterShape([{"CPU": 1.0}] * 3, [])
    monkeypatch.setattr(cluster, "nodes_missing", lambda folder: ["10.0.0.2 (1a2b3c4d)"])
    assert shared_cache("/root/.cache/gansweep", False, "s3://b/sweep", three) == "s3://b/sweep/cache"
    assert "the cache is s3://b/sweep/cache" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"10\.0\.0\.2 \(1a2b3c4d\) cannot read it.*GANSWEEP_CACHE"):
        shared_cache("/root/.cache/gansweep", False, "/root/runs/sweep", three)
    with pytest.raises(ConfigError, match="GANSWEEP_CACHE"):  # set to a folder of this node: refused, not moved
        shared_cache("/data/cache", True, "s3://b/sweep", three)
    assert shared_cache("s3://b/cache", True, "/root/runs/sweep", three) == "s3://b/cache"
    # A folder every node sees (a mounted share), and a cluster of one node: used as it is.
    monkeypatch.setattr(cluster, "nodes_missing", lambda folder: [])
    assert shared_cache("/mnt/share/cache", True, "/mnt/share/sweep", three) == "/mnt/share/cache"
    assert shared_cache("/root/.cache/gansweep", False, "/root/runs", ClusterShape([{"CPU": 2.0}], [])) \
        == "/root/.cache/gansweep"
    # Only the head up, workers to come: the default local cache cannot be proved shared.
    autoscaling = ClusterShape([{"CPU": 8.0}], [{"CPU": 4.0, "GPU": 1.0}])
    assert shared_cache("/root/.cache/gansweep", False, "s3://b/sweep", autoscaling) == "s3://b/sweep/cache"
