"""The report's plots of the metric against each swept parameter: metric_vs_<param>.png per parameter, and
metric_vs_<numeric>_by_<categorical>.png per pair of a numeric and a categorical parameter, with summary.md's
section on them (and per categorical parameter a table of its values)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.points import trial_value
from gansweep.sweep.report.trials_table import md_table, rank_key, status_counts

JITTER = 0.15  # half-width of the horizontal jitter of categorical strip points

# Status -> (colour, marker): failed/stopped trials must stand out from finished ones.
STATUS_STYLE = {
    layout.FINISHED: ("tab:blue", "o"),
    layout.STOPPED: ("tab:orange", "s"),
    layout.RUNNING: ("tab:green", "^"),
    layout.PENDING: ("tab:gray", "v"),
    layout.FAILED: ("tab:red", "X"),
}


def write_plots(out: Path, sweep: dict, params: list[str], trials: list[dict], ranked: list[dict]) -> list[str]:
    """Draw OUT's plots of TRIALS; return summary.md's section on them (its per-value tables in RANKED's order)."""
    plots, by_plots = _write_plots(out, sweep.get("space") or {}, params, trials, sweep["metric"], sweep["mode"])
    return _plots_section(sweep, ranked, plots, by_plots)


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
    return min((t for t in trials if trial_value(t) is not None), key=lambda t: rank_key(t, mode), default=None)


def _circle_best(ax, x: float, y: float) -> None:
    ax.scatter([x], [y], s=220, facecolors="none", edgecolors="black", linewidths=1.5, label="best", zorder=4)


def _plot_metric_vs_param(path: Path, param: str, spec: dict | None, trials: list[dict], metric: str, mode: str) -> None:
    """Best metric per trial against the parameter's value, coloured by status.

    Trials without a value (failed, pending) go in a thin strip under the plot, at their parameter value.
    """
    having = [t for t in trials if param in t["params"]]
    kind = _spec_kind(spec, [t["params"][param] for t in having])
    valued = [t for t in having if trial_value(t) is not None]
    missing = [t for t in having if trial_value(t) is None]
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
        points = [(x_of[id(t)], trial_value(t)) for t in valued if t.get("status", "") == status]
        if points:
            ax.scatter(*zip(*points), c=colour, marker=marker, s=36, label=f"{status} ({len(points)})", zorder=3)
        xs = [x_of[id(t)] for t in missing if t.get("status", "") == status]
        if xs:
            strip.scatter(xs, [0] * len(xs), c=colour, marker=marker, s=48, zorder=3)
            ax.scatter([], [], c=colour, marker=marker, s=36, label=f"{status}, no {metric} ({len(xs)}): below")
    best = _sweep_best(trials, mode)
    if best is not None and best in valued:  # the sweep's best trial, when it has this parameter
        _circle_best(ax, x_of[id(best)], trial_value(best))
    if strip is not None:
        strip.set_yticks([])
        strip.set_ylabel(f"no {metric}", rotation=0, ha="right", va="center", fontsize=8)
        strip.grid(True, axis="x", alpha=0.3)
        ax.tick_params(labelbottom=False)

    notes = [f"{metric} vs {param}"]
    if missing:
        notes.append(f"{len(missing)} trial(s) without {metric} ({status_counts(missing)}) shown below the plot")
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
    valued = [t for t in having if trial_value(t) is not None]
    kind = _spec_kind(spec, [t["params"][param] for t in having])
    categories = _categories(by_spec, [t["params"][by] for t in having])
    palette = colormaps["tab10" if len(categories) <= 10 else "tab20"]  # qualitative: categories have no order
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _numeric_x_axis(ax, kind, spec, [float(t["params"][param]) for t in having])

    for i, category in enumerate(categories):
        colour = palette(i % palette.N)
        group = sorted((t for t in valued if t["params"][by] == category), key=lambda t: float(t["params"][param]))
        ax.plot([float(t["params"][param]) for t in group], [trial_value(t) for t in group], color=colour,
                alpha=0.7, label=f"{by} = {category} ({len(group)})", zorder=2)
        for status in sorted({t.get("status", "") for t in group}):
            points = [(float(t["params"][param]), trial_value(t)) for t in group if t.get("status", "") == status]
            ax.scatter(*zip(*points), color=colour, marker=STATUS_STYLE.get(status, ("black", "d"))[1], s=36, zorder=3)
    for status in sorted({t.get("status", "") for t in valued}):  # the marker key, in a neutral colour
        n = sum(t.get("status", "") == status for t in valued)
        ax.scatter([], [], color="0.45", marker=STATUS_STYLE.get(status, ("black", "d"))[1], s=36,
                   label=f"{status} ({n})")
    best = _sweep_best(trials, mode)
    if best is not None and best in valued:
        _circle_best(ax, float(best["params"][param]), trial_value(best))

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
        values = [trial_value(t) for t in having if t["params"][by] == category and trial_value(t) is not None]
        best = (min(values) if mode == "min" else max(values)) if values else None
        rows.append([category, len(values), best, sum(values) / len(values) if values else None])
    return md_table([by, f"trials with {metric}", f"best {metric}", f"mean {metric}"], rows)
