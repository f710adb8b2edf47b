"""`search.storage: postgresql://...` against a real PostgreSQL server on 127.0.0.1 (pg_server.py, started by
conftest's `postgres` fixture): two sweep drivers sharing one Optuna study at the same time, each running its own
trials, and the role's password never written to the sweep directory's files, TensorBoard, the console or the
report."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import FASHION, TINY_SWEEP, needs_fashion
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.space import SpaceError
from gansweep.sweep.space_file import load_space
from gansweep.run.trainer import free_port
from pg_server import new_database

# Smaller still: one cheap FID at step 20, no full evaluation.
TINY = {**TINY_SWEEP, "data.limit": 256, "model.g_width": 8, "model.d_width": 8, "train.steps": 20, "eval.n_samples": 0}
STUDY = "shared_postgres"
PASSWORD_VARIABLE = "GANSWEEP_TEST_STUDY_PASSWORD"


def _cli(*args, timeout=300, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gansweep.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


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
    # Each driver's Ray keeps its session folder (logs, what Tune stages) apart, to be searched for the password;
    # short paths: Ray's sockets live there.
    ray_dirs = [Path(tempfile.mkdtemp(prefix="gs-ray-", dir="/tmp")) for _ in outs]
    # Driver a is given the password in the URL, driver b a reference to the environment variable holding it.
    urls = [url, url.replace(f":{postgres.password}@", f":${{{PASSWORD_VARIABLE}}}@")]
    drivers = []
    for seed, (out, log, ray_dir, given) in enumerate(zip(outs, logs, ray_dirs, urls), start=1):
        with log.open("w") as stream:
            drivers.append(subprocess.Popen(
                [sys.executable, "-m", "gansweep.cli", "sweep", str(space), "--output", str(out),
                 "--set", f"search.storage={given}", "--set", f"search.seed={seed}"],
                stdout=stream, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "RAY_TMPDIR": str(ray_dir), PASSWORD_VARIABLE: postgres.password}))
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
    # Driver b's report finds the study from sweep.json alone: the reference resolved from the environment.
    reports = [_cli("report", outs[0], "--storage", url),
               _cli("report", outs[1], env={**os.environ, PASSWORD_VARIABLE: postgres.password})]
    yield url, postgres.password, outs, [d.returncode for d in drivers], consoles, reports, ray_dirs
    for ray_dir in ray_dirs:
        shutil.rmtree(ray_dir, ignore_errors=True)



@needs_fashion
def test_two_drivers_share_one_postgres_study_each_running_its_own_trials(shared_study):
    url, _, outs, codes, consoles, _, _ = shared_study
    for code, console in zip(codes, consoles):
        assert code == 0, console[-5000:]
    numbers = []
    for out in outs:
        trials = layout.read_trials(out)
        assert [t["status"] for t in trials] == ["finished", "finished"], trials
        numbers.append({t["number"] for t in trials})
        record = layout.read_sweep_record(out)
        assert record["study_name"] == STUDY
        assert record["storage"].split("@")[1] == url.split("@")[1]
    assert layout.read_sweep_record(outs[0])["storage"] == layout.masked_url(url) != url
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
    url, password, _, _, _, _, _ = shared_study
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
    url, password, outs, _, consoles, reports, ray_dirs = shared_study
    secret = password.encode()
    for console in consoles:
        assert password not in console
    for report in reports:
        assert report.returncode == 0, report.stderr[-3000:]
        assert "Source: the Optuna study" in report.stdout
        assert password not in report.stdout + report.stderr
    for out, ray_dir in zip(outs, ray_dirs):
        # Every file: ours, Tune's state (tuner.pkl, the searcher it pickles) and Ray's session folder.
        files = [path for folder in (out, ray_dir) for path in folder.rglob("*") if path.is_file()]
        names = {path.name for path in files}
        assert {"sweep.json", "trials.json", "tuner.pkl"} <= names
        assert any(name.startswith("searcher-state-") for name in names)
        assert any(name.startswith("events.out.tfevents") for name in names)  # TensorBoard was read
        assert any(path.is_relative_to(ray_dir) and path.suffix == ".log" for path in files)
        assert (out / "report" / "summary.md").is_file()
        leaked = [str(path) for path in files if secret in path.read_bytes()]
        assert not leaked, f"the password is in {leaked}"
    assert layout.masked_url(url) in (outs[0] / "report" / "summary.md").read_text()
    # A reference to the environment is no secret: sweep.json keeps it, and the report finds the study with it.
    assert f"${{{PASSWORD_VARIABLE}}}" in layout.read_sweep_record(outs[1])["storage"]


def _open_when_all_are_ready(url: str, sweep_dir: str, barrier) -> None:
    from gansweep.sweep import runner

    barrier.wait()
    runner._open_study(url, sweep_dir)


def test_drivers_opening_a_fresh_database_at_the_same_instant_all_open_it(postgres, tmp_path):
    """Each driver's first connection makes Optuna's tables: at the same instant, PostgreSQL refuses all but one
    creator of each table; the others open the study once the tables are there."""
    import multiprocessing

    url = new_database(postgres, "race")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(6)
    drivers = [context.Process(target=_open_when_all_are_ready, args=(url, str(tmp_path / f"s{i}"), barrier))
               for i in range(6)]
    for driver in drivers:
        driver.start()
    for driver in drivers:
        driver.join(timeout=120)
    assert [driver.exitcode for driver in drivers] == [0] * 6
    assert optuna.storages.RDBStorage(url).get_all_studies() == []  # the tables made, once


@pytest.mark.parametrize("trouble", ["a wrong password", "no server"])
def test_a_study_that_cannot_be_connected_to_is_refused_before_ray_starts(postgres, tmp_path, trouble):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"num_samples": 1, "fixed": TINY, "scheduler": {"name": "fifo"},
                                     "space": {"measurement.p": {"uniform": [0.3, 0.7]}}}))
    given = "wr0ng-s3cret"
    port = postgres.port if trouble == "a wrong password" else free_port()
    url = f"postgresql://gansweep:{given}@127.0.0.1:{port}/postgres"
    result = _cli("sweep", space, "--output", tmp_path / "out", "--set", f"search.storage={url}", timeout=120)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert f"search.storage postgresql://gansweep:***@127.0.0.1:{port}/postgres: cannot open the study there" in line
    assert ("password authentication failed" if trouble == "a wrong password" else "Connection refused") in line
    assert given not in result.stdout + result.stderr
    assert "Ray" not in result.stdout + result.stderr  # refused before Ray started
    assert not (tmp_path / "out" / layout.SWEEP_FILE).exists()  # the directory is free to start again


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
