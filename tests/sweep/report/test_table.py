"""The table of a sweep whose space names one (gansweep.sweep.report.table): on a hand-made trials.json, and on a real
grid sweep through the CLI (`gansweep sweep`, then `gansweep report`)."""

import subprocess
import sys

import matplotlib.image
import torch
import yaml
from conftest import TINY_SWEEP, needs_fashion
from gansweep.run import run_dir
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.table import ratio_lines, table_markdown, write_table

SWEEP = {
    "table": {"rows": "row", "columns": "arm"},
    "space": {"arm": {"choice": ["clean", "ignore", "ambient"]}, "row": {"choice": ["pixel", "patch"]}},
}


def _trial(number, status, arm, row=None, seed=0, fid=None, score=None):
    params = {"arm": arm, "train.seed": seed, **({"row": row} if row else {})}
    evaluation = None if fid is None else {"fid": fid, "classifier_score": score, "n_fake": 200}
    return {"name": f"{number:04d}_{arm}_{row}_{seed}", "number": number, "params": params, "status": status,
            "full_evaluation": evaluation}


TRIALS = [
    _trial(0, "finished", "clean", seed=0, fid=10.0, score=8.0),
    _trial(1, "finished", "clean", seed=1, fid=12.0, score=9.0),
    _trial(2, "finished", "ambient", "pixel", 0, 20.0, 5.0),
    _trial(3, "finished", "ambient", "pixel", 1, 22.0, 6.0),
    _trial(4, "finished", "ambient", "pixel", 2, 24.0, 7.0),
    _trial(5, "finished", "ignore", "pixel", 0, 40.0, 3.0),
    _trial(6, "running", "ambient", "patch", 0),
    _trial(7, "failed", "ignore", "patch", 0),
    _trial(8, "stopped", "ignore", "patch", 1, 99.0, 1.0),  # stopped early: its figures are not the protocol's
]


def test_cells_are_mean_and_95_interval_over_seeds_with_the_clean_column_shared_and_missing_cells_dashed():
    lines = table_markdown(SWEEP, TRIALS).splitlines()
    assert lines[0] == "| row | clean (shared) | ignore | ambient |"
    # Student t's 97.5% quantile: 12.71 at 1 degree of freedom, 4.30 at 2 (20, 22, 24: 4.30 x 2 / sqrt(3) = 4.97)
    assert lines[2] == ("| pixel | 11.00 ± 12.71 (8.50 ± 6.35) n=2 | 40.00 (3.00) n=1 | "
                        "22.00 ± 4.97 (6.00 ± 2.48) n=3 |")
    assert lines[3] == "| patch | 11.00 ± 12.71 (8.50 ± 6.35) n=2 | - | - |"
    assert len(lines) == 4
    # A sweep before any trial finished: every cell dashed, no column shared yet.
    assert table_markdown(SWEEP, []).splitlines()[2:] == ["| pixel | - | - | - |", "| patch | - | - | - |"]


def test_ratios_over_the_first_column_with_intervals_and_a_table_for_g_own_weights_where_recorded(tmp_path):
    from gansweep.evaluation.intervals import ratio_interval

    (pixel,) = [line for line in ratio_lines(SWEEP, TRIALS) if line.startswith("- pixel")]
    ambient = ratio_interval([20.0, 22.0, 24.0], [10.0, 12.0])
    assert pixel == f"- pixel, over clean: ignore {40 / 11:.2f}x (n 1 / 2); ambient {ambient.text()} (n 3 / 2)"
    assert len(ratio_lines(SWEEP, TRIALS)) == 1  # patch: no evaluated cell beside the shared clean's, no line
    # train.ema's runs: G's own weights' figures beside the average's get a table of their own
    raw = [dict(t, full_evaluation={**t["full_evaluation"], "fid_raw": t["full_evaluation"]["fid"] + 5,
                                    "classifier_score_raw": 1.0}) if t["full_evaluation"] else t for t in TRIALS]
    out = tmp_path / "report"
    out.mkdir()
    text = "\n".join(write_table(out, str(tmp_path / "sweep"), SWEEP, raw))
    assert "### FID of G's own weights" in text and "| pixel | 16.00 ± 12.71 (1.00 ± 0.00) n=2 |" in text
    assert "Inception" not in text.split("## Table")[1].split("Below each table")[1]  # no trial has its figures
    assert "### FID of G's own weights" not in "\n".join(write_table(out, str(tmp_path / "sweep"), SWEEP, TRIALS))


def test_write_table_writes_table_md_and_one_sample_grid_per_row_from_the_lowest_seed(tmp_path):
    sweep_dir, out = tmp_path / "sweep", tmp_path / "report"
    out.mkdir()
    for trial in TRIALS[:3] + TRIALS[5:6]:  # the lowest seed of each finished cell (trial 1 has none: not read)
        run_dir.write_samples(layout.trial_dir(str(sweep_dir), trial["name"]), torch.rand(1, 62, 62), step=300)
    section = write_table(out, str(sweep_dir), SWEEP, TRIALS)
    assert not any(line.startswith("- ") and "samples.png" in line for line in section)  # every panel drawn
    assert table_markdown(SWEEP, TRIALS) in (out / "table.md").read_text()
    assert section[0] == "## Table" and "![table_pixel.png](table_pixel.png)" in section
    assert (out / "table_pixel.png").is_file() and (out / "table_patch.png").is_file()  # patch: the shared clean
    assert matplotlib.image.imread(out / "table_pixel.png").shape[1] > matplotlib.image.imread(
        out / "table_patch.png").shape[1]  # three panels against one
    assert write_table(out, str(sweep_dir), {"space": {}}, TRIALS) == []  # a space without table:


def test_a_cell_whose_trial_directory_is_gone_is_named_not_fatal(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    section = write_table(out, str(tmp_path / "sweep"), SWEEP, TRIALS)
    assert "- pixel, ambient: no samples.png in 0002_ambient_pixel_0" in section
    assert not (out / "table_pixel.png").exists()


@needs_fashion
def test_a_table_sweep_and_its_report_through_the_cli(tmp_path):
    """2 rows x (ambient, hidden@up1) + the shared clean arm, one seed: `gansweep sweep` then `gansweep report`."""
    fixed = {key: value for key, value in TINY_SWEEP.items() if key != "measurement.name"}
    fixed.update({"train.steps": 20, "eval.n_samples": 100})
    space = tmp_path / "table.yaml"
    space.write_text(yaml.safe_dump({
        "name": "table", "fixed": fixed, "search": {"algorithm": "grid"}, "scheduler": {"name": "fifo"},
        "table": {"rows": "row", "columns": "arm"},
        "space": {
            "arm": {"choice": {"clean": {"mode": "clean", "measurement.name": "none"}, "ambient": {"mode": "ambient"},
                               "hidden@up1": {"mode": "ambient", "hidden.inject_at": "up1"}}},
            "row": {"when": {"arm": ["ambient", "hidden@up1"]}, "choice": {
                "pixel": {"measurement.name": "block_pixel", "measurement.p": 0.5,
                          "arm": {"hidden@up1": {"hidden.measurement.name": "block_pixel", "hidden.measurement.p": 0.5}}},
                "patch": {"measurement.name": "block_patch", "measurement.patch": 14,
                          "arm": {"hidden@up1": {"hidden.measurement.name": "block_patch",
                                                 "hidden.measurement.patch": 7}}},
            }},
            "train.seed": {"choice": [0]},
        },
    }, sort_keys=False))
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "gansweep.cli"]
    sweep = subprocess.run([*cli, "sweep", str(space), "--output", str(out)], capture_output=True, text=True,
                           timeout=600)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    assert "5 trials" in sweep.stdout
    trials = layout.read_trials(out)
    assert sorted(t["status"] for t in trials) == ["finished"] * 5
    record = layout.read_sweep_record(out)
    assert record["table"] == {"rows": "row", "columns": "arm"} and record["exclude"] == []
    report = subprocess.run([*cli, "report", str(out)], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (out / "report" / "table.md").read_text()
    lines = text.splitlines()
    lines = lines[lines.index("| row | clean (shared) | ambient | hidden@up1 |"):]
    assert "- pixel, over clean: ambient " in text and "(n 1 / 1)" in text  # one seed a side: no interval
    for line, row in zip(lines[2:4], ("pixel", "patch")):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == row and len(cells) == 4
        assert all(cell.endswith("n=1") and "(" in cell for cell in cells[1:]), line
    assert lines[2].split("|")[2] == lines[3].split("|")[2]  # the same clean trial on both lines
    assert (out / "report" / "table_pixel.png").is_file() and (out / "report" / "table_patch.png").is_file()
    summary = (out / "report" / "summary.md").read_text()
    assert summary.index("## Table") < summary.index("## Best trial")
    assert "![table_pixel.png](table_pixel.png)" in summary
