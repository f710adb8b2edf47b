"""The Pareto front of a sweep on two objectives (gansweep.sweep.report.pareto): pareto.png and its section."""

from pathlib import Path

from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.pareto import PARETO_PNG
from gansweep.sweep.report.write import write_report
from synthetic_sweep import PNG_MAGIC, change_sweep_record, make_sweep

# Each finished trial's last kid, beside its last fid (TRIALS' best + 1: 41, 26, 61 and 34).
KID = {"00000_p=0.2": 0.01, "00001_p=0.5": 0.05, "00004_p=0.3": 0.02, "00005_p=0.7": 0.03}


def test_a_sweep_on_two_objectives_gets_its_pareto_front_after_the_trials(tmp_path):
    make_sweep(tmp_path)
    trials = layout.read_trials(tmp_path)
    for trial in trials:
        if trial["name"] in KID:
            trial["metrics"]["kid"] = KID[trial["name"]]
    layout.write_trials(tmp_path, trials)
    change_sweep_record(tmp_path, objectives=[["fid", "min"], ["kid", "min"]])
    summary = Path(write_report(tmp_path)).read_text()
    assert "- Objectives: `fid` (min), `kid` (min)" in summary
    order = [summary.index(heading) for heading in ("## Trials (best first)", "## Pareto front", "## Parameter importances")]
    assert order == sorted(order)
    section = summary.split("## Pareto front")[1].split("\n## ")[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ")][1:]  # drop the header
    # 00004 (61, 0.02) is beaten on both by 00000 (41, 0.01); the rest, best fid first.
    assert [row[:3] for row in rows] == [["00001_p=0.5", "26", "0.05"], ["00005_p=0.7", "34", "0.03"],
                                         ["00000_p=0.2", "41", "0.01"]]
    assert f"![Pareto front]({PARETO_PNG})" in section
    assert (tmp_path / "report" / PARETO_PNG).read_bytes()[:8] == PNG_MAGIC


def test_a_sweep_on_one_objective_has_no_pareto_front(tmp_path):
    make_sweep(tmp_path)
    summary = Path(write_report(tmp_path)).read_text()
    assert "## Pareto front" not in summary and "Objectives:" not in summary
    assert not (tmp_path / "report" / PARETO_PNG).exists()
