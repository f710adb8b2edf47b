"""`gansweep evaluate SWEEP_DIR`: a finished sweep's trials evaluated again (sweep/evaluate_sweep.py), their figures
in trials.json where the report's table reads them; a running sweep refused."""

import json
import subprocess
import sys
from functools import partial

from conftest import _fake_run, needs_fashion
from gansweep.evaluation.classifier import load_or_train_classifier
from gansweep.run import evaluate
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.evaluate_sweep import evaluate_sweep
from gansweep.sweep.report.table import table_markdown

TABLE = {"table": {"rows": "row", "columns": "arm"},
         "space": {"arm": {"choice": ["clean", "ambient"]}, "row": {"choice": ["pixel"]}}}


def _sweep(root, statuses):
    """A sweep directory whose trials have STATUSES, the finished ones with an untrained run and a full evaluation
    of 200 samples on record."""
    layout.claim(str(root), {"name": "s", "metric": "fid", "mode": "min", "space": TABLE["space"],
                             "table": TABLE["table"]})
    trials = []
    for number, status in enumerate(statuses):
        arm = ["clean", "ambient"][number % 2]
        entry = layout.new_trial_entry(f"{number:04d}_{arm}", number, {"arm": arm, **({"row": "pixel"} if number % 2
                                                                                       else {})})
        entry["status"] = status
        if status == layout.FINISHED:
            _fake_run(root / "trials" / entry["name"], step=40)
            entry["full_evaluation"] = {"fid": 1.0, "n_fake": 200}
        trials.append(entry)
    layout.write_trials(str(root), trials)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gansweep.cli", *args], capture_output=True, text=True, timeout=120)


def test_a_running_sweep_is_refused_with_exit_2_and_its_trials_json_left_as_it_was(tmp_path):
    _sweep(tmp_path / "sweep", [layout.FINISHED, layout.RUNNING])
    result = _cli("evaluate", str(tmp_path / "sweep"))
    assert result.returncode == 2 and "1 trial(s) pending or running (0001_ambient)" in result.stderr
    assert "--resume" in result.stderr
    assert json.loads((tmp_path / "sweep" / "trials.json").read_text())["trials"][0]["full_evaluation"]["fid"] == 1.0


@needs_fashion
def test_every_finished_trial_is_evaluated_again_into_trials_json_and_the_table(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    _sweep(sweep, [layout.FINISHED, layout.FINISHED, layout.STOPPED])
    # A small classifier stands in for the full one (3 epochs on 60k images), to keep the test fast.
    small = partial(load_or_train_classifier, limit=2000, epochs=1, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(evaluate, "protocol_classifier",
                        lambda data, **kwargs: small(data.name, data.root, holdout=data.holdout))
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    lines = []

    evaluated = evaluate_sweep(str(sweep), n_samples=None, progress=lines.append)
    assert [entry["name"] for entry in evaluated] == ["0000_clean", "0001_ambient"]
    trials = layout.read_trials(str(sweep))
    for entry in trials[:2]:  # as many samples as each trial's own evaluation drew; its evaluation.json the same
        written = json.loads((sweep / "trials" / entry["name"] / "evaluation.json").read_text())
        assert entry["full_evaluation"]["n_fake"] == 200 and entry["full_evaluation"]["fid"] == written["fid"] > 1.0
    assert trials[2]["full_evaluation"] is None  # a stopped trial is not the protocol's: left alone
    assert lines[1].startswith("[gansweep] evaluated 2/2 0001_ambient on 200 samples: fid ")
    cells = [f"{e['full_evaluation']['fid']:.2f} ({e['full_evaluation']['classifier_score']:.2f}) n=1"
             for e in trials[:2]]
    assert table_markdown(TABLE, trials).splitlines()[2] == f"| pixel | {cells[0]} | {cells[1]} |"
