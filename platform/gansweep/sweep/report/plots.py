"""The report's plots of the value against each swept parameter, metric_vs_<param>.png, one mark per point (a trial,
or with seeds: the mean of its seeds with its 95% interval as an error bar), coloured by the sweep's main categorical
choice (colours.py) with a line per colour through its points along a numeric parameter; points without a value
(stopped, failed, running) in a strip under the plot. With summary.md's section on them, and per categorical
parameter a table of its values."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.colours import Colours, axis_kind, categories
from gansweep.sweep.report.points import Point, points, ranked, value_interval, value_label
from gansweep.sweep.report.trials_table import md_table

JITTER = 0.15  # half-width of the horizontal jitter of categorical strip points

# A point without a value, in the strip under a plot: its status's marker (colour keeps meaning the main choice).
STATUS_MARKERS = {layout.STOPPED: "s", layout.RUNNING: "^", layout.PENDING: "v", layout.FAILED: "X"}


def write_plots(out: Path, sweep: dict, params: list[str], trials: list[dict], colours: Colours) -> list[str]:
    """Draw OUT's plots of TRIALS; return summary.md's section on them."""
    space = sweep.get("space") or {}
    all_points = points(trials)
    best = next((p.name for p in ranked(trials, sweep["mode"])[:1] if value_interval(p) is not None),
                None)
    pngs = {}
    for param in params:
        pngs[param] = f"metric_vs_{_safe_name(param)}.png"
        _plot_value_vs_param(out / pngs[param], param, space.get(param), all_points, sweep, colours, best)
    return _plots_section(sweep, params, all_points, pngs, colours)


def _safe_name(param: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", param)


def numeric_x_axis(ax, kind: str, spec: dict | None, xs: list[float]) -> None:
    """A log axis for a loguniform parameter, spanning the whole search range (and every point's value); a choice of
    numbers ticked at its choices."""
    if kind == "log":
        ax.set_xscale("log")
    if isinstance(spec, dict) and "choice" in spec:
        ax.set_xticks([float(v) for v in spec["choice"]])
    bounds = next((spec[k] for k in ("loguniform", "uniform", "int") if isinstance(spec, dict) and k in spec), None)
    if bounds is None and isinstance(spec, dict) and "choice" in spec:
        bounds = [min(spec["choice"]), max(spec["choice"])]
    if bounds is None or len(bounds) != 2:
        return
    lo, hi = min([float(bounds[0]), *xs]), max([float(bounds[1]), *xs])
    if kind == "log" and lo > 0:
        pad = (hi / lo) ** 0.04
        ax.set_xlim(lo / pad, hi * pad)
    elif hi > lo:
        pad = 0.06 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)


def _missing_label(point: Point) -> str:
    """Why a point has no value: its trial's status (stopped at step N), or its seeds' counts."""
    return layout.status_text(point.trials[0]) if len(point.trials) == 1 else point.status()


def _plot_value_vs_param(path: Path, param: str, spec: dict | None, all_points: list[Point], sweep: dict,
                         colours: Colours, best: str | None) -> None:
    metric, mode = sweep["metric"], sweep["mode"]
    having = [p for p in all_points if param in p.params]
    kind = axis_kind(spec, [p.params[param] for p in having])
    values = {id(p): value_interval(p) for p in having}
    valued = [p for p in having if values[id(p)] is not None]
    missing = [p for p in having if values[id(p)] is None]
    fig = Figure(figsize=(6.4, 4.8 if missing else 4.4), layout="constrained")
    if missing:
        ax, strip = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [7, 1]})
    else:
        ax, strip = fig.add_subplot(), None
    bottom = strip if strip is not None else ax  # the axes that carries the x labels

    if kind == "categorical":
        names = categories(spec, [p.params[param] for p in having])
        jitter = np.random.default_rng(0).uniform(-JITTER, JITTER, size=len(having))  # seeded: the same picture
        x_of = {id(p): names.index(p.params[param]) + j for p, j in zip(having, jitter)}
        bottom.set_xticks(range(len(names)), [str(c) for c in names])
        bottom.set_xlim(-0.5, len(names) - 0.5)
    else:
        x_of = {id(p): float(p.params[param]) for p in having}
        numeric_x_axis(bottom, kind, spec, list(x_of.values()))

    for value in (colours.values or (None,)):
        group = sorted((p for p in valued if colours.key is None or p.params.get(colours.key) == value),
                       key=lambda p: x_of[id(p)])
        if not group:
            continue
        colour = colours.of_value(value)
        xs, ys = [x_of[id(p)] for p in group], [values[id(p)].mean for p in group]
        errors = [values[id(p)].half_width or 0.0 for p in group]
        label = (colours.label(value) if colours.key else "points") + f" ({len(group)})"
        if kind != "categorical" and len(group) > 1:  # the trend a reader compares between colours
            ax.plot(xs, ys, color=colour, alpha=0.6, zorder=2)
        ax.errorbar(xs, ys, yerr=errors if any(errors) else None, fmt="o", color=colour, markersize=6, capsize=3,
                    label=label, zorder=3)
    for point in (p for p in valued if p.name == best):  # the sweep's best point, where it has this parameter
        ax.scatter([x_of[id(point)]], [values[id(point)].mean], s=220, facecolors="none", edgecolors="black",
                   linewidths=1.5, label="best", zorder=4)
    for label in sorted({_missing_label(p) for p in missing}):
        group = [p for p in missing if _missing_label(p) == label]
        marker = STATUS_MARKERS.get(group[0].trials[0].get("status"), "d")
        strip.scatter([x_of[id(p)] for p in group], [0] * len(group), c=[colours.of(p.params) for p in group],
                      marker=marker, s=48, zorder=3)
        ax.scatter([], [], c="0.45", marker=marker, s=36, label=f"{label}, no value ({len(group)}): below")
    if strip is not None:
        strip.set_yticks([])
        strip.set_ylabel("no value", rotation=0, ha="right", va="center", fontsize=8)
        strip.grid(True, axis="x", alpha=0.3)
        ax.tick_params(labelbottom=False)

    seeded = any(len(p.trials) > 1 for p in having)
    notes = [f"val {metric} vs {param}" + (f" ({colours.title})" if colours.key else "")
             + ("; a mark per point: its seeds' mean ± 95% interval" if seeded else "")]
    if len(having) < len(all_points):
        notes.append(f"{len(all_points) - len(having)} point(s) without this parameter are left out")
    if isinstance(spec, dict) and spec.get("when"):
        notes.append("active when " + ", ".join(f"{k} in {v}" for k, v in spec["when"].items()))
    if not having:
        ax.text(0.5, 0.5, "no trial has a value for this parameter yet", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_title("\n".join(notes), fontsize=9)
    bottom.set_xlabel(param + (" (log scale)" if kind == "log" else ""))
    ax.set_ylabel(value_label(metric, mode), fontsize=9)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=100)


def _plots_section(sweep: dict, params: list[str], all_points: list[Point], pngs: dict, colours: Colours) -> list[str]:
    """The per-parameter plots, then per categorical parameter a table of its values."""
    metric, space = sweep["metric"], sweep.get("space") or {}
    lines = [f"## val {metric} against each parameter", "",
             (f"Each mark is a point's value: val `{metric}` at the last step of a trial that trained all its steps "
              "(with seeds: their mean ± the half-width of its 95% interval, an error bar); stopped, failed and "
              "running trials have none and sit in the strip under a plot."
              + (f" Colour: `{colours.key}`, the same in every plot." if colours.key else "")), ""]
    for param, png in pngs.items():
        lines += [f"### {param}", "", f"![val {metric} vs {param}]({png})", ""]
    for by in params:
        kind = axis_kind(space.get(by), [p.params[by] for p in all_points if by in p.params])
        if kind == "categorical":
            lines += [f"### val {metric} by {by}", "", _category_table(by, space.get(by), all_points, sweep), ""]
    return lines


def _category_table(by: str, spec: dict | None, all_points: list[Point], sweep: dict) -> str:
    """One row per value of a categorical parameter: how many points have a value, their best and mean."""
    metric, mode = sweep["metric"], sweep["mode"]
    having = [p for p in all_points if by in p.params]
    rows = []
    for value in categories(spec, [p.params[by] for p in having]):
        found = [value_interval(p) for p in having if p.params[by] == value]
        means = [v.mean for v in found if v is not None]
        best = (min(means) if mode == "min" else max(means)) if means else None
        rows.append([value, f"{len(means)} of {len(found)}", best, sum(means) / len(means) if means else None])
    return md_table([by, "points with a value", f"best val {metric}", f"mean val {metric}"], rows)
