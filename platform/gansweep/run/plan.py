"""A run's plan, made once in the driver: what every worker needs, typed, and the resources it asks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gansweep.config.errors import ConfigError

if TYPE_CHECKING:  # the plan only carries them
    from gansweep.config.checks import Measurements
    from gansweep.config.schema import Config
    from gansweep.data.stream import StreamSpec
    from gansweep.evaluation.monitor import MonitorPayload

STREAM_TASK_CPUS = 0.25  # each reading task's CPUs (the training set's StreamSpec.task_cpus)
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
    monitor: MonitorPayload | None  # the cheap evaluation's classifier and reference statistics; None: off
    verbose: bool = False  # Ray Train's and Ray Data's INFO lines on the workers too (train/sweep --verbose)
    # A finished run rerun: its last report's figures (result.json), reported again so a sweep's scheduler and
    # Optuna see the trial's value, not a report without it.
    finished_metrics: dict | None = None


def plan_resources(
    workers: int,
    cpus_per_worker: float | None,
    gpus_per_worker: float,
    nodes: list[dict[str, float]],
    runs: int = 1,
    keys: str = "train",
) -> tuple[float, int]:
    """CPUs per Train worker and runs at once, for up to RUNS runs of WORKERS workers each on NODES (each node's
    resources: those up, and those the autoscaler can add).

    A worker's CPUs (and GPUs) lie on one node, beside STREAM_CPUS_PER_WORKER left free there for its data stream;
    a run's workers may spread over several nodes. CPU training (GPUS_PER_WORKER 0) gives each worker the same share,
    the largest that places every concurrent run's workers (a whole CPU each where there are enough, else a
    fraction); GPU training gives each worker its GPUs and 1 CPU. The run drivers hold no CPU, so they never starve
    their own workers. Refused, naming the KEYS section (train or resources) and the largest node, when one run
    cannot fit."""
    stream = STREAM_CPUS_PER_WORKER
    if gpus_per_worker > 0:
        check_gpu_layout(workers, gpus_per_worker, keys)
        cpus_per_worker = cpus_per_worker or 1.0
        slots = _slots(nodes, cpus_per_worker + stream, gpus_per_worker)
        if slots < workers:
            hint = (" (the nodes up and those the autoscaler's node types can add; resources.cluster: {CPU: ..., "
                    "GPU: ...} plans for one such node instead)") if keys == "resources" else ""
            raise ConfigError(f"a run needs {keys}.workers={workers} x gpus_per_worker={gpus_per_worker:g} GPUs, "
                              f"each on a node with {cpus_per_worker + stream:g} CPUs beside it; the cluster has "
                              f"room for {slots} ({_describe(nodes)}){hint}")
        return cpus_per_worker, max(1, min(slots // workers, runs))
    if not cpus_per_worker:
        # A whole CPU per worker where there are enough; then the largest equal share that places them all.
        fit = max(1, min(runs, _slots(nodes, 1.0) // workers))
        share = max((_cpus(node) / k for node in nodes for k in range(1, fit * workers + 1)
                     if _cpus(node) > 0 and _slots(nodes, _cpus(node) / k) >= fit * workers), default=0.0)
        cpus_per_worker = share - stream
    slots = _slots(nodes, cpus_per_worker + stream) if cpus_per_worker > 1e-9 else 0
    if slots < workers:
        raise ConfigError(f"a run needs {keys}.workers={workers} x ({max(cpus_per_worker, 0):g} CPUs + {stream:g} for "
                          f"its data stream), each worker's on one node; the cluster has room for {slots} "
                          f"({_describe(nodes)}) (set {keys}.cpus_per_worker or fewer {keys}.workers)")
    return cpus_per_worker, max(1, min(slots // workers, runs))


def _cpus(node: dict[str, float]) -> float:
    return float(node.get("CPU", 0))


def _slots(nodes: list[dict[str, float]], cpus: float, gpus: float = 0.0) -> int:
    """How many workers of CPUS CPUs (and GPUS GPUs) the nodes hold, each worker on one node. Not //: 1 // 0.1 == 9."""
    def per_node(node: dict[str, float]) -> int:
        fit = int(_cpus(node) / cpus + 1e-9)
        return min(fit, int(float(node.get("GPU", 0)) / gpus + 1e-9)) if gpus > 0 else fit
    return sum(per_node(node) for node in nodes)


def _describe(nodes: list[dict[str, float]]) -> str:
    """The nodes' shapes for a message: '3 nodes; the largest 1 CPUs, 0 GPUs'."""
    largest = max(nodes, key=lambda node: (float(node.get("GPU", 0)), _cpus(node)), default={})
    return (f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}; the largest {_cpus(largest):g} CPUs, "
            f"{float(largest.get('GPU', 0)):g} GPUs")


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


def stream_tasks(workers: int, cpus_per_worker: float, gpus_per_worker: float, nodes: list[dict[str, float]]) -> int:
    """Reading tasks at once for each worker's stream: one per whole CPU left beside it when the cluster is full of
    such runs (a sweep's concurrent trials), at least one."""
    fit = plan_resources(workers, cpus_per_worker, gpus_per_worker, nodes, runs=10**6)[1]
    free = sum(_cpus(node) for node in nodes) - fit * workers * cpus_per_worker
    return max(1, int(free / (fit * workers) + 1e-9))


def evaluation_cpus(workers: int, cpus_per_worker: float, nodes: list[dict[str, float]]) -> float:
    """CPUs of a CPU run's full evaluation after training, one Ray task: what its workers held, as far as one node
    holds it beside a data stream's share (a DDP run's workers may have spread over several nodes)."""
    largest = max((_cpus(node) for node in nodes), default=0.0) - STREAM_CPUS_PER_WORKER
    return max(cpus_per_worker, min(workers * cpus_per_worker, largest))


def torch_threads(cpus_per_worker: float) -> int:
    """A worker's torch threads: its CPUs with its stream's share (the stream's tasks are short), at least 1."""
    return max(1, round(cpus_per_worker + STREAM_CPUS_PER_WORKER))
