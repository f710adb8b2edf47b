"""A sweep's search space, as the rest of the sweep uses it: what is fixed, what is sampled and how, how the trials
are scheduled, searched and placed, and each trial's config. The space file's format and its checks:
sweep/space_file.py, which builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gansweep.config.errors import ConfigError
from gansweep.config.parsing import apply_mapping
from gansweep.config.schema import Config

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
SEED_KEY = "train.seed"  # what `seeds:` sets per trial, and what an exclude entry may name to drop some seeds


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
        """Sample with an Optuna trial (define-by-run), from the distribution its spec describes."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        dist = distribution(self.describe())
        if isinstance(dist, CategoricalDistribution):
            return trial.suggest_categorical(self.key, self.choices)
        if isinstance(dist, IntDistribution):
            return trial.suggest_int(self.key, dist.low, dist.high, step=dist.step)
        return trial.suggest_float(self.key, dist.low, dist.high, log=dist.log, step=dist.step)

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


def distribution(spec: dict):
    """The Optuna distribution of a key's spec, as Param.describe writes it (and sweep.json stores it); None for a
    spec of no known kind."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if "choice" in spec:
        return CategoricalDistribution(spec["choice"])
    step = spec.get("step")
    if "int" in spec:
        return IntDistribution(*map(int, spec["int"]), step=int(step or 1))
    if "uniform" in spec:
        return FloatDistribution(*map(float, spec["uniform"]), step=step)
    if "loguniform" in spec:
        return FloatDistribution(*map(float, spec["loguniform"]), log=True)
    return None


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
    startup_trials: int | None = None  # tpe, gp, cmaes: trials drawn at random before the model; None: the sampler's


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
    seeds: int = 1  # training seeds per sampled point (train.seed = the base seed + 0 .. seeds - 1)

    def base_config(self) -> Config:
        """Defaults, the fixed keys and the resources: what every trial starts from."""
        cfg = Config()
        apply_mapping(cfg, nest(self.fixed), "")
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
        apply_mapping(cfg, nest(self.config_keys(point)), "")
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

    def seed_values(self, point: dict[str, Any]) -> list[int | None]:
        """The training seeds the point at POINT trains on: the base config's train.seed + 0 .. seeds - 1, less those
        an exclude entry naming train.seed drops for it (a grid's cells on fewer seeds than others). One seed: [None],
        the trial keeps its config's own train.seed (a space of one seed may still sample it)."""
        if self.seeds == 1:
            return [None]
        base = self.base_config().train.seed
        return [base + i for i in range(self.seeds)
                if not any(matches({**point, SEED_KEY: base + i}, entry) for entry in self.exclude)]

    def trial_count(self) -> int:
        """Tune's trials: a trial per point and seed."""
        if self.search.algorithm == "grid":
            return sum(len(self.seed_values(point)) for point in self.grid())
        return self.num_samples * self.seeds

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
    return [point for point in points if not any(matches(point, entry) for entry in exclude)]


def matches(point: dict[str, Any], entry: dict[str, list]) -> bool:
    return all(key in point and point[key] in values for key, values in entry.items())


def nest(flat: dict[str, Any]) -> dict:
    """{"train.lr_d": 1e-3} -> {"train": {"lr_d": 1e-3}}, as config.parsing.apply_mapping takes it."""
    nested: dict = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested

