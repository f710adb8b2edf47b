"""gansweep.sweep.report on a synthetic sweep directory with a real Optuna SQLite study."""

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image
import matplotlib.style
import optuna
import pytest
from gansweep import storage
from gansweep.config.schema import ReversalConfig
from gansweep.run.run_dir import write_json
from gansweep.sweep import curves, lineage
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report import write_report
from gansweep.sweep.sweep_dir import SweepDirError
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SPACE = {
    "measurement.p": {"uniform": [0.1, 0.9]},
    "optim.lr_g": {"loguniform": [1e-4, 1e-2]},
    "prior.name": {"choice": ["gaussian", "kde"]},
    "prior.reversal_steps": {"int": [4, 14], "when": {"prior.name": ["kde"]}},
}
DISTRIBUTIONS = {
    "measurement.p": FloatDistribution(0.1, 0.9),
    "optim.lr_g": FloatDistribution(1e-4, 1e-2, log=True),
    "prior.name": CategoricalDistribution(["gaussian", "kde"]),
    "prior.reversal_steps": IntDistribution(4, 14),
    "mode": CategoricalDistribution(["ambient", "ignore"]),
}
# The quickstart's question: ambient against ignore, over p. Ambient is better at every p.
MODE_SPACE = {"mode": {"choice": ["ambient", "ignore"]}, "measurement.p": {"uniform": [0.1, 0.9]}}
MODE_TRIALS = [
    ("finished", {"mode": "ambient", "measurement.p": 0.3}, 20.0, None),
    ("finished", {"mode": "ignore", "measurement.p": 0.4}, 50.0, None),
    ("finished", {"mode": "ambient", "measurement.p": 0.5}, 24.0, None),
    ("failed", {"mode": "ignore", "measurement.p": 0.6}, None, "RuntimeError: out of memory"),
    ("finished", {"mode": "ignore", "measurement.p": 0.7}, 70.0, None),
    ("stopped", {"mode": "ambient", "measurement.p": 0.8}, 30.0, None),
]
# (status, params, best fid or None, error)
TRIALS = [
    ("finished", {"measurement.p": 0.2, "optim.lr_g": 2e-4, "prior.name": "gaussian"}, 40.0, None),
    ("finished", {"measurement.p": 0.5, "optim.lr_g": 1e-3, "prior.name": "kde", "prior.reversal_steps": 8}, 25.0, None),
    ("stopped", {"measurement.p": 0.8, "optim.lr_g": 5e-3, "prior.name": "gaussian"}, 90.0, None),
    ("failed", {"measurement.p": 0.6, "optim.lr_g": 3e-4, "prior.name": "kde", "prior.reversal_steps": 12}, None,
     "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: measurement.p must be in [0, 1]"),
    ("finished", {"measurement.p": 0.3, "optim.lr_g": 8e-3, "prior.name": "kde", "prior.reversal_steps": 5}, 60.0, None),
    ("finished", {"measurement.p": 0.7, "optim.lr_g": 1e-4, "prior.name": "gaussian"}, 33.0, None),
]


def full_evaluation(number: int, best: float | None, prdc: bool) -> dict | None:
    """A trial's full evaluation: fid and kid, and (with prdc, for every trial but number 4, evaluated before the
    protocol had them) precision, recall, density and coverage."""
    if best is None:
        return None
    figures = {"fid": best + 0.5, "kid": 0.01}
    if prdc and number != 4:
        figures.update(precision=0.7 + number / 100, recall=0.4 + number / 100, density=0.9, coverage=0.05 * number,
                       prdc_k=5, prdc_n=10000)
    return figures


def make_sweep(root, mode="min", trials=TRIALS, storage_in_json=None, prdc=True, space=SPACE):
    """sweep.json, trials.json and a matching Optuna study in root/optuna.db; returns the storage URL."""
    root.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{root}/optuna.db"
    study = optuna.create_study(storage=storage, study_name="demo", direction="minimize" if mode == "min" else "maximize")
    records = []
    for number, (status, params, best, error) in enumerate(trials):
        distributions = {k: DISTRIBUTIONS[k] for k in params}
        if best is None:
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params=params,
                                                      distributions=distributions))
        else:
            study.add_trial(optuna.trial.create_trial(value=best, params=params, distributions=distributions))
        records.append({
            "name": f"{number:05d}_p={params.get('measurement.p')}", "number": number, "params": params, "status": status,
            "metrics": {"step": 300, "fid": None if best is None else best + 1.0, "loss_d": 0.7},
            "best": None if best is None else {"value": best, "step": 200},
            "full_evaluation": full_evaluation(number, best, prdc),
            "wall_s": 120.0, "error": error,
        })
    layout.claim(root, {
        "name": "demo_sweep", "metric": "fid", "mode": mode, "space": space, "study_name": "demo",
        "storage": storage_in_json or storage, "search": "optuna_tpe",
    })
    layout.write_trials(root, records)
    return storage


def table_names(summary: str) -> list[str]:
    """The first column of the trial table in summary.md."""
    section = summary.split("## Trials (best first)")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # drop the header
    return [row.split("|")[1].strip() for row in rows]


@pytest.fixture(scope="module")
def min_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_min")
    make_sweep(root)
    return root, Path(write_report(root))


def test_best_trial_and_sorted_table(min_report):
    root, summary_path = min_report
    assert summary_path == root / "report" / "summary.md"
    summary = summary_path.read_text()
    assert "demo_sweep" in summary and "`fid`" in summary and "`min`" in summary
    best = summary.split("## Best trial")[1].split("\n## ")[0]
    assert "00001_p=0.5" in best and "25" in best and "prior.reversal_steps" in best
    # Best first by best fid; the failed trial (no value) last.
    assert table_names(summary) == ["00001_p=0.5", "00005_p=0.7", "00000_p=0.2", "00004_p=0.3", "00002_p=0.8",
                                    "00003_p=0.6"]


def test_failed_trial_shows_status_and_error(min_report):
    summary = min_report[1].read_text()
    failed_row = next(line for line in summary.splitlines() if line.startswith("| 00003_p=0.6"))
    assert "| failed |" in failed_row
    assert "ValueError: measurement.p must be in [0, 1]" in failed_row
    assert "Traceback" not in failed_row  # shortened to the exception's line
    assert "| stopped |" in next(line for line in summary.splitlines() if line.startswith("| 00002_p=0.8"))


def test_trials_csv_one_row_per_trial(min_report):
    with (min_report[0] / "report" / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(TRIALS)
    assert set(SPACE) <= set(rows[0])
    assert {"name", "status", "fid_last", "fid_best", "best_step", "full_fid", "wall_min", "error"} <= set(rows[0])
    by_name = {row["name"]: row for row in rows}
    assert by_name["00000_p=0.2"]["prior.reversal_steps"] == ""  # inactive conditional param
    assert by_name["00001_p=0.5"]["prior.reversal_steps"] == "8"
    assert float(by_name["00001_p=0.5"]["wall_min"]) == pytest.approx(2.0)


def test_table_shows_the_full_evaluations_precision_recall_density_and_coverage(min_report):
    root, summary_path = min_report
    prdc = ["full_precision", "full_recall", "full_density", "full_coverage"]
    with (root / "report" / "trials.csv").open() as f:
        reader = csv.DictReader(f)
        rows = {row["name"]: row for row in reader}
    assert reader.fieldnames[reader.fieldnames.index("full_fid"):][:5] == ["full_fid", *prdc]
    assert float(rows["00001_p=0.5"]["full_precision"]) == pytest.approx(0.71)
    assert float(rows["00002_p=0.8"]["full_coverage"]) == pytest.approx(0.1)
    assert float(rows["00005_p=0.7"]["full_recall"]) == pytest.approx(0.45)
    assert all(rows["00004_p=0.3"][column] == "" for column in prdc)  # evaluated without them
    assert all(rows["00003_p=0.6"][column] == "" for column in prdc)  # failed: no full evaluation
    summary = summary_path.read_text()
    header = next(line for line in summary.split("## Trials (best first)")[1].splitlines() if line.startswith("| name"))
    assert "| full_fid | full_precision | full_recall | full_density | full_coverage |" in header
    row = next(line for line in summary.splitlines() if line.startswith("| 00001_p=0.5"))
    assert "| 25.5 | 0.71 | 0.41 | 0.9 | 0.05 |" in row
    assert "collapsed generator" in summary


def test_a_sweep_evaluated_without_prdc_gets_no_empty_columns(tmp_path):
    make_sweep(tmp_path, prdc=False)
    summary = Path(write_report(tmp_path)).read_text()
    with (tmp_path / "report" / "trials.csv").open() as f:
        columns = csv.DictReader(f).fieldnames
    assert "full_fid" in columns and not any(c in columns for c in ("full_precision", "full_coverage"))
    assert "full_precision" not in summary


def test_plots_are_pngs(min_report):
    root, summary_path = min_report
    summary = summary_path.read_text()
    for param in SPACE:
        png = root / "report" / f"metric_vs_{param}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, param
        assert f"(metric_vs_{param}.png)" in summary
    assert (root / "report" / "importances.png").read_bytes()[:8] == PNG_MAGIC
    assert "(importances.png)" in summary
    importances = summary.split("## Parameter importances")[1].split("\n## ")[0]
    assert "measurement.p" in importances and "PED-ANOVA" in importances


def test_mode_max_picks_the_maximum(tmp_path):
    make_sweep(tmp_path, mode="max")
    summary = Path(write_report(tmp_path)).read_text()
    best = summary.split("## Best trial")[1].split("\n## ")[0]
    assert "00002_p=0.8" in best
    assert table_names(summary)[:2] == ["00002_p=0.8", "00004_p=0.3"]
    assert table_names(summary)[-1] == "00003_p=0.6"


def test_no_importances_says_why(tmp_path):
    make_sweep(tmp_path, trials=TRIALS[2:4])  # one stopped (complete) trial and one failed
    summary = Path(write_report(tmp_path)).read_text()
    assert "at least 2 complete trials" in summary
    assert not (tmp_path / "report" / "importances.png").exists()
    assert "00000_p=0.8" in summary.split("## Best trial")[1].split("\n## ")[0]
    for param in SPACE:  # still one plot per swept param, even one no trial has
        assert (tmp_path / "report" / f"metric_vs_{param}.png").read_bytes()[:8] == PNG_MAGIC


def test_storage_argument_overrides_masked_url(tmp_path):
    storage = make_sweep(tmp_path, storage_in_json="postgresql://user:***@db.example/optuna")
    summary = Path(write_report(tmp_path, storage=storage)).read_text()
    assert "Source: the Optuna study `demo`" in summary
    assert (tmp_path / "report" / "importances.png").exists()
    # Without it the report still ranks parameters, from trials.json, and says why.
    summary = Path(write_report(tmp_path)).read_text()
    assert "password masked" in summary and "Source: trials.json" in summary


def test_not_a_sweep_directory(tmp_path):
    with pytest.raises(SweepDirError, match="not a sweep directory.*sweep.json"):
        write_report(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        write_report(tmp_path / "missing")
    assert not (tmp_path / "report").exists()  # nothing written for a directory that is not a sweep


def test_storage_password_stays_out_of_the_report(tmp_path):
    make_sweep(tmp_path)
    # Unreachable (or its driver absent): the report falls back to trials.json and names no password.
    summary = Path(write_report(tmp_path, storage="postgresql://user:s3cret@127.0.0.1:1/optuna")).read_text()
    assert "s3cret" not in summary and "user:***@127.0.0.1" in summary
    assert "Source: trials.json" in summary


def importance_section(summary: str) -> str:
    return summary.split("## Parameter importances")[1].split("\n## ")[0]


def test_metric_vs_numeric_by_categorical_plot_and_per_value_table(tmp_path):
    make_sweep(tmp_path, trials=MODE_TRIALS, space=MODE_SPACE)
    summary = Path(write_report(tmp_path)).read_text()
    png = tmp_path / "report" / "metric_vs_measurement.p_by_mode.png"
    height, width, _ = matplotlib.image.imread(png).shape
    assert height > 0 and width > 0
    plots = summary.split("## fid against each parameter")[1]
    assert "(metric_vs_measurement.p_by_mode.png)" in plots
    by_mode = plots.split("### fid by mode")[1]
    assert "| mode | trials with fid | best fid | mean fid |" in by_mode
    assert "| ambient | 3 | 20 | 24.67 |" in by_mode  # 20, 24 and the stopped trial's 30
    assert "| ignore | 2 | 50 | 60 |" in by_mode  # the failed trial has no fid
    assert sorted(p.name for p in (tmp_path / "report").glob("*_by_*")) == ["metric_vs_measurement.p_by_mode.png"]


def test_mode_max_per_value_table_takes_the_maximum(tmp_path):
    make_sweep(tmp_path, mode="max", trials=MODE_TRIALS, space=MODE_SPACE)
    summary = Path(write_report(tmp_path)).read_text()
    assert "| ambient | 3 | 30 | 24.67 |" in summary and "| ignore | 2 | 70 | 60 |" in summary


@pytest.mark.parametrize("space", [
    {"measurement.p": SPACE["measurement.p"], "optim.lr_g": SPACE["optim.lr_g"]},
    {"mode": MODE_SPACE["mode"], "prior.name": SPACE["prior.name"]},
], ids=["numeric_only", "categorical_only"])
def test_no_by_plot_without_both_a_numeric_and_a_categorical_param(tmp_path, space):
    trials = [("finished", {"measurement.p": 0.2 + i / 10, "optim.lr_g": 1e-3, "mode": "ambient",
                            "prior.name": "kde"}, 30.0 + i, None) for i in range(3)]
    trials = [(status, {k: v for k, v in params.items() if k in space}, best, error)
              for status, params, best, error in trials]
    make_sweep(tmp_path, trials=trials, space=space)
    summary = Path(write_report(tmp_path)).read_text()
    assert not list((tmp_path / "report").glob("*_by_*"))
    assert "_by_" not in summary.split("## fid against each parameter")[1]
    assert ("### fid by mode" in summary) == ("mode" in space)  # the per-value table needs no numeric param


def many_trials(n: int) -> list:
    """n finished trials, ambient and ignore in turn over a grid of p: fid rises with p, ignore 30 worse."""
    return [("finished", {"mode": ("ambient", "ignore")[i % 2], "measurement.p": 0.1 + 0.8 * i / (n - 1)},
             20.0 + 30.0 * (i % 2) + 10.0 * i / n, None) for i in range(n)]


def test_importances_are_unreliable_below_the_minimum_of_complete_trials(tmp_path):
    failed = ("failed", {"mode": "ignore", "measurement.p": 0.5}, None, "RuntimeError: boom")
    make_sweep(tmp_path, trials=many_trials(19) + [failed], space=MODE_SPACE)  # 20 trials, 19 complete
    section = importance_section(Path(write_report(tmp_path)).read_text())
    assert "Unreliable: computed over 19 complete trials, fewer than 20" in section
    assert "| mode |" in section and (tmp_path / "report" / "importances.png").is_file()  # still computed, drawn


def test_importances_are_not_marked_at_the_minimum_of_complete_trials(tmp_path):
    make_sweep(tmp_path, trials=many_trials(20), space=MODE_SPACE)
    section = importance_section(Path(write_report(tmp_path)).read_text())
    assert "over 20 complete trials" in section and "nreliable" not in section
    assert "| mode |" in section and (tmp_path / "report" / "importances.png").is_file()


def test_report_leaves_matplotlibs_style_as_it_found_it(tmp_path):
    # Optuna's importance plot switches to ggplot: a second report in the same process must look like the first.
    make_sweep(tmp_path, trials=MODE_TRIALS, space=MODE_SPACE)
    with matplotlib.rc_context():
        matplotlib.style.use("default")
        write_report(tmp_path)
        assert (tmp_path / "report" / "importances.png").is_file()
        assert matplotlib.rcParams["axes.facecolor"] == "white"


# ---------------------------------------------------------------- KDE-GAN's reversal steps over training

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


def change_sweep_record(root: Path, **changes) -> None:
    """A sweep.json as an older or another kind of sweep wrote it."""
    write_json(str(Path(root) / layout.SWEEP_FILE), {**layout.read_sweep_record(root), **changes})


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


# ---------------------------------------------------------------- PBT lineage

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
