"""What the quickstart's report answers and shows: the paired gain of ambient over ignore where trials share a p, or
why it cannot be estimated (gain.py); the grid of every trial's samples (samples.py); every trial's val fid over its
steps (curves.py); the best trial's section without internals (summary.py); the TensorBoard address that colours
runs by mode (tensorboard_link.py)."""

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import matplotlib.image
import pytest
import torch
from gansweep.run import run_dir
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.tensorboard_link import tensorboard_url
from gansweep.sweep.report.write import write_report
from gansweep.sweep.runner import trial_name
from synthetic_sweep import MODE_TRIALS, PNG_MAGIC, make_sweep
from test_curves import write_events

GRID_SPACE = {"mode": {"choice": ["ambient", "ignore"]}, "measurement.p": {"choice": [0.3, 0.6, 0.9]}}
# The quickstart's grid: ignore 30 worse at p 0.3, 40 at 0.6; at 0.9 ignore's trial was stopped (no value, no pair).
GRID_TRIALS = [
    ("finished", {"mode": "ambient", "measurement.p": 0.3}, 20.0, None),
    ("finished", {"mode": "ambient", "measurement.p": 0.6}, 30.0, None),
    ("finished", {"mode": "ambient", "measurement.p": 0.9}, 40.0, None),
    ("finished", {"mode": "ignore", "measurement.p": 0.3}, 50.0, None),
    ("finished", {"mode": "ignore", "measurement.p": 0.6}, 70.0, None),
    ("stopped", {"mode": "ignore", "measurement.p": 0.9}, 90.0, None),
]


def gain_section(summary: str) -> str:
    return summary.split("## What the trials can conclude")[1].split("\n## ")[0]


@pytest.fixture(scope="module")
def grid_report(tmp_path_factory):
    """GRID_TRIALS' sweep, each trial with samples and val fid events, but the stopped one's events; its report."""
    root = tmp_path_factory.mktemp("grid")
    make_sweep(root, trials=GRID_TRIALS, space=GRID_SPACE)
    for number, entry in enumerate(layout.read_trials(str(root))):
        grid = torch.full((1, 30, 60), number / 10)
        run_dir.write_samples(layout.trial_dir(str(root), entry["name"]), grid, step=300 - 100 * (number == 5))
        if number < 5:
            write_events(Path(layout.trial_log_dir(str(root), entry["name"])),
                         {"val/fid": [(100, 90.0), (200, 60.0), (300, 30.0 + number)]})
    return root, Path(write_report(root)).read_text()


def test_paired_gain_where_trials_share_a_p(grid_report):
    root, summary = grid_report
    section = gain_section(summary)
    assert "| measurement.p | ambient's gain over ignore | n |" in section
    # ignore's value minus ambient's (each the last report's fid: best + 1 here), > 0: ambient better
    assert "| 0.3 | 30 | 1 |" in section and "| 0.6 | 40 | 1 |" in section and "| 0.9 |" not in section
    assert "the gain against p can be estimated** from 2 paired points" in section
    assert (root / "report" / "gain.png").read_bytes()[:8] == PNG_MAGIC
    assert summary.index("## What the trials can conclude") < summary.index("## Best trial")


def test_unpaired_trials_say_the_gain_cannot_be_estimated(tmp_path):
    make_sweep(tmp_path, trials=MODE_TRIALS, space={"mode": GRID_SPACE["mode"],
                                                    "measurement.p": {"uniform": [0.1, 0.9]}})
    section = gain_section(Path(write_report(tmp_path)).read_text())
    assert "the gain against p cannot be estimated** (no trials share a point" in section
    assert "ambient: 2 trial(s) with a value at p 0.3-0.5; ignore: 2 trial(s) with a value at p 0.4-0.7." in section
    assert not (tmp_path / "report" / "gain.png").exists()


def test_samples_grid_of_every_trial_that_wrote_samples(grid_report):
    root, summary = grid_report
    height, width, _ = matplotlib.image.imread(root / "report" / "samples.png").shape
    assert 1.0 < width / height < 1.6  # two rows (a mode each) of three panels
    assert "## Samples" in summary and "(6 trials)" in summary and "(samples.png)" in summary
    image, step = run_dir.read_samples(layout.trial_dir(str(root), layout.read_trials(str(root))[5]["name"]))
    assert step == 200 and image.size == (60, 30)


def test_val_curves_of_every_trial_that_logged_them(grid_report):
    root, summary = grid_report
    assert (root / "report" / "val_curves.png").read_bytes()[:8] == PNG_MAGIC
    assert "## val fid over training" in summary and "(5 trials," in summary


def test_best_trial_section_shows_test_figures_and_leaves_internals_to_the_appendix(tmp_path):
    make_sweep(tmp_path, trials=GRID_TRIALS, space=GRID_SPACE)
    summary = Path(write_report(tmp_path)).read_text()
    best = summary.split("## Best trial")[1].split("\n## ")[0]
    assert "| test fid | 20.5 |" in best and "| test precision |" in best
    assert "prdc_k" not in best and "loss_d" not in best
    appendix = summary.split("## Appendix: the best trial's record")[1]
    assert "| prdc_k | 5 |" in appendix and "| loss_d | 0.7 |" in appendix


def test_tensorboard_url_colours_runs_by_the_main_choice():
    url = tensorboard_url({"space": GRID_SPACE})
    (group,) = parse_qs(urlsplit(url).query)["runColorGroup"]
    assert group.startswith("regex:")
    regex = group.removeprefix("regex:")
    for point in ({"mode": "ignore", "measurement.p": 0.3}, {"measurement.p": 0.3, "mode": "ignore"}):
        assert re.search(regex, trial_name(7, point)).group(1) == "ignore"
    assert re.search(regex, trial_name(7, {"hidden.mode": "ambient", "mode": "ignore"})).group(1) == "ignore"
    assert tensorboard_url({"space": {"measurement.p": {"uniform": [0, 1]}}}) == "http://localhost:6006/"


def _seeded(status: str, params: dict, seed: int, fid: float, kid: float) -> dict:
    name = "_".join(f"{k}={v}" for k, v in params.items())
    entry = layout.new_trial_entry(f"{name}_seed={seed}", 0, params, seed=seed, group=name)
    entry.update(status=status, metrics={"fid": fid, "kid": kid, "step": 300})
    entry["value"] = layout.trial_value(entry, "fid")  # as the runner records it at the trial's end
    return entry


def test_with_seeds_the_gain_pairs_seeds_and_the_pareto_front_has_a_mark_per_point():
    from gansweep.sweep.report.gain import paired_gains
    from gansweep.sweep.report.pareto import point_entries

    ambient = {"mode": "ambient", "measurement.p": 0.3}
    trials = [_seeded("finished", ambient, seed, 20.0 + seed, 0.01) for seed in (0, 1)]
    trials += [_seeded("finished", {"mode": "ignore", "measurement.p": 0.3}, 0, 50.0, 0.03),
               _seeded("finished", {"mode": "ignore", "measurement.p": 0.3}, 1, 55.0, 0.05),
               _seeded("stopped", {"mode": "ignore", "measurement.p": 0.3}, 2, 90.0, 0.09)]  # no value: no pair
    (gain,) = paired_gains(trials, "mode", ["measurement.p"], "ambient", "min")["ignore"].values()
    assert gain.mean == pytest.approx((30.0 + 34.0) / 2) and gain.n == 2 and gain.half_width > 0
    entries = {e["name"]: e for e in point_entries(trials, [("fid", "min"), ("kid", "min")])}
    ignore = entries["mode=ignore_measurement.p=0.3"]
    assert ignore["metrics"] == {"fid": 52.5, "kid": pytest.approx(0.04)} and ignore["spread"]["fid"] > 0
    front = layout.pareto_front(list(entries.values()), [("fid", "min"), ("kid", "min")])
    assert [e["name"] for e in front] == ["mode=ambient_measurement.p=0.3"]  # a point, not one of its seeds


def test_a_samples_title_names_the_trial_number_and_wraps_long_parameters_to_its_panel():
    from gansweep.sweep.report.colours import Colours
    from gansweep.sweep.report.samples import TITLE_CHARS, _title

    params = {"train.lr_d": 2.42e-4, "train.lr_g": 9.4e-4, "train.d_steps": 2, "train.beta1": 0.0, "model.d_width": 48}
    entry = layout.new_trial_entry("0008_x", 8, params)
    entry.update(status="finished", metrics={"fid": 23.52}, value=23.52)
    title = _title(entry, "fid", Colours(None, ()), 1200)
    lines = title.splitlines()
    assert lines[0].startswith("#8 lr_d=0.000242") and lines[-1] == "val fid 23.52 (step 1200)"
    assert len(lines) == 3 and all(len(line) <= TITLE_CHARS + 4 for line in lines[:-1])  # "#8 " beside the first
    assert " ".join(lines[:-1]) == "#8 lr_d=0.000242 lr_g=0.00094 d_steps=2 beta1=0 d_width=48"


def test_a_reference_arm_without_the_row_key_pairs_at_every_row_by_seed():
    """The headline's table sweep: clean has no `row` (inactive under `when`), ambient has one per row; clean's seeds
    pair with each row's, as the table's shared column sets clean beside every row."""
    from gansweep.sweep.report.gain import paired_gains

    trials = [_seeded("finished", {"arm": "clean"}, seed, 20.0 + seed, 0.0) for seed in (0, 1, 2)]
    for row, base in (("pixel", 45.0), ("patch", 60.0)):
        trials += [_seeded("finished", {"arm": "ambient", "row": row}, seed, base + 2 * seed, 0.0) for seed in (0, 1)]
    gains = paired_gains(trials, "arm", ["row"], "clean", "min")["ambient"]
    assert set(gains) == {("pixel",), ("patch",)}
    assert gains[("pixel",)].mean == pytest.approx(25.5) and gains[("pixel",)].n == 2  # (25 + 26) / 2: seeds 0, 1
    assert gains[("patch",)].mean == pytest.approx(40.5) and gains[("patch",)].n == 2
