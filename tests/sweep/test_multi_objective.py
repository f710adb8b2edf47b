"""A sweep on two objectives through the CLI: Optuna's multi-objective study (FID down, classifier score up), the
Pareto front on the console, in summary.md and in a plot, checked against Optuna's own front."""

import subprocess
import sys

import optuna
import pytest
import yaml
from conftest import TINY_SWEEP, needs_fashion
from gansweep.sweep import sweep_dir as layout
from matplotlib.image import imread

pytestmark = needs_fashion


@pytest.fixture(scope="module")
def two_objective_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("pareto")
    space = root / "pareto.yaml"
    space.write_text(yaml.safe_dump({
        "name": "pareto", "metric": ["fid", "classifier_score"], "max_concurrent_trials": 2,
        "fixed": TINY_SWEEP, "space": {"train.lr_d": {"choice": [5.0e-5, 2.0e-4, 1.0e-3]}},
        "search": {"algorithm": "grid"},  # no scheduler: FIFO, the default with two metrics
    }, sort_keys=False))
    out = root / "out"
    result = subprocess.run([sys.executable, "-m", "gansweep.cli", "sweep", str(space), "--output", str(out)],
                            capture_output=True, text=True, timeout=900)
    return out, result


def _front_from_optuna(out) -> set[int]:
    record = layout.read_sweep_record(out)
    study = optuna.load_study(study_name=record["study_name"], storage=record["storage"])
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    return study, {trial.number for trial in study.best_trials}


def test_optuna_holds_both_objectives_of_every_trial(two_objective_sweep):
    out, result = two_objective_sweep
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    study, _ = _front_from_optuna(out)
    trials = {entry["number"]: entry for entry in layout.read_trials(out)}
    assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    for ot_trial in study.trials:
        metrics = trials[ot_trial.number]["metrics"]
        assert ot_trial.values == pytest.approx([metrics["fid"], metrics["classifier_score"]])
        assert trials[ot_trial.number]["status"] == "finished"  # FIFO: no trial stopped early
    assert layout.read_sweep_record(out)["objectives"] == [["fid", "min"], ["classifier_score", "max"]]


def test_the_pareto_front_is_optuna_s_on_the_console_and_in_the_report(two_objective_sweep):
    out, result = two_objective_sweep
    _, optuna_front = _front_from_optuna(out)
    trials = layout.read_trials(out)
    front = layout.pareto_front(trials, [("fid", "min"), ("classifier_score", "max")])
    assert front and {t["number"] for t in front} == optuna_front
    assert f"Pareto front (fid and classifier_score, last reported values): {len(front)} trial(s)" in result.stdout
    for trial in front:
        assert f"[gansweep]   {trial['name']}: fid=" in result.stdout

    report = subprocess.run([sys.executable, "-m", "gansweep.cli", "report", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    summary = (out / "report" / "summary.md").read_text()
    section = summary.split("## Pareto front", 1)[1].split("\n## ", 1)[0]
    names = {t["name"] for t in trials}
    listed = {name for name in names if name in section}
    assert listed == {t["name"] for t in front}
    assert "![Pareto front](pareto.png)" in section
    image = imread(out / "report" / "pareto.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 0  # a drawn picture, not a blank one
