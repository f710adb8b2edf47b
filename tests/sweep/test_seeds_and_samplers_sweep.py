"""Real small sweeps through the CLI for `seeds:` and the GP and CMA-ES samplers: a point's seeds as Tune trials of
their own, one Optuna trial told their mean, the report's intervals; each sampler choosing points of a live study."""

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TINY_SWEEP, needs_fashion
from gansweep.sweep import sweep_dir as layout

pytestmark = needs_fashion

TINY = {**TINY_SWEEP, "eval.n_samples": 0}  # a cheap FID at steps 20 and 40; no full evaluation
SPACE = {"train.lr_d": {"loguniform": [1.0e-4, 1.0e-3]}, "measurement.p": {"uniform": [0.3, 0.7]}}


def _run(tmp_path: Path, **settings) -> tuple[Path, subprocess.CompletedProcess]:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"name": "small", "max_concurrent_trials": 2, "fixed": TINY, "space": SPACE,
                                     **settings}, sort_keys=False))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "gansweep.cli", "sweep", str(space), "--output", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def _study(out: Path) -> optuna.Study:
    record = layout.read_sweep_record(out)
    return optuna.load_study(study_name=record["study_name"], storage=record["storage"])


def test_a_sweep_of_two_seeds_per_point_tells_optuna_their_mean_and_reports_the_interval(tmp_path):
    out, result = _run(tmp_path, num_samples=2, seeds=2, fixed={**TINY, "train.seed": 7},
                       search={"algorithm": "gp", "seed": 0, "startup_trials": 1})
    assert "4 trials (2 points x 2 seeds)" in result.stdout
    trials = layout.read_trials(out)
    assert len(trials) == 4 and all(t["status"] == layout.FINISHED for t in trials)
    groups = {}
    for trial in trials:
        groups.setdefault(trial["group"], []).append(trial)
        assert f"seed={trial['seed']}" in trial["name"]
    assert len(groups) == 2 and all(sorted(t["seed"] for t in group) == [7, 8] for group in groups.values())
    # each seed trained its own run: the runs differ
    for group in groups.values():
        assert group[0]["params"] == group[1]["params"] and group[0]["metrics"]["fid"] != group[1]["metrics"]["fid"]
    study = _study(out)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for ot_trial in study.trials:
        (group,) = [g for g in groups.values() if g[0]["number"] == ot_trial.number]
        assert ot_trial.value == pytest.approx(sum(t["metrics"]["fid"] for t in group) / 2)
    report = subprocess.run([sys.executable, "-m", "gansweep.cli", "report", str(out)], capture_output=True,
                            text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    summary = (out / "report" / "summary.md").read_text()
    assert "± " in summary and "(n=2)" in summary


def test_a_cmaes_sweep_samples_its_points_from_the_study(tmp_path):
    out, _ = _run(tmp_path, num_samples=3, scheduler={"name": "fifo"}, search={"algorithm": "cmaes", "seed": 1})
    study = _study(out)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert len({t.params["measurement.p"] for t in study.trials}) == 3
    assert all(t["seed"] == 0 and t["group"] == t["name"] for t in layout.read_trials(out))  # one seed: as before
