"""One training run on Ray Train: checks, resource plan, the TorchTrainer, and result.json."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path

from gansweep.config import Config, ConfigError
from gansweep.data.restoration import check_restorable
from gansweep.data.sources import DataSourceError
from gansweep.data.training_set import TrainingSet, load_training_set, to_ray_dataset
from gansweep.evaluation.monitor import monitor_provenance, prepare_monitor
from gansweep.nets.measurements import MeasurementError, build_measurement
from gansweep.nets.models import Generator, ModelError


class TrainingDiverged(RuntimeError):
    """The losses turned NaN or infinite: the run stopped (not retried: it would diverge again)."""


def _checked(check, section: str):
    """Run a check of the measurement or model modules; their errors become ConfigErrors naming the config key."""
    try:
        return check()
    except (MeasurementError, ModelError) as exc:
        message = str(exc)
        if section == "hidden.measurement" and message.startswith("measurement."):
            message = "hidden." + message
        elif section == "hidden.inject_at":
            message = f"hidden.inject_at: {message}"
        elif section == "data":
            message = f"data: {message}; resize the images with data.image_size (28, 32 or 64)"
        raise ConfigError(message) from None


def check_config(cfg: Config) -> TrainingSet:
    """Everything that can be checked before Ray starts: the data, and the measurements against the
    shapes they will meet. Returns the training set; raises ConfigError with one clear message."""
    if cfg.mode == "unmeasure":  # before the data: restoring a set that cannot be restored is wasted work
        _checked(lambda: check_restorable(cfg.measurement.name), "measurement")
    try:
        training_set = load_training_set(cfg)
    except (MeasurementError, DataSourceError) as exc:
        raise ConfigError(str(exc)) from None
    clean_shape = training_set.clean_shape
    generator = _checked(lambda: Generator(clean_shape, z_dim=cfg.model.z_dim, width=cfg.model.g_width), "data")
    image = _checked(lambda: build_measurement(asdict(cfg.measurement)), "measurement")  # None for "none"
    if cfg.mode == "ambient" and image is not None:
        _checked(lambda: image.output_shape(clean_shape), "measurement")
    if cfg.mode == "ignore" and image.changes_shape:
        raise ConfigError(
            f"mode=ignore with measurement.name={cfg.measurement.name}: the lossy data are not images of "
            f"shape {clean_shape}, so a plain generator cannot be trained on them; use mode=ambient"
        )
    if cfg.hidden.inject_at is not None:
        hidden = _checked(lambda: build_measurement(asdict(cfg.hidden.measurement)), "hidden.measurement")
        if hidden.changes_shape:
            raise ConfigError(
                f"hidden.measurement.name={cfg.hidden.measurement.name} changes the feature map's shape, but the "
                "generator's next block needs the shape it was built for; use block_pixel, block_patch, "
                "keep_patch or convolve_noise at a hidden layer"
            )
        feature_shape = _checked(lambda: generator.feature_shape(cfg.hidden.inject_point), "hidden.inject_at")
        _checked(lambda: hidden.validate(feature_shape), "hidden.measurement")
    unlabelled = bool((training_set.labels < 0).any())
    if cfg.model.conditional and (training_set.num_classes < 2 or unlabelled):
        raise ConfigError(
            f"model.conditional needs every training image labelled with one of >= 2 classes; data.name="
            f"{cfg.data.name} has {training_set.num_classes} classes" + (" and unlabelled images" if unlabelled else "")
        )
    per_worker = cfg.train.batch_size // cfg.train.workers
    if len(training_set.images) // cfg.train.workers < per_worker:
        raise ConfigError(
            f"data.limit gives {len(training_set.images)} images: fewer than one batch of {per_worker} per worker "
            f"(train.batch_size={cfg.train.batch_size}, train.workers={cfg.train.workers})"
        )
    return training_set


def init_ray() -> bool:
    """Connect to the cluster named by RAY_ADDRESS (a `ray job submit` run), or start a local Ray.

    Returns True when this process started Ray (and so must stop it). The dashboard binds to
    127.0.0.1; ``address="local"`` never reconnects to a stale session.
    """
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"])
        return False
    port = free_port()
    # Ray Train's placement-group cleaner finds the State API from the newest `ray start` session's address
    # file, which names a dead cluster once that head is gone: then a trial stopped early leaves its
    # placement group behind and the next trial waits forever. Naming this Ray's dashboard avoids the file.
    ray.init(
        address="local", dashboard_host="127.0.0.1", dashboard_port=port, log_to_driver=True,
        runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}},
    )
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a dashboard or a head started next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plan_cpus_per_worker(cfg: Config, cluster_cpus: float) -> float:
    """CPUs each Train worker asks for (and so its torch threads): an even share of the cluster's CPUs
    for CPU training, 1 for GPU training; refused with a clear message when the workers cannot fit."""
    t = cfg.train
    cpus = t.cpus_per_worker if t.cpus_per_worker is not None else (1.0 if t.use_gpu else cluster_cpus / t.workers)
    if cpus * t.workers > cluster_cpus + 1e-9 or cpus <= 0:
        raise ConfigError(
            f"train.workers={t.workers} x {cpus:g} CPUs per worker needs {cpus * t.workers:g} CPUs; "
            f"the cluster has {cluster_cpus:g} (set train.cpus_per_worker or fewer train.workers)"
        )
    return cpus


def run_training(
    cfg: Config,
    output: str | Path,
    training_set: TrainingSet | None = None,
    *,
    monitor: dict | None = None,
    log_dir: str | Path | None = None,
    callbacks: list = (),
) -> dict:
    """Train one run into OUTPUT (checkpoints/, result.json; TensorBoard in LOG_DIR, default OUTPUT/tensorboard);
    a rerun resumes it. A sweep passes the monitor it readied once, and Ray Train callbacks (Tune's reporting).
    Raises TrainingDiverged when the losses turn non-finite."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from gansweep.run.loop import train_loop_per_worker
    from gansweep.run.run_dir import DIVERGED_FILE, latest_checkpoint

    output = Path(output).expanduser().resolve()
    log_dir = Path(log_dir).expanduser().resolve() if log_dir else output / "tensorboard"
    training_set = training_set or check_config(cfg)
    output.mkdir(parents=True, exist_ok=True)
    (output / DIVERGED_FILE).unlink(missing_ok=True)  # a rerun tries again (from the last checkpoint)
    # What `gansweep evaluate` needs to rebuild the generator, there from the first checkpoint on.
    (output / "run.json").write_text(
        json.dumps({"config": cfg.to_dict(), "clean_shape": list(training_set.clean_shape),
                    "num_classes": training_set.num_classes}, indent=2)
    )
    # Before Ray: the classifier is trained (once, cached) here, not inside a worker holding its CPUs.
    if monitor is None and cfg.eval.every > 0:
        monitor = prepare_monitor(cfg)
    started_ray = init_ray()
    try:
        cluster_cpus = ray.cluster_resources().get("CPU", 0)
        cpus = plan_cpus_per_worker(cfg, cluster_cpus)
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={
                "config": cfg.to_dict(),
                "output": str(output),
                "log_dir": str(log_dir),
                "clean_shape": list(training_set.clean_shape),
                "num_classes": training_set.num_classes,
                # Each worker opens it memory-mapped (on a cluster the cache lies on the shared file system).
                "theta_path": training_set.theta_path,
                # Used only when Ray Train's own run snapshot names no checkpoint: a run killed between
                # a checkpoint's upload and its registration resumes from it all the same.
                "fallback_checkpoint": str(latest) if (latest := latest_checkpoint(output / "checkpoints")) else None,
                "monitor": monitor,
            },
            scaling_config=ScalingConfig(
                num_workers=cfg.train.workers,
                use_gpu=cfg.train.use_gpu,
                resources_per_worker={"CPU": cpus, **({"GPU": cfg.train.gpus_per_worker} if cfg.train.use_gpu else {})},
            ),
            datasets={"train": to_ray_dataset(training_set)},
            run_config=RunConfig(
                name="checkpoints",
                storage_path=str(output),
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                failure_config=FailureConfig(max_failures=2),  # a lost worker restarts from the last checkpoint
                callbacks=list(callbacks),
            ),
        )
        fit_start = time.time()
        result = trainer.fit()
        wall = time.time() - fit_start
    finally:
        if started_ray:
            ray.shutdown()

    diverged = output / DIVERGED_FILE
    if diverged.is_file():
        record = json.loads(diverged.read_text())
        raise TrainingDiverged(f"the losses turned non-finite at step {record['step']}: {record['losses']}; "
                               "lower the learning rates or change the G/D balance")
    metrics = dict(result.metrics or {})
    first_step = metrics.pop("first_step_unix", None)
    summary = {
        "metrics": metrics,
        "step": metrics.get("step"),
        "wall_time_s": wall,
        "time_to_first_step_s": (first_step - fit_start) if first_step else None,
        "data": {
            "fingerprint": training_set.fingerprint,
            "n_train": len(training_set.images),
            "clean_shape": list(training_set.clean_shape),
            "sample_shape": list(training_set.sample_shape),
            "lossy_cache": training_set.cache_path,
            "theta_store": training_set.theta_path,
        },
        "resources": {"workers": cfg.train.workers, "cpus_per_worker": cpus, "use_gpu": cfg.train.use_gpu},
        "checkpoint": result.checkpoint.path if result.checkpoint else None,
        "config": cfg.to_dict(),
    }
    if monitor is not None:
        summary["cheap_evaluation"] = monitor_provenance(monitor, cfg.eval.cheap_samples)
    if cfg.eval.n_samples > 0:
        summary["evaluation"] = _full_evaluation(cfg, output, log_dir)
    (output / "result.json").write_text(json.dumps(summary, indent=2))
    return summary


def _full_evaluation(cfg: Config, output: Path, log_dir: Path) -> dict:
    """The protocol on eval.n_samples samples of the final generator: evaluation.json, TensorBoard's
    eval_full/*, and the figures for result.json. A finished run rerun keeps its evaluation."""
    from gansweep.run.evaluate import evaluate_run
    from gansweep.run.summaries import RunSummaries

    previous = output / "evaluation.json"
    if previous.is_file():
        figures = json.loads(previous.read_text())
        if figures.get("step") == cfg.train.steps and figures.get("n_fake") == cfg.eval.n_samples:
            return figures
    start = time.time()
    print(f"[gansweep] full evaluation on {cfg.eval.n_samples} samples ...", flush=True)
    figures = evaluate_run(output, cfg.eval.n_samples)
    print(
        f"[gansweep] fid={figures['fid']:.2f} kid={figures['kid']:.4f} classifier_score={figures['classifier_score']:.2f} "
        f"nn_pixel_distance={figures['nn_pixel_distance']:.3f} ({time.time() - start:.0f} s)",
        flush=True,
    )
    summaries = RunSummaries(log_dir)
    summaries.evaluation(figures["step"], figures, prefix="eval_full")
    summaries.close()
    return figures
