"""The table of a sweep whose space names one, `table: {rows: KEY, columns: KEY}` (search_spaces/paper_table.yaml).

Per row and column: the full evaluation's FID and classifier score over the cell's trials (its seeds: the space's
`seeds:`, or every key but the two), each as mean ± the half-width of its 95% interval (evaluation/intervals.py), and
n; a table each for the evaluated generator, G's own weights (train.ema) and the Inception features where trials have
them, each with every column's FID over the first column's (the reference arm) as a ratio with its interval. A
column whose trials have no row (the clean arm, whose `row` is inactive) is the
same on every line. A cell without a finished, fully evaluated trial shows "-", so a sweep still running reports
what it has. Beside it one sample grid per row: each column's lowest-seed finished trial's own samples.png (drawn by
its run at its end from a z fixed by its train.seed, so panels of one seed share it; the moving average's with
train.ema).
`gansweep report` writes them into report/: table.md and table_<row>.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gansweep.evaluation import figures
from gansweep.evaluation.intervals import interval, ratio_interval
from gansweep.run import run_dir
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.samples import SAMPLES_DPI

TABLE_FILE = "table.md"


def _names(sweep: dict, key: str) -> list:
    return list((sweep.get("space") or {}).get(key, {}).get("choice") or [])


# The tables a sweep's full evaluations give: (title, FID key, score key or None), each written where some trial has
# its FID: the generator the run evaluates (G's moving average with train.ema), G's own weights beside it, and the
# standard Inception features (eval.features).
FIGURE_SETS = (
    ("FID on the classifier's features (the evaluated generator: G's moving average where train.ema is on)",
     figures.FID, figures.CLASSIFIER_SCORE),
    ("FID of G's own weights (train.ema's runs record them beside the average's)",
     figures.raw_key(figures.FID), figures.raw_key(figures.CLASSIFIER_SCORE)),
    ("FID on the standard Inception features (eval.features: inception)", "fid_inception", None),
)


def _evaluated(trials: list[dict], fid: str = figures.FID) -> list[dict]:
    return [t for t in trials if t.get("status") == layout.FINISHED and (t.get("full_evaluation") or {}).get(fid)
            is not None]


def cells(trials: list[dict], rows: str, columns: str) -> dict[tuple, list[dict]]:
    """(row, column) -> the trials of that cell; row None: a column whose trials have no row, shared by every row."""
    found: dict[tuple, list[dict]] = {}
    for trial in trials:
        params = trial["params"]
        if columns in params:
            found.setdefault((params.get(rows), params[columns]), []).append(trial)
    return found


def _cell(trials: list[dict], fid_key: str, score_key: str | None) -> str:
    if not trials:
        return "-"
    fid = interval(t["full_evaluation"][fid_key] for t in trials)
    score = interval(t["full_evaluation"].get(score_key) for t in trials) if score_key else None
    return f"{fid.text('.2f')}" + (f" ({score.text('.2f')})" if score else "") + f" n={fid.n}"


def _grid(sweep: dict, trials: list[dict], fid_key: str | None = None) -> tuple[list, set, dict]:
    """The column names, the shared ones (those whose trials have no row), and row -> column name -> that cell's
    trials (with FID_KEY: its finished trials that have it): what the table, its ratios and its sample grids read."""
    rows, columns = sweep["table"]["rows"], sweep["table"]["columns"]
    names = _names(sweep, columns)
    shared = {column for (row, column) in cells(trials, rows, columns) if row is None}
    by_cell = cells(trials if fid_key is None else _evaluated(trials, fid_key), rows, columns)
    grid = {row: {name: by_cell.get((None if name in shared else row, name), []) for name in names}
            for row in _names(sweep, rows)}
    return names, shared, grid


def table_markdown(sweep: dict, trials: list[dict], fid_key: str = figures.FID,
                   score_key: str | None = figures.CLASSIFIER_SCORE) -> str:
    """The markdown table of FID_KEY (SCORE_KEY in brackets): one line per row, one column per column name, the
    shared ones on every line."""
    names, shared, grid = _grid(sweep, trials, fid_key)
    header = [sweep["table"]["rows"]] + [f"{name} (shared)" if name in shared else str(name) for name in names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, by_name in grid.items():
        line = [_cell(by_name[name], fid_key, score_key) for name in names]
        lines.append(f"| {row} | " + " | ".join(line) + " |")
    return "\n".join(lines)


def ratio_lines(sweep: dict, trials: list[dict], fid_key: str = figures.FID) -> list[str]:
    """Per row, each other column's FID_KEY over the first column's (the reference arm, e.g. clean): the ratio of the
    cells' means with its 95% interval (evaluation/intervals.ratio_interval) and the seeds on each side."""
    names, _, grid = _grid(sweep, trials, fid_key)
    if len(names) < 2:
        return []
    reference = names[0]
    lines = []
    for row, by_name in grid.items():
        values = {name: [t["full_evaluation"][fid_key] for t in by_name[name]] for name in names}
        ratios = [(name, ratio_interval(values[name], values[reference])) for name in names[1:]]
        texts = [f"{name} {r.text()} (n {r.n_numerator} / {r.n_denominator})" for name, r in ratios if r]
        if texts:
            lines.append(f"- {row}, over {reference}: " + "; ".join(texts))
    return lines


def _png_name(row) -> str:
    return "table_" + re.sub(r"[^A-Za-z0-9._@-]", "_", str(row)) + ".png"


def _seed(trial: dict) -> int:
    """The trial's train.seed: trials.json's seed, or the sampled one of a sweep written before seeds:."""
    seed = trial.get("seed")
    return trial["params"].get("train.seed", 0) if seed is None else seed


def _first_trial(trials: list[dict]) -> dict | None:
    """The cell's finished trial of the lowest seed (then the lowest number)."""
    finished = [t for t in trials if t.get("status") == layout.FINISHED]
    return min(finished, key=lambda t: (_seed(t), t["number"]), default=None)


def sample_grids(out: Path, sweep_dir: str, sweep: dict, trials: list[dict]) -> tuple[list[str], list[str]]:
    """One PNG per row with a finished trial (the shared columns' panels beside the row's own); returns (the PNGs'
    names, notes on panels that could not be drawn)."""
    names, _, grid = _grid(sweep, trials)
    pngs, notes = [], []
    for row, by_name in grid.items():
        panels = []
        for name in names:
            trial = _first_trial(by_name[name])
            if trial is None:
                continue
            samples = run_dir.read_samples(layout.trial_dir(sweep_dir, trial["name"]))
            if samples is None:  # a trial directory moved, or a run that wrote no samples: say so, go on
                notes.append(f"{row}, {name}: no samples.png in {trial['name']}")
                continue
            image, step = samples
            panels.append((f"{name}\nseed {_seed(trial)}, step {step}", image))  # two lines: long arm names
        if not panels:
            continue
        fig = Figure(figsize=(2.2 * len(panels), 2.8), layout="constrained")
        for ax, (title, image) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            ax.imshow(np.asarray(image), cmap="gray" if image.mode == "L" else None, vmin=0, vmax=255)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        fig.suptitle(str(row), fontsize=10)
        fig.savefig(out / _png_name(row), dpi=SAMPLES_DPI)
        pngs.append(_png_name(row))
    return pngs, notes


def write_table(out: Path, sweep_dir: str, sweep: dict, trials: list[dict]) -> list[str]:
    """Write OUT/table.md and the sample grids; return summary.md's Table section ([]: the space names no table)."""
    if not sweep.get("table"):
        return []
    legend = ("mean ± the half-width of its 95% interval (Student t, n - 1 degrees of freedom) over each cell's "
              "trials (the seeds), the classifier score alike in brackets, n trials; \"-\": no finished trial yet. A "
              "column marked shared trains without a row and is the same on every line. Below each table, each "
              "column's FID over the first column's: the ratio of their means with its 95% interval (the delta method "
              "on the log ratio, Welch's degrees of freedom).")
    sets = [(title, fid, score) for title, fid, score in FIGURE_SETS if _evaluated(trials, fid) or fid == figures.FID]
    body = []
    for title, fid, score in sets:
        body += [f"### {title}", "", table_markdown(sweep, trials, fid, score), ""]
        body += ratio_lines(sweep, trials, fid) + [""]
        body += [f"{len(_evaluated(trials, fid))} of {len(trials)} trials counted.", ""]
    intro = f"Full-evaluation figures (`eval.n_samples` samples against the test split): {legend}"
    (out / TABLE_FILE).write_text("\n".join([intro, "", *body]))
    pngs, notes = sample_grids(out, sweep_dir, sweep, trials)
    lines = ["## Table", "", intro, "", *body, f"The same in [{TABLE_FILE}]({TABLE_FILE}).", ""]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    for png in pngs:
        lines += [f"![{png}]({png})", ""]
    return lines
