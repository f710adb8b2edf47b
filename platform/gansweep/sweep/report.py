"""`gansweep report`: one table and plots for a finished (or partly finished) sweep directory.

Reads SWEEP_DIR/sweep.json, SWEEP_DIR/trials.json and the sweep's Optuna study, and writes
SWEEP_DIR/report/: summary.md, trials.csv, metric_vs_<param>.png per swept parameter,
metric_vs_<numeric>_by_<categorical>.png per pair of a numeric and a categorical swept parameter and, when
Optuna can rank the parameters, importances.png; for a space with table:, table.md and table_<row>.png
(sweep/table.py); reversal_steps.png where KDE-GAN trials logged reversal steps (sweep/curves.py) and
pbt_lineage.png where PBT trials exploited (sweep/lineage.py). Nothing outside report/ is written.
"""

from __future__ import annotations

import csv
import math
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from gansweep import storage as locations  # `storage` is the Optuna storage URL here
from gansweep.sweep import curves, lineage, table
from gansweep.sweep import sweep_dir as layout

# The full evaluation's figures beside full_fid in the table, each where some trial's evaluation has it (sweeps
# evaluated before precision, recall, density and coverage were in the protocol get no empty columns).
FULL_FIGURES = ("precision", "recall", "density", "coverage")
ERROR_CHARS = 100  # an error is shortened to its last line, cut to this many characters
JITTER = 0.15  # half-width of the horizontal jitter of categorical strip points
# PED-ANOVA contrasts the best 10% of the trials with all of them: under 20 trials that best 10% is one or two
# trials, so a single trial decides the ranking (Optuna advises 5 in it, 50 trials; 20 is a floor, not a guarantee).
MIN_TRIALS_FOR_IMPORTANCE = 20
PARETO_PNG = "pareto.png"  # a sweep on two objectives: its Pareto front

# Status -> (colour, marker): failed/stopped trials must stand out from finished ones.
STATUS_STYLE = {
    "finished": ("tab:blue", "o"),
    "stopped": ("tab:orange", "s"),
    "running": ("tab:green", "^"),
    "pending": ("tab:gray", "v"),
    "failed": ("tab:red", "X"),
}


def write_report(sweep_dir: str | Path, storage: str | None = None) -> str:
    """Write SWEEP_DIR/report/ (a local folder, or on object storage) and return the location of its summary.md.

    storage overrides the Optuna storage URL in sweep.json (whose RDB password is masked as ***).
    """
    sweep_dir = locations.normalize(sweep_dir)
    sweep = layout.read_sweep_record(sweep_dir)
    trials = layout.read_trials(sweep_dir)
    trials_note = "" if trials is not None else f"{layout.TRIALS_FILE} is not written yet: no trial has started."
    trials = trials or []
    metric, mode = sweep["metric"], sweep["mode"]
    params = _swept_params(sweep.get("space") or {}, trials)

    report_dir = locations.join(sweep_dir, layout.REPORT_DIR)
    with locations.Mirror(report_dir) as out, tempfile.TemporaryDirectory() as scratch:
        ranked = sorted(trials, key=lambda t: _rank_key(t, mode))
        full_keys = _full_keys(metric, trials)
        columns = _columns(params, metric, full_keys)
        rows = [_table_row(t, params, metric, full_keys) for t in ranked]
        _write_csv(out / "trials.csv", columns, rows)

        plots, by_plots = _write_plots(out, sweep.get("space") or {}, params, trials, metric, mode)
        objectives = layout.objectives_of(sweep)
        front = None
        if len(objectives) > 1:
            front = layout.pareto_front(trials, objectives)
            _plot_pareto(out / PARETO_PNG, trials, objectives, front)

        # A sweep on object storage: its published SQLite study, read from a copy (never the driver's own file).
        study_url = storage or layout.study_copy(sweep_dir, sweep.get("storage"), Path(scratch))
        importances, importance_note = _importances(sweep, trials, study_url, out / "importances.png")
        pareto = _pareto_section(front, objectives, params) if front is not None else []
        summary = _summary(sweep, ranked, columns, rows, plots, by_plots, importances, importance_note, trials_note,
                           storage, pareto, table.write_table(out, sweep_dir, sweep, trials))
        # Training over time, after the per-parameter plots: KDE-GAN's reversal steps, PBT's exploits.
        over_time = _reversal_section(out, sweep_dir, sweep, trials) + _lineage_section(out, sweep, trials)
        summary += "\n".join(["", *over_time])
        (out / "summary.md").write_text(summary)
    return locations.join(report_dir, "summary.md")


def _write_plots(out: Path, space: dict, params: list[str], trials: list[dict], metric: str,
                 mode: str) -> tuple[dict, dict]:
    """Draw the plots; return (param -> its png, categorical param -> [(numeric param, png coloured by it)])."""
    kinds = {p: _spec_kind(space.get(p), [t["params"][p] for t in trials if p in t["params"]]) for p in params}
    plots, by_plots = {}, {}
    for param in params:
        plots[param] = f"metric_vs_{_safe_name(param)}.png"
        _plot_metric_vs_param(out / plots[param], param, space.get(param), trials, metric, mode)
    for by in (p for p in params if kinds[p] == "categorical"):
        by_plots[by] = []
        for param in (p for p in params if kinds[p] != "categorical"):
            png = f"metric_vs_{_safe_name(param)}_by_{_safe_name(by)}.png"
            _plot_metric_vs_param_by(out / png, param, space.get(param), by, space.get(by), trials, metric, mode)
            by_plots[by].append((param, png))
    return plots, by_plots


def _swept_params(space: dict, trials: list[dict]) -> list[str]:
    """The space's keys in its order, then any other param a trial reports (sorted)."""
    extra = sorted({key for t in trials for key in t["params"]} - set(space))
    return list(space) + extra


# ---------------------------------------------------------------- the table


def _best_value(trial: dict) -> float | None:
    best = trial.get("best") or {}
    value = best.get("value")
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _rank_key(trial: dict, mode: str) -> tuple:
    # Best first per mode; trials without a value (failed, pending, no report yet) last, by number.
    value = _best_value(trial)
    if value is None:
        return (1, 0.0, trial["number"])
    return (0, value if mode == "min" else -value, trial["number"])


def _short_error(error: str | None) -> str:
    # A traceback ends with the exception's own line, the informative one.
    if not error:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= ERROR_CHARS else last[: ERROR_CHARS - 1] + "…"


def _full_keys(metric: str, trials: list[dict]) -> list[str]:
    """The full evaluation's figures the table shows: fid, the metric, then those of FULL_FIGURES some trial has."""
    keys = ["fid"] + ([metric] if metric != "fid" else [])
    present = {key for t in trials for key in (t.get("full_evaluation") or {})}
    return keys + [key for key in FULL_FIGURES if key in present and key not in keys]


def _columns(params: list[str], metric: str, full_keys: list[str]) -> list[str]:
    full = [f"full_{key}" for key in full_keys]
    return ["name", "status", *params, f"{metric}_last", f"{metric}_best", "best_step", *full, "wall_min", "error"]


def _table_row(trial: dict, params: list[str], metric: str, full_keys: list[str]) -> dict:
    best = trial.get("best") or {}
    full = trial.get("full_evaluation") or {}
    wall = trial.get("wall_s")
    row = {"name": trial["name"], "status": trial.get("status", "")}
    for param in params:
        row[param] = trial["params"].get(param)  # None: inactive conditional param
    row[f"{metric}_last"] = (trial.get("metrics") or {}).get(metric)
    row[f"{metric}_best"] = _best_value(trial)
    row["best_step"] = best.get("step") if _best_value(trial) is not None else None
    for key in full_keys:
        row[f"full_{key}"] = full.get(key)
    row["wall_min"] = None if wall is None else float(wall) / 60
    row["error"] = _short_error(trial.get("error"))
    return row


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _md_cell(value) -> str:
    # A pipe would split the cell, a newline the row.
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- plots


def _safe_name(param: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", param)


def _spec_kind(spec: dict | None, values: list) -> str:
    """'log', 'linear' or 'categorical' for the x-axis of a parameter's plot."""
    if isinstance(spec, dict):
        if "loguniform" in spec:
            return "log"
        if "uniform" in spec or "int" in spec:
            return "linear"
        if "choice" in spec:
            return "categorical"
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return "linear" if numeric else "categorical"


def _categories(spec: dict | None, values: list) -> list:
    """The space's choices in their order, then any other value a trial took (in the order first seen)."""
    categories = list(spec["choice"]) if isinstance(spec, dict) and "choice" in spec else []
    for value in values:
        if value not in categories:
            categories.append(value)
    return categories


def _numeric_x_axis(ax, kind: str, spec: dict | None, xs: list[float]) -> None:
    """A log axis for a loguniform parameter, spanning the whole search range (and every trial's value)."""
    if kind == "log":
        ax.set_xscale("log")
    bounds = next((spec[k] for k in ("loguniform", "uniform", "int") if isinstance(spec, dict) and k in spec), None)
    if bounds is None or len(bounds) != 2:
        return
    # The whole search range, so one sees where in it the trials landed.
    lo, hi = min([float(bounds[0]), *xs]), max([float(bounds[1]), *xs])
    if kind == "log" and lo > 0:
        pad = (hi / lo) ** 0.04
        ax.set_xlim(lo / pad, hi * pad)
    elif hi > lo:
        pad = 0.04 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)


def _sweep_best(trials: list[dict], mode: str) -> dict | None:
    return min((t for t in trials if _best_value(t) is not None), key=lambda t: _rank_key(t, mode), default=None)


def _circle_best(ax, x: float, y: float) -> None:
    ax.scatter([x], [y], s=220, facecolors="none", edgecolors="black", linewidths=1.5, label="best", zorder=4)


def _plot_metric_vs_param(path: Path, param: str, spec: dict | None, trials: list[dict], metric: str, mode: str) -> None:
    """Best metric per trial against the parameter's value, coloured by status.

    Trials without a value (failed, pending) go in a thin strip under the plot, at their parameter value.
    """
    having = [t for t in trials if param in t["params"]]
    kind = _spec_kind(spec, [t["params"][param] for t in having])
    valued = [t for t in having if _best_value(t) is not None]
    missing = [t for t in having if _best_value(t) is None]
    # Constrained layout keeps a multi-line title inside the figure.
    fig = Figure(figsize=(6.4, 4.8 if missing else 4.4), layout="constrained")
    if missing:
        ax, strip = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [7, 1]})
    else:
        ax, strip = fig.add_subplot(), None
    bottom = strip if strip is not None else ax  # the axes that carries the x labels

    if kind == "categorical":
        categories = _categories(spec, [t["params"][param] for t in having])
        # Seeded jitter: the same sweep gives the same picture.
        jitter = np.random.default_rng(0).uniform(-JITTER, JITTER, size=len(having))
        x_of = {id(t): categories.index(t["params"][param]) + j for t, j in zip(having, jitter)}
        bottom.set_xticks(range(len(categories)), [str(c) for c in categories])
        bottom.set_xlim(-0.5, len(categories) - 0.5)
    else:
        x_of = {id(t): float(t["params"][param]) for t in having}
        _numeric_x_axis(bottom, kind, spec, list(x_of.values()))

    statuses = list(STATUS_STYLE) + sorted({t.get("status", "") for t in having} - set(STATUS_STYLE))
    for status in statuses:
        colour, marker = STATUS_STYLE.get(status, ("black", "d"))
        points = [(x_of[id(t)], _best_value(t)) for t in valued if t.get("status", "") == status]
        if points:
            ax.scatter(*zip(*points), c=colour, marker=marker, s=36, label=f"{status} ({len(points)})", zorder=3)
        xs = [x_of[id(t)] for t in missing if t.get("status", "") == status]
        if xs:
            strip.scatter(xs, [0] * len(xs), c=colour, marker=marker, s=48, zorder=3)
            ax.scatter([], [], c=colour, marker=marker, s=36, label=f"{status}, no {metric} ({len(xs)}): below")
    best = _sweep_best(trials, mode)
    if best is not None and best in valued:  # the sweep's best trial, when it has this parameter
        _circle_best(ax, x_of[id(best)], _best_value(best))
    if strip is not None:
        strip.set_yticks([])
        strip.set_ylabel(f"no {metric}", rotation=0, ha="right", va="center", fontsize=8)
        strip.grid(True, axis="x", alpha=0.3)
        ax.tick_params(labelbottom=False)

    notes = [f"{metric} vs {param}"]
    if missing:
        notes.append(f"{len(missing)} trial(s) without {metric} ({_status_counts(missing)}) shown below the plot")
    if len(having) < len(trials):
        notes.append(f"{len(trials) - len(having)} trial(s) without this parameter are left out")
    if isinstance(spec, dict) and spec.get("when"):
        notes.append("active when " + ", ".join(f"{k} in {v}" for k, v in spec["when"].items()))
    if not having:
        ax.text(0.5, 0.5, "no trial has a value for this parameter yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("\n".join(notes), fontsize=9)
    bottom.set_xlabel(param + (" (log scale)" if kind == "log" else ""))
    ax.set_ylabel(f"best {metric} ({'lower' if mode == 'min' else 'higher'} is better)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=100)


def _plot_metric_vs_param_by(path: Path, param: str, spec: dict | None, by: str, by_spec: dict | None,
                             trials: list[dict], metric: str, mode: str) -> None:
    """Best metric per trial against a numeric parameter, one colour and one line per category of the parameter by.

    The lines, through each category's trials in order of the parameter, are the trends a reader compares (the
    quickstart's ambient against ignore, over p). Markers keep meaning status. Trials without a value are left out:
    the per-parameter plot shows them.
    """
    having = [t for t in trials if param in t["params"] and by in t["params"]]
    valued = [t for t in having if _best_value(t) is not None]
    kind = _spec_kind(spec, [t["params"][param] for t in having])
    categories = _categories(by_spec, [t["params"][by] for t in having])
    palette = colormaps["tab10" if len(categories) <= 10 else "tab20"]  # qualitative: categories have no order
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _numeric_x_axis(ax, kind, spec, [float(t["params"][param]) for t in having])

    for i, category in enumerate(categories):
        colour = palette(i % palette.N)
        group = sorted((t for t in valued if t["params"][by] == category), key=lambda t: float(t["params"][param]))
        ax.plot([float(t["params"][param]) for t in group], [_best_value(t) for t in group], color=colour,
                alpha=0.7, label=f"{by} = {category} ({len(group)})", zorder=2)
        for status in sorted({t.get("status", "") for t in group}):
            points = [(float(t["params"][param]), _best_value(t)) for t in group if t.get("status", "") == status]
            ax.scatter(*zip(*points), color=colour, marker=STATUS_STYLE.get(status, ("black", "d"))[1], s=36, zorder=3)
    for status in sorted({t.get("status", "") for t in valued}):  # the marker key, in a neutral colour
        n = sum(t.get("status", "") == status for t in valued)
        ax.scatter([], [], color="0.45", marker=STATUS_STYLE.get(status, ("black", "d"))[1], s=36,
                   label=f"{status} ({n})")
    best = _sweep_best(trials, mode)
    if best is not None and best in valued:
        _circle_best(ax, float(best["params"][param]), _best_value(best))

    notes = [f"{metric} vs {param} by {by} (colour: {by}; marker: status)"]
    if len(valued) < len(having):
        notes.append(f"{len(having) - len(valued)} trial(s) without {metric} left out "
                     f"(shown in metric_vs_{_safe_name(param)}.png)")
    if len(having) < len(trials):
        notes.append(f"{len(trials) - len(having)} trial(s) without {param} or {by} left out")
    if not valued:
        ax.text(0.5, 0.5, f"no trial has {metric} and both parameters yet", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_title("\n".join(notes), fontsize=9)
    ax.set_xlabel(param + (" (log scale)" if kind == "log" else ""))
    ax.set_ylabel(f"best {metric} ({'lower' if mode == 'min' else 'higher'} is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=100)


# ---------------------------------------------------------------- importances


def _load_study(sweep: dict, storage: str | None):
    """(Optuna study, None) or (None, why it could not be opened)."""
    import optuna

    url = storage or sweep.get("storage")
    if not url or not sweep.get("study_name"):
        return None, "sweep.json names no Optuna storage and study"
    if "***" in url:
        return None, "the storage URL in sweep.json has its password masked; pass the unmasked storage URL"
    try:
        url = layout.study_url(url)  # a ${NAME} in it read from the environment, as the sweep did
    except layout.SweepDirError as exc:
        return None, str(exc)
    if url.startswith("sqlite:///"):
        # load_study would create an empty database file where there is none.
        db = Path(url[len("sqlite:///"):])
        if not db.is_file():
            return None, f"the Optuna database {db} does not exist (was the sweep directory moved?)"
    try:
        return optuna.load_study(study_name=sweep["study_name"], storage=url), None
    except Exception as exc:  # noqa: BLE001 - a bad URL, an unreachable server, a missing study: say so, go on
        return None, layout.redacted(f"Optuna could not open study {sweep['study_name']!r}: {exc}", url)


def _distribution(spec: dict):
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if "uniform" in spec:
        return FloatDistribution(*map(float, spec["uniform"]))
    if "loguniform" in spec:
        return FloatDistribution(*map(float, spec["loguniform"]), log=True)
    if "int" in spec:
        return IntDistribution(*map(int, spec["int"]))
    if "choice" in spec:
        return CategoricalDistribution(spec["choice"])
    return None


def _study_from_trials(sweep: dict, trials: list[dict]):
    """An in-memory study rebuilt from trials.json (best value per trial) when the real one cannot be opened."""
    import optuna

    distributions = {}
    for key, spec in (sweep.get("space") or {}).items():
        dist = _distribution(spec) if isinstance(spec, dict) else None
        if dist is not None:
            distributions[key] = dist
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line in the CLI's output
    try:
        study = optuna.create_study(direction="minimize" if sweep["mode"] == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for t in trials:
        value = _best_value(t)
        if value is None or t.get("status") not in ("finished", "stopped"):
            continue
        params = {k: v for k, v in t["params"].items() if k in distributions}
        try:
            study.add_trial(optuna.trial.create_trial(
                value=value, params=params, distributions={k: distributions[k] for k in params}))
        except ValueError:
            continue  # a value outside its declared range: leave that trial out
    return study


def _importances(sweep: dict, trials: list[dict], storage: str | None, png: Path) -> tuple[dict | None, str]:
    """(param -> importance, note on where they came from) or (None, why there are none); draws png."""
    import optuna
    from optuna.trial import TrialState

    png.unlink(missing_ok=True)  # a stale plot from an earlier report would contradict this one
    study, why_not = _load_study(sweep, storage)
    note = f"the Optuna study `{sweep.get('study_name')}`"
    if study is None:
        if not trials:
            return None, f"No importances: no trials yet, and {why_not}."
        study = _study_from_trials(sweep, trials)
        note = f"trials.json (each trial's best {sweep['metric']}), because {why_not}"

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, f"No importances: they need at least 2 complete trials, and there are {len(complete)}. Source: {note}."
    # A parameter with one value in every complete trial explains nothing, yet Optuna would rank it.
    values = {}
    for t in complete:
        for key, value in t.params.items():
            values.setdefault(key, set()).add(value)
    varying = sorted(key for key, seen in values.items() if len(seen) >= 2)
    if not varying:
        return None, f"No importances: no parameter takes two different values across the {len(complete)} complete trials. Source: {note}."

    evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # Optuna's default; needs no scikit-learn
    target = None
    if len(study.directions) > 1:  # Optuna ranks parameters on one number: the first objective's
        target = _first_value
        note += f", ranked on {sweep['metric']} (the first objective)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API and small-sample warnings
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varying,
                                                                  target=target)
    except Exception as exc:  # noqa: BLE001 - Optuna raises various errors on odd studies: report, not crash
        return None, f"No importances: Optuna could not compute them: {exc}. Source: {note}."
    if not importances:
        return None, f"No importances: Optuna returned none for these trials. Source: {note}."

    n = len(complete)
    unreliable = n < MIN_TRIALS_FOR_IMPORTANCE
    _draw_importances(study, evaluator, list(importances), sweep["metric"], target, png,
                      f"unreliable ({n} < {MIN_TRIALS_FOR_IMPORTANCE} trials)" if unreliable else "")
    if unreliable:
        return importances, (f"**Unreliable: computed over {n} complete trials, fewer than {MIN_TRIALS_FOR_IMPORTANCE}.** "
                             "Optuna's PED-ANOVA compares the best 10% of the trials with all of them, so here one or "
                             f"two trials decide the ranking: read the plots below instead. Source: {note}.")
    return importances, f"Computed by Optuna's PED-ANOVA over {n} complete trials. Source: {note}."


def _first_value(trial) -> float:
    return trial.values[0]


def _draw_importances(study, evaluator, params: list[str], metric: str, target, png: Path, caveat: str) -> None:
    """Optuna's importance bar chart, with caveat (when there is one) under its title."""
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_param_importances

    # Optuna switches the global style to ggplot; the context restores it for the next report's plots.
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore")
        ax = plot_param_importances(study, evaluator=evaluator, params=params, target=target, target_name=metric)
        if caveat:
            ax.set_title(f"{ax.get_title(loc='left')}\n{caveat}", loc="left")
        ax.figure.set_size_inches(6.4, 0.5 * len(params) + 1.8)
        ax.figure.tight_layout()
        ax.figure.savefig(png, dpi=100)
    plt.close(ax.figure)


# ---------------------------------------------------------------- two objectives


def _objective_label(metric: str, mode: str) -> str:
    return f"{metric} ({'lower' if mode == 'min' else 'higher'} is better)"


def _plot_pareto(path: Path, trials: list[dict], objectives: list[tuple[str, str]], front: list[dict]) -> None:
    """The finished trials on the two objectives (last reported values, as Optuna holds them), each labelled by its
    number, the front joined as a staircase in its order."""
    (x_metric, x_mode), (y_metric, y_mode) = objectives
    scored = [t for t in trials if t.get("status") == "finished"
              and all(isinstance(t.get("metrics", {}).get(m), (int, float)) for m, _ in objectives)]
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    on_front = {id(t) for t in front}
    others = [t for t in scored if id(t) not in on_front]
    if others:
        ax.scatter([t["metrics"][x_metric] for t in others], [t["metrics"][y_metric] for t in others], c="tab:gray",
                   s=36, label=f"dominated ({len(others)})", zorder=3)
        for t in others:
            ax.annotate(str(t["number"]), (t["metrics"][x_metric], t["metrics"][y_metric]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8, color="0.4")
    if front:
        xs, ys = [t["metrics"][x_metric] for t in front], [t["metrics"][y_metric] for t in front]
        ax.step(xs, ys, where="post", color="tab:red", alpha=0.6, zorder=2)
        ax.scatter(xs, ys, c="tab:red", s=56, label=f"Pareto front ({len(front)})", zorder=4)
        for t, x, y in zip(front, xs, ys):
            ax.annotate(str(t["number"]), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished trial has both metrics yet", ha="center", va="center", transform=ax.transAxes)
    left_out = len(trials) - len(scored)
    title = f"{y_metric} against {x_metric}: the trials no other beats on both (labels: trial numbers)"
    if left_out:
        title += f"\n{left_out} trial(s) not finished or without both metrics left out"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(_objective_label(x_metric, x_mode))
    ax.set_ylabel(_objective_label(y_metric, y_mode))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=100)


def _pareto_section(front: list[dict], objectives: list[tuple[str, str]], params: list[str]) -> list[str]:
    metrics = [metric for metric, _ in objectives]
    lines = ["## Pareto front", ""]
    lines.append(f"The finished trials no other finished trial beats on both {' and '.join(metrics)} (their last "
                 "reported values: what the Optuna study holds), best first on the first objective.")
    lines.append("")
    if front:
        header = ["trial", *metrics, *params]
        lines += [_md_table(header, [[t["name"], *(t["metrics"][m] for m in metrics),
                                      *(t["params"].get(p, "") for p in params)] for t in front]), ""]
    else:
        lines += ["No finished trial has both metrics yet.", ""]
    return lines + [f"![Pareto front]({PARETO_PNG})", ""]


# ---------------------------------------------------------------- summary.md


def _status_counts(trials: list[dict]) -> str:
    counts = {}
    for t in trials:
        counts[t.get("status", "unknown")] = counts.get(t.get("status", "unknown"), 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _summary(sweep, ranked, columns, rows, plots, by_plots, importances, importance_note, trials_note,
             storage, pareto: list[str], table_section: list[str] = ()) -> str:
    metric, mode = sweep["metric"], sweep["mode"]
    better = "lower" if mode == "min" else "higher"
    lines = [f"# Sweep report: {sweep['name']}", ""]
    lines.append(f"- Metric: `{metric}`, mode `{mode}` ({better} is better)")
    objectives = layout.objectives_of(sweep)
    if len(objectives) > 1:
        lines.append(f"- Objectives: {', '.join(f'`{m}` ({d})' for m, d in objectives)}; the first ranks the "
                     "trials below, the Pareto front weighs both")
    if sweep.get("search"):
        lines.append(f"- Search: `{sweep['search']}`")
    if sweep.get("study_name"):
        lines.append(f"- Optuna study: `{sweep['study_name']}` in `{layout.masked_url(storage or sweep.get('storage'))}`")
    lines.append(f"- Trials: {len(ranked)}" + (f" ({_status_counts(ranked)})" if ranked else ""))
    if trials_note:
        lines.append(f"- {trials_note}")
    lines.append("")

    lines += table_section  # a space with table: (sweep/table.py), before the trials it is made of
    lines += ["## Best trial", ""]
    best = ranked[0] if ranked and _best_value(ranked[0]) is not None else None
    if best is None:
        lines += [f"No trial has reported `{metric}` yet.", ""]
    else:
        step = (best.get("best") or {}).get("step")
        lines += [(f"**{best['name']}** (trial {best['number']}, {best.get('status', '')}): "
                  f"best {metric} {_fmt(_best_value(best))} at step {_fmt(step)}."), ""]
        if best["params"]:
            lines += [_md_table(["param", "value"], [[k, v] for k, v in best["params"].items()]), ""]
        if best.get("metrics"):
            lines += ["Last reported metrics:", "", _md_table(["metric", "value"], list(best["metrics"].items())), ""]
        if best.get("full_evaluation"):
            lines += ["Full evaluation:", "", _md_table(["figure", "value"], list(best["full_evaluation"].items())), ""]
        else:
            lines += ["No full evaluation recorded for this trial.", ""]

    lines += ["## Trials (best first)", ""]
    if rows:
        lines += [_md_table(columns, [[r[c] for c in columns] for r in rows]), ""]
        lines += [(f"`{metric}_last` is the last reported value, `{metric}_best` the best over the trial's reports "
                  f"(at `best_step`); the `full_*` columns are the trial's full evaluation (`eval.n_samples` "
                  "samples, when it trained to its end): precision is the share of samples that look real and recall "
                  "the share of the real data they reach, density and coverage the same measures made robust to "
                  "outliers (Naeem et al. 2020), so a collapsed generator shows low recall and coverage even where its "
                  "FID is good. "
                  "An empty parameter cell is a conditional parameter that is inactive, or one not sampled yet. "
                  "The same table with full precision: [trials.csv](trials.csv)."), ""]
    else:
        lines += ["No trials yet.", ""]

    lines += pareto  # after the trials: the front is read against them
    lines += ["## Parameter importances", "", importance_note, ""]
    if importances:
        lines += [_md_table(["param", "importance"], [[k, v] for k, v in importances.items()]), ""]
        lines += ["![parameter importances](importances.png)", ""]
    return "\n".join(lines + _plots_section(sweep, ranked, plots, by_plots))


def _plots_section(sweep: dict, trials: list[dict], plots: dict, by_plots: dict) -> list[str]:
    """The per-parameter plots, then per categorical parameter its per-value table and the plots coloured by it."""
    metric = sweep["metric"]
    lines = [f"## {metric} against each parameter", ""]
    for param, png in plots.items():
        lines += [f"### {param}", "", f"![{metric} vs {param}]({png})", ""]
    for by, pngs in by_plots.items():
        table = _category_table(by, (sweep.get("space") or {}).get(by), trials, metric, sweep["mode"])
        lines += [f"### {metric} by {by}", "", table, ""]
        lines += [(f"Over each value's trials that reported `{metric}`, stopped ones included (the scheduler stopped "
                   "them early, so their best comes from fewer steps)."
                   + (f" The plots draw one line per value of `{by}` through its trials." if pngs else "")), ""]
        for param, png in pngs:
            lines += [f"![{metric} vs {param} by {by}]({png})", ""]
    return lines


def _category_table(by: str, spec: dict | None, trials: list[dict], metric: str, mode: str) -> str:
    """One row per value of a categorical parameter: how many trials reported the metric, their best and mean."""
    having = [t for t in trials if by in t["params"]]
    rows = []
    for category in _categories(spec, [t["params"][by] for t in having]):
        values = [_best_value(t) for t in having if t["params"][by] == category and _best_value(t) is not None]
        best = (min(values) if mode == "min" else max(values)) if values else None
        rows.append([category, len(values), best, sum(values) / len(values) if values else None])
    return _md_table([by, f"trials with {metric}", f"best {metric}", f"mean {metric}"], rows)


# ---------------------------------------------------------------- training over time


def _reversal_section(out: Path, sweep_dir: str, sweep: dict, trials: list[dict]) -> list[str]:
    """KDE-GAN's reversal steps over training (curves.plot_reversal) and a sentence on them; [] for a sweep whose
    trials logged none."""
    ordered = sorted(trials, key=lambda t: t["number"])
    series = curves.reversal_series({t["name"]: layout.trial_log_dir(sweep_dir, t["name"]) for t in ordered})
    (out / curves.REVERSAL_PNG).unlink(missing_ok=True)  # a stale plot from an earlier report would contradict this one
    if not series:
        return []
    params = {t["name"]: t["params"] for t in ordered}
    max_steps = {name: curves.reversal_max_steps(params[name], sweep.get("fixed") or {}) for name in series}
    curves.plot_reversal(out / curves.REVERSAL_PNG, series, max_steps)
    with_error = any(curves.REVERSAL_ERROR_TAG in scalars for scalars in series.values())
    return ["## Generator reversal over training", "",
            (f"The steps each prior refresh's generator reversal took, against the training step, one line per "
             f"KDE-GAN trial ({len(series)}), up to `reversal.max_steps` (dashed)"
             + (", and under it the reversal error at the stop" if with_error else "")
             + ": the KDE-GAN paper's Fig. 5 (bottom row), where the number of steps the MMD stopping rule takes "
             "changes as training goes on (crude codes tell reals from fakes early, finer ones as the generator "
             "improves); without the rule every reversal takes `reversal.max_steps`."), "",
            f"![reversal steps over training]({curves.REVERSAL_PNG})", ""]


def _lineage_section(out: Path, sweep: dict, trials: list[dict]) -> list[str]:
    """PBT's exploits, a table row each, and the lineage plot (lineage.plot_lineage); [] for a sweep whose trials
    never exploited."""
    rows = lineage.exploits(trials)
    (out / lineage.LINEAGE_PNG).unlink(missing_ok=True)
    if not rows:
        return []
    lineage.plot_lineage(out / lineage.LINEAGE_PNG, trials, rows)
    scheduler = sweep.get("scheduler") or {}  # sweep.json files written before PBT name no scheduler
    interval = scheduler.get("perturbation_interval") if isinstance(scheduler, dict) else None
    table = [[row["trial"], row["step"], row["donor"],
              ", ".join(f"{key}: {_fmt(old, 3) or 'unset'} -> {_fmt(new, 3) or 'unset'}"
                        for key, (old, new) in row["changed"].items())] for row in rows]
    return ["## PBT lineage", "",
            (f"Population-based training{f' (perturbation interval {interval} steps)' if interval else ''}: "
             f"{len(rows)} exploit(s). At each, the trial restarted from the donor's checkpoint of that training "
             "step with the donor's params, perturbed; `changed` lists the params that differ from the trial's "
             "before it (old -> new). trials.json's `params` (and the tables above) are the ones first sampled."), "",
            _md_table(["trial", "step", "donor", "changed"], table), "",
            f"![PBT lineage]({lineage.LINEAGE_PNG})", ""]
