"""The Ray cluster a run or a sweep runs on: its nodes (those up and those its autoscaler can add), and which of the
driver's folders every node can read.

A cluster has no shared disk unless one is mounted: a folder the driver writes (the cache: prepared IDX sets,
restored sets, the classifier, reference features; a local --output) is read by trials and stream tasks on other
nodes. Such a folder is used only where every node up sees it (probed: a file the driver writes, looked for by a task
on each node); otherwise the cache defaults into the output on object storage, or the command exits 2 naming
GANSWEEP_CACHE, before any training.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from gansweep import storage
from gansweep.config.errors import ConfigError
from gansweep.config.parsing import load_yaml
from gansweep.config.schema import DataConfig
from gansweep.data import cache

HEAD_RESOURCE = "node:__internal_head__"  # a resource Ray gives the head node alone
# Ray's `ray start --head --autoscaling-config=FILE` passes FILE on to its autoscaler's process (v1 and v2 alike);
# no public API returns it, and Ray 2.60's autoscalers never publish it to the GCS (nothing calls
# report_cluster_config, so ray._private.state's get_max_resources_from_cluster_config() is None on `ray up`).
AUTOSCALER_MONITOR = "monitor.py"
AUTOSCALER_CONFIG_FLAG = "--autoscaling-config="
NODE_GROUP_LABEL = "ray.io/node-group"  # an autoscaled node's type, where its type's `labels:` name it
CACHE_IN_OUTPUT = "cache"  # the cache's folder inside a URI output, when a multi-node cluster has no cache set


@dataclass
class ClusterShape:
    """Each node's resources ({CPU: 4, GPU: 1, ...}): the nodes up, and those the autoscaler can still add."""

    up: list[dict[str, float]]
    addable: list[dict[str, float]]

    @property
    def nodes(self) -> list[dict[str, float]]:
        return self.up + self.addable

    @property
    def multi_node(self) -> bool:
        return len(self.nodes) > 1

    def describe(self) -> str:
        addable = f" (and {len(self.addable)} the autoscaler can add)" if self.addable else ""
        return f"{len(self.up)} node{'s' if len(self.up) != 1 else ''} up{addable}"


def joins_cluster() -> bool:
    """Whether this driver joins a running cluster (RAY_ADDRESS: a `ray job submit` driver, or one named by hand)
    rather than starting a local Ray of one node."""
    return bool(os.environ.get("RAY_ADDRESS"))


def cluster_shape() -> ClusterShape:
    """The connected cluster's nodes: those alive, and for each worker type of the autoscaler's config (read on the
    head) as many more as its max_workers allows beyond those up, within the cluster's max_workers."""
    import ray

    alive = [node for node in ray.nodes() if node["Alive"]]
    up = [_resources(node["Resources"]) for node in alive]
    config = _autoscaler_config() if joins_cluster() else None  # a Ray this process started has no autoscaler
    if not config:
        return ClusterShape(up, [])
    head_type = config.get("head_node_type")
    room = int(config.get("max_workers", 0)) - (len(alive) - 1)  # the head is not counted
    addable = []
    for name, node_type in (config.get("available_node_types") or {}).items():
        resources = _resources(node_type.get("resources") or {})
        if name == head_type or not resources:
            continue
        running = sum(1 for node in alive if _of_type(node, name, resources))
        more = max(0, min(int(node_type.get("max_workers", 0)) - running, room))
        addable += [resources] * more
        room -= more
    return ClusterShape(up, addable)


def _resources(resources: dict) -> dict[str, float]:
    return {key: float(value) for key, value in resources.items() if key in ("CPU", "GPU")}


def _of_type(node: dict, name: str, resources: dict[str, float]) -> bool:
    """Whether an alive worker node is of the autoscaler's type NAME: by the node-group label where the type sets
    one (v1 gives its nodes none by itself), else by its resources."""
    labels = node.get("Labels") or {}
    if NODE_GROUP_LABEL in labels:
        return labels[NODE_GROUP_LABEL] == name
    return HEAD_RESOURCE not in node["Resources"] and _resources(node["Resources"]) == resources


def _autoscaler_config() -> dict | None:
    """The autoscaler's config, read on the head by a task that takes no CPU; None without an autoscaler (a head
    started without --autoscaling-config)."""
    import ray

    task = ray.remote(_read_autoscaler_config).options(num_cpus=0, resources={HEAD_RESOURCE: 0.001})
    return ray.get(task.remote(ray.get_runtime_context().gcs_address), timeout=300)


def _read_autoscaler_config(gcs_address: str) -> dict | None:
    """The config file named by the autoscaler of the cluster at GCS_ADDRESS (a machine may run several heads)."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        autoscaler = any(part.endswith(AUTOSCALER_MONITOR) for part in cmdline)
        if not autoscaler or f"--gcs-address={gcs_address}" not in cmdline:
            continue
        for part in cmdline:
            if part.startswith(AUTOSCALER_CONFIG_FLAG):
                # Expanded here: `ray start --autoscaling-config=~/...` passes the ~ on as it is.
                path = Path(part[len(AUTOSCALER_CONFIG_FLAG):]).expanduser()
                if path.is_file():
                    return load_yaml(path.read_text(), f"the autoscaler's config {path}")
    return None


def nodes_missing(folder: str) -> list[str]:
    """The alive nodes (their IPs) on which the local FOLDER, as this driver sees it, is absent: a file written here
    is looked for there by a task that takes no CPU."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = Path(folder) / f".gansweep-shared-{uuid.uuid4().hex}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    try:
        here = ray.get_runtime_context().get_node_id()
        nodes = [node for node in ray.nodes() if node["Alive"] and node["NodeID"] != here]
        found = ray.get([
            ray.remote(os.path.exists).options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
            ).remote(str(marker))
            for node in nodes
        ], timeout=300)
    finally:
        marker.unlink(missing_ok=True)
    return [f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})" for node, seen in zip(nodes, found) if not seen]


def ready_for_cluster(data: DataConfig, output: str) -> ClusterShape | None:
    """Where this driver joins a running cluster: connect to it, refuse a local OUTPUT its other nodes cannot see,
    and set DATA.cache_dir to a cache every node can read (shared_cache). Returns the cluster's shape (None for a
    local Ray of one node, started later by init_ray)."""
    import ray

    if not joins_cluster():
        return None
    if not ray.is_initialized():
        ray.init(address=os.environ["RAY_ADDRESS"])
    shape = cluster_shape()
    check_shared_output(output, shape)
    data.cache_dir = shared_cache(cache.root(data.cache_dir), cache.is_set(data.cache_dir), output, shape)
    return shape


def shared_cache(cache: str, explicit: bool, output: str, shape: ClusterShape) -> str:
    """The cache every node of SHAPE can read: CACHE itself when it is a URI, or a folder every node up sees (nodes
    the autoscaler adds later are trusted to mount an EXPLICIT one too); else, for the default cache, a folder in
    OUTPUT when that is on object storage. Refused with a message naming GANSWEEP_CACHE otherwise."""
    if not shape.multi_node or storage.is_uri(cache):
        return cache
    missing = nodes_missing(cache)
    if not missing and (explicit or not shape.addable):
        return cache
    if not explicit and storage.is_uri(output):
        moved = storage.join(output, CACHE_IN_OUTPUT)
        print(f"[gansweep] the cache is {storage.display(moved)}: this node's {cache} is not on the cluster's other "
              f"nodes ({shape.describe()}); set GANSWEEP_CACHE to a bucket folder to share one cache between runs",
              flush=True)
        return moved
    where = f"nodes {', '.join(missing)} cannot read it" if missing else "the nodes the autoscaler adds cannot read it"
    raise ConfigError(f"the cache {cache} is a folder of this node, and {where} ({shape.describe()}): set "
                      "GANSWEEP_CACHE (or data.cache_dir) to a bucket (s3://BUCKET/cache) or a folder every node "
                      "mounts, or give an --output on object storage")


def check_shared_output(output: str, shape: ClusterShape) -> None:
    """A local OUTPUT is written from every node a run's workers and trials land on: refused, naming the nodes that
    cannot see it, unless every node up does."""
    if not shape.multi_node or storage.is_uri(output):
        return
    missing = nodes_missing(output)
    if missing:
        raise ConfigError(f"--output {output} is a folder of this node, and nodes {', '.join(missing)} cannot write "
                          f"it ({shape.describe()}): give --output on object storage (s3://BUCKET/...) or a folder "
                          "every node mounts")
