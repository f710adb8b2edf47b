"""The checks a search space passes before Ray starts, past its file's syntax (sweep/space_file.py): its Optuna
storage opens here, its counts and resources are sound, and every trial it may sample makes a valid config that fits
its data."""

from __future__ import annotations

import itertools
from typing import Any

from gansweep.config.checks import check_shapes, validate
from gansweep.config.errors import ConfigError, quoted
from gansweep.data.source_base import DataSourceError, SourceInfo
from gansweep.data.sources import describe_source
from gansweep.evaluation.inception import check_installed
from gansweep.run.plan import check_gpu_layout
from gansweep.sweep.space import Resources, SpaceError, SweepSpace, grid_points

MAX_CHECKED_COMBINATIONS = 512  # choice combinations validated before Ray starts

# The pip package of a database driver SQLAlchemy names by its module (psycopg, postgresql://'s, is a dependency).
DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]", "MySQLdb": "mysqlclient",
                   "pymysql": "pymysql"}


def check_storage(url: str | None, where: str) -> None:
    """search.storage must be a database URL SQLAlchemy (so Optuna's RDB storage) can open here: a known database
    whose driver is installed. Checked before Ray starts; the URL is never echoed (it may hold a password)."""
    if url is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    place = f"{where}: search.storage"
    example = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or sqlite:///PATH"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SpaceError(f"{place}: not a database URL; expected one such as {example}") from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        hint = " (write postgresql://)" if parsed.drivername.split("+")[0] == "postgres" else ""
        raise SpaceError(f"{place}: unknown database '{parsed.drivername}'{hint}; expected a URL such as "
                         f"{example}") from None
    try:
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except ImportError as exc:
        module = (exc.name or "").split(".")[0]
        package = DRIVER_PACKAGES.get(module, module or "its driver")
        raise SpaceError(f"{place}: {parsed.drivername}'s driver is not installed ({exc}): pip install "
                         f"{package}") from None


def check_counts(space: SweepSpace, raw: dict, where: str) -> None:
    """num_samples (a grid search's: its size) set on SPACE, and max_concurrent_trials, as RAW gives them."""
    num_samples = raw.get("num_samples")
    if space.search.algorithm == "grid":
        not_choice = [p.key for p in space.params if p.kind != "choice"]
        if not_choice:
            raise SpaceError(f"{where}: space.{not_choice[0]}: a grid search samples choice keys only")
        size = len(space.grid())
        if num_samples is not None and num_samples != size:
            raise SpaceError(f"{where}: num_samples: the grid has {size} points; leave num_samples out or set {size}")
        num_samples = size
    if num_samples is None:
        raise SpaceError(f"{where}: num_samples: how many trials to run (required unless search.algorithm is grid)")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise SpaceError(f"{where}: num_samples: must be an integer >= 1, got {quoted(num_samples)}")
    space.num_samples = num_samples
    limit = space.max_concurrent_trials
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpaceError(f"{where}: max_concurrent_trials: must be an integer >= 1, got {quoted(limit)}")


def check_resources(resources: Resources, where: str) -> None:
    if resources.workers < 1:
        raise SpaceError(f"{where}: resources.workers: must be >= 1")
    if resources.gpus_per_worker < 0:
        raise SpaceError(f"{where}: resources.gpus_per_worker: must be >= 0")
    if resources.cpus_per_worker is not None and resources.cpus_per_worker <= 0:
        raise SpaceError(f"{where}: resources.cpus_per_worker: must be > 0")
    if resources.gpus_per_worker > 0:
        try:  # the layout DDP refuses, named before Ray starts rather than when the first trial places its ranks
            check_gpu_layout(resources.workers, resources.gpus_per_worker, "resources")
        except ConfigError as exc:
            raise SpaceError(f"{where}: {exc}") from None


def _trial_error(space: SweepSpace, point: dict[str, Any], sources: dict[tuple, SourceInfo]) -> str | None:
    """Why the trial at POINT cannot run (its config is invalid, or does not fit its data), or None. The data are
    described, not loaded, once per data settings in SOURCES (data.limit may be sampled); a source that cannot be
    described raises DataSourceError: no trial could run."""
    try:
        cfg = space.trial_config(point)
        data = cfg.data
        settings = (data.name, data.root, data.image_size, data.limit, data.holdout)
        if settings not in sources:
            sources[settings] = describe_source(*settings)
        source = sources[settings]
        check_shapes(cfg, validate(cfg), source.clean_shape, source.num_classes, source.n_images,
                     unlabelled=source.unlabelled)
        check_installed(cfg.eval.features, cfg.eval.n_samples)
    except ConfigError as exc:
        return str(exc)
    return None


def check_trials(space: SweepSpace, where: str) -> None:
    """Every combination of choices (numbers at both ends of their ranges) must make a valid config that fits its
    data, and the metric must be reported while the trials train (the scheduler's own checks: sweep/schedulers.py)."""
    sources: dict[tuple, SourceInfo] = {}
    try:
        # The fixed keys alone may be invalid only for lack of a sampled key (hidden.inject_at fixed,
        # hidden.measurement.name sampled): the trials below tell.
        base_error = _trial_error(space, {}, sources)
        choice_points = itertools.islice(grid_points([p for p in space.params if p.kind == "choice"], space.exclude),
                                         MAX_CHECKED_COMBINATIONS)
        for point in choice_points:
            for end in ("low", "high"):
                trial = dict(point)
                for param in space.params:
                    if param.kind != "choice" and param.active(trial):
                        trial[param.key] = getattr(param, end)
                error = _trial_error(space, trial, sources)
                if error is None:
                    continue
                if error == base_error:
                    raise SpaceError(f"{where}: fixed: {error}")
                shown = ", ".join(f"{k}={quoted(v)}" for k, v in trial.items())
                raise SpaceError(f"{where}: space: the trial {{{shown}}} is invalid: {error}")
    except DataSourceError as exc:
        raise SpaceError(f"{where}: data: {exc}") from None
    if space.base_config().eval.every == 0:
        raise SpaceError(f"{where}: fixed: eval.every is 0, but the sweep's metric {space.metric} comes from the "
                         "cheap evaluation during training; set eval.every")
