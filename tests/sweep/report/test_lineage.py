"""PBT's lineage (gansweep.sweep.report.lineage): the exploits' table and plot."""

from pathlib import Path

import pytest
import synthetic_sweep
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report import lineage
from gansweep.sweep.report.write import write_report
from synthetic_sweep import MODE_SPACE, PNG_MAGIC, SPACE, change_sweep_record, make_sweep


@pytest.fixture(scope="module")
def min_report(tmp_path_factory):
    return synthetic_sweep.write_min_report(tmp_path_factory.mktemp("sweep_min"))


PBT_TRIALS = [
    ("finished", {"measurement.p": 0.2, "optim.lr_g": 2e-4, "mode": "ambient"}, 30.0, None),
    ("finished", {"measurement.p": 0.5, "optim.lr_g": 1e-3, "mode": "ambient"}, 35.0, None),
    ("finished", {"measurement.p": 0.8, "optim.lr_g": 5e-3, "mode": "ambient"}, 32.0, None),
]
# Trial 2 clones trial 0 at step 100, then trial 1 (itself unchanged) at step 200: the second exploit's old values
# are the first's new ones.
PBT_LINEAGE = [
    {"step": 100, "donor": "00000_p=0.2", "params": {"measurement.p": 0.2, "optim.lr_g": 2.4e-4, "mode": "ambient"}},
    {"step": 200, "donor": "00001_p=0.5", "params": {"measurement.p": 0.5, "optim.lr_g": 0.001234567,
                                                     "mode": "ambient"}},
]


def make_pbt_sweep(root: Path, scheduler: dict | None) -> None:
    make_sweep(root, trials=PBT_TRIALS, space=MODE_SPACE | {"optim.lr_g": SPACE["optim.lr_g"]})
    trials = layout.read_trials(root)
    trials[1]["lineage"] = []  # never exploited
    trials[2]["lineage"] = PBT_LINEAGE
    layout.write_trials(root, trials)
    if scheduler is not None:
        change_sweep_record(root, scheduler=scheduler)


def lineage_rows(summary: str) -> list[str]:
    section = summary.split("## PBT lineage")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("| ")][1:]  # drop the header


def test_pbt_lineage_table_lists_each_exploit_with_old_and_new_values(tmp_path):
    make_pbt_sweep(tmp_path, {"name": "pbt", "perturbation_interval": 100})
    summary = Path(write_report(tmp_path)).read_text()
    assert lineage_rows(summary) == [
        "| 00002_p=0.8 | 100 | 00000_p=0.2 | measurement.p: 0.8 -> 0.2, optim.lr_g: 0.005 -> 0.00024 |",
        "| 00002_p=0.8 | 200 | 00001_p=0.5 | measurement.p: 0.2 -> 0.5, optim.lr_g: 0.00024 -> 0.00123 |",
    ]
    assert "perturbation interval 100 steps" in summary and "2 exploit(s)" in summary
    assert f"![PBT lineage]({lineage.LINEAGE_PNG})" in summary
    assert (tmp_path / "report" / lineage.LINEAGE_PNG).read_bytes()[:8] == PNG_MAGIC


def test_pbt_lineage_of_a_sweep_json_without_a_scheduler(tmp_path):
    make_pbt_sweep(tmp_path, scheduler=None)
    summary = Path(write_report(tmp_path)).read_text()
    assert len(lineage_rows(summary)) == 2 and "perturbation interval" not in summary
    assert (tmp_path / "report" / lineage.LINEAGE_PNG).is_file()


def test_pbt_timeline_and_plotted_params():
    trial = {"name": "t", "number": 2, "params": PBT_TRIALS[2][1], "lineage": PBT_LINEAGE}
    assert lineage.param_timeline(trial, "optim.lr_g", 300) == [(0, 5e-3), (100, 2.4e-4), (200, 0.001234567),
                                                                (300, 0.001234567)]
    assert lineage.perturbed_numeric_params(lineage.exploits([trial])) == ["measurement.p", "optim.lr_g"]


def test_a_sweep_without_lineage_has_no_lineage_plot_or_section(min_report):
    root, summary_path = min_report
    assert not (root / "report" / lineage.LINEAGE_PNG).exists()
    assert "## PBT lineage" not in summary_path.read_text()
