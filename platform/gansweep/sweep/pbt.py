"""Population-based training (scheduler: {name: pbt}, or pb2): Ray Tune's PBT (or PB2, whose explore step is a
Gaussian-process bandit over the keys' ranges instead of random scaling), with checkpoints it can clone.

Tune holds no checkpoint of a trial here (a one-worker trial writes its run's checkpoints itself; Ray Train V2 under
Tune forwards only their path, as a metric), so Tune's own PBT finds nothing to clone ("no checkpoint for trial
...") and never exploits. Here, when a trial in the bottom quantile exploits one in the top quantile, the donor's
newest checkpoint is copied into the clone's trial directory (a run keeps only its two newest, and no trial deletes
this copy), the clone takes the donor's
config with the continuous keys perturbed, and the copy's location in its config (EXPLOIT_KEY). When Tune restarts
the clone, `start_from_exploit` makes that copy its run's starting point: the donor's nets, optimiser moments and
step, its own random streams, the new learning rates (gan.runtime.Keyed keeps the config's optimiser settings).

A PBT space is checked before Ray starts (check_search, check: what sweep/schedulers.py runs for pbt and pb2): one
metric, a random population, decisions at steps with a fresh figure and a checkpoint, continuous keys to perturb.
"""

from __future__ import annotations

import random

from gansweep import storage
from gansweep.config.schema import Config
from gansweep.run import run_dir
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.space import Param, Search, SpaceError, SweepSpace

EXPLOIT_KEY = "pbt_exploit"  # in a Tune trial's config: its last exploit {number, donor, step, checkpoint}
EXPLOITS_DIR = "pbt_exploits"  # in a trial directory: the donor's checkpoint of each exploit, copied
EXPLOIT_CHECKPOINT = "checkpoint_exploit_{number}"  # in the run's checkpoints/: where its run restarts from


def check_search(raw: dict, search: Search, objectives: list, where: str) -> None:
    """PBT's population is drawn at random: Ray refuses a search algorithm beside it (TPE would have no results to
    learn from before the population starts anyway), and it ranks trials on one metric."""
    if len(objectives) > 1:
        raise SpaceError(f"{where}: scheduler: pbt clones the best trials on one metric, and this sweep has two; "
                         "use one metric, or scheduler: {name: fifo}")
    if "algorithm" not in (raw.get("search") or {}):
        search.algorithm = "random"
    elif search.algorithm != "random":
        raise SpaceError(f"{where}: search.algorithm: {search.algorithm} cannot drive pbt (Ray runs PBT without a "
                         "search algorithm; its population is drawn at random): use search: {algorithm: random}")


def pbt_keys(space: SweepSpace) -> list[Param]:
    """The keys PBT perturbs: the continuous ones (a choice or an integer key, inherited from the trial cloned, may
    change the nets its checkpoint holds)."""
    return [p for p in space.params if p.kind in ("uniform", "loguniform")]


def check(space: SweepSpace, base: Config, where: str) -> None:
    """A population that exploits at checkpoints it can clone, on a fresh metric, with something to perturb."""
    pbt, steps = space.scheduler, base.train.steps
    interval = pbt.perturbation_interval
    if interval is None:
        raise SpaceError(f"{where}: scheduler.perturbation_interval: pbt needs the steps between its decisions "
                         f"(a multiple of eval.every={base.eval.every} and train.checkpoint_every="
                         f"{base.train.checkpoint_every})")
    if interval <= 0 or interval >= steps:
        raise SpaceError(f"{where}: scheduler.perturbation_interval: {interval} must be between 1 and train.steps="
                         f"{steps} (excluded)")
    for key, every in (("eval.every", base.eval.every), ("train.checkpoint_every", base.train.checkpoint_every)):
        if any(p.key == key for p in space.params):
            raise SpaceError(f"{where}: space.{key}: pbt needs one {key} for every trial; set it in fixed:")
        if interval % every:
            raise SpaceError(f"{where}: scheduler.perturbation_interval: {interval} is not a multiple of {key}="
                             f"{every}: each decision needs a fresh {space.metric} and a checkpoint to clone")
    if not 0 < pbt.quantile_fraction <= 0.5:
        raise SpaceError(f"{where}: scheduler.quantile_fraction: must be in (0, 0.5], got {pbt.quantile_fraction}")
    if not 0 <= pbt.resample_probability <= 1:
        raise SpaceError(f"{where}: scheduler.resample_probability: must be in [0, 1], got "
                         f"{pbt.resample_probability}")
    if space.num_samples < 2:
        raise SpaceError(f"{where}: num_samples: pbt needs a population of at least 2 trials")
    conditional = [p.key for p in space.params if p.when]
    if conditional:  # Tune's population has one set of keys; a clone takes its donor's, all of them
        raise SpaceError(f"{where}: space.{conditional[0]}.when: pbt trials all have the same keys; drop the "
                         "condition, or use scheduler asha or fifo")
    if not pbt_keys(space):
        raise SpaceError(f"{where}: space: pbt perturbs the continuous keys (uniform, loguniform), and this space "
                         "has none")


def population(space: SweepSpace) -> list[dict]:
    """The initial points of the population: the space sampled at random (search.seed), by the define-by-run
    space Optuna samples in the other sweeps (with its steps and integer keys). Tune runs them as they are: its
    points_to_evaluate, with a param_space naming their keys (runner)."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" line on the console
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=space.search.seed))
    finally:
        optuna.logging.set_verbosity(verbosity)
    points = []
    for _ in range(space.num_samples):
        trial = study.ask()
        space.define_by_run(trial)
        points.append(dict(trial.params))
    return points


def scheduler(space: SweepSpace, sweep_dir: str, name_of, own_keys: tuple[str, ...]):
    """Tune's scheduler for SPACE: NAME_OF names a Tune trial as its directory is named; OWN_KEYS are config keys a
    clone keeps (its trial number) rather than taking the donor's. Metric and mode come from Tune's config."""
    import ray.tune
    from ray.train._internal.checkpoint_manager import _TrainingResult
    from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
    from ray.tune.schedulers.pb2 import PB2

    keys = pbt_keys(space)
    domains = {p.key: (ray.tune.loguniform if p.kind == "loguniform" else ray.tune.uniform)(p.low, p.high)
               for p in keys}
    bounds = {p.key: (p.low, p.high) for p in keys}
    last_step = space.base_config().train.steps

    pbt = space.scheduler
    if pbt.name == "pb2":
        base, explore = PB2, {"hyperparam_bounds": {key: list(bound) for key, bound in bounds.items()}}
    else:
        base, explore = PopulationBasedTraining, {"hyperparam_mutations": domains,
                                                  "resample_probability": pbt.resample_probability}

    class SweepPBT(base):
        def on_trial_result(self, tune_controller, trial, result):
            if result.get("step", 0) >= last_step:
                return TrialScheduler.CONTINUE  # its last report: the run evaluates and ends, nothing to exploit
            decision = super().on_trial_result(tune_controller, trial, result)
            # PBT pauses a trial at its decision while others wait their turn; the whole population runs at once
            # here (runner checks it), so a pause would only restart the trial from its own checkpoint.
            return TrialScheduler.CONTINUE if decision == TrialScheduler.PAUSE else decision

        def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile):
            # Tune's version asks the top trials to save a Tune checkpoint, which they never have: the donor's own
            # newest checkpoint is copied at the exploit instead.
            if trial in lower_quantile:
                self._exploit(tune_controller, trial, random.choice(upper_quantile))

        def _get_new_config(self, trial, trial_to_clone):
            config, operations = super()._get_new_config(trial, trial_to_clone)
            for key, (low, high) in bounds.items():  # x1.2 may leave the space's range: back to its edge
                config[key] = min(max(config[key], low), high)
            for key in own_keys:
                config[key] = trial.config[key]
            return config, operations

        def _exploit(self, tune_controller, trial, trial_to_clone):
            source = run_dir.latest_checkpoint(layout.trial_dir(sweep_dir, name_of(trial_to_clone)))
            if source is None:
                return  # the donor's first checkpoint is not written yet: this trial goes on as it is
            number = int((trial.config.get(EXPLOIT_KEY) or {}).get("number", 0)) + 1
            exploits = storage.join(layout.trial_dir(sweep_dir, name_of(trial)), EXPLOITS_DIR)
            storage.delete_folder(exploits)  # the previous exploit's copy: its run has gone on since
            copy = storage.join(exploits, str(number))
            run_dir.copy_checkpoint(source, copy, keep_streams=False)
            super()._exploit(tune_controller, trial, trial_to_clone)  # pauses the trial, sets its new config
            trial.set_config({**trial.config, EXPLOIT_KEY: {
                "number": number, "donor": name_of(trial_to_clone), "step": run_dir.checkpoint_step(copy),
                "checkpoint": copy,
            }})
            # What Tune restores the clone from, now and at any later restart: the copy, which stays.
            path, filesystem = storage.ray_storage(copy)
            trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
                checkpoint=ray.tune.Checkpoint(path, filesystem), metrics=self._trial_state[trial_to_clone].last_result)
            print(f"[gansweep] pbt: {name_of(trial)} restarts from {name_of(trial_to_clone)}'s checkpoint at step "
                  f"{run_dir.checkpoint_step(copy)}: " + ", ".join(
                      f"{key}={trial.config[key]:.3g}" for key in bounds), flush=True)

    return SweepPBT(
        time_attr="step",
        perturbation_interval=pbt.perturbation_interval,
        quantile_fraction=pbt.quantile_fraction,
        log_config=False,  # the lineage is in trials.json (runner.TrialsRecord)
        **explore,
    )


def start_from_exploit(config: dict, trial_directory: str) -> None:
    """Before a trial's run starts: if its config names an exploit its run has not taken yet, the run's own
    checkpoints (and, on Ray Train, its record of them) make way for the donor's, which it then resumes from. A restart
    after that (Tune's, or a resumed sweep's) finds the exploit's checkpoint there, and resumes its own newest."""
    exploit = config.get(EXPLOIT_KEY)
    if exploit is None:
        return
    checkpoints = storage.join(trial_directory, run_dir.CHECKPOINTS_DIR)
    start = storage.join(checkpoints, EXPLOIT_CHECKPOINT.format(number=exploit["number"]))
    if run_dir.checkpoint_step(start) is not None:
        return  # taken already: the run goes on from its own checkpoints
    storage.delete_folder(checkpoints)
    run_dir.copy_checkpoint(exploit["checkpoint"], start)
