"""A sweep of several seeds per point (`seeds:`) in the report: one row per point, every figure its seeds' mean ± the
half-width of a 95% interval and n, in trials.csv, the trials table and the best trial's section."""

import csv
import math
from pathlib import Path

from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.write import write_report
from scipy import stats
from synthetic_sweep import change_sweep_record, make_sweep, table_names

# (point number, params, each seed's best fid (None: failed), each seed's full-evaluation fid)
POINTS = [
    (0, {"measurement.p": 0.2, "optim.lr_g": 2e-4, "prior.name": "gaussian"}, [40.0, 44.0, 42.0], [41.0, 45.0, 43.0]),
    (1, {"measurement.p": 0.5, "optim.lr_g": 1e-3, "prior.name": "gaussian"}, [30.0, 32.0, None], [31.0, 33.0, None]),
]


def _seeded_sweep(root: Path) -> None:
    make_sweep(root)  # sweep.json and a study; its trials.json replaced by a point per group of seeds
    change_sweep_record(root, seeds=3)
    entries = []
    for number, params, bests, fulls in POINTS:
        group = f"{number:04d}_p={params['measurement.p']}"
        for seed, (best, full) in enumerate(zip(bests, fulls)):
            entry = layout.new_trial_entry(f"{number:04d}_seed={seed}_p={params['measurement.p']}", number, params,
                                           seed=seed, group=group)
            entry.update(status=layout.FINISHED if best is not None else layout.FAILED, wall_s=60.0,
                         metrics={"fid": best, "step": 300} if best is not None else {},
                         value=best,  # a finished trial's value: its last fid
                         full_evaluation={"fid": full, "kid": 0.01} if full is not None else None,
                         error=None if best is not None else "RuntimeError: boom")
            entries.append(entry)
    layout.write_trials(root, entries)


def _half_width(values):
    return stats.t.ppf(0.975, len(values) - 1) * stats.tstd(values) / math.sqrt(len(values))


def test_a_row_per_point_with_each_figure_s_mean_interval_and_n(tmp_path):
    _seeded_sweep(tmp_path)
    summary = Path(write_report(tmp_path)).read_text()
    assert "- Seeds: 3 per point" in summary
    # A point's value is its seeds' mean, as Optuna is told it: 42 for point 0; none for point 1, whose failed seed
    # makes it FAIL in Optuna (its other seeds' 31 does not rank it), so it comes last.
    assert table_names(summary) == ["0000_p=0.2", "0001_p=0.5"]
    with (tmp_path / "report" / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["name"] for row in rows] == ["0000_p=0.2", "0001_p=0.5"]
    best, other = rows
    assert best["seeds"] == "0 1 2" and best["status"] == "finished"
    assert float(best["value"]) == 42.0 and best["value_n"] == "3"
    assert abs(float(best["value_ci95"]) - _half_width([40.0, 44.0, 42.0])) < 1e-9
    assert float(best["full_fid"]) == 43.0 and best["full_fid_n"] == "3"
    assert abs(float(best["full_fid_ci95"]) - _half_width([41.0, 45.0, 43.0])) < 1e-9
    assert other["status"] == "2 finished, 1 failed" and other["error"] == "RuntimeError: boom"
    assert float(other["value"]) == 31.0 and other["value_n"] == "2"  # the table's figure: over the seeds that have it
    # The markdown table: mean ± half-width (n)
    assert f"31 ± {_half_width([30.0, 32.0]):.4g} (n=2)" in summary
    # The best trial's section is the best point's, over its seeds
    section = summary.split("## Best trial")[1].split("\n## ")[0]
    assert "**0000_p=0.2**" in section and "val fid 42 ± " in section and "(n=3" in section and "seed 2" in section
    assert ", over the seeds:" in section and "| test fid | 43 ± " in section
