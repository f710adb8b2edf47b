"""Ray's Docker-free fake autoscaling cluster on this machine, shaped like cluster.yaml, for tests of what the
autoscaler does with gansweep's node types.

`RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=FILE` with provider type `fake_multinode` runs Ray's real
autoscaler (its monitor process on the head), whose node provider starts each "node" as one more raylet (and its
agents) on this machine, sharing the head's file system, /tmp/ray session and IP. The installed Ray wheel lacks the
provider's defaults file (ray/autoscaler/_private/fake_multi_node/example.yaml), so FILE is complete by itself.

Node types (autoscaler_config): cluster.yaml's names, min_workers/max_workers and max_workers, with resources this
2-core machine can run:
  head type (ray.head.default, CPU 8 GPU 0)  -> {CPU: head_cpus (1)}
  a worker type with GPU n (ray.worker.gpu, CPU 4 GPU 1) -> {CPU: cpus_per_gpu_node (1), fake_GPU: n}
  a worker type without GPU -> {CPU: cpus_per_gpu_node (1)}
so a trial asks resources={"fake_GPU": 1} where the real one asks num_gpus=1. No label names a fake node's type:
its labels are only ray.io/node-id (Ray would add ray.io/node-group from RAY_NODE_TYPE_NAME, but a fake node's labels
are resolved in the monitor's process, from the head's environment, which does not set it). A type's `labels` in
cluster.yaml are copied and do reach its fake nodes (labels: {ray.io/node-group: NAME} works). The fake provider
calls its head ray.head.default whatever head_node_type says (cluster.yaml's is that).

Autoscaler v1 is Ray's default. v2 (RAY_enable_autoscaler_v2=1 in the head's environment; the GCS then stores the
switch and `ray start` launches ray/autoscaler/v2/monitor.py) reads its config through prepare_config, which opens
the provider type's defaults file whatever the config holds: with type fake_multinode it dies at start on the
missing example.yaml. Type `external` with `module` naming Ray's FakeMultiNodeProvider class loads the same
provider and has built-in defaults, so v2 runs with that; v1 is given the same config.

Ready when the GCS lists the head alive and the monitor process is running (polled, no fixed sleep); a fake node is
alive 2-4 s after a task asks for its type. Stopped in about 10 s (stop_fake_cluster), nothing left behind.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from local_head import RAY, RAY_ENV, Head, start_head, stop_head  # noqa: E402

from cluster import HeadNodes  # noqa: E402

from gansweep.run.trainer import free_port  # noqa: E402

FAKE_HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"  # the fake provider's head id
FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"
GPU_STAND_IN = "fake_GPU"


def autoscaler_config(cluster_yaml: Path, cpus_per_gpu_node: int = 1, head_cpus: int = 1,
                      idle_timeout_minutes: float | None = None) -> dict:
    """A complete fake autoscaler config from CLUSTER_YAML's node types (mapping: module docstring).
    IDLE_TIMEOUT_MINUTES: instead of cluster.yaml's (10)."""
    cluster = yaml.safe_load(cluster_yaml.read_text())
    head_type = cluster["head_node_type"]
    types = {}
    for name, node_type in cluster["available_node_types"].items():
        resources = node_type.get("resources", {})
        if name == head_type:
            fake = {"resources": {"CPU": head_cpus}, "max_workers": 0}
        else:
            fake_resources = {"CPU": cpus_per_gpu_node}
            if resources.get("GPU"):
                fake_resources[GPU_STAND_IN] = int(resources["GPU"])
            fake = {"resources": fake_resources, "min_workers": node_type.get("min_workers", 0),
                    "max_workers": node_type.get("max_workers", cluster["max_workers"])}
        if node_type.get("labels"):
            fake["labels"] = dict(node_type["labels"])  # a fake node gets its type's labels, as a real one would
        types[name] = {**fake, "node_config": {}}
    return {
        "cluster_name": "fake-" + cluster.get("cluster_name", "gansweep"),
        "max_workers": cluster["max_workers"],
        "upscaling_speed": cluster.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": (cluster.get("idle_timeout_minutes", 5) if idle_timeout_minutes is None
                                 else idle_timeout_minutes),
        "provider": {
            # `external` + module, not type fake_multinode: same provider, no defaults file needed (docstring).
            "type": "external", "module": FAKE_PROVIDER,
            "use_node_id_as_ip": True, "disable_node_updaters": True, "disable_launch_config_check": True,
        },
        "auth": {}, "docker": {},
        "head_node_type": head_type,
        "available_node_types": types,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


@dataclass
class FakeCluster(HeadNodes):
    head: Head
    config_path: Path  # the file given to `ray start --autoscaling-config`
    version: str  # "v1" or "v2"
    env: dict[str, str]  # what a client (driver, `ray` CLI) runs with: token auth, RAY_ADDRESS
    root: Path
    port: int  # the GCS port

    def monitor_pid(self) -> int | None:
        """The autoscaler's monitor process (v1 or v2 monitor.py) of this head, if running."""
        for pid in cluster_pids(self):
            cmdline = _cmdline(pid)
            if any(arg.endswith("/monitor.py") for arg in cmdline):
                return pid
        return None


def start_fake_cluster(root: Path, config: dict, version: str = "v1", timeout: float = 180,
                       env: dict[str, str] | None = None) -> FakeCluster:
    """Write CONFIG (autoscaler_config's) under ROOT and start a head with the fake autoscaler, v1 or v2, on it; the
    head's `ray start` log in ROOT/head.log. ENV: more environment for the head (and so for every fake node it
    starts) and its clients, e.g. an S3 endpoint's. Returns once the head is alive and its monitor runs."""
    if version not in ("v1", "v2"):
        raise ValueError(f"version is v1 or v2, not {version!r}")
    root.mkdir(parents=True, exist_ok=True)
    import ray._private.services
    port = free_port()
    ip = ray._private.services.get_node_ip_address()
    config = copy.deepcopy(config)
    head_cpus = config["available_node_types"][config["head_node_type"]]["resources"].get("CPU", 1)
    # The provider's fake nodes join this GCS (its default is port 6379). v2 launches several nodes at a time and
    # knows the head by its fixed id (as Ray's own AutoscalingCluster sets it).
    config["provider"]["gcs_address"] = f"{ip}:{port}"
    if version == "v2":
        config["provider"].update({"launch_multiple": True, "head_node_id": FAKE_HEAD_NODE_ID})
    config_path = (root / "autoscaler.yaml").resolve()
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    extra = env or {}
    head_env = {**RAY_ENV, **extra, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    if version == "v2":
        head_env.update({"RAY_enable_autoscaler_v2": "1", "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID})
    # start_head passes its own --port first; click keeps the last one given.
    head = start_head(head_cpus, root / "head.log", env=head_env,
                      args=(f"--port={port}", f"--autoscaling-config={config_path}"))
    client_env = {**RAY_ENV, **extra}
    client_env["RAY_ADDRESS"] = head.address
    cluster = FakeCluster(head, config_path, version, client_env, root, port)
    try:
        if not head.address.endswith(f":{port}"):
            raise RuntimeError(f"the head listens on {head.address}, not port {port}")
        deadline = time.monotonic() + timeout
        while not (cluster.monitor_pid() and any(n["is_head_node"] for n in cluster.alive())):
            if time.monotonic() > deadline or head.process.poll() is not None:
                raise RuntimeError(f"the fake cluster's head or monitor did not start; see {root / 'head.log'}")
            time.sleep(0.5)
    except BaseException:
        stop_fake_cluster(cluster)
        raise
    return cluster


def cluster_pids(cluster: FakeCluster) -> list[int]:
    """This cluster's processes: the head's process group (head, monitor, fake nodes, their workers) and any
    process whose command line names the cluster's GCS port."""
    found = []
    marker = re.compile(rf":{cluster.port}(?!\d)")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            in_group = os.getpgid(pid) == cluster.head.process.pid
        except ProcessLookupError:
            continue
        if in_group or any(marker.search(arg) for arg in _cmdline(pid)):
            found.append(pid)
    return found


def stop_fake_cluster(cluster: FakeCluster) -> None:
    """Stop the head and its process group (local_head.stop_head), which holds the fake nodes too: the monitor
    started them. Anything of the cluster left outside it (a process naming its GCS port) is SIGKILLed; raises if
    something still runs. A fake node's runtime env agent outlives its raylet for about 10 s after a SIGTERM."""
    stop_head(cluster.head)
    for pid in cluster_pids(cluster):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while (left := cluster_pids(cluster)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        raise RuntimeError(f"processes of the fake cluster left: {left}")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
