"""A sweep: Ray Tune with Optuna over a search space; a trial trains in its Tune trial's process (one worker) or on a
Ray Train TorchTrainer (DDP).

Everything lands in a sweep directory (its layout and files: sweep/sweep_dir.py). This module knows the config
keys it samples, not GANs: a trial is `trainer.run_training` of one config.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from pathlib import Path
from typing import Any

from ray.exceptions import RayActorError
from ray.tune import Callback

from gansweep import storage
from gansweep.config.errors import ConfigError
from gansweep.data import cache
from gansweep.evaluation import figures
from gansweep.evaluation.monitor import MonitorPayload
from gansweep.evaluation.protocol import prepare_monitor
from gansweep.run import run_dir
from gansweep.run.cluster import cluster_shape, ready_for_cluster
from gansweep.run.plan import plan_resources as plan_run_resources
from gansweep.run.plan import trains_in_trial_process
from gansweep.run.summaries import write_trial_hparams
from gansweep.sweep import console, pbt, samplers, schedulers, study_search
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.tensorboard_link import tensorboard_lines
from gansweep.sweep.space import SweepSpace

OPTUNA_NUMBER = "optuna_number"  # the Optuna trial number, added to each Tune trial's config
NAME_LENGTH = 100


class SweepError(ConfigError):
    """A sweep that cannot start or resume as asked (bad output directory, resources that cannot fit)."""


def plan_resources(space: SweepSpace, nodes: list[dict[str, float]]) -> tuple[float, int]:
    """CPUs per Train worker and trials run at once (run.plan.plan_resources for the space's resources:),
    refused with a clear message when one trial cannot fit. The Ray Data sets are in memory, so no read task waits
    for a CPU the workers hold."""
    r = space.resources
    try:
        return plan_run_resources(r.workers, r.cpus_per_worker, r.gpus_per_worker, nodes,
                                  runs=min(space.max_concurrent_trials or space.trial_count(), space.trial_count()),
                                  keys="resources")
    except ConfigError as exc:
        raise SweepError(str(exc)) from None


def check_population(space: SweepSpace, concurrent: int) -> None:
    """A PBT population runs whole, all its trials at once: a trial waiting its turn could not be cloned, and PBT
    would pause the others to let it in."""
    if schedulers.kind(space).population_based and concurrent < space.num_samples:
        raise SweepError(f"{space.path}: scheduler: pbt exploits among trials running at the same time, and only "
                         f"{concurrent} of the population of {space.num_samples} fit at once (max_concurrent_trials, "
                         f"resources): lower num_samples to {concurrent}, or give the sweep a larger cluster")


def trial_name(number: int, point: dict[str, Any], seed: int | None = None) -> str:
    """A readable, deterministic trial name: the Optuna trial number, the seed where the space has several per point,
    and the sampled values."""
    parts = [] if seed is None else [f"seed={seed}"]
    for key, value in point.items():
        short = layout.short_key(key)
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{short}={text}")
    name = f"{number:04d}_" + "_".join(parts)
    return name[:NAME_LENGTH].rstrip("_")


def _point(config: dict) -> dict[str, Any]:
    """The sampled keys of a Tune trial's config (Optuna's names are the dotted config keys)."""
    return {key: value for key, value in config.items()
            if key not in (OPTUNA_NUMBER, pbt.EXPLOIT_KEY, study_search.SEED)}


def _trial_name_of(trial) -> str:
    # Named once, from the point Tune created the trial with: PBT changes a trial's config, not its name.
    return trial.custom_trial_name or trial_name(int(trial.config.get(OPTUNA_NUMBER, 0)), _point(trial.config),
                                                 trial.config.get(study_search.SEED))


def run_trial(config: dict, space: SweepSpace, sweep_dir: str, monitor: MonitorPayload | None,
              cpus_per_worker: float, nodes: list[dict[str, float]], cache: str | None,
              verbose: bool = False) -> None:
    """One trial, inside its Tune trial actor: its run trained there (one worker) or on a TorchTrainer (DDP), its
    reports reaching Tune (trainer.run_training), planned on the sweep's NODES with the sweep's CACHE."""
    from ray import tune

    from gansweep.run.faults import FINAL_ERRORS, RetryCannotHelp
    from gansweep.run.trainer import run_training

    point = _point(config)
    cfg = space.trial_config(point)
    if study_search.SEED in config:  # one of the point's seeds (space.seeds)
        cfg.train.seed = config[study_search.SEED]
    cfg.train.cpus_per_worker = cpus_per_worker
    cfg.data.cache_dir = cache
    name = tune.get_context().get_trial_name()
    log_dir = layout.trial_log_dir(sweep_dir, name)
    directory = layout.trial_dir(sweep_dir, name)
    if pbt.EXPLOIT_KEY in config:
        pbt.start_from_exploit(config, directory)
    failed = run_dir.read_failed_for_good(directory)
    if failed is not None:
        # Tune restarting a one-worker trial after an error no retry can help (a sweep restarts no failed trial
        # otherwise): it would only fail alike. Its error.txt keeps the error.
        raise RetryCannotHelp(failed)
    run_dir.clear_error(directory)
    try:
        run_training(cfg, directory, monitor=monitor, log_dir=log_dir, sweep_metrics=space.metrics, nodes=nodes,
                     verbose=verbose)
    except RayActorError:
        # A DDP trial's Ray Train controller died under it: what Tune stopping it (ASHA) looks like from here, so no
        # error.txt beside a stopped trial's checkpoints. Were it a failure, trials.json names Tune's error file.
        # (A one-worker trial stopped by Tune ends in SystemExit, which is no Exception.)
        raise
    except Exception as exc:
        # The error in one line for trials.json and the report; Tune keeps the traceback in its error file.
        run_dir.write_error(directory, exc)
        if isinstance(exc, FINAL_ERRORS):
            run_dir.mark_failed_for_good(directory, exc)
        raise


def _trial_resources(resources, cpus_per_worker: float) -> dict:
    """What a trial's Tune actor holds. A one-worker trial trains in it (trainer.run_training): its worker's CPUs
    and GPUs. A DDP trial's actor only drives its Ray Train run, and holds no CPU (Tune rejects a plain cpu: 0),
    so its workers get the cluster's CPUs."""
    if trains_in_trial_process(resources.workers):
        return {"cpu": cpus_per_worker, "gpu": resources.gpus_per_worker}
    return {"cpu": 0, "memory": 1}


def _trial_retries(resources) -> int:
    """Tune's restarts of a failed trial, from its newest checkpoint. A one-worker trial, whose process is its worker,
    gets the two restarts Ray Train gives a DDP run's lost workers (trainer._fit); a DDP trial's own error is final
    (Train has retried already)."""
    return 2 if trains_in_trial_process(resources.workers) else 0


def _storage_url(space: SweepSpace, sweep_dir: str) -> str:
    """The study's storage URL as the space gives it (a ${NAME} in it unresolved: sweep_dir.study_url resolves it)."""
    return space.search.storage or layout.default_storage(sweep_dir)


TABLE_RACE_ATTEMPTS = 10  # opening a study while other drivers make its database's tables (_open_study)


def _define_by_run(space: SweepSpace, trial) -> dict:
    space.define_by_run(trial)
    return {OPTUNA_NUMBER: trial.number}


def _seeds_of(space: SweepSpace, config: dict) -> list[int | None]:
    return space.seed_values(_point(config))


def _searcher(space: SweepSpace, sweep_dir: str):
    import optuna

    if schedulers.kind(space).population_based:  # Ray refuses a search algorithm beside PBT: Tune runs the population
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=[{**point, OPTUNA_NUMBER: number}
                                                         for number, point in enumerate(pbt.population(space))])
    multi = len(space.objectives) > 1  # Optuna's multi-objective study: TPE, GP and random sample it as they are
    return study_search.StudySearch(
        # A partial, not a closure: Tune pickles the searcher (and its space) into the experiment state.
        space=functools.partial(_define_by_run, space),
        metric=space.metrics if multi else space.metric,
        mode=[mode for _, mode in space.objectives] if multi else space.mode,
        sampler=samplers.sampler(space.search),
        storage=optuna.storages.RDBStorage(study_search.STUDY_URLS[sweep_dir]),
        study_name=space.study_name,
        points_to_evaluate=space.grid() if space.search.algorithm == "grid" else None,
        sweep_dir=sweep_dir,
        steps=space.base_config().train.steps,
        seeds_of=functools.partial(_seeds_of, space),
    )


class TrialsRecord(Callback):
    """A Tune callback, in the sweep's driver: keeps trials.json current as trials start, report and end, and says so
    on the console (sweep/console.py), a line per event."""

    def __init__(self, sweep_dir: str, metric: str, base_seed: int = 0, params: tuple = ()):
        self.sweep_dir, self.metric = sweep_dir, metric
        self.params = params  # the space's, for the HParams session each trial's TensorBoard run gets at its end
        self.base_seed = base_seed  # a trial's train.seed where neither its point nor the sweep's seeds set it
        self.trials: dict[str, dict] = {}

    def setup(self, **info):
        # Here, not in __init__: a resumed sweep runs the callback pickled when the sweep began, and must
        # start from the trials recorded since.
        self.trials = {entry["name"]: entry for entry in layout.read_trials(self.sweep_dir) or []}
        self.printed: dict[str, int] = {}  # each trial's last evaluation step printed

    def _entry(self, trial) -> dict:
        name = _trial_name_of(trial)
        if name not in self.trials:
            number, point = int(trial.config.get(OPTUNA_NUMBER, 0)), _point(trial.config)
            seed = trial.config.get(study_search.SEED, point.get("train.seed", self.base_seed))
            self.trials[name] = layout.new_trial_entry(name, number, point, seed=seed,
                                                       group=trial_name(number, point))
        return self.trials[name]

    @staticmethod
    def _ended(entry: dict) -> None:
        """The trial's wall time, start to end as the sweep's driver saw it (from its last start, if resumed)."""
        if entry.get("started_unix"):
            entry["wall_s"] = time.time() - entry["started_unix"]

    def _write(self) -> None:
        layout.write_trials(self.sweep_dir, list(self.trials.values()))

    def _hparams(self, entry: dict) -> None:
        """The ended trial's row of TensorBoard's HParams table: the point it started from (a PBT clone's later ones
        are its lineage in trials.json and the report) and how it ended."""
        write_trial_hparams(layout.trial_log_dir(self.sweep_dir, entry["name"]), entry["name"], entry["params"],
                            layout.status_text(entry), list(self.params), self.metric)

    def on_trial_start(self, iteration, trials, trial, **info):
        entry = self._entry(trial)
        exploit = trial.config.get(pbt.EXPLOIT_KEY)
        lineage = entry.setdefault("lineage", [])
        # A PBT clone's restart: its wall time runs on from its first start, and its lineage grows by the exploit.
        restarted = exploit is not None and entry["status"] == layout.RUNNING
        if exploit is not None and all(step["number"] != exploit["number"] for step in lineage):
            lineage.append({"number": exploit["number"], "step": exploit["step"], "donor": exploit["donor"],
                            "params": _point(trial.config)})
        if entry["status"] != layout.RUNNING:  # (a PBT clone's restart, a retry after a failure: no new start)
            console.started(entry)
        entry.update(status=layout.RUNNING, error=None, value=None, stopped_at_step=None)
        if not (restarted and entry.get("started_unix")):
            entry["started_unix"] = time.time()
        self._write()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        entry = self._entry(trial)
        metrics = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and k in _REPORTED}
        entry["metrics"] = metrics
        self._write()
        # A line per new cheap evaluation (the reports between carry the last one again).
        evaluated = metrics.get(figures.STEP)
        if evaluated is not None and self.metric in metrics and self.printed.get(entry["name"]) != evaluated:
            self.printed[entry["name"]] = evaluated
            console.evaluated(entry, self.metric, metrics)

    def on_trial_complete(self, iteration, trials, trial, **info):
        entry = self._entry(trial)
        # run_training writes result.json once the run has trained all its steps (and evaluated): a trial
        # without one was stopped early by the scheduler.
        result = run_dir.read_result(layout.trial_dir(self.sweep_dir, entry["name"]))
        entry["status"] = layout.FINISHED if result is not None else layout.STOPPED
        self._ended(entry)
        if result is not None:
            entry["full_evaluation"] = result.get("evaluation")
        else:
            entry["stopped_at_step"] = entry["metrics"].get("step")
        entry["value"] = layout.trial_value(entry, self.metric)
        self._write()
        self._hparams(entry)
        console.ended(entry, self.metric)

    def on_trial_recover(self, iteration, trials, trial, **info):
        console.restarting(self._entry(trial), trial.error_file)

    def on_trial_error(self, iteration, trials, trial, **info):
        entry = self._entry(trial)
        entry["status"] = layout.FAILED
        self._ended(entry)
        error = run_dir.read_error(layout.trial_dir(self.sweep_dir, entry["name"]))
        entry["error"] = error or f"failed; see Tune's error file {trial.error_file}"
        self._write()
        self._hparams(entry)
        console.ended(entry, self.metric, trial.error_file)


_REPORTED = ("step", *figures.REPORTED, "loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "data_wait_frac",
             "train_loop_s")


# What --resume holds to the sweep a directory started: Tune keeps the searcher, scheduler, metric and sample count
# it began with, and the study its trials' values, so a change to any would mix results or be silently ignored.
RESUME_KEYS = ("space", "fixed", "exclude", "metric", "mode", "objectives", "search", "seed", "scheduler",
               "num_samples", "study_name", "storage", "seeds", "startup_trials")


def _prepare_output(space: SweepSpace, sweep_dir: str, resume: bool) -> None:
    """A new sweep claims a directory that holds none (sweep.json); --resume needs the one a sweep started, with
    the same definition (RESUME_KEYS)."""
    shown = storage.display(sweep_dir)
    has_study = not schedulers.kind(space).population_based  # a PBT population is Tune's own
    record = layout.sweep_record(space, _storage_url(space, sweep_dir) if has_study else None)
    if not resume:
        try:
            layout.claim(sweep_dir, record)
        except layout.SweepDirError as exc:
            raise SweepError(str(exc)) from None
        return
    if not layout.has_sweep_record(sweep_dir) or not storage.is_dir(storage.join(sweep_dir, layout.TUNE_DIR)):
        raise SweepError(f"--resume: {shown} holds no sweep to resume (no {layout.SWEEP_FILE} or "
                         f"{layout.TUNE_DIR}/)")
    previous = layout.read_sweep_record(sweep_dir)
    changed = [key for key in RESUME_KEYS if key in previous and previous[key] != record[key]]
    if changed:
        raise SweepError(f"--resume: {space.path} changes {', '.join(changed)} from the sweep {shown} started "
                         f"with (see its {layout.SWEEP_FILE}): its results would mix with the new ones, or the "
                         "change be ignored; start a new sweep with another --output")


def _open_study(template: str, sweep_dir: str) -> None:
    """The study's storage connected to before Ray starts (a wrong password or an unreachable server is one message,
    its URL masked), and its resolved URL kept for the searcher (study_search.STUDY_URLS). On object storage the local
    SQLite study is first fetched from the bucket."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    try:
        url = layout.study_url(template)
    except layout.SweepDirError as exc:
        raise SweepError(str(exc)) from None
    layout.ready_local_study(sweep_dir, url)
    try:
        for attempt in range(TABLE_RACE_ATTEMPTS):
            try:
                optuna.storages.RDBStorage(url)
                break
            except (IntegrityError, ProgrammingError):
                # Another driver making the study's tables in the same instant ("duplicate key", "already exists"):
                # once it is done they are there.
                if attempt == TABLE_RACE_ATTEMPTS - 1:
                    raise
    except SQLAlchemyError as exc:
        reason = layout.redacted(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0], url)
        raise SweepError(f"search.storage {layout.masked_url(template)}: cannot open the study there: {reason}") \
            from None
    study_search.STUDY_URLS[sweep_dir] = url


def run_sweep(space: SweepSpace, output: str | Path, resume: bool = False, verbose: bool = False) -> dict | None:
    """Run (or resume) the sweep into OUTPUT; returns the best point's first trial's entry of trials.json (None: no
    trial finished with a value). VERBOSE: the trials' own output (with Ray Train's INFO lines: run_training) and
    Tune's table too; by default the console has gansweep's lines, one per event (sweep/console.py)."""
    sweep_dir = storage.check_writable(output, "--output")  # a local folder, or one on object storage
    _prepare_output(space, sweep_dir, resume)
    try:
        wall = _tune(space, sweep_dir, resume, verbose)
    except BaseException:
        if not resume:  # stopped before Tune began: the directory is free to start again
            layout.release(sweep_dir)
        raise
    return _summarise(space, sweep_dir, wall)


def _tune(space: SweepSpace, sweep_dir: str, resume: bool, verbose: bool) -> float:
    """The sweep on Ray Tune, from its checks before Ray to its end; returns its wall time."""
    import ray
    from ray import tune

    from gansweep.run.trainer import init_ray

    base = space.base_config()
    shape = ready_for_cluster(base.data, sweep_dir)  # joining a cluster of several nodes: a cache they all read
    storage.check_writable(cache.root(base.data.cache_dir), "the cache (GANSWEEP_CACHE or data.cache_dir)")
    population_based = schedulers.kind(space).population_based
    if not population_based:  # a PBT sweep has no Optuna study (its population is Tune's own)
        _open_study(_storage_url(space, sweep_dir), sweep_dir)
    # Before Ray: the classifier (trained once, cached) and the reference statistics, shared by every trial.
    monitor = prepare_monitor(base)
    # What Ray holds and saves of the space names no storage: the URL may hold a password (study_search.STUDY_URLS).
    space = dataclasses.replace(space, search=dataclasses.replace(space.search, storage=None))

    started_ray = init_ray(log_to_driver=verbose)  # the trials' own lines: TrialsRecord says what they report
    try:
        # resources.cluster: one node of those figures to plan for instead
        nodes = [space.resources.cluster] if space.resources.cluster else (shape or cluster_shape()).nodes
        cpus_per_worker, concurrent = plan_resources(space, nodes)
        check_population(space, concurrent)
        seeds = f" ({space.num_samples} points x {space.seeds} seeds)" if space.seeds > 1 else ""
        console.say(f"sweep {space.name}: {space.trial_count()} trials{seeds}, {concurrent} at a time, "
                    f"{space.resources.workers} worker(s) x {cpus_per_worker:g} CPU"
                    + (f" + {space.resources.gpus_per_worker:g} GPU" if space.resources.gpus_per_worker else "")
                    + f" each -> {storage.display(sweep_dir)}")
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, space=space, sweep_dir=sweep_dir, monitor=monitor,
                                 cpus_per_worker=cpus_per_worker, nodes=nodes, cache=base.data.cache_dir,
                                 verbose=verbose),
            _trial_resources(space.resources, cpus_per_worker),
        )
        storage_path, storage_filesystem = storage.ray_storage(sweep_dir)
        run_config = tune.RunConfig(
            name=layout.TUNE_DIR,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            callbacks=[TrialsRecord(sweep_dir, space.metric, base.train.seed, tuple(space.params))],
            failure_config=tune.FailureConfig(max_failures=_trial_retries(space.resources)),
            verbose=1 if verbose else 0,  # Tune's table every 30 s and its boxes: the console's own lines say it all
        )
        if resume:
            tuner = tune.Tuner.restore(f"{storage_path}/{layout.TUNE_DIR}", trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False,
                                       storage_filesystem=storage_filesystem)
        else:
            tuner = tune.Tuner(
                trainable,
                # PBT's population is given point by point (_searcher), and Tune takes only the keys it names here.
                param_space={key: None for key in [OPTUNA_NUMBER, *(p.key for p in space.params)]}
                if population_based else None,
                tune_config=tune.TuneConfig(
                    search_alg=_searcher(space, sweep_dir),
                    scheduler=schedulers.kind(space).build(space, sweep_dir, _trial_name_of, (OPTUNA_NUMBER,)),
                    metric=space.metric,
                    mode=space.mode,
                    num_samples=space.trial_count(),  # a trial per point and seed
                    max_concurrent_trials=concurrent,
                    trial_name_creator=_trial_name_of,
                    trial_dirname_creator=_trial_name_of,
                ),
                run_config=run_config,
            )
        if not verbose:
            # Tune's newer console prints its configuration and paths even at verbose=0, its older one nothing; and a
            # failed trial's traceback is in Tune's error file, which TrialsRecord's line names.
            os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
            os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
            logging.getLogger("ray.tune.tune").setLevel(logging.WARNING)  # "Wrote the latest version of all result.."
        start = time.time()
        tuner.fit()
        return time.time() - start
    finally:
        if started_ray:
            ray.shutdown()


def _summarise(space: SweepSpace, sweep_dir: str, wall: float) -> dict | None:
    """The sweep's end on the console: its counts, a table of its trials, its best trial or Pareto front, where to
    look next; returns the best point's first trial's entry of trials.json (None: no point has a value)."""
    trials = layout.read_trials(sweep_dir) or []
    counts = {status: sum(t["status"] == status for t in trials)
              for status in (layout.FINISHED, layout.STOPPED, layout.FAILED)}
    stopped = ", ".join(t["name"] for t in trials if t["status"] == layout.STOPPED)
    console.say(f"sweep done in {wall / 60:.1f} min: {counts[layout.FINISHED]} finished, {counts[layout.STOPPED]} "
                f"stopped early by the scheduler{f' ({stopped})' if stopped else ''}, {counts[layout.FAILED]} failed")
    console.table(trials, space.metric)
    best = layout.best_point(trials, space.mode)
    if len(space.objectives) > 1:
        front = layout.pareto_front(trials, space.objectives)
        console.say(f"Pareto front ({' and '.join(space.metrics)}, last reported values): {len(front)} trial(s)")
        for trial in front:
            values = ", ".join(f"{metric}={trial['metrics'][metric]:.3f}" for metric in space.metrics)
            console.say(f"  {trial['name']}: {values}")
    else:
        console.best(trials, space.metric, space.mode)
    shown = storage.display(sweep_dir)
    command, address = tensorboard_lines(sweep_dir, layout.read_sweep_record(sweep_dir))
    console.say(f"compare the trials: {command}, {address}")
    console.say(f"table and plots: gansweep report {shown}")
    return None if best is None else best[0][0]
