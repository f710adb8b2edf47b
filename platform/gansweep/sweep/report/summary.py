"""summary.md's own sections: what the sweep is, and its best trial. The other sections come from the modules that
write their tables and plots (report/write.py joins them)."""

from __future__ import annotations

from gansweep.evaluation import figures
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.points import Point, trial_value
from gansweep.sweep.report.trials_table import fmt, md_table, status_counts

SUMMARY_FILE = "summary.md"
# The best trial's test figures shown in its section; the rest of its record (the evaluation's protocol: checkpoint,
# fingerprints, prdc_k; its last report's timings) is the appendix's.
MAIN_FIGURES = tuple(key for key in (*figures.FULL, *figures.INCEPTION) if key != "kid_std")


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
    evaluation = best.get("full_evaluation") or {}
    shown = [[f"test {key}", evaluation[key]] for key in MAIN_FIGURES if key in evaluation]
    if shown:
        lines += [_test_heading(evaluation), "", md_table(["figure", "value"], shown), ""]
    else:
        lines += ["No test evaluation recorded for this trial.", ""]
    return lines


def _test_heading(evaluation: dict) -> str:
    """What the test figures were computed on, as the protocol records it."""
    n_fake, n_real = evaluation.get("n_fake"), evaluation.get("n_real")
    on = f" on {n_fake} samples against {n_real} {evaluation.get('reference_split', 'test')} images" if n_fake else ""
    return f"Test evaluation{on} (the figures to publish; its protocol in the appendix):"


def appendix_section(ranked: list[Point]) -> list[str]:
    """The best point's record beyond its section's figures: its test evaluation's protocol (checkpoint, feature
    network, sample counts) and its last report (timings, losses), a trial at a time."""
    best = ranked[0] if ranked and layout.point_value(ranked[0].trials) is not None else None
    if best is None:
        return []
    lines = ["## Appendix: the best trial's record", ""]
    for trial in best.trials:
        evaluation = {k: v for k, v in (trial.get("full_evaluation") or {}).items() if k not in MAIN_FIGURES}
        lines += [f"**{trial['name']}**", ""]
        if evaluation:
            lines += ["Test evaluation's protocol:", "", md_table(["field", "value"], list(evaluation.items())), ""]
        if trial.get("metrics"):
            lines += ["Last report:", "", md_table(["metric", "value"], list(trial["metrics"].items())), ""]
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
    rows = []
    for key in MAIN_FIGURES:
        figure = point.figure(lambda trial, key=key: (trial.get("full_evaluation") or {}).get(key))
        if figure is not None:
            rows.append([f"test {key}", figure.text(), figure.n])
    evaluation = next((t["full_evaluation"] for t in point.trials if t.get("full_evaluation")), {})
    lines += ([_test_heading(evaluation)[:-1] + ", over the seeds:", "",
               md_table(["figure", "mean ± 95% interval", "n"], rows), ""] if rows
              else ["No test evaluation recorded for these trials.", ""])
    return lines
