"""`search.storage: postgresql://...` against a real PostgreSQL server on 127.0.0.1 (pg_server.py, started by
conftest's `postgres` fixture): two sweep drivers sharing one Optuna study at the same time, each running its own
trials, and the role's password never written to the sweep directory's files, TensorBoard, the console or the
report."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest
import yaml
from conftest import FASHION, TINY_SWEEP, needs_fashion
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.space import SpaceError, load_space
from pg_server import new_database

# Smaller still: one cheap FID at step 20, no full evaluation.
TINY = {**TINY_SWEEP, "data.limit": 256, "model.g_width": 8, "model.d_width": 8, "train.steps": 20, "eval.n_samples": 0}
STUDY = "shared_postgres"


def _cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gansweep.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def shared_study(postgres, tmp_path_factory):
    """Two `gansweep sweep` drivers started together on one space and one PostgreSQL study (search.storage given
    with --set, as a user would), each into its own --output, with its own local Ray and its own search.seed (the
    same seed would sample the same points), two trials each, one at a time, both drivers at once; then
    `gansweep report --storage URL` on each."""
    root = tmp_path_factory.mktemp("postgres")
    url = new_database(postgres, "shared")
    space = root / f"{STUDY}.yaml"
    space.write_text(yaml.safe_dump({
        "num_samples": 2, "max_concurrent_trials": 1, "fixed": TINY,
        "space": {"measurement.p": {"uniform": [0.3, 0.7]}},
        "scheduler": {"name": "fifo"}, "search": {"algorithm": "random", "seed": 0},
    }, sort_keys=False))
    outs = [root / "driver_a", root / "driver_b"]
    logs = [root / f"{out.name}.log" for out in outs]
    drivers = []
    for seed, (out, log) in enumerate(zip(outs, logs), start=1):
        with log.open("w") as stream:
            drivers.append(subprocess.Popen(
                [sys.executable, "-m", "gansweep.cli", "sweep", str(space), "--output", str(out),
                 "--set", f"search.storage={url}", "--set", f"search.seed={seed}"],
                stdout=stream, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        deadline = time.monotonic() + 900
        for driver in drivers:
            driver.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for driver in drivers:
            if driver.poll() is None:
                os.killpg(driver.pid, 9)
                driver.wait()
    consoles = [log.read_text(errors="replace") for log in logs]
    reports = [_cli("report", out, "--storage", url) for out in outs]
    return url, postgres.password, outs, [d.returncode for d in drivers], consoles, reports



@needs_fashion
def test_two_drivers_share_one_postgres_study_each_running_its_own_trials(shared_study):
    url, _, outs, codes, consoles, _ = shared_study
    for code, console in zip(codes, consoles):
        assert code == 0, console[-5000:]
    numbers = []
    for out in outs:
        trials = layout.read_trials(out)
        assert [t["status"] for t in trials] == ["finished", "finished"], trials
        numbers.append({t["number"] for t in trials})
        record = layout.read_sweep_record(out)
        assert record["study_name"] == STUDY
        assert record["storage"] == layout.masked_url(url) and "***" in record["storage"]
    assert not numbers[0] & numbers[1]  # each driver ran its own trials of the one study
    study = optuna.load_study(study_name=STUDY, storage=url)
    assert {t.number for t in study.trials} == numbers[0] | numbers[1] == {0, 1, 2, 3}
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    for out in outs:
        for entry in layout.read_trials(out):
            assert study.trials[entry["number"]].params == entry["params"]
    assert len({t.params["measurement.p"] for t in study.trials}) == 4  # no point sampled twice


@needs_fashion
def test_optuna_dashboard_serves_the_shared_postgres_study(shared_study, optuna_dashboard):
    url, password, _, _, _, _ = shared_study
    base, log = optuna_dashboard(url)  # README.md's command, the URL in quotes
    with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as response:
        summaries = json.load(response)["study_summaries"]
    (summary,) = [s for s in summaries if s["study_name"] == STUDY]
    with urllib.request.urlopen(f"{base}/api/studies/{summary['study_id']}", timeout=30) as response:
        trials = json.load(response)["trials"]
    assert sorted(t["number"] for t in trials) == [0, 1, 2, 3]
    assert password not in log.read_text()


@needs_fashion
def test_the_password_is_never_written_or_shown(shared_study):
    url, password, outs, _, consoles, reports = shared_study
    secret = password.encode()
    for console in consoles:
        assert password not in console
    for report in reports:
        assert report.returncode == 0, report.stderr[-3000:]
        assert "Source: the Optuna study" in report.stdout
        assert password not in report.stdout + report.stderr
    for out in outs:
        files = [path for path in out.rglob("*") if path.is_file()]
        # Tune's own state (tune/) keeps the searcher, and so the URL, for --resume; everything else is ours.
        ours = [path for path in files if layout.TUNE_DIR not in path.relative_to(out).parts]
        assert any(path.name.startswith("events.out.tfevents") for path in ours)  # TensorBoard was read
        assert {"sweep.json", "trials.json"} <= {path.name for path in ours}
        assert (out / "report" / "summary.md").is_file()
        leaked = [str(path.relative_to(out)) for path in ours if secret in path.read_bytes()]
        assert not leaked, f"the password is in {leaked}"
        assert layout.masked_url(url) in (out / "report" / "summary.md").read_text()


def test_a_storage_url_that_cannot_open_is_refused_before_ray_starts(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"num_samples": 1, "fixed": {"train.steps": 20, "eval.every": 10},
                                     "space": {"measurement.p": {"uniform": [0.3, 0.7]}},
                                     "scheduler": {"name": "fifo"}}))
    result = _cli("sweep", space, "--output", tmp_path / "out",
                  "--set", "search.storage=postgres://user:s3cret-word@127.0.0.1/db", timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "search.storage: unknown database 'postgres' (write postgresql://)" in result.stderr
    assert "s3cret-word" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()
    for storage, expected in (("not a url s3cret-word", "not a database URL"),
                              ("nosuchdb://user:s3cret-word@host/db", "unknown database 'nosuchdb'")):
        with pytest.raises(SpaceError, match=f"search.storage: {expected}") as error:
            load_space(space, [("search.storage", storage)])
        assert "s3cret-word" not in str(error.value)
    if FASHION.is_dir():  # the rest of the space is checked against the data
        load_space(space, [("search.storage", "postgresql://user:s3cret-word@127.0.0.1/db")])  # psycopg is installed
