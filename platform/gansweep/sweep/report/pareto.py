"""The report of a sweep on two objectives: its Pareto front, as pareto.png and summary.md's section."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from gansweep.evaluation.intervals import interval
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.points import points, seeded
from gansweep.sweep.report.trials_table import md_table

PARETO_PNG = "pareto.png"


def write_pareto(out: Path, sweep: dict, trials: list[dict], params: list[str]) -> list[str]:
    """Draw OUT/pareto.png and return summary.md's section on the front; [] for a sweep on one objective."""
    objectives = layout.objectives_of(sweep)
    if len(objectives) < 2:
        return []
    if seeded(points(trials)):  # a mark per point: its seeds' mean on each objective
        trials = point_entries(trials, objectives)
    front = layout.pareto_front(trials, objectives)
    _plot_pareto(out / PARETO_PNG, trials, objectives, front)
    return _pareto_section(front, objectives, params)


def point_entries(trials: list[dict], objectives: list[tuple[str, str]]) -> list[dict]:
    """A trials.json-like entry per point of a sweep with seeds: finished where one of its seeds finished, each
    objective the mean over its finished seeds, with its 95% interval's half-width under "spread"."""
    entries = []
    for point in points(trials):
        finished = [t for t in point.trials if t.get("status") == layout.FINISHED]
        spans = {metric: interval((t.get("metrics") or {}).get(metric) for t in finished) for metric, _ in objectives}
        entries.append({"name": point.name, "number": point.number, "params": point.params,
                        "status": layout.FINISHED if finished else point.status(),
                        "metrics": {m: span.mean for m, span in spans.items() if span is not None},
                        "spread": {m: span.half_width or 0.0 for m, span in spans.items() if span is not None}})
    return entries


def _objective_label(metric: str, mode: str) -> str:
    return f"{metric} ({'lower' if mode == 'min' else 'higher'} is better)"


def _plot_pareto(path: Path, trials: list[dict], objectives: list[tuple[str, str]], front: list[dict]) -> None:
    """The finished trials (or points, with seeds: error bars their 95% intervals) on the two objectives (last
    reported values, as Optuna holds them), each labelled by its number, the front joined as a staircase in its
    order."""
    (x_metric, x_mode), (y_metric, y_mode) = objectives
    scored = [t for t in trials if t.get("status") == layout.FINISHED
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
    spread = [t for t in scored if any((t.get("spread") or {}).values())]
    if spread:
        ax.errorbar([t["metrics"][x_metric] for t in spread], [t["metrics"][y_metric] for t in spread],
                    xerr=[t["spread"][x_metric] for t in spread], yerr=[t["spread"][y_metric] for t in spread],
                    fmt="none", ecolor="0.6", capsize=2, zorder=1)
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
        lines += [md_table(header, [[t["name"], *(t["metrics"][m] for m in metrics),
                                     *(t["params"].get(p, "") for p in params)] for t in front]), ""]
    else:
        lines += ["No finished trial has both metrics yet.", ""]
    return lines + [f"![Pareto front]({PARETO_PNG})", ""]

