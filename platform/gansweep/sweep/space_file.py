"""The search-space file of a sweep: what is fixed, what is sampled and how, and how the trials run.

A space file is YAML (read with ``config.load_yaml``, as ``yaml.safe_load`` reads it)::

    name: ambient_block_pixel           # the study's name (default: the file's stem)
    metric: fid                         # reported by every trial from its first cheap evaluation; or a list of
    mode: min                           # two, [fid, classifier_score], for a multi-objective search (fifo)
    num_samples: 12                     # points (a grid search makes exactly one per grid point)
    seeds: 3                            # optional: each point trains on 3 seeds, train.seed + 0, 1, 2 (fifo only);
                                        # the search sees their mean, the report a 95% interval
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
    search: {algorithm: tpe, seed: 0}   # tpe | gp | cmaes | random | grid; storage: an Optuna RDB URL
    resources: {workers: 1, gpus_per_worker: 0, cpus_per_worker: null}

A key with ``when`` is sampled only when its parent (a ``choice`` key of the space) takes one of the
listed values: Optuna's define-by-run space, so TPE never sees a patch size for Block-Pixel.

A grid of named cells (search_spaces/paper_table.yaml) uses three more pieces::

    space:
      arm:                              # a bundle key: not a config key; its choice maps names to config keys
        choice:
          clean: {mode: clean, measurement.name: none}
          hidden_only@up1: {mode: ambient, hidden.inject_at: up1, hidden.fake_measurement: hidden_only}
      row:
        when: {arm: [hidden_only@up1]}          # bundle keys are parents like any choice key
        choice:
          block_pixel_p0.8:
            measurement: {name: block_pixel, p: 0.8}
            arm:                        # under another bundle key's name: keys added for some of its names only
              hidden_only@up1: {hidden.measurement.name: block_pixel, hidden.measurement.p: 0.8}
    seeds: 3                            # every cell on train.seed 0, 1, 2 ...
    exclude:                            # grid search only: drop the points matching every key of an entry
      - {row: [block_pixel_p0.5], train.seed: [1, 2]}   # ... but this row's on seed 0 alone
    table: {rows: row, columns: arm}    # `gansweep report` writes the table (sweep/report/table.py)

Optuna samples a bundle key's names; the trial's config gets the chosen bundle's keys. No two sources (fixed:,
a sampled key, a bundle) may set one config key in the same trial.
Everything is validated here (the checks past the syntax: sweep/space_checks.py, the scheduler's: sweep/schedulers.py),
before Ray starts; errors name the place in the file. The space it builds: sweep/space.py.
"""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any

from gansweep.config.errors import ConfigError, quoted
from gansweep.config.parsing import apply_mapping, coerce, read_yaml_mapping, unknown_key
from gansweep.config.schema import Config, all_keys
from gansweep.evaluation import figures
from gansweep.sweep import space_seeds
from gansweep.sweep.samplers import ALGORITHMS
from gansweep.sweep.schedulers import SCHEDULERS
from gansweep.sweep.space import (
    DISTRIBUTIONS,
    Bundle,
    Param,
    Resources,
    Scheduler,
    SEED_KEY,
    Search,
    SpaceError,
    SweepSpace,
    grid_points,
    matches,
    nest,
)
from gansweep.sweep.space_checks import check_counts, check_resources, check_storage, check_trials

TOP_KEYS = (
    "name", "metric", "mode", "num_samples", "max_concurrent_trials", "fixed", "space", "scheduler", "search",
    "resources", "exclude", "table", "seeds",
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
    """A mapping section (scheduler, search, resources) into its dataclass, each value coerced to its field's type as
    a config's are; unknown keys are errors."""
    data = raw.get(name) or {}
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: {name}: must be a mapping, got {quoted(data)}")
    obj = cls()
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in hints:
            raise SpaceError(f"{where}: {name}.{key}: unknown key; known: {', '.join(hints)}")
        place = f"{name}.{key}"
        try:  # resources.cluster is of a type no config field has: coerce knows it not
            setattr(obj, key, _amounts(place, value) if dict in typing.get_args(hints[key])
                    else coerce(place, value, hints[key]))
        except ConfigError as exc:
            raise SpaceError(f"{where}: {exc}") from None
    return obj


def _amounts(key: str, value: Any) -> dict | None:
    """A mapping of resource names to amounts ({CPU: 64, GPU: 8}), or None."""
    if value is not None and not (isinstance(value, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value.values())):
        raise ConfigError(f"{key} must be a mapping of resource names to amounts, got {quoted(value)}")
    return value


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
        apply_mapping(probe, nest({key: value}), "")
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
    fixed = _parse_fixed(raw, overrides, where)
    params = _parse_space(raw, fixed, where)
    ordered = _order(params, where)

    scheduler = _section(raw, "scheduler", Scheduler, where)
    search = _section(raw, "search", Search, where)
    resources = _section(raw, "resources", Resources, where)
    if scheduler.name not in SCHEDULERS:
        raise SpaceError(f"{where}: scheduler.name: {quoted(scheduler.name)} is not one of {', '.join(SCHEDULERS)}")
    if search.algorithm not in ALGORITHMS:
        raise SpaceError(f"{where}: search.algorithm: {quoted(search.algorithm)} is not one of {', '.join(ALGORITHMS)}")
    check_storage(search.storage, where)
    if search.startup_trials is not None and search.startup_trials < 0:
        raise SpaceError(f"{where}: search.startup_trials: must be >= 0")
    check_resources(resources, where)

    objectives = _objectives(raw, where)
    seeds = space_seeds.parse_seeds(raw, params, where)
    if (len(objectives) > 1 or seeds > 1) and "scheduler" not in raw:
        # ASHA compares trials on one number, and stops a point's seeds one by one: run every trial to its end.
        scheduler.name = "fifo"
    SCHEDULERS[scheduler.name].check_search(raw, search, objectives, where)
    if seeds > 1 and SCHEDULERS[scheduler.name].refuses_seeds:  # each seed's trial must run to its end
        raise SpaceError(f"{where}: seeds: {seeds} with scheduler {scheduler.name}: "
                         f"{SCHEDULERS[scheduler.name].refuses_seeds}; use scheduler: {{name: fifo}} (the default "
                         "with seeds)")
    ALGORITHMS[search.algorithm].check(list(params.values()), objectives, where)
    (metric, mode) = objectives[0]

    space = SweepSpace(
        path=path, name=str(raw.get("name") or path.stem), metric=metric, mode=mode, objectives=objectives,
        num_samples=0,
        max_concurrent_trials=raw.get("max_concurrent_trials"), fixed=fixed, params=ordered,
        scheduler=scheduler, search=search, resources=resources, seeds=seeds,
        exclude=_parse_exclude(raw, ordered, search.algorithm, space_seeds.seed_choices(fixed, seeds), where),
        table=_parse_table(raw, params, where),
    )
    check_counts(space, raw, where)
    space_seeds.check_grid(space, where)
    check_trials(space, where)
    SCHEDULERS[scheduler.name].check(space, space.base_config(), where)
    return space


def _parse_fixed(raw: dict, overrides: list[tuple[str, Any]], where: str) -> dict[str, Any]:
    """fixed:, flattened to dotted keys, with the OVERRIDES that name no setting of the sweep's own (those are set
    in RAW)."""
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
        apply_mapping(Config(), nest(copy.deepcopy(fixed)), "")
    except ConfigError as exc:
        raise SpaceError(f"{where}: fixed: {exc}") from None
    return fixed


def _parse_space(raw: dict, fixed: dict[str, Any], where: str) -> dict[str, Param]:
    """space:, each key parsed (a bundle key: its bundles too) and the names bundles list under each other checked."""
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
    return params


def _objectives(raw: dict, where: str) -> list[tuple[str, str]]:
    """metric: one of figures.MODES, or a list of two (Optuna's multi-objective search); mode: each metric's own
    direction, written (once, or as a list) only to be checked, since a metric has one right direction."""
    metrics = raw.get("metric", figures.FID)
    metrics = list(metrics) if isinstance(metrics, list) else [metrics]
    if not metrics or len(metrics) > 2 or len(set(metrics)) < len(metrics):
        raise SpaceError(f"{where}: metric: one metric, or a list of two different ones; got "
                         f"{quoted(raw.get('metric'))}")
    for metric in metrics:
        if metric not in figures.MODES:
            raise SpaceError(f"{where}: metric: {quoted(metric)} is not one of {', '.join(figures.MODES)} (the cheap "
                             "evaluation's figures, reported while a trial trains)")
    modes = raw.get("mode", [figures.MODES[m] for m in metrics])
    modes = list(modes) if isinstance(modes, list) else [modes]
    if len(modes) != len(metrics):
        raise SpaceError(f"{where}: mode: one per metric ({len(metrics)}), got {quoted(raw.get('mode'))}")
    for metric, mode in zip(metrics, modes):
        if mode not in ("min", "max"):
            raise SpaceError(f"{where}: mode: must be min or max, got {quoted(mode)}")
        if mode != figures.MODES[metric]:
            better = "lower" if figures.MODES[metric] == "min" else "higher"
            raise SpaceError(f"{where}: mode: {metric} is better when {better}; mode {mode} would search for the "
                             "worst trials")
    return list(zip(metrics, modes))


def _parse_exclude(raw: dict, params: list[Param], algorithm: str, seed_choices: list[int],
                   where: str) -> list[dict[str, list]]:
    """exclude: a list of partial grid points, {choice key: a value or a list of values}; each must drop a point. With
    seeds:, an entry may name train.seed: the matching points train without those seeds."""
    entries = raw.get("exclude") or []
    if not isinstance(entries, list):
        raise SpaceError(f"{where}: exclude: expected a list of partial grid points ({{key: value or [values]}})")
    if entries and algorithm != "grid":
        raise SpaceError(f"{where}: exclude: only a grid search can leave points out (search.algorithm is "
                         f"{algorithm})")
    choices = [param for param in params if param.kind == "choice"]
    if seed_choices:  # the seeds as one more choice key, for the checks below
        choices.append(Param(key=SEED_KEY, kind="choice", choices=seed_choices))
    by_key = {param.key: param for param in [*params, *choices]}
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
        if not any(matches(point, parsed) for point in grid_points(choices)):
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

