"""The report's table of every trial, best first: trials.csv and summary.md's "Trials (best first)" section, and the
markdown helpers the other sections write their tables with."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from gansweep.evaluation import figures

TRIALS_CSV = "trials.csv"
# The full evaluation's figures beside full_fid in the table, each where some trial's evaluation has it (sweeps
# evaluated before precision, recall, density and coverage were in the protocol, or without Inception features, get
# no empty columns).
FULL_FIGURES = ("precision", "recall", "density", "coverage", *figures.INCEPTION)
ERROR_CHARS = 100  # an error is shortened to its last line, cut to this many characters


def best_value(trial: dict) -> float | None:
    best = trial.get("best") or {}
    value = best.get("value")
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def rank_key(trial: dict, mode: str) -> tuple:
    # Best first per mode; trials without a value (failed, pending, no report yet) last, by number.
    value = best_value(trial)
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


def _columns(params: list[str], metric: str, full_keys: list[str]) -> list[str]:
    full = [f"full_{key}" for key in full_keys]
    return ["name", "status", *params, f"{metric}_last", figures.best_key(metric), "best_step", *full, "wall_min", "error"]


def _table_row(trial: dict, params: list[str], metric: str, full_keys: list[str]) -> dict:
    best = trial.get("best") or {}
    full = trial.get("full_evaluation") or {}
    wall = trial.get("wall_s")
    row = {"name": trial["name"], "status": trial.get("status", "")}
    for param in params:
        row[param] = trial["params"].get(param)  # None: inactive conditional param
    row[f"{metric}_last"] = (trial.get("metrics") or {}).get(metric)
    row[figures.best_key(metric)] = best_value(trial)
    row["best_step"] = best.get("step") if best_value(trial) is not None else None
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


def write_trials_table(out: Path, ranked: list[dict], params: list[str], metric: str) -> list[str]:
    """Write OUT/trials.csv, a row per trial of RANKED (best first); return summary.md's section of the same table."""
    full_keys = _full_keys(metric, ranked)
    columns = _columns(params, metric, full_keys)
    rows = [_table_row(t, params, metric, full_keys) for t in ranked]
    _write_csv(out / TRIALS_CSV, columns, rows)
    lines = ["## Trials (best first)", ""]
    if not rows:
        return lines + ["No trials yet.", ""]
    return lines + [md_table(columns, [[r[c] for c in columns] for r in rows]), "",
                    (f"`{metric}_last` is the last reported value, `{metric}_best` the best over the trial's reports "
                     f"(at `best_step`); the `full_*` columns are the trial's full evaluation (`eval.n_samples` "
                     "samples, when it trained to its end): precision is the share of samples that look real and "
                     "recall the share of the real data they reach, density and coverage the same measures made "
                     "robust to outliers (Naeem et al. 2020), so a collapsed generator shows low recall and coverage "
                     "even where its FID is good. "
                     "An empty parameter cell is a conditional parameter that is inactive, or one not sampled yet. "
                     f"The same table with full precision: [{TRIALS_CSV}]({TRIALS_CSV})."), ""]
