"""The report's table of every point, best first: trials.csv and summary.md's "Trials (best first)" section (a row
per trial, or per point with its seeds' mean, 95% interval and n where the space has `seeds:`), and the markdown
helpers the other sections write their tables with."""

from __future__ import annotations

import csv
from pathlib import Path

from gansweep.evaluation import figures
from gansweep.evaluation.intervals import Interval
from gansweep.sweep.report.points import Point, trial_value, seeded

TRIALS_CSV = "trials.csv"
# The full evaluation's figures beside full_fid in the table, each where some trial's evaluation has it (sweeps
# evaluated before precision, recall, density and coverage were in the protocol, or without Inception features, get
# no empty columns).
FULL_FIGURES = ("precision", "recall", "density", "coverage", *figures.INCEPTION)
ERROR_CHARS = 100  # an error is shortened to its last line, cut to this many characters


def rank_key(trial: dict, mode: str) -> tuple:
    # Best first per mode; trials without a value (failed, pending, no report yet) last, by number.
    value = trial_value(trial)
    if value is None:
        return (1, 0.0, trial["number"])
    return (0, value if mode == "min" else -value, trial["number"])


def status_counts(trials: list[dict]) -> str:
    counts = {}
    for t in trials:
        counts[t.get("status", "unknown")] = counts.get(t.get("status", "unknown"), 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _short_error(error: str | None) -> str:
    # A traceback ends with the exception's own line, the informative one.
    if not error:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= ERROR_CHARS else last[: ERROR_CHARS - 1] + "…"


def _full_keys(metric: str, trials: list[dict]) -> list[str]:
    """The full evaluation's figures the table shows: fid, the metric, then those of FULL_FIGURES some trial has."""
    keys = [figures.FID] + ([metric] if metric != figures.FID else [])
    present = {key for t in trials for key in (t.get("full_evaluation") or {})}
    return keys + [key for key in FULL_FIGURES if key in present and key not in keys]


def _figures(metric: str, full_keys: list[str]) -> dict:
    """The table's figures: column -> what it reads of a trial."""
    read = {"value": trial_value, f"{metric}_last": lambda t: (t.get("metrics") or {}).get(metric)}
    for key in full_keys:
        read[f"full_{key}"] = lambda t, key=key: (t.get("full_evaluation") or {}).get(key)
    return read


def _columns(params: list[str], metric: str, full_keys: list[str], with_seeds: bool, spread: bool) -> list[str]:
    """The table's columns. With seeds, the step a trial was stopped at (one per seed) gives way to its seeds; SPREAD
    (the CSV of a sweep with seeds): each figure's interval half-width and n in columns beside its mean."""
    shown = []
    for column in _figures(metric, full_keys):
        shown += [column, f"{column}_ci95", f"{column}_n"] if spread else [column]
        if column == f"{metric}_last" and not with_seeds:
            shown.append("stopped_at_step")
    seeds = ["seeds"] if with_seeds else []
    return ["name", "status", *seeds, *params, *shown, "wall_min", "error"]


def _table_row(point: Point, params: list[str], metric: str, full_keys: list[str], with_seeds: bool) -> dict:
    """A point's row: its figures, each an Interval (a point of one trial: its value) under the column's name."""
    first = point.trials[0]
    walls = [float(t["wall_s"]) for t in point.trials if t.get("wall_s") is not None]
    row = {"name": point.name, "status": point.status()}
    if with_seeds:
        row["seeds"] = " ".join(str(seed) for seed in point.seeds)
    for param in params:
        row[param] = first["params"].get(param)  # None: inactive conditional param
    for column, read in _figures(metric, full_keys).items():
        row[column] = point.figure(read)
    if not with_seeds:
        row["stopped_at_step"] = first.get("stopped_at_step")
    row["wall_min"] = sum(walls) / len(walls) / 60 if walls else None  # a seed's mean wall time
    row["error"] = next((_short_error(t.get("error")) for t in point.trials if t.get("error")), "")
    return row


def _csv_row(row: dict) -> dict:
    """A row's intervals as the CSV's columns: the mean, and with seeds its half-width and n beside it."""
    flat = {}
    for key, value in row.items():
        if isinstance(value, Interval):
            flat[key] = value.mean
            flat[f"{key}_ci95"], flat[f"{key}_n"] = value.half_width, value.n
        else:
            flat[key] = value
    return flat


def _md_row(row: dict, columns: list[str], with_seeds: bool) -> list:
    """A row's cells for the markdown table: an interval as 'mean ± half-width (n=N)' with seeds, its value without."""
    cells = []
    for column in columns:
        value = row.get(column)
        if isinstance(value, Interval):
            value = f"{value.text()} (n={value.n})" if with_seeds else value.mean
        cells.append(value)
    return cells


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")  # a point of one seed: no _ci95, _n
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in _csv_row(row).items()})


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _md_cell(value) -> str:
    # A pipe would split the cell, a newline the row.
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_trials_table(out: Path, ranked: list[Point], params: list[str], metric: str) -> list[str]:
    """Write OUT/trials.csv, a row per point of RANKED (best first); return summary.md's section of the same table."""
    full_keys = _full_keys(metric, [trial for point in ranked for trial in point.trials])
    with_seeds = seeded(ranked)
    rows = [_table_row(point, params, metric, full_keys, with_seeds) for point in ranked]
    _write_csv(out / TRIALS_CSV, _columns(params, metric, full_keys, with_seeds, spread=with_seeds), rows)
    shown = _columns(params, metric, full_keys, with_seeds, spread=False)
    lines = ["## Trials (best first)", ""]
    if not rows:
        return lines + ["No trials yet.", ""]
    seeds_note = ("Each row is a point and its seeds (the trials of `seeds`): every figure is their mean ± the "
                  "half-width of its 95% interval (Student t, n - 1 degrees of freedom) over the n seeds that have "
                  "it; the CSV has the half-width and n in its own columns. ") if with_seeds else ""
    return lines + [md_table(shown, [_md_row(r, shown, with_seeds) for r in rows]), "", seeds_note +
                    (f"`value` ranks the trials: a finished trial's `{metric}` at its final step (none for a trial "
                     f"stopped early, at `stopped_at_step`); `{metric}_last` is the last reported value; the "
                     f"`full_*` columns are the trial's full evaluation (`eval.n_samples` "
                     "samples, when it trained to its end): precision is the share of samples that look real and "
                     "recall the share of the real data they reach, density and coverage the same measures made "
                     "robust to outliers (Naeem et al. 2020), so a collapsed generator shows low recall and coverage "
                     "even where its FID is good. "
                     "An empty parameter cell is a conditional parameter that is inactive, or one not sampled yet. "
                     f"The same table with full precision: [{TRIALS_CSV}]({TRIALS_CSV})."), ""]
