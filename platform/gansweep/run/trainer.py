"""One training run on Ray Train: checks, resource plan, the TorchTrainer, and result.json."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace

from gansweep import storage
from gansweep.config.checks import Measurements, check_shapes, validate
from gansweep.config.errors import ConfigError
from gansweep.config.schema import Config
from gansweep.data import cache
from gansweep.data.source_base import DataSourceError
from gansweep.data.sources import describe_source
from gansweep.evaluation.figures import FID, raw_key
from gansweep.evaluation.inception import check_installed
from gansweep.evaluation.monitor import MonitorPayload
from gansweep.evaluation.protocol import prepare_monitor
from gansweep.nets.measurements import MeasurementError
from gansweep.run import reaper, run_dir
from gansweep.run.cluster import cluster_shape
from gansweep.run.faults import FINAL_ERRORS, TrainingDiverged, stop_on_final_error
from gansweep.run.plan import (
    RunPlan,
    check_gpu_layout,
    evaluation_cpus,
    plan_resources,
    stream_tasks,
    torch_threads,
    trains_in_trial_process,
)
from gansweep.run.training_set import TrainingSet, prepare_training_set, restore_training_set
from gansweep.storage import StorageError


# Ray settings gansweep starts with unless the environment names its own, measured in benchmarks/bench_sweep.py:
# - Train's controller polls its workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (2 s by default), and a run's start
#   and end each wait for a poll: 0.25 s cuts ~3 s of a trial's fixed cost for a few more small RPCs.
# - Train's preemption watcher is one more actor process per fit (~1 s of a CPU to start) that only logs spot
#   instances' preemption notices; a run on spot instances resumes from its checkpoints without it.
# - Ray keeps an idle task process for reuse only while its node runs fewer worker processes than
#   RAY_num_workers_soft_limit (by default its CPU count), and a node soon runs more (Tune's trial actors, Ray Data's,
#   and on a Ray Train run its ~5 actors): every trial's stream started a new reading process (python, torch and gansweep imported,
#   2-3 s before its first batch). Read by the raylet at its start: a local Ray here, a cluster in cluster.yaml.
# Train passes its two from the process that fits (a sweep trial's actor) to its controller and workers.
RAY_ENV_DEFAULTS = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_num_workers_soft_limit": "64",
}


def _ray_env_defaults() -> None:
    for name, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


@dataclass
class CheckedRun:
    """What the driver readies before Ray starts: the training set (described and listed, not loaded) and the run's
    measurements (built once)."""

    training_set: TrainingSet
    measurements: Measurements


def check_config(cfg: Config) -> CheckedRun:
    """Everything that can be checked before Ray starts: the config against the shapes of the source it names
    (config.check_shapes on its description: metadata and one decoded image), and the source's pieces as they are
    listed. Raises ConfigError with one clear message."""
    data = cfg.data
    storage.check_writable(cache.root(data.cache_dir), "the cache (GANSWEEP_CACHE or data.cache_dir)")
    if cfg.train.use_gpu:
        check_gpu_layout(cfg.train.workers, cfg.train.gpus_per_worker)
    check_installed(cfg.eval.features, cfg.eval.n_samples)
    try:
        source = describe_source(data.name, data.root, data.image_size, data.limit, data.holdout)
        measurements = validate(cfg)
        check_shapes(cfg, measurements, source.clean_shape, source.num_classes, source.n_images,
                     unlabelled=source.unlabelled)
        return CheckedRun(prepare_training_set(cfg, measurements, source), measurements)
    except (DataSourceError, MeasurementError) as exc:  # a source that cannot be read, or images not as described
        raise ConfigError(str(exc)) from None


def init_ray(log_to_driver: bool = True) -> bool:
    """Connect to the cluster named by RAY_ADDRESS (a `ray job submit` run), or start a local Ray; LOG_TO_DRIVER: the
    output of its tasks and actors (a run's progress lines) printed here too (a sweep's driver prints its own).

    Returns True when this process started Ray (and so must stop it). The dashboard binds to
    127.0.0.1; ``address="local"`` never reconnects to a stale session.
    """
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=log_to_driver)
        return False
    _ray_env_defaults()  # before the raylet starts: it reads its settings from the environment
    port = free_port()
    # Ray Train's placement-group cleaner finds the State API from the newest `ray start` session's address
    # file, which names a dead cluster once that head is gone: then a trial stopped early leaves its
    # placement group behind and the next trial waits forever. Naming this Ray's dashboard avoids the file.
    context = ray.init(
        address="local", dashboard_host="127.0.0.1", dashboard_port=port, log_to_driver=log_to_driver,
        runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}},
    )
    reaper.start(context.address_info["session_dir"])  # none of its processes outlives this one, even killed
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a dashboard or a head started next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_training(
    cfg: Config,
    output: str,
    checked: CheckedRun | None = None,
    *,
    monitor: MonitorPayload | None = None,
    log_dir: str | None = None,
    sweep_metrics: list[str] | None = None,
    nodes: list[dict[str, float]] | None = None,
    verbose: bool = False,
) -> dict:
    """Train one run into OUTPUT (checkpoints/, result.json; TensorBoard in LOG_DIR, default OUTPUT/tensorboard);
    a rerun resumes it. CHECKED: check_config's result, when the caller has it already. A sweep trial passes the
    monitor it readied once, and SWEEP_METRICS, the metrics a report must carry to reach Tune: a one-worker trial
    trains in its own Tune process (loop.TrialProcess), a DDP one on a Ray Train run whose reports Tune's
    TuneReportCallback forwards. NODES: the cluster's nodes to plan on (run.cluster; a sweep passes those it planned
    with), by default read from the cluster. VERBOSE: Ray Train's own INFO lines too (a line per report with the
    whole report's repr, the worker group's life); by default its warnings only, beside gansweep's progress lines.
    Raises TrainingDiverged when the losses turn non-finite."""
    import ray

    output = storage.check_writable(output, "--output")  # before any training: a URI is never a local folder
    log_dir = storage.normalize(log_dir) if log_dir else storage.join(output, run_dir.TENSORBOARD_DIR)
    checked = checked or check_config(cfg)
    training_set = checked.training_set
    run_dir.clear_diverged(output)
    # What `gansweep evaluate` needs to rebuild the generator, there from the first checkpoint on.
    run_dir.write_run_record(output, run_dir.RunRecord(cfg, training_set.clean_shape, training_set.num_classes))
    # Before Ray: the classifier is trained (once, cached) here, not inside a worker holding its CPUs.
    if monitor is None and cfg.eval.every > 0:
        monitor = prepare_monitor(cfg)
    latest, previous = run_dir.latest_checkpoint(output), run_dir.read_result(output)
    t = cfg.train
    # A finished run rerun trains nothing: its figures stand, not the rerun's one report of where it stands.
    finished = previous is not None and latest is not None and run_dir.checkpoint_step(latest) >= t.steps
    in_trial = sweep_metrics is not None and trains_in_trial_process(t.workers)
    started_ray = init_ray()
    try:
        gpus_per_worker, nodes = t.gpus_per_worker if t.use_gpu else 0, nodes or cluster_shape().nodes
        cpus_per_worker, _ = plan_resources(t.workers, t.cpus_per_worker, gpus_per_worker, nodes)
        training_set = restore_training_set(cfg, training_set)  # mode unmeasure, once per lossy set
        stream = replace(training_set.stream, max_tasks=stream_tasks(t.workers, cpus_per_worker, gpus_per_worker,
                                                                     nodes))
        plan = RunPlan(config=cfg, output=output, log_dir=log_dir, clean_shape=training_set.clean_shape,
                       num_classes=training_set.num_classes, measurements=checked.measurements,
                       stream=stream, threads=torch_threads(cpus_per_worker),
                       monitor=monitor, verbose=verbose,
                       finished_metrics=previous.get("metrics") if finished else None)
        fit_start = time.time()
        if in_trial:
            from gansweep.run.loop import train_in_trial

            final = train_in_trial(plan, sweep_metrics)
        else:
            final = _fit(plan, cpus_per_worker, [_tune_report_callback(sweep_metrics)] if sweep_metrics else [])
        wall = time.time() - fit_start
        diverged = run_dir.read_diverged(output)
        evaluation = None
        if diverged is None and cfg.eval.n_samples > 0:
            evaluation = _full_evaluation(cfg, output, log_dir, cpus=evaluation_cpus(t.workers, cpus_per_worker, nodes),
                                          gpus=gpus_per_worker, in_process=in_trial)
    finally:
        if started_ray:
            ray.shutdown()

    if diverged is not None:
        raise TrainingDiverged.at(diverged)
    if finished:
        summary = previous if evaluation is None else {**previous, "evaluation": evaluation}
        run_dir.write_result(output, summary)
        return summary
    metrics = dict(final or {})
    loop_start, first_step = metrics.pop("loop_start_unix", None), metrics.pop("first_step_unix", None)
    checkpoint = run_dir.latest_checkpoint(output)
    summary = {
        "metrics": metrics,
        "step": metrics.get("step"),
        "wall_time_s": wall,
        # Of the fixed cost: training's start (Ray Train's fit, or the loop in a trial's process) to the train loop's
        # (Train's controller and worker group, the nets built and restored), and to the first step done (the
        # stream's first batch).
        "time_to_loop_start_s": (loop_start - fit_start) if loop_start else None,
        "time_to_first_step_s": (first_step - fit_start) if first_step else None,
        "trains_in": "trial process" if in_trial else "ray train",
        "data": {
            "fingerprint": training_set.fingerprint,
            "n_train": training_set.n_images,
            "clean_shape": list(training_set.clean_shape),
            "sample_shape": list(training_set.sample_shape),
            "pieces": len(training_set.stream.pieces),
            "pieces_per_window": stream.pieces_per_window,
            "stream_tasks": stream.max_tasks,
            "restored_set": storage.display(training_set.restored_path) if training_set.restored_path else None,
        },
        "resources": {"workers": t.workers, "cpus_per_worker": cpus_per_worker, "use_gpu": t.use_gpu},
        "checkpoint": checkpoint,
        "config": cfg.to_dict(),
    }
    if monitor is not None:
        summary["cheap_evaluation"] = monitor.provenance(cfg.eval.cheap_samples, "cuda" if t.use_gpu else "cpu")
    if evaluation is not None:
        summary["evaluation"] = evaluation
    run_dir.write_result(output, summary)
    return summary


def _fit(plan: RunPlan, cpus_per_worker: float, callbacks: list) -> dict | None:
    """The plan's run on a Ray Train TorchTrainer (its workers run loop.train_loop_per_worker); returns the last
    report's metrics."""
    from ray.train import (
        CheckpointConfig,
        ControllerError,
        FailureConfig,
        LoggingConfig,
        RunConfig,
        ScalingConfig,
    )
    from ray.train.torch import TorchTrainer

    from gansweep.run.loop import CHECKPOINTS_KEPT, train_loop_per_worker

    t = plan.config.train
    storage_path, storage_filesystem = storage.ray_storage(plan.output)
    _ray_env_defaults()  # for Train, in a trial's actor on a cluster too
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"plan": plan},
        scaling_config=ScalingConfig(
            num_workers=t.workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"CPU": cpus_per_worker, **({"GPU": t.gpus_per_worker} if t.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=run_dir.CHECKPOINTS_DIR,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
            # A lost worker restarts from the last checkpoint; an error no retry can help ends the run at once.
            failure_config=FailureConfig(max_failures=2),
            callbacks=[*callbacks, stop_on_final_error()],
            logging_config=LoggingConfig(log_level="INFO" if plan.verbose else "WARNING"),
        ),
    )
    try:
        return trainer.fit().metrics
    except ControllerError as error:  # a worker's final error (stop_on_final_error), as itself: one line
        failure = error.controller_failure
        if isinstance(failure, FINAL_ERRORS):
            raise failure from None
        if isinstance(failure, OSError):  # writing its record of the checkpoints, retried for the storage's bound
            raise StorageError(f"{storage.display(plan.output)}: Ray Train cannot write its run state there "
                               f"({failure})") from None
        raise


def _tune_report_callback(sweep_metrics: list[str]):
    """Tune's TuneReportCallback for a DDP sweep trial, forwarding only the reports that carry the sweep's metrics
    (loop.carries_metrics)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from gansweep.run.loop import carries_metrics

    class MetricReportCallback(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):  # Ray passes them by keyword
            if metrics and carries_metrics(metrics[0], sweep_metrics):
                super().after_report(run_context, metrics, checkpoint)

    return MetricReportCallback()


def _evaluation_task(output: str, n_samples: int, device: str, threads: int) -> dict:
    """evaluate_run inside the Ray task _full_evaluation starts, with the torch threads of the CPUs it holds."""
    import torch

    from gansweep.run.evaluate import evaluate_run

    torch.set_num_threads(threads)
    return evaluate_run(output, n_samples, device=device)


def _full_evaluation(cfg: Config, output: str, log_dir: str, cpus: float, gpus: float, in_process: bool) -> dict:
    """The protocol on eval.n_samples samples of the final generator: evaluation.json, TensorBoard's
    test/*, and the figures for result.json. A finished run rerun keeps its evaluation.

    IN_PROCESS (a one-worker sweep trial, which holds its run's resources itself): here. Otherwise a Ray task
    holding the resources the run's workers held (now free): on a GPU run, the GPU (its node has one, the driver's
    may not); on a CPU run, the workers' CPUs (a trial's driver holds none, so Ray gives it one thread)."""
    import ray

    from gansweep.run.summaries import TEST, RunSummaries

    previous = run_dir.read_evaluation(output)
    if previous is not None and previous.get("step") == cfg.train.steps and previous.get("n_fake") == cfg.eval.n_samples:
        return previous
    start = time.time()
    device = "cuda" if gpus > 0 else "cpu"
    print(f"[gansweep] full evaluation on {cfg.eval.n_samples} samples ({device}) ...", flush=True)
    task_cpus = 1 if gpus > 0 else cpus
    if in_process:
        figures = _evaluation_task(output, cfg.eval.n_samples, device, torch_threads(task_cpus))
    else:
        # scheduling_strategy DEFAULT: outside the sweep trial's placement group, which Tune makes capture its child
        # tasks and which holds no CPU (Ray refuses the task: "cannot fit into any bundles"), as Ray Train does for
        # its own actors.
        task = ray.remote(_evaluation_task).options(num_cpus=task_cpus, num_gpus=gpus, scheduling_strategy="DEFAULT")
        figures = ray.get(task.remote(output, cfg.eval.n_samples, device, torch_threads(task_cpus)))
    print(
        f"[gansweep] fid={figures['fid']:.2f} kid={figures['kid']:.4f} classifier_score={figures['classifier_score']:.2f} "
        f"nn_pixel_distance={figures['nn_pixel_distance']:.3f} ({time.time() - start:.0f} s)",
        flush=True,
    )
    if raw_key(FID) in figures:  # train.ema: the figures above are G's moving average's
        print(f"[gansweep] G's own weights: fid={figures[raw_key(FID)]:.2f} kid={figures[raw_key('kid')]:.4f}",
              flush=True)
    summaries = RunSummaries(log_dir)
    summaries.evaluation(figures["step"], figures, prefix=TEST)
    summaries.close()
    return figures
