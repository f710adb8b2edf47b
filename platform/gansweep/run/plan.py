"""A run's plan, made once in the driver: what every worker needs, typed, and the resources it asks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gansweep.config import ConfigError
from gansweep.data.training_set import STREAM_TASK_CPUS

if TYPE_CHECKING:  # the plan only carries them
    from gansweep.config import Config, Measurements
    from gansweep.data.stream import StreamSpec
    from gansweep.evaluation.monitor import MonitorPayload

# CPUs left free beside each Train worker for its data stream's tasks (read, decode, measure): one task at a time
# always fits, however many workers hold the rest, and more run where the cluster has CPUs to spare.
STREAM_CPUS_PER_WORKER = STREAM_TASK_CPUS


@dataclass
class RunPlan:
    """What the driver hands each Ray Train worker (pickled by Ray, so the config keeps its type)."""

    config: Config  # resolved and validated
    output: str  # the run directory
    log_dir: str  # the run's TensorBoard directory
    clean_shape: tuple[int, int, int]  # (C, H, W) of the images G makes
    num_classes: int  # of the training set (G and D use them with model.conditional)
    measurements: Measurements  # built once in the driver; the workers use these
    stream: StreamSpec  # the training set each worker streams (data/stream.py)
    threads: int  # torch's CPU threads per worker: its CPUs and the stream's share, rounded
    # Used only when Ray Train's own run snapshot names no checkpoint: a run killed between a checkpoint's
    # upload and its registration resumes from it all the same.
    fallback_checkpoint: str | None
    monitor: MonitorPayload | None  # the cheap evaluation's classifier and reference statistics; None: off
    verbose: bool = False  # Ray Train's and Ray Data's INFO lines on the workers too (train/sweep --verbose)


def plan_resources(
    workers: int,
    cpus_per_worker: float | None,
    gpus_per_worker: float,
    cluster: dict[str, float],
    runs: int = 1,
    keys: str = "train",
) -> tuple[float, int]:
    """CPUs per Train worker and runs at once, for up to RUNS runs of WORKERS workers each on CLUSTER.

    CPU training (GPUS_PER_WORKER 0) splits the CPUs evenly between the concurrent runs' workers (a whole CPU
    each where there are enough, else a fraction); GPU training gives each worker its GPUs and 1 CPU. Beside
    each worker STREAM_CPUS_PER_WORKER stay free for its data stream. The run drivers hold no CPU, so they never
    starve their own workers. Refused, naming the KEYS section (train or resources), when one run cannot fit."""
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    stream = STREAM_CPUS_PER_WORKER
    if gpus_per_worker > 0:
        check_gpu_layout(workers, gpus_per_worker, keys)
        if workers * gpus_per_worker > gpus + 1e-9:
            hint = (" (for an autoscaling cluster whose GPU workers are not up yet, set resources.cluster: "
                    "{CPU: ..., GPU: ...} to what it scales to)") if keys == "resources" else ""
            raise ConfigError(f"a run needs {keys}.workers={workers} x gpus_per_worker={gpus_per_worker:g} GPUs; "
                              f"the cluster has {gpus:g}{hint}")
        cpus_per_worker = cpus_per_worker or 1.0
        # not //: 1 // 0.1 == 9.0
        fit = min(int(gpus / (workers * gpus_per_worker) + 1e-9),
                  int(cpus / (workers * (cpus_per_worker + stream)) + 1e-9))
    elif cpus_per_worker:
        fit = int(cpus / (workers * (cpus_per_worker + stream)) + 1e-9)
    else:
        fit = max(1, min(runs, int(cpus // workers)))
        cpus_per_worker = cpus / (fit * workers) - stream
    if fit < 1 or cpus_per_worker <= 1e-9 or workers * (cpus_per_worker + stream) > cpus + 1e-9:
        raise ConfigError(f"a run needs {keys}.workers={workers} x ({max(cpus_per_worker, 0):g} CPUs + {stream:g} for "
                          f"its data stream); the cluster has {cpus:g} (set {keys}.cpus_per_worker or fewer "
                          f"{keys}.workers)")
    return cpus_per_worker, max(1, min(fit, runs))


def trains_in_trial_process(workers: int) -> bool:
    """Whether a sweep trial of WORKERS workers trains in its Tune trial's own process (loop.TrialProcess), which then
    holds the worker's resources, rather than on a Ray Train run (its controller and workers cost ~8 s a trial)."""
    return workers == 1


def check_gpu_layout(workers: int, gpus_per_worker: float, keys: str = "train") -> None:
    """A DDP rank trains on one GPU, alone: refused otherwise, naming the KEYS section. It needs no cluster, so
    train's and sweep's checks call it before Ray starts too."""
    if gpus_per_worker > 1:
        raise ConfigError(f"{keys}.gpus_per_worker={gpus_per_worker:g}: a DDP rank trains on one GPU and would leave "
                          f"the rest idle; for more GPUs per run set {keys}.workers (one rank per GPU)")
    if workers > 1 and gpus_per_worker < 1:
        raise ConfigError(f"{keys}.workers={workers} with {keys}.gpus_per_worker={gpus_per_worker:g}: Ray may place "
                          "two ranks of one run on one GPU, which NCCL refuses ('Duplicate GPU detected'); give each "
                          f"rank a whole GPU ({keys}.gpus_per_worker=1), or pack single-worker runs on a GPU "
                          f"({keys}.workers=1)")


def cluster_capacity() -> dict[str, float]:
    """The connected Ray cluster's resources, or where it autoscales, the most it can scale to (each node type's
    resources times its max_workers): a cluster whose GPU workers are not up yet still plans GPU runs, and one
    that can never have enough GPUs is refused instead of waiting forever."""
    import ray
    from ray._private.state import (
        state,  # no public API reads the autoscaler's config; Ray Train's own check uses this
    )

    now = ray.cluster_resources()
    most = state.get_max_resources_from_cluster_config() or {}  # None without an autoscaler (a local Ray)
    return {key: max(float(now.get(key, 0)), float(most.get(key, 0))) for key in {*now, *most}}


def stream_tasks(workers: int, cpus_per_worker: float, gpus_per_worker: float, cluster: dict[str, float]) -> int:
    """Reading tasks at once for each worker's stream: one per whole CPU left beside it when the cluster is full of
    such runs (a sweep's concurrent trials), at least one."""
    fit = plan_resources(workers, cpus_per_worker, gpus_per_worker, cluster, runs=10**6)[1]
    free = float(cluster.get("CPU", 0)) - fit * workers * cpus_per_worker
    return max(1, int(free / (fit * workers) + 1e-9))


def torch_threads(cpus_per_worker: float) -> int:
    """A worker's torch threads: its CPUs with its stream's share (the stream's tasks are short), at least 1."""
    return max(1, round(cpus_per_worker + STREAM_CPUS_PER_WORKER))
