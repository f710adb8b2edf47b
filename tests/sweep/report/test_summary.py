"""summary.md's header and best trial (gansweep.sweep.report.summary), on a synthetic sweep directory."""

from pathlib import Path

import pytest
import synthetic_sweep
from gansweep.sweep.report.write import write_report
from synthetic_sweep import make_sweep, table_names


@pytest.fixture(scope="module")
def min_report(tmp_path_factory):
    return synthetic_sweep.write_min_report(tmp_path_factory.mktemp("sweep_min"))


def test_best_trial_and_sorted_table(min_report):
    root, summary_path = min_report
    assert summary_path == root / "report" / "summary.md"
    summary = summary_path.read_text()
    assert "demo_sweep" in summary and "`fid`" in summary and "`min`" in summary
    best = summary.split("## Best trial")[1].split("\n## ")[0]
    assert "00001_p=0.5" in best and "val fid 26 at its final step 300" in best and "prior.reversal_steps" in best
    # Best first by value; the stopped and failed trials (no value) last.
    assert table_names(summary) == ["00001_p=0.5", "00005_p=0.7", "00000_p=0.2", "00004_p=0.3", "00002_p=0.8",
                                    "00003_p=0.6"]


def test_mode_max_picks_the_maximum(tmp_path):
    make_sweep(tmp_path, mode="max")
    summary = Path(write_report(tmp_path)).read_text()
    best = summary.split("## Best trial")[1].split("\n## ")[0]
    assert "00004_p=0.3" in best  # the stopped 00002_p=0.8 (90 at step 200) has no value
    assert table_names(summary)[:2] == ["00004_p=0.3", "00000_p=0.2"]
    assert table_names(summary)[-1] == "00003_p=0.6"


def test_storage_password_stays_out_of_the_report(tmp_path):
    make_sweep(tmp_path)
    # Unreachable (or its driver absent): the report falls back to trials.json and names no password.
    summary = Path(write_report(tmp_path, storage="postgresql://user:s3cret@127.0.0.1:1/optuna")).read_text()
    assert "s3cret" not in summary and "user:***@127.0.0.1" in summary
    assert "Source: trials.json" in summary
