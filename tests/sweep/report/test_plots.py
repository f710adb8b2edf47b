"""The plots of the metric against each parameter (gansweep.sweep.report.plots) and their per-value tables."""

from pathlib import Path

import matplotlib.image
import pytest
import synthetic_sweep
from gansweep.sweep.report.write import write_report
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
    assert (root / "report" / "importances.png").read_bytes()[:8] == PNG_MAGIC
    assert "(importances.png)" in summary
    importances = summary.split("## Parameter importances")[1].split("\n## ")[0]
    assert "measurement.p" in importances and "PED-ANOVA" in importances


def test_metric_vs_numeric_by_categorical_plot_and_per_value_table(tmp_path):
    make_sweep(tmp_path, trials=MODE_TRIALS, space=MODE_SPACE)
    summary = Path(write_report(tmp_path)).read_text()
    png = tmp_path / "report" / "metric_vs_measurement.p_by_mode.png"
    height, width, _ = matplotlib.image.imread(png).shape
    assert height > 0 and width > 0
    plots = summary.split("## fid against each parameter")[1]
    assert "(metric_vs_measurement.p_by_mode.png)" in plots
    by_mode = plots.split("### fid by mode")[1]
    assert "| mode | trials with fid | best fid | mean fid |" in by_mode
    assert "| ambient | 2 | 21 | 23 |" in by_mode  # 21 and 25: the stopped trial has no value
    assert "| ignore | 2 | 51 | 61 |" in by_mode  # the failed trial has no fid
    assert sorted(p.name for p in (tmp_path / "report").glob("*_by_*")) == ["metric_vs_measurement.p_by_mode.png"]


def test_mode_max_per_value_table_takes_the_maximum(tmp_path):
    make_sweep(tmp_path, mode="max", trials=MODE_TRIALS, space=MODE_SPACE)
    summary = Path(write_report(tmp_path)).read_text()
    assert "| ambient | 2 | 25 | 23 |" in summary and "| ignore | 2 | 71 | 61 |" in summary


@pytest.mark.parametrize("space", [
    {"measurement.p": SPACE["measurement.p"], "optim.lr_g": SPACE["optim.lr_g"]},
    {"mode": MODE_SPACE["mode"], "prior.name": SPACE["prior.name"]},
], ids=["numeric_only", "categorical_only"])
def test_no_by_plot_without_both_a_numeric_and_a_categorical_param(tmp_path, space):
    trials = [("finished", {"measurement.p": 0.2 + i / 10, "optim.lr_g": 1e-3, "mode": "ambient",
                            "prior.name": "kde"}, 30.0 + i, None) for i in range(3)]
    trials = [(status, {k: v for k, v in params.items() if k in space}, best, error)
              for status, params, best, error in trials]
    make_sweep(tmp_path, trials=trials, space=space)
    summary = Path(write_report(tmp_path)).read_text()
    assert not list((tmp_path / "report").glob("*_by_*"))
    assert "_by_" not in summary.split("## fid against each parameter")[1]
    assert ("### fid by mode" in summary) == ("mode" in space)  # the per-value table needs no numeric param
