"""The plots of the metric against each parameter (gansweep.sweep.report.plots) and their per-value tables."""

from pathlib import Path

import matplotlib.image
import pytest
import synthetic_sweep
from gansweep.sweep.report.write import write_report
from gansweep.sweep.report.colours import colours, main_choice
from synthetic_sweep import MODE_SPACE, MODE_TRIALS, PNG_MAGIC, SPACE, make_sweep


@pytest.fixture(scope="module")
def min_report(tmp_path_factory):
    return synthetic_sweep.write_min_report(tmp_path_factory.mktemp("sweep_min"))


def test_plots_are_pngs(min_report):
    root, summary_path = min_report
    summary = summary_path.read_text()
    for param in SPACE:
        png = root / "report" / f"metric_vs_{param}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, param
        assert f"(metric_vs_{param}.png)" in summary
    assert not list((root / "report").glob("*_by_*"))  # one plot per parameter, coloured by the main choice


def test_per_value_table_counts_the_points_with_a_value(tmp_path):
    make_sweep(tmp_path, trials=MODE_TRIALS, space=MODE_SPACE)
    summary = Path(write_report(tmp_path)).read_text()
    height, width, _ = matplotlib.image.imread(tmp_path / "report" / "metric_vs_measurement.p.png").shape
    assert height > 0 and width > 0
    by_mode = summary.split("### val fid by mode")[1]
    assert "| mode | points with a value | best val fid | mean val fid |" in by_mode
    # A value is the last report's fid (best + 1 here) of a finished trial: the stopped ambient trial has none.
    assert "| ambient | 2 of 3 | 21 | 23 |" in by_mode
    assert "| ignore | 2 of 3 | 51 | 61 |" in by_mode  # the failed trial has none


def test_mode_max_per_value_table_takes_the_maximum(tmp_path):
    make_sweep(tmp_path, mode="max", trials=MODE_TRIALS, space=MODE_SPACE)
    summary = Path(write_report(tmp_path)).read_text()
    assert "| ambient | 2 of 3 | 25 | 23 |" in summary and "| ignore | 2 of 3 | 71 | 61 |" in summary


def test_one_colour_per_value_of_the_main_choice_whatever_the_trials_order():
    space = {"measurement.p": {"choice": [0.3, 0.6]}, "mode": {"choice": ["ambient", "ignore"]},
             "prior.name": {"choice": ["gaussian", "kde"]}}
    assert main_choice(space) == "mode"  # the first choice of non-numbers: a choice of numbers is an axis
    trials = [{"params": {"mode": "ignore"}}, {"params": {"mode": "unmeasure"}}]
    palette = colours({"space": space}, trials)
    assert palette.values == ("ambient", "ignore", "unmeasure")  # the space's order, then what trials took
    assert palette.of({"mode": "ambient"}) == colours({"space": space}, trials[::-1]).of({"mode": "ambient"})
    assert len({palette.of_value(value) for value in palette.values}) == 3
    assert colours({"space": {"measurement.p": {"uniform": [0, 1]}}}, trials).key is None
