"""The search-space file of a sweep: what is fixed, what is sampled and how, and how the trials run.

A space file is YAML (read with ``yaml.safe_load``)::

    name: ambient_block_pixel           # the study's name (default: the file's stem)
    metric: fid                         # reported by every trial from its first cheap evaluation; or a list of
    mode: min                           # two, [fid, classifier_score], for a multi-objective search (fifo)
    num_samples: 12                     # trials (a grid search makes exactly one per grid point)
    max_concurrent_trials: 2            # optional; default: as many as the cluster's resources fit
    fixed:                              # config keys, dotted or nested, for every trial
      train.steps: 1200
    space:                              # config keys sampled per trial
      measurement.p: {uniform: [0.1, 0.9]}
      train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}
      measurement.name: {choice: [block_pixel, block_patch]}
      measurement.patch: {int: [4, 14], when: {measurement.name: [block_patch]}}
    scheduler: {name: asha, grace_period: 200, reduction_factor: 2}   # or {name: fifo}
    search: {algorithm: tpe, seed: 0}   # tpe | random | grid; storage: an Optuna RDB URL
    resources: {workers: 1, gpus_per_worker: 0, cpus_per_worker: null}

A key with ``when`` is sampled only when its parent (a ``choice`` key of the space) takes one of the
listed values: Optuna's define-by-run space, so TPE never sees a patch size for Block-Pixel.
Everything is validated here, before Ray starts; errors name the place in the file.
"""

from __future__ import annotations

import copy
import itertools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gansweep.config import (
    Config,
    ConfigError,
    _apply,
    _unknown_key,
    all_keys,
    check_shapes,
    read_yaml_mapping,
    validate,
)
from gansweep.data.sources import DataSourceError, SourceInfo, describe_source
from gansweep.run.plan import check_gpu_layout

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
SCHEDULERS = ("asha", "fifo")
ALGORITHMS = ("tpe", "random", "grid")
METRIC_MODES = {"fid": "min", "classifier_score": "max"}  # the cheap evaluation's figures
TOP_KEYS = (
    "name", "metric", "mode", "num_samples", "max_concurrent_trials", "fixed", "space", "scheduler", "search",
    "resources",
)
# Keys a trial may not sample: the data set is shared (one classifier and reference statistics per
# sweep), the schedule is the scheduler's time axis, and the resources are planned per sweep.
NOT_SWEEPABLE = {
    "data.name": "one data set per sweep",
    "data.root": "one data set per sweep",
    "data.image_size": "one data set per sweep",
    "data.cache_dir": "one cache per sweep",
    "train.steps": "it is the scheduler's max_t; set it in fixed:",
    "eval.every": "the metric's cadence, which scheduler.grace_period is checked against; set it in fixed:",
    "eval.cheap_samples": "FIDs of different sample counts do not compare",
    "eval.n_samples": "FIDs of different sample counts do not compare",
    "train.workers": "set resources.workers",
    "train.use_gpu": "set resources.gpus_per_worker",
    "train.gpus_per_worker": "set resources.gpus_per_worker",
    "train.cpus_per_worker": "set resources.cpus_per_worker",
}
MAX_CHECKED_COMBINATIONS = 512  # choice combinations validated before Ray starts


class SpaceError(ConfigError):
    """A search-space file that cannot run; the message names the file and the place in it."""


@dataclass
class Param:
    key: str  # the dotted config key
    kind: str  # one of DISTRIBUTIONS
    low: Any = None
    high: Any = None
    step: Any = None  # int / uniform: optional grid step
    choices: list = field(default_factory=list)
    when: dict[str, list] = field(default_factory=dict)  # parent key -> values that activate this key

    def active(self, point: dict) -> bool:
        return all(parent in point and point[parent] in values for parent, values in self.when.items())

    def suggest(self, trial) -> Any:
        """Sample with an Optuna trial (define-by-run)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1)
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "loguniform", step=self.step)

    def describe(self) -> dict:
        """The spec as written (for sweep.json and the report)."""
        spec: dict[str, Any] = {self.kind: self.choices if self.kind == "choice" else [self.low, self.high]}
        if self.step is not None:
            spec["step"] = self.step
        if self.when:
            spec["when"] = self.when
        return spec


@dataclass
class Scheduler:
    name: str = "asha"
    grace_period: int | None = None  # steps; default: eval.every (the first cheap FID)
    reduction_factor: float = 2.0


@dataclass
class Search:
    algorithm: str = "tpe"
    seed: int = 0
    storage: str | None = None  # an Optuna RDB URL; None: SQLite in the sweep's output directory
    study_name: str | None = None  # default: the space's name


@dataclass
class Resources:
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float | None = None  # None: planned from the cluster's CPUs
    cluster: dict | None = None  # plan for these resources ({CPU: 64, GPU: 8}) instead of the cluster's now


@dataclass
class SweepSpace:
    path: Path
    name: str
    metric: str
    mode: str
    num_samples: int
    max_concurrent_trials: int | None
    fixed: dict[str, Any]
    params: list[Param]  # parents before the keys they condition
    scheduler: Scheduler
    search: Search
    resources: Resources
    # (metric, mode) per objective: one, or two for Optuna's multi-objective search. The first is `metric`:
    # what trials.json ranks by and the console names best.
    objectives: list[tuple[str, str]]

    def base_config(self) -> Config:
        """Defaults, the fixed keys and the resources: what every trial starts from."""
        cfg = Config()
        _apply(cfg, _nest(self.fixed), "")
        cfg.train.workers = self.resources.workers
        cfg.train.use_gpu = self.resources.gpus_per_worker > 0
        if self.resources.gpus_per_worker > 0:
            cfg.train.gpus_per_worker = self.resources.gpus_per_worker
        cfg.train.cpus_per_worker = self.resources.cpus_per_worker
        return cfg

    def trial_config(self, point: dict[str, Any]) -> Config:
        """The config of one trial: the base config with the sampled keys set."""
        cfg = self.base_config()
        _apply(cfg, _nest(point), "")
        validate(cfg)
        return cfg

    def define_by_run(self, trial) -> None:
        """Optuna's define-by-run space: sample each active key, parents first."""
        point: dict[str, Any] = {}
        for param in self.params:
            if param.active(point):
                point[param.key] = param.suggest(trial)

    def grid(self) -> list[dict[str, Any]]:
        return grid_points(self.params)

    def describe(self) -> dict:
        return {param.key: param.describe() for param in self.params}

    @property
    def metrics(self) -> list[str]:
        return [metric for metric, _ in self.objectives]

    @property
    def study_name(self) -> str:
        """The Optuna study's name: search.study_name, else the space's name."""
        return self.search.study_name or self.name


def grid_points(params: list[Param]) -> list[dict[str, Any]]:
    """Every combination of the choice PARAMS; a conditional key multiplies only the points where it is active."""
    points: list[dict[str, Any]] = [{}]
    for param in params:
        grown = []
        for point in points:
            if param.active(point):
                grown += [{**point, param.key: value} for value in param.choices]
            else:
                grown.append(point)
        points = grown
    return points


def _nest(flat: dict[str, Any]) -> dict:
    """{"train.lr_d": 1e-3} -> {"train": {"lr_d": 1e-3}}, as config._apply takes it."""
    nested: dict = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in all_keys():
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _field_type(key: str) -> Any:
    """The declared type of a dotted config key, Optional unwrapped (int | None -> int)."""
    ftype: Any = Config
    for part in key.split("."):
        ftype = typing.get_type_hints(ftype)[part]
    return next((a for a in typing.get_args(ftype) if a is not type(None)), ftype)


def _section(raw: dict, name: str, cls: type, where: str):
    """A mapping section (scheduler, search, resources) into its dataclass; unknown keys are errors."""
    data = raw.get(name) or {}
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: {name}: must be a mapping, got {data!r}")
    obj = cls()
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in hints:
            raise SpaceError(f"{where}: {name}.{key}: unknown key; known: {', '.join(hints)}")
        optional = type(None) in typing.get_args(hints[key])
        target = next((a for a in typing.get_args(hints[key]) if a is not type(None)), hints[key])
        if value is None and optional:
            setattr(obj, key, None)
            continue
        if target is dict:
            ok = isinstance(value, dict) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value.values())
        elif target is str:
            ok = isinstance(value, str)
        elif target is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            expected = {float: "a number", dict: "a mapping of resource names to amounts"}.get(target, target.__name__)
            raise SpaceError(f"{where}: {name}.{key}: expected {expected}, got {value!r}")
        setattr(obj, key, float(value) if target is float else value)
    return obj


def _parse_param(key: str, spec: Any, where: str) -> Param:
    place = f"{where}: space.{key}"
    if key not in all_keys():
        raise SpaceError(f"{place}: {_unknown_key(key)}")
    if key in NOT_SWEEPABLE:
        raise SpaceError(f"{place}: cannot be swept ({NOT_SWEEPABLE[key]})")
    if not isinstance(spec, dict):
        raise SpaceError(f"{place}: expected a mapping such as {{uniform: [0.1, 0.9]}}, got {spec!r}")
    kinds = [k for k in spec if k in DISTRIBUTIONS]
    unknown = [k for k in spec if k not in DISTRIBUTIONS and k not in ("when", "step")]
    if unknown:
        raise SpaceError(f"{place}: unknown key '{unknown[0]}'; expected one of {', '.join(DISTRIBUTIONS)}, step, when")
    if len(kinds) != 1:
        raise SpaceError(f"{place}: needs exactly one of {', '.join(DISTRIBUTIONS)}")
    kind = kinds[0]
    values = spec[kind]
    ftype = _field_type(key)
    param = Param(key=key, kind=kind, step=spec.get("step"))
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise SpaceError(f"{place}.choice: needs a non-empty list of values")
        coerced = [_coerced(key, value, f"{place}.choice") for value in values]
        if len(set(map(repr, coerced))) != len(coerced):
            raise SpaceError(f"{place}.choice: lists a value twice")
        if param.step is not None:
            raise SpaceError(f"{place}.step: only for int and uniform")
        param.choices = coerced
    else:
        if not (isinstance(values, list) and len(values) == 2):
            raise SpaceError(f"{place}.{kind}: needs [low, high]")
        if kind == "int" and ftype is not int:
            raise SpaceError(f"{place}.int: {key} is not an integer key; use uniform or loguniform")
        if kind != "int" and ftype is not float:
            raise SpaceError(f"{place}.{kind}: {key} is not a number key" + ("; use int" if ftype is int else ""))
        number = int if kind == "int" else float
        try:
            if any(isinstance(v, bool) or (number is int and not isinstance(v, int)) for v in values):
                raise ValueError
            low, high = (number(v) for v in values)
        except (TypeError, ValueError):
            raise SpaceError(f"{place}.{kind}: bounds must be {number.__name__}s, got {values!r}") from None
        if not low < high:
            raise SpaceError(f"{place}.{kind}: empty range [{low}, {high}]: low must be below high")
        if kind == "loguniform" and low <= 0:
            raise SpaceError(f"{place}.loguniform: low must be > 0, got {low}")
        if param.step is not None:
            number_types = int if kind == "int" else (int, float)
            if (kind == "loguniform" or isinstance(param.step, bool) or not isinstance(param.step, number_types)
                    or param.step <= 0):
                raise SpaceError(f"{place}.step: a positive number (an integer for int), for int and uniform only")
        param.low, param.high = low, high
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise SpaceError(f"{place}.when: expected {{parent_key: [values]}}, got {when!r}")
    param.when = {parent: (v if isinstance(v, list) else [v]) for parent, v in when.items()}
    return param


def _coerced(key: str, value: Any, place: str) -> Any:
    """VALUE as config KEY's type (as the trial's config will hold it), or an error naming PLACE."""
    probe = Config()
    try:
        _apply(probe, _nest({key: value}), "")
    except ConfigError as exc:
        raise SpaceError(f"{place}: {exc}") from None
    return _get(probe, key)


def _get(cfg: Config, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _order(params: dict[str, Param], where: str) -> list[Param]:
    """Parents before children; each parent must be a choice key of the space naming the values used."""
    for param in params.values():
        for parent, values in param.when.items():
            place = f"{where}: space.{param.key}.when"
            if parent not in params:
                raise SpaceError(f"{place}: its parent '{parent}' is not a key of space: (a conditional key needs "
                                 "its parent sampled as a choice)")
            if params[parent].kind != "choice":
                raise SpaceError(f"{place}: its parent '{parent}' must be a choice key")
            values[:] = [_coerced(parent, v, place) for v in values]  # `when: {hidden.inject_at: [1]}` means "1"
            missing = [v for v in values if v not in params[parent].choices]
            if missing:
                raise SpaceError(f"{place}: {missing!r} is not among {parent}'s choices {params[parent].choices!r}")

    depth: dict[str, int] = {}

    def depth_of(key: str, seen: tuple = ()) -> int:
        if key in seen:
            raise SpaceError(f"{where}: space.{key}.when: conditions form a cycle ({' -> '.join(seen + (key,))})")
        if key not in depth:
            depth[key] = 1 + max((depth_of(p, seen + (key,)) for p in params[key].when), default=-1)
        return depth[key]

    return sorted(params.values(), key=lambda p: depth_of(p.key))


def load_space(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> SweepSpace:
    """Read and validate a space file. OVERRIDES (from --set) replace the sweep's own settings when they name
    one (num_samples, scheduler.grace_period, resources.gpus_per_worker, ...), else fixed config keys."""
    path = Path(path)
    where = str(path)
    raw = read_yaml_mapping(path, "search space", SpaceError)
    for key in raw:
        if key not in TOP_KEYS:
            raise SpaceError(f"{where}: {key}: unknown key; known: {', '.join(TOP_KEYS)}")

    fixed_raw = raw.get("fixed") or {}
    if not isinstance(fixed_raw, dict):
        raise SpaceError(f"{where}: fixed: must be a mapping of config keys")
    fixed = _flatten(fixed_raw)
    for key, value in overrides:
        head, _, rest = key.partition(".")
        if head in ("scheduler", "search", "resources") and rest:
            section = raw.get(head) or {}
            raw[head] = {**(section if isinstance(section, dict) else {}), rest: value}
        elif key in TOP_KEYS and key not in ("fixed", "space"):
            raw[key] = value
        else:
            fixed[key] = value
    for key in fixed:
        if NOT_SWEEPABLE.get(key, "").startswith("set resources."):  # base_config() would overwrite it
            raise SpaceError(f"{where}: fixed: {key}: {NOT_SWEEPABLE[key]} instead")
    try:
        _apply(Config(), _nest(copy.deepcopy(fixed)), "")
    except ConfigError as exc:
        raise SpaceError(f"{where}: fixed: {exc}") from None

    space_raw = raw.get("space") or {}
    if not isinstance(space_raw, dict) or not space_raw:
        raise SpaceError(f"{where}: space: needs at least one key to sample")
    params = {}
    for key, spec in space_raw.items():
        if key in fixed:
            raise SpaceError(f"{where}: space.{key}: also set in fixed: (or by --set); keep one")
        params[key] = _parse_param(key, spec, where)
    ordered = _order(params, where)

    scheduler = _section(raw, "scheduler", Scheduler, where)
    search = _section(raw, "search", Search, where)
    resources = _section(raw, "resources", Resources, where)
    if scheduler.name not in SCHEDULERS:
        raise SpaceError(f"{where}: scheduler.name: '{scheduler.name}' is not one of {', '.join(SCHEDULERS)}")
    if search.algorithm not in ALGORITHMS:
        raise SpaceError(f"{where}: search.algorithm: '{search.algorithm}' is not one of {', '.join(ALGORITHMS)}")
    _check_storage(search.storage, where)
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

    objectives = _objectives(raw, where)
    if len(objectives) > 1:
        if "scheduler" not in raw:
            scheduler.name = "fifo"  # ASHA compares trials on one number: two objectives run every trial to its end
        elif scheduler.name == "asha":
            raise SpaceError(f"{where}: scheduler: asha stops trials on one metric, and this sweep has two "
                             f"({', '.join(m for m, _ in objectives)}); use scheduler: {{name: fifo}} (the default "
                             "with two metrics)")
    (metric, mode) = objectives[0]

    space = SweepSpace(
        path=path, name=str(raw.get("name") or path.stem), metric=metric, mode=mode, objectives=objectives,
        num_samples=0,
        max_concurrent_trials=raw.get("max_concurrent_trials"), fixed=fixed, params=ordered,
        scheduler=scheduler, search=search, resources=resources,
    )
    _check_counts(space, raw, where)
    _check_trials(space, where)
    return space


def _objectives(raw: dict, where: str) -> list[tuple[str, str]]:
    """metric: one of METRIC_MODES, or a list of two (Optuna's multi-objective search); mode: each metric's own
    direction, written (once, or as a list) only to be checked, since a metric has one right direction."""
    metrics = raw.get("metric", "fid")
    metrics = list(metrics) if isinstance(metrics, list) else [metrics]
    if not metrics or len(metrics) > 2 or len(set(metrics)) < len(metrics):
        raise SpaceError(f"{where}: metric: one metric, or a list of two different ones; got {raw.get('metric')!r}")
    for metric in metrics:
        if metric not in METRIC_MODES:
            raise SpaceError(f"{where}: metric: '{metric}' is not one of {', '.join(METRIC_MODES)} (the cheap "
                             "evaluation's figures, reported while a trial trains)")
    modes = raw.get("mode", [METRIC_MODES[m] for m in metrics])
    modes = list(modes) if isinstance(modes, list) else [modes]
    if len(modes) != len(metrics):
        raise SpaceError(f"{where}: mode: one per metric ({len(metrics)}), got {raw.get('mode')!r}")
    for metric, mode in zip(metrics, modes):
        if mode not in ("min", "max"):
            raise SpaceError(f"{where}: mode: must be min or max, got {mode!r}")
        if mode != METRIC_MODES[metric]:
            better = "lower" if METRIC_MODES[metric] == "min" else "higher"
            raise SpaceError(f"{where}: mode: {metric} is better when {better}; mode {mode} would search for the "
                             "worst trials")
    return list(zip(metrics, modes))


# The pip package of a database driver SQLAlchemy names by its module (psycopg, postgresql://'s, is a dependency).
DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]", "MySQLdb": "mysqlclient",
                   "pymysql": "pymysql"}


def _check_storage(url: str | None, where: str) -> None:
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


def _check_counts(space: SweepSpace, raw: dict, where: str) -> None:
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
        raise SpaceError(f"{where}: num_samples: must be an integer >= 1, got {num_samples!r}")
    space.num_samples = num_samples
    limit = space.max_concurrent_trials
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpaceError(f"{where}: max_concurrent_trials: must be an integer >= 1, got {limit!r}")


def _trial_error(space: SweepSpace, point: dict[str, Any], sources: dict[tuple, SourceInfo]) -> str | None:
    """Why the trial at POINT cannot run (its config is invalid, or does not fit its data), or None. The data are
    described, not loaded, once per data settings in SOURCES (data.limit may be sampled); a source that cannot be
    described raises DataSourceError: no trial could run."""
    try:
        cfg = space.trial_config(point)
        data = cfg.data
        settings = (data.name, data.root, data.image_size, data.limit)
        if settings not in sources:
            sources[settings] = describe_source(*settings)
        source = sources[settings]
        check_shapes(cfg, source.clean_shape, source.num_classes, source.n_images, unlabelled=source.unlabelled)
    except ConfigError as exc:
        return str(exc)
    return None


def _check_trials(space: SweepSpace, where: str) -> None:
    """Every combination of choices (numbers at both ends of their ranges) must make a valid config that fits its
    data, and the scheduler must see the metric before it first compares trials."""
    sources: dict[tuple, SourceInfo] = {}
    try:
        # The fixed keys alone may be invalid only for lack of a sampled key (hidden.inject_at fixed,
        # hidden.measurement.name sampled): the trials below tell.
        base_error = _trial_error(space, {}, sources)
        choice_points = itertools.islice(grid_points([p for p in space.params if p.kind == "choice"]),
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
                shown = ", ".join(f"{k}={v}" for k, v in trial.items())
                raise SpaceError(f"{where}: space: the trial {{{shown}}} is invalid: {error}")
    except DataSourceError as exc:
        raise SpaceError(f"{where}: data: {exc}") from None
    base = space.base_config()
    every = base.eval.every
    if every == 0:
        raise SpaceError(f"{where}: fixed: eval.every is 0, but the sweep's metric {space.metric} comes from the "
                         "cheap evaluation during training; set eval.every")
    if space.scheduler.name == "asha":
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
