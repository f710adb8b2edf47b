"""Parameter importances (gansweep.sweep.report.importances): from the Optuna study or trials.json, or why none."""

import shutil
from pathlib import Path

import matplotlib
import matplotlib.style
from gansweep.sweep.report.write import write_report
from synthetic_sweep import MODE_SPACE, PNG_MAGIC, SPACE, TRIALS, importance_section, make_sweep


def test_no_importances_says_why(tmp_path):
    make_sweep(tmp_path, trials=TRIALS[2:4])  # one stopped (PRUNED in Optuna) trial and one failed
    summary = Path(write_report(tmp_path)).read_text()
    assert "No importances: 0 complete trials, fewer than the 20" in summary
    assert not (tmp_path / "report" / "importances.png").exists()
    # A stopped trial has no value (its last figure is not its final one): no best trial to name.
    assert "No trial has finished with a `fid` yet." in summary.split("## Best trial")[1].split("\n## ")[0]
    for param in SPACE:  # still one plot per swept param, even one no trial has
        assert (tmp_path / "report" / f"metric_vs_{param}.png").read_bytes()[:8] == PNG_MAGIC


def test_storage_argument_overrides_masked_url(tmp_path):
    storage = make_sweep(tmp_path, storage_in_json="postgresql://user:***@db.example/optuna")
    summary = Path(write_report(tmp_path, storage=storage)).read_text()
    assert "Source: the Optuna study `demo`" in summary
    # Without it the report reads trials.json, and says why.
    summary = Path(write_report(tmp_path)).read_text()
    assert "password masked" in summary and "Source: trials.json" in summary


def many_trials(n: int) -> list:
    """n finished trials, ambient and ignore in turn over a grid of p: fid rises with p, ignore 30 worse."""
    return [("finished", {"mode": ("ambient", "ignore")[i % 2], "measurement.p": 0.1 + 0.8 * i / (n - 1)},
             20.0 + 30.0 * (i % 2) + 10.0 * i / n, None) for i in range(n)]


def test_no_importances_below_the_minimum_of_complete_trials(tmp_path):
    failed = ("failed", {"mode": "ignore", "measurement.p": 0.5}, None, "RuntimeError: boom")
    make_sweep(tmp_path, trials=many_trials(19) + [failed], space=MODE_SPACE)  # 20 trials, 19 complete
    section = importance_section(Path(write_report(tmp_path)).read_text())
    assert "No importances: 19 complete trials, fewer than the 20" in section
    assert "| mode |" not in section and not (tmp_path / "report" / "importances.png").exists()


def test_a_copied_sweep_directory_reads_the_study_beside_it_with_the_original_deleted(tmp_path):
    original, copy = tmp_path / "original", tmp_path / "copy"
    make_sweep(original, trials=many_trials(20), space=MODE_SPACE)
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    summary = Path(write_report(copy)).read_text()
    assert f"sqlite:///{copy.resolve()}/optuna.db" in summary.split("\n## ")[0]  # the header names the study read
    section = importance_section(summary)
    assert "Source: the Optuna study `demo`" in section and "over 20 complete trials" in section


def test_importances_are_not_marked_at_the_minimum_of_complete_trials(tmp_path):
    make_sweep(tmp_path, trials=many_trials(20), space=MODE_SPACE)
    section = importance_section(Path(write_report(tmp_path)).read_text())
    assert "over 20 complete trials" in section and "nreliable" not in section
    assert "| mode |" in section and (tmp_path / "report" / "importances.png").is_file()


def test_report_leaves_matplotlibs_style_as_it_found_it(tmp_path):
    # Optuna's importance plot switches to ggplot: a second report in the same process must look like the first.
    make_sweep(tmp_path, trials=many_trials(20), space=MODE_SPACE)
    with matplotlib.rc_context():
        matplotlib.style.use("default")
        write_report(tmp_path)
        assert (tmp_path / "report" / "importances.png").is_file()
        assert matplotlib.rcParams["axes.facecolor"] == "white"
