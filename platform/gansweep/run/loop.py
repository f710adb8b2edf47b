"""The training loop: on each DDP worker of a Ray Train run (train_loop_per_worker), or in a one-worker sweep
trial's own Tune process (train_in_trial). The loop is the same; where it runs decides its rank and device, where
its checkpoints go and who hears its reports (TrainWorker, TrialProcess)."""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
import torch.distributed as dist

from gansweep import storage
from gansweep.data.stream import rank_batches, rows_per_rank
from gansweep.evaluation import figures
from gansweep.evaluation.monitor import FidMonitor
from gansweep.gan.base import GANTrainer
from gansweep.gan.build import build_gan
from gansweep.run.faults import FINAL_ERRORS
from gansweep.run.run_dir import (
    CHECKPOINTS_DIR,
    mark_diverged,
    newest_intact_checkpoint,
    own_checkpoint,
    prune_own_checkpoints,
    save_checkpoint,
    write_samples,
)
from gansweep.run.summaries import RunSummaries
from gansweep.storage import StorageError

if TYPE_CHECKING:  # the plan arrives pickled in the loop's config
    from gansweep.run.plan import RunPlan

SAMPLE_GRID = 64
PER_CLASS_COLUMNS = 8
CHECKPOINTS_KEPT = 2  # a run's newest checkpoints kept (by Ray Train's CheckpointConfig, or by TrialProcess)


class TrainWorker:
    """A rank of a Ray Train run: Train gives its rank and device, wraps its nets in DDP, and uploads the checkpoints
    it reports (a sweep's TuneReportCallback forwards the reports to Tune)."""

    def __init__(self, output: str):
        import ray.train
        import ray.train.torch

        self.train, self.train_torch, self.output = ray.train, ray.train.torch, output
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return self.train_torch.prepare_model(model)

    def report(self, metrics: dict, save: Callable[[str], None] | None = None) -> None:
        """METRICS, with the checkpoint SAVE writes into the folder it is given (rank 0's; None on the others)."""
        if save is None:
            self.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            save(directory)
            try:
                self.train.report(metrics, checkpoint=self.train.Checkpoint.from_directory(directory))
            except OSError as error:  # Train's upload, which the storage's filesystem has retried for its bound
                checkpoints = storage.display(storage.join(self.output, CHECKPOINTS_DIR))
                raise StorageError(f"{checkpoints}: cannot write a checkpoint there ({error})") from None


class TrialProcess:
    """A one-worker sweep trial training in its Tune trial's own process, without a Ray Train run (whose controller
    and worker processes cost ~8 s a trial: benchmarks/BENCHMARKS.md). Rank 0 of 1 on the device Tune gave the trial;
    it starts from its run's newest checkpoint, writes its checkpoints there itself, and reports to Tune the reports
    that carry the sweep's metrics."""

    rank, world = 0, 1

    def __init__(self, output: str, sweep_metrics: list[str], use_gpu: bool):
        from ray import tune

        self.tune, self.output, self.sweep_metrics = tune, output, sweep_metrics
        self.device = torch.device("cuda" if use_gpu else "cpu")  # Tune's CUDA_VISIBLE_DEVICES names the trial's GPU

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def report(self, metrics: dict, save: Callable[[str], None] | None = None) -> None:
        if save is not None:
            save(own_checkpoint(self.output, metrics["step"]))
            prune_own_checkpoints(self.output, CHECKPOINTS_KEPT)
        if carries_metrics(metrics, self.sweep_metrics):
            # Tune's function trainable: returns once Tune has the result; where the scheduler stops the trial,
            # it ends the trial here (SystemExit, no error).
            self.tune.report(metrics)


def carries_metrics(report: dict, sweep_metrics: list[str]) -> bool:
    """Whether a report reaches Tune: the scheduler and Optuna read the sweep's metrics from every result, and a run
    has them only from its first cheap evaluation on."""
    return all(metric in report for metric in sweep_metrics)


def _progress(line: str) -> None:
    """One progress line. Written to stdout directly: Ray Train V2 patches print() to both print and
    log, which shows every line twice in the driver's console."""
    sys.stdout.write(f"[gansweep] {line}\n")
    sys.stdout.flush()


def _nodes_of_ranks(world: int) -> list[str]:
    """Each rank's Ray node (IP and the node ID's first 8 digits), gathered from every rank of a DDP run."""
    import ray

    node = f"{ray.util.get_node_ip_address()} ({ray.get_runtime_context().get_node_id()[:8]})"
    if world == 1:
        return [node]
    nodes = [None] * world
    dist.all_gather_object(nodes, node)
    return nodes


def _per_class_codes(fixed_z: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A conditional GAN's per-class panel: the same few codes in every row, one row per class."""
    z = fixed_z[:PER_CLASS_COLUMNS]
    return z.repeat(num_classes, 1), torch.arange(num_classes).repeat_interleave(len(z))


def _quiet_ray_logs() -> None:
    """Ray's INFO lines on this worker off, its warnings kept: a line per report with the whole report's repr (Ray
    Train names that logger by its file path, so RunConfig's LoggingConfig, which filters "ray.train.*", misses it),
    four lines per window dataset from Ray Data, and its warning that the progress bars are off (stream.py turns
    them off on purpose)."""
    import ray.data  # noqa: F401  (configures its loggers on import; set the level after)
    from ray.train.v2._internal.execution import context as train_context

    for name in (train_context.__file__, "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def _gather_rng_states(gan: GANTrainer) -> list:
    """Every rank's random streams, so a resumed run continues each rank's own z and theta."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [gan.rng_state()]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, gan.rng_state())  # a generator's state is a CPU tensor, on a GPU too
    return states


def _all_finite(metrics: dict[str, float], device: torch.device) -> bool:
    """Whether every rank's losses are finite: all ranks decide together, so none waits in a collective."""
    finite = torch.tensor(float(all(math.isfinite(v) for v in metrics.values())), device=device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def _stream_errors_named(batches: Iterator) -> Iterator:
    """BATCHES; a reading task's error that no retry can help (faults.FINAL_ERRORS: an image that cannot be decoded)
    raised as itself, in its one line: Ray hands it over wrapped, with the task's traceback as its text, and Ray Data
    appends its retry advice to the error's own message."""
    from ray.exceptions import RayTaskError

    try:
        yield from batches
    except RayTaskError as error:
        if isinstance(error.cause, FINAL_ERRORS):
            raise type(error.cause)(str(error.cause).splitlines()[0]) from None
        raise


def _restore(gan: GANTrainer, where: TrainWorker | TrialProcess, output: str) -> tuple[int, dict]:
    """Load the run's newest checkpoint that can be read (run_dir.newest_intact_checkpoint: after a lost worker, a
    rerun, a PBT exploit); returns its step (0 if none) and the best cheap figures so far. The checkpoint is read to
    the CPU and each part's load_state_dict places it: nets and Adam's moments on the parameters' device, Adam's step
    counters on the CPU, where a non-fused Adam keeps them (on a GPU, the foreach Adam would wait for the device on
    every parameter's step)."""
    found = newest_intact_checkpoint(output, warn=_progress if where.rank == 0 else lambda line: None)
    if found is None:
        return 0, {}
    state = found[1]
    gan.load_state_dict(state)
    if where.rank < len(state["rng"]):
        gan.set_rng_state(state["rng"][where.rank])
    return int(state["step"]), dict(state.get("best_eval", {}))


def _cheap_evaluation(monitor: FidMonitor, gan: GANTrainer, step: int, best_eval: dict) -> tuple[dict, dict, float]:
    """The cheap figures of this step (with the best so far) for every later report, the best figures, the seconds."""
    start = time.perf_counter()
    scores = monitor(gan.sampler)  # G's moving average with train.ema, G otherwise
    if gan.ema is not None:  # G's own figures beside, from the same z
        scores |= {figures.raw_key(name): value for name, value in monitor(gan.raw_sampler).items()}
    # The best figures so far (lower FID, higher classifier score): a trial stopped early or past its best is
    # compared on them in TensorBoard's HParams table.
    best_eval = {figures.best_key(name): figures.best(name, scores[name], best_eval.get(figures.best_key(name)))
                 for name in figures.MODES}
    seconds = time.perf_counter() - start
    shown = " ".join(f"{name}={scores[name]:.2f}" for name in figures.MODES)
    _progress(f"step {step}: {shown} ({monitor.n_samples} samples, {seconds:.1f} s)")
    return {**scores, figures.STEP: step, **best_eval}, best_eval, seconds


def _summarise(summaries: RunSummaries, gan: GANTrainer, step: int, steps: int, metrics: dict, losses: list[str],
               fixed_z: torch.Tensor | None, output: str) -> None:
    """Rank 0's scalars, the image panels (given the fixed codes; the samples' grid also in OUTPUT, the run
    directory) and a progress line."""
    summaries.scalars(step, metrics)
    if fixed_z is not None:
        grid = summaries.images(step, gan.last, gan.sampler.images(fixed_z))
        if grid is not None:
            write_samples(output, grid, step)
        if gan.num_classes:
            summaries.samples_per_class(step, gan.sampler.images(*_per_class_codes(fixed_z, gan.num_classes)),
                                        PER_CLASS_COLUMNS)
    _progress(
        f"step {step}/{steps} ({100 * step / steps:.0f}%) "
        + "".join(f"{key}={metrics[key]:.3f} " for key in losses)
        + f"{metrics['images_per_s']:.0f} img/s, data wait {100 * metrics['data_wait_frac']:.1f}%"
    )


def _checkpoint_and_report(where: TrainWorker | TrialProcess, gan: GANTrainer, step: int, metrics: dict,
                           best_eval: dict, summaries: RunSummaries | None) -> None:
    """Every rank's random streams gathered, rank 0's checkpoint written, and the report that registers it."""
    rng_states = _gather_rng_states(gan)  # collective: every rank takes part
    save = None
    if summaries is not None:  # rank 0
        def save(location: str) -> None:
            save_checkpoint(gan, step, rng_states, location, best_eval)
            summaries.flush()  # the checkpoint's step is on disk in TensorBoard too
    where.report(metrics, save)


def train_loop_per_worker(loop_config: dict) -> None:
    """One Ray Train worker's run of its plan (loop_config["plan"])."""
    plan: RunPlan = loop_config["plan"]
    if not plan.verbose:
        _quiet_ray_logs()
    run_loop(plan, TrainWorker(plan.output))


def train_in_trial(plan: RunPlan, sweep_metrics: list[str]) -> dict:
    """A one-worker sweep trial's run of its plan, in its Tune trial's process (TrialProcess); returns its last
    report."""
    if not plan.verbose:
        _quiet_ray_logs()
    return run_loop(plan, TrialProcess(plan.output, sweep_metrics, plan.config.train.use_gpu))


def run_loop(plan: RunPlan, where: TrainWorker | TrialProcess) -> dict:
    """The plan's run, WHERE it runs: restore, train, evaluate, log, checkpoint. Returns its last report (Ray
    Train's result holds the same)."""
    cfg, output, t = plan.config, Path(plan.output), plan.config.train
    rank, world, device = where.rank, where.world, where.device
    torch.set_num_threads(plan.threads)  # Ray sets one thread for a fractional CPU share (1.75 CPUs: 1 thread)
    gan = build_gan(cfg, plan.clean_shape, device, wrap=where.wrap, rank=rank,
                    num_classes=plan.num_classes, measurements=plan.measurements)
    start_step, best_eval = _restore(gan, where, plan.output)
    nodes = _nodes_of_ranks(world)
    if rank == 0:
        # Where the ranks landed: on a cluster, which nodes a run (or a resumed one, after a lost node) uses.
        _progress(f"{'resuming at' if start_step else 'starting'} step {start_step}/{t.steps} on "
                  f"{'node' if len(set(nodes)) == 1 else 'nodes'} {', '.join(dict.fromkeys(nodes))}")
    if start_step >= t.steps:  # a finished run rerun as it was: nothing to train, say where it stands
        metrics = {**(plan.finished_metrics or {}), "step": start_step, "resumed_from_step": start_step}
        where.report(metrics)
        return metrics

    summaries = RunSummaries(plan.log_dir, start_step) if rank == 0 else None
    monitor = None
    if rank == 0 and plan.monitor is not None:
        monitor = FidMonitor(plan.monitor, cfg.eval.cheap_samples, t.seed, device)
    last_eval: dict[str, float] = {}  # the newest cheap figures, carried in every later report
    last_reversal: dict[str, float] = {}  # KDE-GAN: the newest prior refresh (steps taken, error, MMD^2)
    eval_seconds = 0.0  # spent in cheap evaluations by this run (rank 0), reported as eval_s_total
    fixed_z = torch.randn(SAMPLE_GRID, gan.z_dim, generator=torch.Generator().manual_seed(t.seed))
    # This rank's stream from the row an uninterrupted run would be at: the same data order after a resume.
    rank_batch = t.batch_size // world
    batches = _stream_errors_named(rank_batches(
        plan.stream, rank, world, rank_batch, rows_per_rank(start_step, t.d_steps, rank_batch), device,
        rows_per_pass=rows_per_rank(t.steps - start_step, t.d_steps, rank_batch)))

    loop_start_unix = time.time()
    loop_start = window_start = time.perf_counter()
    window_data, window_steps = 0.0, 0
    first_step_unix = None
    reported: dict = {}
    for step in range(start_step + 1, t.steps + 1):
        t0 = time.perf_counter()
        reals, labels, indices = zip(*(next(batches) for _ in range(t.d_steps)))
        window_data += time.perf_counter() - t0
        if gan.prior.due(step):
            # KDE-GAN: this step's z come from the new prior, reversed through the eval-mode G.
            gan.calibrate(step)
            last_reversal = gan.prior.refresh(reals[0], indices[0])
        losses = gan.step(list(reals), list(labels))
        gan.average(step)
        window_steps += 1
        if first_step_unix is None:
            first_step_unix = time.time()

        log_now = step % t.log_every == 0 or step == t.steps
        checkpoint_now = step % t.checkpoint_every == 0 or step == t.steps
        eval_now = cfg.eval.every > 0 and (step % cfg.eval.every == 0 or step == t.steps)
        if not (log_now or checkpoint_now or eval_now):
            continue
        gan.calibrate(step)  # on every rank alike: what follows samples and saves the eval-mode G

        elapsed = time.perf_counter() - window_start
        metrics = {key: float(value) for key, value in losses.items()} | last_reversal
        if not _all_finite(metrics, device):
            # Stop cleanly instead of raising: Ray Train would retry a crash from the last checkpoint, and
            # the same run would diverge again. The driver reads the marker and raises TrainingDiverged.
            if rank == 0:
                _progress(f"step {step}: the losses turned non-finite ({metrics}); stopping")
                mark_diverged(output, step, metrics)
            break
        metrics.update(
            step=step,
            images_per_s=window_steps * t.batch_size * t.d_steps / elapsed,
            data_wait_frac=window_data / elapsed,
            loop_start_unix=loop_start_unix,
            first_step_unix=first_step_unix,
            train_loop_s=time.perf_counter() - loop_start,  # since this (re)start; against a trial's wall time
            resumed_from_step=start_step,
        )
        if monitor is not None and eval_now:
            last_eval, best_eval, metrics["eval_s"] = _cheap_evaluation(monitor, gan, step, best_eval)
            eval_seconds += metrics["eval_s"]
            if summaries is not None:
                summaries.evaluation(step, last_eval)
        if monitor is not None:
            metrics["eval_s_total"] = eval_seconds
        # fid first: the metric a sweep optimises and stops on.
        metrics = {**last_eval, **metrics}
        window_start, window_data, window_steps = time.perf_counter(), 0.0, 0

        if summaries is not None:
            images_now = step % t.image_every == 0 or step == t.steps
            _summarise(summaries, gan, step, t.steps, metrics, list(losses), fixed_z if images_now else None,
                       plan.output)
        if checkpoint_now:
            _checkpoint_and_report(where, gan, step, metrics, best_eval, summaries)
        else:
            where.report(metrics)
        reported = metrics

    if summaries is not None:
        summaries.close()
    return reported
