"""summary.md's own sections: what the sweep is, and its best trial. The other sections come from the modules that
write their tables and plots (report/write.py joins them)."""

from __future__ import annotations

from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.points import Point, trial_value
from gansweep.sweep.report.trials_table import fmt, md_table, status_counts

SUMMARY_FILE = "summary.md"


def header_section(sweep: dict, ranked: list[dict], trials_note: str, storage: str | None) -> list[str]:
    """The title and the sweep's metric, objectives, search, study and trial counts. STORAGE: the Optuna storage URL
    the caller named, shown (masked) instead of sweep.json's."""
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
    if (sweep.get("seeds") or 1) > 1:
        lines.append(f"- Seeds: {sweep['seeds']} per point (`seeds`), a trial each; the search and the tables take "
                     "their mean")
    if sweep.get("study_name"):
        lines.append(f"- Optuna study: `{sweep['study_name']}` in `{layout.masked_url(storage or sweep.get('storage'))}`")
    lines.append(f"- Trials: {len(ranked)}" + (f" ({status_counts(ranked)})" if ranked else ""))
    if trials_note:
        lines.append(f"- {trials_note}")
    lines.append("")
    return lines


def best_trial_section(sweep: dict, ranked: list[Point]) -> list[str]:
    """The first point of RANKED: its value (sweep_dir.point_value), params, last reported metrics and full evaluation
    (over its seeds, where the space has several)."""
    metric = sweep["metric"]
    lines = ["## Best trial", ""]
    best = ranked[0] if ranked and layout.point_value(ranked[0].trials) is not None else None
    if best is None:
        return lines + [f"No trial has finished with a `{metric}` yet.", ""]
    if len(best.trials) > 1:
        return lines + _seeds_lines(metric, best)
    best = best.trials[0]
    lines += [(f"**{best['name']}** (trial {best['number']}, {best.get('status', '')}): "
              f"val {metric} {fmt(trial_value(best))} at its final step {fmt(best['metrics'].get('step'))}."), ""]
    if best["params"]:
        lines += [md_table(["param", "value"], [[k, v] for k, v in best["params"].items()]), ""]
    if best.get("metrics"):
        lines += ["Last reported metrics:", "", md_table(["metric", "value"], list(best["metrics"].items())), ""]
    if best.get("full_evaluation"):
        lines += ["Full evaluation:", "", md_table(["figure", "value"], list(best["full_evaluation"].items())), ""]
    else:
        lines += ["No full evaluation recorded for this trial.", ""]
    return lines


def _seeds_lines(metric: str, point: Point) -> list[str]:
    """A point of several seeds: each figure as their mean ± its 95% interval's half-width, and n."""
    value = point.figure(trial_value)
    seeds = ", ".join(f"{trial['name']} (seed {trial.get('seed')})" for trial in point.trials)
    lines = [(f"**{point.name}** (trial {point.number}, {point.status()}): val {metric} {value.text()} (n={value.n}, "
              f"the mean of its seeds' values at their final step ± the half-width of its 95% interval). Its seeds: "
              f"{seeds}."), ""]
    if point.params:
        lines += [md_table(["param", "value"], [[k, v] for k, v in point.params.items()]), ""]
    for title, section in (("Last reported metrics", "metrics"), ("Full evaluation", "full_evaluation")):
        keys = list(dict.fromkeys(key for trial in point.trials for key in (trial.get(section) or {})))
        rows = []
        for key in keys:
            values = [(trial.get(section) or {}).get(key) for trial in point.trials]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None):
                continue  # the protocol's names (reference split, network): the same for every seed
            figure = point.figure(lambda trial, key=key: (trial.get(section) or {}).get(key))
            if figure is not None:
                rows.append([key, figure.text(), figure.n])
        lines += ([f"{title} over the seeds:", "", md_table(["figure", "mean ± 95% interval", "n"], rows), ""] if rows
                  else [f"No {title.lower()} recorded for these trials.", ""])
    return lines
