"""summary.md's own sections: what the sweep is, and its best trial. The other sections come from the modules that
write their tables and plots (report/write.py joins them)."""

from __future__ import annotations

from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.trials_table import best_value, fmt, md_table, status_counts

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
    if sweep.get("study_name"):
        lines.append(f"- Optuna study: `{sweep['study_name']}` in `{layout.masked_url(storage or sweep.get('storage'))}`")
    lines.append(f"- Trials: {len(ranked)}" + (f" ({status_counts(ranked)})" if ranked else ""))
    if trials_note:
        lines.append(f"- {trials_note}")
    lines.append("")
    return lines


def best_trial_section(sweep: dict, ranked: list[dict]) -> list[str]:
    """The first of RANKED: its params, last reported metrics and full evaluation."""
    metric = sweep["metric"]
    lines = ["## Best trial", ""]
    best = ranked[0] if ranked and best_value(ranked[0]) is not None else None
    if best is None:
        return lines + [f"No trial has reported `{metric}` yet.", ""]
    step = (best.get("best") or {}).get("step")
    lines += [(f"**{best['name']}** (trial {best['number']}, {best.get('status', '')}): "
              f"best {metric} {fmt(best_value(best))} at step {fmt(step)}."), ""]
    if best["params"]:
        lines += [md_table(["param", "value"], [[k, v] for k, v in best["params"].items()]), ""]
    if best.get("metrics"):
        lines += ["Last reported metrics:", "", md_table(["metric", "value"], list(best["metrics"].items())), ""]
    if best.get("full_evaluation"):
        lines += ["Full evaluation:", "", md_table(["figure", "value"], list(best["full_evaluation"].items())), ""]
    else:
        lines += ["No full evaluation recorded for this trial.", ""]
    return lines
