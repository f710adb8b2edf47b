"""A sweep's console: a line per event a person follows (a trial started, each of its cheap evaluations, its end) and
a table of every trial at the sweep's end, all printed by the sweep's driver (runner.TrialsRecord, runner._summarise)
from what trials.json records. The trials' own output and Tune's table reach the console only with --verbose."""

from __future__ import annotations

from typing import Any

from gansweep.evaluation import figures
from gansweep.sweep import sweep_dir as layout


def say(text: str) -> None:
    print(f"[gansweep] {text}", flush=True)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def params_text(params: dict) -> str:
    return " ".join(f"{key}={_number(value)}" for key, value in params.items())


def started(entry: dict) -> None:
    seed = f" seed {entry['seed']}" if entry.get("group") != entry["name"] else ""  # one of a point's seeds
    say(f"{entry['name']} started: {params_text(entry['params'])}{seed}")


def evaluated(entry: dict, metric: str, metrics: dict) -> None:
    say(f"{entry['name']} step {metrics[figures.STEP]}: val {metric} {_number(metrics[metric])}")


def _test_fid(entry: dict, with_n: bool = False) -> str:
    """The full evaluation's FID against the test split ("" where the trial has none); WITH_N: its samples too."""
    evaluation = entry.get("full_evaluation") or {}
    if evaluation.get(figures.FID) is None:
        return ""
    n = f" (n={evaluation['n_fake']})" if with_n and evaluation.get("n_fake") else ""
    return _number(evaluation[figures.FID]) + n


def _outcome(entry: dict, metric: str, error_file: str | None = None) -> str:
    """What became of a trial, in words: its value, where the scheduler stopped it, or its error."""
    status = entry["status"]
    if status == layout.FINISHED:
        value = "none (not finite)" if entry.get("value") is None else _number(entry["value"])
        test = _test_fid(entry, with_n=True)
        return f"finished: val {metric} {value} at step {entry['metrics'].get('step')}" + (
            f", test fid {test}" if test else "")
    if status == layout.STOPPED:
        last = entry["metrics"].get(metric)
        return f"stopped by the scheduler at step {entry.get('stopped_at_step')}" + (
            f" (val {metric} {_number(last)})" if last is not None else "")
    if status == layout.FAILED:
        return f"failed: {entry.get('error')}" + (f" (traceback: {error_file})" if error_file else "")
    return status


def ended(entry: dict, metric: str, error_file: str | None = None) -> None:
    """A trial's end: its value, the step the scheduler stopped it at, or its error (ERROR_FILE: Tune's, with the
    traceback)."""
    say(f"{entry['name']} {_outcome(entry, metric, error_file)}")


def restarting(entry: dict, error_file: str | None) -> None:
    say(f"{entry['name']} failed and restarts from its last checkpoint (Tune's error file: {error_file})")


def table(trials: list[dict], metric: str) -> None:
    """Every trial, in number order: its name, params, status, value (val METRIC at its final step) and test fid."""
    header = ("trial", "params", "status", f"val {metric}", "test fid")
    rows = [header]
    for entry in sorted(trials, key=lambda t: t["number"]):
        status = layout.status_text(entry)
        value = entry.get("value")
        rows.append((entry["name"], params_text(entry["params"]), status, "" if value is None else _number(value),
                     _test_fid(entry)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        say("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def best(trials: list[dict], metric: str, mode: str) -> None:
    """The best point by its value (sweep_dir.best_point): a trial, or a point's seeds and their mean."""
    found = layout.best_point(trials, mode)
    if found is None:
        say(f"no trial finished with a val {metric}")
        return
    entries, value = found
    first = entries[0]
    params = params_text((first.get("lineage") or [first])[-1]["params"])  # a PBT clone's last ones
    if len(entries) > 1:
        say(f"best point {first['group']}: val {metric} {_number(value)} (the mean of its {len(entries)} seeds at "
            f"their final step); params {params}")
        return
    test = _test_fid(first, with_n=True)
    say(f"best trial {first['name']}: val {metric} {_number(value)} at step {first['metrics'].get('step')}"
        + (f", test fid {test}" if test else "") + f"; params {params}")
