"""The search algorithms a space may name (search: {algorithm: ...}), by name: the Optuna sampler each builds, seeded
by search.seed, and what each refuses before Ray starts. A new algorithm is an entry here."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

from gansweep.sweep.space import Param, Search, SpaceError


def _no_check(*args) -> None:
    pass


@dataclass(frozen=True)
class Algorithm:
    build: Callable[[Search], object]  # search settings -> its optuna.samplers.BaseSampler
    # (the space's params, its objectives, where): refuses (SpaceError) a space the sampler cannot search
    check: Callable[[list[Param], list, str], None] = _no_check


def _startup(search: Search, default: int) -> int:
    return default if search.startup_trials is None else search.startup_trials


def _tpe(search: Search):
    import optuna

    # multivariate + group: TPE models the conditional keys within the branch that has them. Both are "experimental"
    # in Optuna and say so at every sweep; chosen knowingly, so not repeated to the user.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=search.seed, multivariate=True, group=True,
                                          n_startup_trials=_startup(search, 10))


def _random(search: Search):
    import optuna

    return optuna.samplers.RandomSampler(seed=search.seed)  # grid: every point is enqueued by the searcher


def _gp(search: Search):
    import optuna

    # GP models numbers and choices alike (and two objectives, by expected hypervolume improvement); a conditional key
    # outside the keys every trial has is drawn at random, which Optuna would announce at every trial: it is said in
    # the README instead.
    return optuna.samplers.GPSampler(seed=search.seed, n_startup_trials=_startup(search, 10),
                                     warn_independent_sampling=False)


def _cmaes(search: Search):
    import optuna

    # with_margin: CMA-ES with margin (Hamano et al. 2022) keeps integer and stepped keys from collapsing onto one
    # value; "experimental" in Optuna, chosen knowingly (as TPE's options). Choices are drawn at random by its
    # independent sampler, seeded alike (_check_cmaes warns of it once).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.CmaEsSampler(seed=search.seed, with_margin=True, n_startup_trials=_startup(search, 0),
                                            warn_independent_sampling=False)


def _check_cmaes(params: list[Param], objectives: list, where: str) -> None:
    """CMA-ES moves a Gaussian over the numeric keys: with none it has nothing to search, and it is single-objective
    (Optuna raises at the first trial otherwise). Choices beside numbers are sampled at random: said once here."""
    if len(objectives) > 1:
        raise SpaceError(f"{where}: search.algorithm: cmaes optimises one metric, and this sweep has two "
                         f"({', '.join(m for m, _ in objectives)}); use tpe, gp or random")
    numeric = [p.key for p in params if p.kind != "choice"]
    if not numeric:
        raise SpaceError(f"{where}: search.algorithm: cmaes searches numeric keys (uniform, loguniform, int), and "
                         "this space has only choices, which it would draw at random; use tpe, gp or grid")
    choices = [p.key for p in params if p.kind == "choice"]
    if choices:
        warnings.warn(f"{where}: search.algorithm cmaes searches {', '.join(numeric)}; it draws "
                      f"{', '.join(choices)} at random (CMA-ES has no model of choices)", stacklevel=2)


ALGORITHMS = {
    "tpe": Algorithm(_tpe),
    "random": Algorithm(_random),
    "grid": Algorithm(_random),  # choice keys only: space_checks.check_counts
    "gp": Algorithm(_gp),
    "cmaes": Algorithm(_cmaes, _check_cmaes),
}


def sampler(search: Search):
    """The Optuna sampler of SEARCH (its algorithm checked when the space was read)."""
    return ALGORITHMS[search.algorithm].build(search)
