"""`gansweep report`: one table and plots for a finished (or partly finished) sweep directory.

Reads SWEEP_DIR/sweep.json, SWEEP_DIR/trials.json, the trials' samples and TensorBoard runs and the sweep's Optuna
study (a copied or moved directory's own optuna.db), and writes SWEEP_DIR/report/: summary.md (summary.py),
trials.csv (trials_table.py), gain.png where trials of the main categorical choice share points (gain.py),
samples.png (samples.py), val_curves.png (curves.py), metric_vs_<param>.png per swept parameter (plots.py) and,
when Optuna can rank the parameters, importances.png (importances.py); for a sweep on two objectives pareto.png
(pareto.py); for a space with table:, table.md and table_<row>.png (table.py); reversal_steps.png where KDE-GAN
trials logged reversal steps (curves.py) and pbt_lineage.png where PBT trials exploited (lineage.py). Each part
writes its files and returns its section of summary.md; every plot colours trials alike (colours.py). Nothing
outside report/ is written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from gansweep import storage as locations  # `storage` is the Optuna storage URL here
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report import (
    colours,
    curves,
    gain,
    importances,
    lineage,
    pareto,
    plots,
    points,
    samples,
    summary,
    table,
    trials_table,
)


def write_report(sweep_dir: str | Path, storage: str | None = None) -> str:
    """Write SWEEP_DIR/report/ (a local folder, or on object storage) and return the location of its summary.md.

    storage overrides the Optuna storage URL in sweep.json (whose RDB password is masked as ***); a directory copied
    or moved from where its sweep ran reads its own optuna.db.
    """
    sweep_dir = locations.normalize(sweep_dir)
    sweep = layout.read_sweep_record(sweep_dir)
    storage = storage or layout.study_beside(sweep_dir, sweep.get("storage"))
    trials = layout.read_trials(sweep_dir)
    trials_note = "" if trials is not None else f"{layout.TRIALS_FILE} is not written yet: no trial has started."
    trials = trials or []
    params = _swept_params(sweep.get("space") or {}, trials)

    report_dir = locations.join(sweep_dir, layout.REPORT_DIR)
    with locations.Mirror(report_dir) as out, tempfile.TemporaryDirectory() as scratch:
        ranked = sorted(trials, key=lambda t: trials_table.rank_key(t, sweep["mode"]))
        ranked_points = points.ranked(trials, sweep["mode"])  # a point's seeds together (a space with seeds:)
        palette = colours.colours(sweep, trials)  # one colour per value of the main choice, in every plot
        trials_section = trials_table.write_trials_table(out, ranked_points, params, sweep["metric"])
        gain_section = gain.write_gain(out, sweep, params, trials, palette)
        samples_section = samples.write_samples_grid(out, sweep_dir, sweep, trials, palette)
        curves_section = curves.write_val_curves(out, sweep_dir, sweep, trials, palette)
        plots_section = plots.write_plots(out, sweep, params, trials, palette)
        pareto_section = pareto.write_pareto(out, sweep, trials, params)
        # A sweep on object storage: its published SQLite study, read from a copy (never the driver's own file).
        study_url = storage or layout.study_copy(sweep_dir, sweep.get("storage"), Path(scratch))
        importances_section = importances.write_importances(out, sweep, trials, study_url)
        table_section = table.write_table(out, sweep_dir, sweep, trials)
        # Training over time, after the per-parameter plots: KDE-GAN's reversal steps, PBT's exploits.
        reversal_section = curves.write_reversal(out, sweep_dir, sweep, trials)
        lineage_section = lineage.write_lineage(out, sweep, trials)
        sections = [
            summary.header_section(sweep, ranked, trials_note, storage),
            table_section,  # a space with table:, before the trials it is made of
            gain_section,  # what the trials can conclude about the sweep's question
            summary.best_trial_section(sweep, ranked_points),
            samples_section,
            curves_section,
            plots_section,
            trials_section,
            pareto_section,  # after the trials: the front is read against them
            importances_section,
            reversal_section,
            lineage_section,
            summary.appendix_section(ranked_points),
        ]
        (out / summary.SUMMARY_FILE).write_text("\n".join(line for section in sections for line in section))
    return locations.join(report_dir, summary.SUMMARY_FILE)


def _swept_params(space: dict, trials: list[dict]) -> list[str]:
    """The space's keys in its order, then any other param a trial reports (sorted)."""
    extra = sorted({key for t in trials for key in t["params"]} - set(space))
    return list(space) + extra
