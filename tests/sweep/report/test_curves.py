"""KDE-GAN's reversal steps over training (gansweep.sweep.report.curves), read from TensorBoard and drawn."""

from pathlib import Path

import pytest
import synthetic_sweep
from gansweep import storage
from gansweep.config.schema import ReversalConfig
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report import curves
from gansweep.sweep.report.write import write_report
from synthetic_sweep import PNG_MAGIC, change_sweep_record, make_sweep


@pytest.fixture(scope="module")
def min_report(tmp_path_factory):
    return synthetic_sweep.write_min_report(tmp_path_factory.mktemp("sweep_min"))


# Trial name -> {tag: [(step, value), ...]}: two KDE-GAN trials of TRIALS (one logs the error too) and a Gaussian one
# that logs only a loss. Values a float32 holds exactly: the event files store float32.
REVERSAL_EVENTS = {
    "00001_p=0.5": {"prior/reversal_steps": [(0, 20.0), (100, 14.0), (200, 9.0), (300, 6.0)],
                    "prior/reversal_error": [(0, 0.5), (100, 0.25), (200, 0.125), (300, 0.0625)]},
    "00004_p=0.3": {"prior/reversal_steps": [(50, 3.0), (150, 5.0), (250, 8.0)]},
    "00000_p=0.2": {"loss/d": [(10, 0.7), (20, 0.6)]},
}


def write_events(log_dir: Path, scalars: dict) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for tag, points in scalars.items():
            for step, value in points:
                writer.add_scalar(tag, value, step)


def make_reversal_sweep(root: Path) -> None:
    """TRIALS' sweep with REVERSAL_EVENTS in its trials' TensorBoard runs and reversal.max_steps fixed at 24."""
    make_sweep(root)
    change_sweep_record(root, fixed={"reversal.max_steps": 24})
    for name, scalars in REVERSAL_EVENTS.items():
        write_events(Path(layout.trial_log_dir(str(root), name)), scalars)


@pytest.fixture(scope="module")
def reversal_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_reversal")
    make_reversal_sweep(root)
    return root, Path(write_report(root)).read_text()


def test_reversal_series_are_the_logged_values_of_the_kde_trials(reversal_report):
    root = reversal_report[0]
    log_dirs = {t["name"]: layout.trial_log_dir(str(root), t["name"]) for t in layout.read_trials(root)}
    series = curves.reversal_series(log_dirs)
    assert list(series) == ["00001_p=0.5", "00004_p=0.3"]  # the Gaussian trial and those without a run: none
    assert series == {name: REVERSAL_EVENTS[name] for name in series}


def test_reversal_max_steps_sampled_fixed_or_default():
    assert curves.reversal_max_steps({"reversal.max_steps": 8}, {"reversal.max_steps": 24}) == 8
    assert curves.reversal_max_steps({}, {"reversal.max_steps": 24}) == 24
    assert curves.reversal_max_steps({}, {}) == ReversalConfig().max_steps


def test_report_plots_reversal_steps_over_training(reversal_report):
    root, summary = reversal_report
    png = root / "report" / curves.REVERSAL_PNG
    assert png.read_bytes()[:8] == PNG_MAGIC
    section = summary.split("## Generator reversal over training")[1].split("\n## ")[0]
    assert f"![reversal steps over training]({curves.REVERSAL_PNG})" in section
    assert "Fig. 5" in section and "KDE-GAN trial (2)" in section and "reversal error at the stop" in section


def test_a_sweep_without_reversal_steps_has_no_reversal_plot_or_section(min_report):
    root, summary_path = min_report
    assert not (root / "report" / curves.REVERSAL_PNG).exists()
    assert f"({curves.REVERSAL_PNG})" not in summary_path.read_text()
    assert "## Generator reversal" not in summary_path.read_text()


def test_reversal_steps_of_a_sweep_on_object_storage(tmp_path, s3_bucket):
    make_reversal_sweep(tmp_path)
    sweep = storage.join(s3_bucket, "sweeps", "reversal")
    storage.upload_folder(tmp_path, sweep)
    summary = storage.read_text(write_report(sweep))
    assert "## Generator reversal over training" in summary
    assert storage.read_bytes(storage.join(sweep, "report", curves.REVERSAL_PNG))[:8] == PNG_MAGIC
    series = curves.reversal_series({"00004_p=0.3": layout.trial_log_dir(sweep, "00004_p=0.3"),
                                     "00009_pending": layout.trial_log_dir(sweep, "00009_pending")})
    assert series == {"00004_p=0.3": REVERSAL_EVENTS["00004_p=0.3"]}
