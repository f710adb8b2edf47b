"""The report's grid of every trial's samples: each trial's newest samples.png (its run writes one at every image
step: at its end, or where the scheduler stopped it; G's moving average's with train.ema), a row per value of the
sweep's main categorical choice, each panel titled with the trial's other parameters and its value in that choice's
colour; samples.png and summary.md's section on it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gansweep.run import run_dir
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.colours import Colours
from gansweep.sweep.report.points import trial_value
from gansweep.sweep.report.trials_table import fmt

SAMPLES_PNG = "samples.png"
MAX_COLUMNS = 6  # panels per row: a value of the main choice with more trials wraps onto further rows
PANEL_INCHES = 2.3
TITLE_CHARS = 32  # a title's line at fontsize 8 across one panel
SAMPLES_DPI = 110  # a panel of 8 x 8 28-pixel samples (242 pixels) near its own size


def _title(trial: dict, metric: str, colours: Colours, step: int) -> str:
    value = trial_value(trial)
    if value is not None:
        end = f"val {metric} {fmt(value, 4)} (step {step})"
    elif trial.get("status") == layout.STOPPED:
        end = f"{layout.status_text(trial)}: no value"  # "stopped at step N"
    else:
        end = f"{trial.get('status', 'unknown')} (step {step}): no value"
    seed = f"seed {trial['seed']}, " if trial.get("seed") is not None and trial.get("group") != trial["name"] else ""
    # wrapped to the panel's width, so that neighbouring titles do not run into each other
    params = textwrap.fill(colours.rest(trial["params"]) or trial["name"], TITLE_CHARS, break_long_words=False)
    return f"#{trial['number']} {params}\n{seed}{end}"


def _rows(trials: list[dict], colours: Colours) -> list[list[dict]]:
    """The trials in rows: a value of the main choice per row (wrapped at MAX_COLUMNS), by trial number in a row."""
    keys = list(colours.values) + [None] if colours.key else [None]
    rows = []
    for key in keys:
        group = [t for t in trials if (t["params"].get(colours.key) if colours.key else None) == key]
        rows += [group[i:i + MAX_COLUMNS] for i in range(0, len(group), MAX_COLUMNS)]
    return rows


def write_samples_grid(out: Path, sweep_dir: str, sweep: dict, trials: list[dict], colours: Colours) -> list[str]:
    """Draw OUT/samples.png from the trials' samples; return summary.md's section on it ([] when no trial wrote
    samples yet)."""
    (out / SAMPLES_PNG).unlink(missing_ok=True)  # a stale grid from an earlier report would contradict this one
    found = {}
    for trial in sorted(trials, key=lambda t: t["number"]):
        samples = run_dir.read_samples(layout.trial_dir(sweep_dir, trial["name"]))
        if samples is not None:
            found[trial["name"]] = samples
    if not found:
        return []
    rows = _rows([t for t in sorted(trials, key=lambda t: t["number"]) if t["name"] in found], colours)
    columns = max(len(row) for row in rows)
    fig = Figure(figsize=(PANEL_INCHES * columns, (PANEL_INCHES + 0.5) * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        for c, trial in enumerate(row):
            image, step = found[trial["name"]]
            axes[r, c].imshow(np.asarray(image), cmap="gray" if image.mode == "L" else None, vmin=0, vmax=255)
            axes[r, c].set_title(_title(trial, sweep["metric"], colours, step), fontsize=8,
                                 color=colours.of(trial["params"]))
        if colours.key:
            axes[r, 0].text(-0.08, 0.5, str(row[0]["params"].get(colours.key, "-")), rotation=90, ha="right",
                            va="center", transform=axes[r, 0].transAxes, fontsize=10,
                            color=colours.of(row[0]["params"]))
    fig.suptitle("Each trial's newest samples (z fixed by its train.seed: the same in every panel of one seed)"
                 + (f"; a row per {colours.key}" if colours.key else ""), fontsize=10)
    fig.savefig(out / SAMPLES_PNG, dpi=SAMPLES_DPI)
    left_out = len(trials) - len(found)
    return ["## Samples", "",
            (f"Each trial's samples from a fixed z at its last image step ({len(found)} trials"
             + (f"; {left_out} wrote none yet" if left_out else "")
             + "), titled with its parameters and its value (val `" + sweep["metric"] + "` at its last step; a stopped "
             "or failed trial has none). With `train.ema` they are the moving average's."), "",
            f"![samples of every trial]({SAMPLES_PNG})", ""]
