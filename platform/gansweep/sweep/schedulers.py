"""The schedulers a space may name (scheduler: {name: ...}), by name: what builds each for Tune and what checks its
settings. A new scheduler is an entry here (and its settings' fields on space.Scheduler, if it has new ones)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gansweep.config.schema import Config
from gansweep.sweep import pbt
from gansweep.sweep.space import Search, SpaceError, SweepSpace


def _no_check(*args) -> None:
    pass


@dataclass(frozen=True)
class SchedulerKind:
    # (space, sweep_dir, name_of, own_keys) -> Tune's scheduler; NAME_OF names a Tune trial as its directory is named,
    # OWN_KEYS are config keys a trial keeps if the scheduler changes its config (its Optuna number)
    build: Callable[[SweepSpace, str, Callable, tuple[str, ...]], Any]
    # (raw space file, search, objectives, where): the search and objectives it can run with, before the space is
    # built (it may choose the search's default)
    check_search: Callable[[dict, Search, list, str], None] = _no_check
    # (space, the trials' base config, where): its settings against the trials, once they are checked
    check: Callable[[SweepSpace, Config, str], None] = _no_check
    population_based: bool = False  # Tune's population (sweep/pbt.py), no Optuna study
    refuses_seeds: str = ""  # why it cannot run a space of several seeds per point ("": it can)


def _fifo(space: SweepSpace, sweep_dir: str, name_of: Callable, own_keys: tuple[str, ...]):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def _asha(space: SweepSpace, sweep_dir: str, name_of: Callable, own_keys: tuple[str, ...]):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="step",
        # One below the last step: ASHA puts no rung at train.steps, so it never stops a trial at its very end,
        # between the last report and the full evaluation.
        max_t=space.base_config().train.steps - 1,
        grace_period=space.scheduler.grace_period,
        reduction_factor=space.scheduler.reduction_factor,
        stop_last_trials=False,  # a trial past max_t ends by itself
    )


def _check_asha_search(raw: dict, search: Search, objectives: list, where: str) -> None:
    if len(objectives) > 1:
        raise SpaceError(f"{where}: scheduler: asha stops trials on one metric, and this sweep has two "
                         f"({', '.join(m for m, _ in objectives)}); use scheduler: {{name: fifo}} (the default "
                         "with two metrics)")


def _check_asha(space: SweepSpace, base: Config, where: str) -> None:
    """The first rung after the metric's first figure and before the last step (grace_period defaults to the
    first)."""
    every = base.eval.every
    grace = space.scheduler.grace_period
    if grace is None:
        space.scheduler.grace_period = grace = every
    if grace < every:
        raise SpaceError(f"{where}: scheduler.grace_period: {grace} steps is before the first {space.metric} "
                         f"(eval.every={every}); ASHA would compare trials that have no figure yet")
    if grace >= base.train.steps:
        raise SpaceError(f"{where}: scheduler.grace_period: {grace} must be below train.steps={base.train.steps}")
    if space.scheduler.reduction_factor <= 1 or math.isnan(space.scheduler.reduction_factor):
        raise SpaceError(f"{where}: scheduler.reduction_factor: must be > 1")


_PBT = SchedulerKind(pbt.scheduler, pbt.check_search, pbt.check, population_based=True,
                     refuses_seeds="a population has no points to repeat, and a clone takes its donor's seed")
SCHEDULERS = {
    "asha": SchedulerKind(_asha, _check_asha_search, _check_asha,
                          refuses_seeds="ASHA stops each seed's trial on its own figure, so a point's mean would be "
                                        "over the seeds that survived, and a point would be judged before its seeds "
                                        "all reported"),
    "fifo": SchedulerKind(_fifo),
    "pbt": _PBT,
    "pb2": _PBT,  # PBT whose explore step is a Gaussian-process bandit (pbt.scheduler tells them apart)
}


def kind(space: SweepSpace) -> SchedulerKind:
    """SPACE's scheduler (its name checked when the space was read)."""
    return SCHEDULERS[space.scheduler.name]
