"""The search-space file of a sweep: what is fixed, what is sampled and how, and how the trials run.

A space file is YAML (read with ``config.load_yaml``, as ``yaml.safe_load`` reads it)::

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
    scheduler: {name: asha, grace_period: 200, reduction_factor: 2}   # or {name: fifo}, or
                                        # {name: pbt, perturbation_interval: 300} (population-based training)
    search: {algorithm: tpe, seed: 0}   # tpe | random | grid; storage: an Optuna RDB URL
    resources: {workers: 1, gpus_per_worker: 0, cpus_per_worker: null}

A key with ``when`` is sampled only when its parent (a ``choice`` key of the space) takes one of the
listed values: Optuna's define-by-run space, so TPE never sees a patch size for Block-Pixel.

A grid of named cells (search_spaces/paper_table.yaml) uses three more pieces::

    space:
      arm:                              # a bundle key: not a config key; its choice maps names to config keys
        choice:
          clean: {mode: clean, measurement.name: none}
          hidden_ambient@up1: {mode: ambient, hidden.inject_at: up1}
      row:
        when: {arm: [hidden_ambient@up1]}       # bundle keys are parents like any choice key
        choice:
          block_pixel_p0.8:
            measurement: {name: block_pixel, p: 0.8}
            arm:                        # under another bundle key's name: keys added for some of its names only
              hidden_ambient@up1: {hidden.measurement.name: block_pixel, hidden.measurement.p: 0.8}
      train.seed: {choice: [0, 1, 2]}
    exclude:                            # grid search only: drop the points matching every key of an entry
      - {row: [block_pixel_p0.8], train.seed: [1, 2]}
    table: {rows: row, columns: arm}    # `gansweep report` writes the table (sweep/table.py)

Optuna samples a bundle key's names; the trial's config gets the chosen bundle's keys. No two sources (fixed:,
a sampled key, a bundle) may set one config key in the same trial.
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

from gansweep.config.checks import check_shapes, validate
from gansweep.config.errors import ConfigError, quoted
from gansweep.config.parsing import apply_mapping, read_yaml_mapping, unknown_key
from gansweep.config.schema import Config, all_keys
from gansweep.data.sources import DataSourceError, SourceInfo, describe_source
from gansweep.run.plan import check_gpu_layout

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
SCHEDULERS = ("asha", "fifo", "pbt", "pb2")
POPULATION_SCHEDULERS = ("pbt", "pb2")  # population-based training (sweep/pbt.py)
ALGORITHMS = ("tpe", "random", "grid")
METRIC_MODES = {"fid": "min", "classifier_score": "max"}  # the cheap evaluation's figures
TOP_KEYS = (
    "name", "metric", "mode", "num_samples", "max_concurrent_trials", "fixed", "space", "scheduler", "search",
    "resources", "exclude", "table",
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
class Bundle:
    """The config keys one name of a bundle key sets, and those it adds when another bundle key takes some of its
    names (a table row's measurement inside G, for the hidden arms only)."""

    keys: dict[str, Any]
    by: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # other key -> its name -> config keys

    def items(self, point: dict[str, Any], place: str) -> list[tuple[str, Any, str]]:
        """(config key, value, where the file sets it) for the trial at POINT."""
        items = [(key, value, place) for key, value in self.keys.items()]
        for other, named in self.by.items():
            if point.get(other) in named:
                items += [(key, value, f"{place}.{other}.{point[other]}") for key, value in named[point[other]].items()]
        return items

    def describe(self) -> dict:
        return {**self.keys, **self.by}


@dataclass
class Param:
    key: str  # the dotted config key (a bundle key: its own name)
    kind: str  # one of DISTRIBUTIONS
    low: Any = None
    high: Any = None
    step: Any = None  # int / uniform: optional grid step
    choices: list = field(default_factory=list)
    when: dict[str, list] = field(default_factory=dict)  # parent key -> values that activate this key
    bundles: dict[str, Bundle] | None = None  # a bundle key (not a config key): its choices' names -> their keys

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
        if self.bundles is not None:
            spec["bundles"] = {name: bundle.describe() for name, bundle in self.bundles.items()}
        if self.step is not None:
            spec["step"] = self.step
        if self.when:
            spec["when"] = self.when
        return spec


@dataclass
class Scheduler:
    name: str = "asha"
    grace_period: int | None = None  # asha: steps; default: eval.every (the first cheap FID)
    reduction_factor: float = 2.0  # asha
    perturbation_interval: int | None = None  # pbt: steps between a trial's exploit-and-explore decisions
    quantile_fraction: float = 0.25  # pbt: the bottom fraction clones the top fraction
    resample_probability: float = 0.25  # pbt (not pb2): a perturbed key is redrawn from its range, else x0.8 or x1.2


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
    cluster: dict | None = None  # plan for one node of these resources ({CPU: 64, GPU: 8}) instead of the cluster


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
    exclude: list[dict[str, list]] = field(default_factory=list)  # partial points the grid drops
    table: dict[str, str] | None = None  # {rows: key, columns: key}: the table `gansweep report` writes

    def base_config(self) -> Config:
        """Defaults, the fixed keys and the resources: what every trial starts from."""
        cfg = Config()
        apply_mapping(cfg, _nest(self.fixed), "")
        cfg.train.workers = self.resources.workers
        cfg.train.use_gpu = self.resources.gpus_per_worker > 0
        if self.resources.gpus_per_worker > 0:
            cfg.train.gpus_per_worker = self.resources.gpus_per_worker
        cfg.train.cpus_per_worker = self.resources.cpus_per_worker
        return cfg

    def trial_config(self, point: dict[str, Any]) -> Config:
        """The config of one trial: the base config with the sampled keys set (not yet validated: its users run
        config.checks.validate, which builds the measurements they need)."""
        cfg = self.base_config()
        apply_mapping(cfg, _nest(self.config_keys(point)), "")
        return cfg

    def config_keys(self, point: dict[str, Any]) -> dict[str, Any]:
        """The config keys POINT sets: its sampled config keys and the keys of the bundles it names. One key set by
        two sources in one trial is an error: which would win is written nowhere."""
        keys: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for param in self.params:
            if param.key not in point:
                continue
            if param.bundles is None:
                items = [(param.key, point[param.key], f"space.{param.key}")]
            else:
                name = point[param.key]
                items = param.bundles[name].items(point, f"space.{param.key}.choice.{name}")
            for key, value, place in items:
                if key in sources:
                    raise SpaceError(f"{sources[key]} and {place} both set {key}; keep one")
                keys[key], sources[key] = value, place
        return keys

    def define_by_run(self, trial) -> None:
        """Optuna's define-by-run space: sample each active key, parents first."""
        point: dict[str, Any] = {}
        for param in self.params:
            if param.active(point):
                point[param.key] = param.suggest(trial)

    def grid(self) -> list[dict[str, Any]]:
        return grid_points(self.params, self.exclude)

    def describe(self) -> dict:
        return {param.key: param.describe() for param in self.params}

    @property
    def metrics(self) -> list[str]:
        return [metric for metric, _ in self.objectives]

    @property
    def population_based(self) -> bool:
        """PBT or PB2: Tune's population, no Optuna study (sweep/pbt.py)."""
        return self.scheduler.name in POPULATION_SCHEDULERS

    @property
    def study_name(self) -> str:
        """The Optuna study's name: search.study_name, else the space's name."""
        return self.search.study_name or self.name


def grid_points(params: list[Param], exclude: list[dict[str, list]] = ()) -> list[dict[str, Any]]:
    """Every combination of the choice PARAMS; a conditional key multiplies only the points where it is active.
    A point matching every key of an EXCLUDE entry is dropped."""
    points: list[dict[str, Any]] = [{}]
    for param in params:
        grown = []
        for point in points:
            if param.active(point):
                grown += [{**point, param.key: value} for value in param.choices]
            else:
                grown.append(point)
        points = grown
    return [point for point in points if not any(_matches(point, entry) for entry in exclude)]


def _matches(point: dict[str, Any], entry: dict[str, list]) -> bool:
    return all(key in point and point[key] in values for key, values in entry.items())


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
        raise SpaceError(f"{where}: {name}: must be a mapping, got {quoted(data)}")
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
            raise SpaceError(f"{where}: {name}.{key}: expected {expected}, got {quoted(value)}")
        setattr(obj, key, float(value) if target is float else value)
    return obj


def _parse_param(key: str, spec: Any, where: str) -> Param:
    place = f"{where}: space.{key}"
    if key not in all_keys():
        raise SpaceError(f"{place}: {unknown_key(key)}")
    if key in NOT_SWEEPABLE:
        raise SpaceError(f"{place}: cannot be swept ({NOT_SWEEPABLE[key]})")
    if not isinstance(spec, dict):
        raise SpaceError(f"{place}: expected a mapping such as {{uniform: [0.1, 0.9]}}, got {quoted(spec)}")
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
            raise SpaceError(f"{place}.{kind}: bounds must be {number.__name__}s, got {quoted(values)}") from None
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
    param.when = _parse_when(spec, place)
    return param


def _parse_when(spec: dict, place: str) -> dict[str, list]:
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise SpaceError(f"{place}.when: expected {{parent_key: [values]}}, got {quoted(when)}")
    return {parent: (v if isinstance(v, list) else [v]) for parent, v in when.items()}


def _parse_bundle_param(key: str, spec: dict, where: str, others: set[str], fixed: dict) -> Param:
    """A bundle key: its choice maps names to bundles of config keys; a bundle may hold, under the name of another
    bundle key of OTHERS, the keys it adds for some of that key's names."""
    place = f"{where}: space.{key}"
    if key in all_keys():
        raise SpaceError(f"{place}.choice: {key} is a config key, whose choice is a list of values; a mapping of "
                         "names to bundles of config keys needs a name of its own (row, arm)")
    unknown = [k for k in spec if k not in ("choice", "when")]
    if unknown:
        raise SpaceError(f"{place}: unknown key '{unknown[0]}'; a bundle key takes choice and when")
    if not spec["choice"]:
        raise SpaceError(f"{place}.choice: needs at least one name")
    bundles = {}
    for name, raw in spec["choice"].items():
        if not isinstance(name, str):
            raise SpaceError(f"{place}.choice: the name {quoted(name)} must be a string (quote it)")
        where_name = f"{place}.choice.{name}"
        if not isinstance(raw, dict):
            raise SpaceError(f"{where_name}: expected a mapping of config keys to values, got {quoted(raw)}")
        bundle = Bundle(_bundle_keys({k: v for k, v in raw.items() if k not in others}, where_name, fixed))
        for other in (k for k in raw if k in others):
            named = raw[other]
            if not isinstance(named, dict) or not all(isinstance(n, str) for n in named):
                raise SpaceError(f"{where_name}.{other}: expected a mapping of {other}'s names to config keys")
            bundle.by[other] = {n: _bundle_keys(keys or {}, f"{where_name}.{other}.{n}", fixed)
                                for n, keys in named.items()}
            for n, keys in bundle.by[other].items():
                both = sorted(keys.keys() & bundle.keys.keys())
                if both:
                    raise SpaceError(f"{where_name}.{other}.{n}: sets {both[0]}, which {where_name} sets already; "
                                     "keep one")
        bundles[name] = bundle
    return Param(key=key, kind="choice", choices=list(bundles), bundles=bundles, when=_parse_when(spec, place))


def _bundle_keys(raw: Any, place: str, fixed: dict) -> dict[str, Any]:
    """A bundle's config keys (dotted or nested), each checked and typed as the trial's config will hold it."""
    if not isinstance(raw, dict):
        raise SpaceError(f"{place}: expected a mapping of config keys to values, got {quoted(raw)}")
    keys = {}
    for key, value in _flatten(raw).items():
        if key not in all_keys():
            raise SpaceError(f"{place}.{key}: {unknown_key(key)}")
        if key in NOT_SWEEPABLE:
            raise SpaceError(f"{place}.{key}: cannot be swept ({NOT_SWEEPABLE[key]})")
        if key in fixed:
            raise SpaceError(f"{place}.{key}: also set in fixed: (or by --set); keep one")
        keys[key] = _coerced(key, value, f"{place}.{key}")
    return keys


def _check_bundle_names(params: dict[str, Param], where: str) -> None:
    """The names a bundle lists under another bundle key must be that key's."""
    for param in params.values():
        for name, bundle in (param.bundles or {}).items():
            for other, named in bundle.by.items():
                unknown = [n for n in named if n not in params[other].choices]
                if unknown:
                    raise SpaceError(f"{where}: space.{param.key}.choice.{name}.{other}: {quoted(unknown[0])} is not "
                                     f"among {other}'s names {quoted(params[other].choices)}")


def _coerced(key: str, value: Any, place: str) -> Any:
    """VALUE as config KEY's type (as the trial's config will hold it), or an error naming PLACE."""
    probe = Config()
    try:
        apply_mapping(probe, _nest({key: value}), "")
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
                raise SpaceError(f"{place}: its parent {quoted(parent)} is not a key of space: (a conditional key "
                                 "needs its parent sampled as a choice)")
            if params[parent].kind != "choice":
                raise SpaceError(f"{place}: its parent {quoted(parent)} must be a choice key")
            if params[parent].bundles is None:  # `when: {hidden.inject_at: [1]}` means "1"; bundle names are names
                values[:] = [_coerced(parent, v, place) for v in values]
            missing = [v for v in values if v not in params[parent].choices]
            if missing:
                raise SpaceError(f"{place}: {quoted(missing)} is not among {parent}'s choices "
                                 f"{quoted(params[parent].choices)}")

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
            raise SpaceError(f"{where}: {quoted(key)}: unknown key; known: {', '.join(TOP_KEYS)}")

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
        apply_mapping(Config(), _nest(copy.deepcopy(fixed)), "")
    except ConfigError as exc:
        raise SpaceError(f"{where}: fixed: {exc}") from None

    space_raw = raw.get("space") or {}
    if not isinstance(space_raw, dict) or not space_raw:
        raise SpaceError(f"{where}: space: needs at least one key to sample")
    params = {}
    bundle_keys = {key for key, spec in space_raw.items()
                   if isinstance(spec, dict) and isinstance(spec.get("choice"), dict)}
    for key, spec in space_raw.items():
        if key in fixed:
            raise SpaceError(f"{where}: space.{key}: also set in fixed: (or by --set); keep one")
        params[key] = (_parse_bundle_param(key, spec, where, bundle_keys - {key}, fixed) if key in bundle_keys
                       else _parse_param(key, spec, where))
    _check_bundle_names(params, where)
    ordered = _order(params, where)

    scheduler = _section(raw, "scheduler", Scheduler, where)
    search = _section(raw, "search", Search, where)
    resources = _section(raw, "resources", Resources, where)
    if scheduler.name not in SCHEDULERS:
        raise SpaceError(f"{where}: scheduler.name: {quoted(scheduler.name)} is not one of {', '.join(SCHEDULERS)}")
    if search.algorithm not in ALGORITHMS:
        raise SpaceError(f"{where}: search.algorithm: {quoted(search.algorithm)} is not one of {', '.join(ALGORITHMS)}")
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
    if scheduler.name in POPULATION_SCHEDULERS:
        _check_pbt_search(raw, search, objectives, where)
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
        exclude=_parse_exclude(raw, ordered, search.algorithm, where), table=_parse_table(raw, params, where),
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
        raise SpaceError(f"{where}: metric: one metric, or a list of two different ones; got "
                         f"{quoted(raw.get('metric'))}")
    for metric in metrics:
        if metric not in METRIC_MODES:
            raise SpaceError(f"{where}: metric: {quoted(metric)} is not one of {', '.join(METRIC_MODES)} (the cheap "
                             "evaluation's figures, reported while a trial trains)")
    modes = raw.get("mode", [METRIC_MODES[m] for m in metrics])
    modes = list(modes) if isinstance(modes, list) else [modes]
    if len(modes) != len(metrics):
        raise SpaceError(f"{where}: mode: one per metric ({len(metrics)}), got {quoted(raw.get('mode'))}")
    for metric, mode in zip(metrics, modes):
        if mode not in ("min", "max"):
            raise SpaceError(f"{where}: mode: must be min or max, got {quoted(mode)}")
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
        raise SpaceError(f"{where}: num_samples: must be an integer >= 1, got {quoted(num_samples)}")
    space.num_samples = num_samples
    limit = space.max_concurrent_trials
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpaceError(f"{where}: max_concurrent_trials: must be an integer >= 1, got {quoted(limit)}")


def _parse_exclude(raw: dict, params: list[Param], algorithm: str, where: str) -> list[dict[str, list]]:
    """exclude: a list of partial grid points, {choice key: a value or a list of values}; each must drop a point."""
    entries = raw.get("exclude") or []
    if not isinstance(entries, list):
        raise SpaceError(f"{where}: exclude: expected a list of partial grid points ({{key: value or [values]}})")
    if entries and algorithm != "grid":
        raise SpaceError(f"{where}: exclude: only a grid search can leave points out (search.algorithm is "
                         f"{algorithm})")
    by_key = {param.key: param for param in params}
    choices = [param for param in params if param.kind == "choice"]
    excluded = []
    for i, entry in enumerate(entries):
        place = f"{where}: exclude[{i}]"
        if not isinstance(entry, dict) or not entry:
            raise SpaceError(f"{place}: expected a mapping of choice keys to a value or a list of values, got "
                             f"{quoted(entry)}")
        parsed = {}
        for key, values in entry.items():
            param = by_key.get(key)
            if param is None or param.kind != "choice":
                raise SpaceError(f"{place}.{key}: not a choice key of space:")
            values = values if isinstance(values, list) else [values]
            if param.bundles is None:
                values = [_coerced(key, v, f"{place}.{key}") for v in values]
            missing = [v for v in values if v not in param.choices]
            if missing:
                raise SpaceError(f"{place}.{key}: {quoted(missing[0])} is not among {key}'s choices "
                                 f"{quoted(param.choices)}")
            parsed[key] = values
        if not any(_matches(point, parsed) for point in grid_points(choices)):
            raise SpaceError(f"{place}: matches no grid point (are its keys ever active together?)")
        excluded.append(parsed)
    return excluded


def _parse_table(raw: dict, params: dict[str, Param], where: str) -> dict[str, str] | None:
    """table: {rows: KEY, columns: KEY}, two different choice keys of the space."""
    table = raw.get("table")
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) != {"rows", "columns"}:
        raise SpaceError(f"{where}: table: expected {{rows: KEY, columns: KEY}}, got {quoted(table)}")
    for role, key in table.items():
        if key not in params or params[key].kind != "choice":
            raise SpaceError(f"{where}: table.{role}: {quoted(key)} is not a choice key of space:")
    if table["rows"] == table["columns"]:
        raise SpaceError(f"{where}: table: rows and columns are both {quoted(table['rows'])}")
    return dict(table)


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
        check_shapes(cfg, validate(cfg), source.clean_shape, source.num_classes, source.n_images,
                     unlabelled=source.unlabelled)
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
    if space.population_based:
        _check_pbt(space, base, where)


def _check_pbt_search(raw: dict, search: Search, objectives: list, where: str) -> None:
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


def _check_pbt(space: SweepSpace, base: Config, where: str) -> None:
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
