"""A real multi-node Ray cluster on this machine, for the cluster tests (tests/test_cluster.py) and benchmarks.

A head and worker `ray start`s on this machine, token auth on, and one moto S3 server as the bucket. Each
worker node runs in its own mount namespace (`unshare --mount`, root only) with a private /tmp and HOME: Ray puts
its session folders and gansweep its default cache at the same paths on every node, so a file one node writes is
invisible to the others, as on a cluster of separate machines. The head keeps the caller's file system (its HOME is
a folder of the caller's), as a `ray up` head is where `ray job submit` runs the driver; by default it offers no CPU,
so trials and ranks land on worker nodes, which a test may kill. Ready when every node is alive in the GCS, never
after a fixed time; stopped by process group.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from gansweep import storage  # noqa: E402
from gansweep.data.cache import classifier_folder  # noqa: E402
from gansweep.evaluation.classifier import (  # noqa: E402
    classifier_fingerprint,
    load_or_train_classifier,
)
from local_head import RAY, RAY_ENV, Head, group_pids, start_head, stop_head, stop_nodes  # noqa: E402
from s3_server import S3_ENV, start_s3_server, stop_server  # noqa: E402

OBJECT_STORE_BYTES = 500_000_000  # per node: Ray's default (30% of memory) four times over would not fit this machine


class HeadNodes:
    """A cluster's nodes as its head's GCS knows them, for a class with `head` (Head), `env` (a client's environment)
    and `root` (where its logs are)."""

    head: Head
    env: dict[str, str]
    root: Path

    def nodes(self) -> list[dict]:
        """The GCS's nodes (alive and dead), as `ray list nodes` prints them."""
        result = subprocess.run([*RAY, "list", "nodes", "--address", self.head.dashboard, "--format", "json",
                                 "--detail", "--limit", "100"], capture_output=True, text=True, env=self.env,
                                timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"ray list nodes failed: {result.stderr[-2000:]}")
        return json.loads(result.stdout)

    def alive(self) -> list[dict]:
        return [node for node in self.nodes() if node["state"] == "ALIVE"]

    def wait_alive(self, count: int, timeout: float = 300) -> list[dict]:
        """Until COUNT nodes are alive (the GCS has registered each raylet); returns them."""
        deadline = time.monotonic() + timeout
        while True:
            alive = self.alive()
            if len(alive) == count:
                return alive
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(alive)} of {count} Ray nodes alive after {timeout:.0f} s; logs in "
                                   f"{self.root}")
            time.sleep(0.5)


@dataclass
class Cluster(HeadNodes):
    head: Head
    workers: list[subprocess.Popen]  # each worker node's `ray start --block`, the leader of its process group
    s3: subprocess.Popen
    env: dict[str, str]  # what a client of the cluster runs with: the token, the bucket's endpoint and keys
    root: Path  # the head's HOME and every node's log
    lost: list[int] = field(default_factory=list)  # workers whose raylet kill_node killed

    @property
    def endpoint(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]

    def kill_node(self, node_id: str) -> None:
        """SIGKILL the raylet of the worker node whose ID starts with NODE_ID: a lost node, as when a machine dies (its
        `ray start --block` then stops the node's other processes)."""
        for index, worker in enumerate(self.workers):
            for pid in group_pids(worker.pid):
                if _comm(pid) == "raylet" and f"--node_id={node_id}" in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
                    self.lost.append(index)
                    return
        raise RuntimeError(f"no worker node's raylet has ID {node_id}...")

    def add_worker(self, cpus: int = 1) -> None:
        """One more worker node (a replacement for a lost one), once it is alive."""
        self.workers.append(_start_worker(self, len(self.workers), cpus))
        self.wait_alive(1 + len(self.workers) - len(self.lost))


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def start_cluster(root: Path, worker_cpus: tuple[int, ...] = (1, 1, 1), head_cpus: int = 0) -> Cluster:
    """A head of HEAD_CPUS CPUs and a worker node per WORKER_CPUS entry, each worker with a private /tmp and HOME, and
    an S3 server; logs and the head's HOME under ROOT."""
    root.mkdir(parents=True, exist_ok=True)
    s3, endpoint = start_s3_server()
    env = {**RAY_ENV, **S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    head_home = root / "head-home"
    head_home.mkdir(exist_ok=True)
    try:
        head = start_head(head_cpus, root / "head.log", env={**env, "HOME": str(head_home)},
                          args=(f"--object-store-memory={OBJECT_STORE_BYTES}",))
    except Exception:
        stop_server(s3)
        raise
    cluster = Cluster(head, [], s3, env, root)
    try:
        for index, cpus in enumerate(worker_cpus):
            cluster.workers.append(_start_worker(cluster, index, cpus))
        cluster.wait_alive(1 + len(worker_cpus))
    except Exception:
        stop_cluster(cluster)
        raise
    return cluster


def _start_worker(cluster: Cluster, index: int, cpus: int) -> subprocess.Popen:
    """A worker node in a mount namespace of its own: a fresh tmpfs on /tmp, HOME inside it."""
    start = shlex.join(["ray", "start", "--block", f"--address={cluster.head.address}", f"--num-cpus={cpus}",
                        f"--object-store-memory={OBJECT_STORE_BYTES}"])
    script = f"mount -t tmpfs tmpfs /tmp && mkdir -p /tmp/home && export HOME=/tmp/home && exec {start}"
    log = (cluster.root / f"worker-{index}.log").open("w")
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=cluster.env)


def stop_cluster(cluster: Cluster) -> None:
    """Every worker node, the head, then the S3 server."""
    for index in cluster.lost:  # no raylet left to drain: its `ray start` would wait out the drain's timeout
        _kill_group(cluster.workers[index])
    stop_nodes([worker for index, worker in enumerate(cluster.workers) if index not in cluster.lost])
    stop_head(cluster.head)
    stop_server(cluster.s3)


def seed_classifier(cache: str) -> None:
    """The evaluation classifier this machine's cache holds (trained there first if absent, as any test's first
    sweep would) copied into CACHE, where the sweep will look: the sweep then spends its minutes on the cluster, not
    on the classifier."""
    fingerprint = classifier_fingerprint("fashion_mnist", None)
    local = Path.home() / ".cache" / "gansweep"
    load_or_train_classifier("fashion_mnist", None, cache_dir=local, progress=False)
    source, target = Path(classifier_folder("fashion_mnist", fingerprint, local)), classifier_folder("fashion_mnist", fingerprint,
                                                                                           cache)
    if storage.is_uri(target):
        storage.upload_folder(source, target)
    else:
        shutil.copytree(source, target, dirs_exist_ok=True)
