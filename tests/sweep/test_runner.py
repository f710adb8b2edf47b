"""Real sweeps through the CLI: Ray Tune + Optuna + Ray Train on a local Ray, TensorBoard, the report,
and the reliability a researcher leaves a sweep running on: a diverging trial, a killed trial process,
an interrupted sweep resumed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TINY_SWEEP, needs_fashion, new_bucket
from gansweep import storage
from gansweep.run.run_dir import read_result
from gansweep.sweep import sweep_dir as layout
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

pytestmark = needs_fashion

TINY = TINY_SWEEP  # a cheap FID at steps 20 and 40, checkpoints at the same steps


def _space(path: Path, **settings) -> Path:
    path.write_text(yaml.safe_dump({"name": path.stem, **settings}, sort_keys=False))
    return path


def _sweep(*args, timeout=600, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gansweep.cli", "sweep", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **popen)


def _trials(sweep_dir: Path) -> dict[str, dict]:
    """trials.json's entries by name ({} before the first trial started)."""
    return {entry["name"]: entry for entry in layout.read_trials(sweep_dir) or []}


def _study(sweep_dir: Path) -> optuna.Study:
    record = layout.read_sweep_record(sweep_dir)
    return optuna.load_study(study_name=record["study_name"], storage=record["storage"])


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """A grid of three trials, two at a time: ambient and ignore at a sane learning rate, and one whose
    discriminator learning rate makes the losses non-finite (the grid's conditional key leaves it one)."""
    root = tmp_path_factory.mktemp("grid")
    space = _space(
        root / "grid.yaml",
        max_concurrent_trials=2,
        fixed=TINY,
        space={
            "train.lr_d": {"choice": [0.0002, 1.0e30]},
            "mode": {"choice": ["ambient", "ignore"], "when": {"train.lr_d": [0.0002]}},
        },
        scheduler={"name": "fifo"},
        search={"algorithm": "grid"},
    )
    out = root / "out"
    result = _sweep(space, "--output", out)
    return space, out, result


def test_grid_sweep_runs_every_point_and_survives_a_diverging_trial(grid_sweep):
    _, out, result = grid_sweep
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = _trials(out)
    assert len(trials) == 3
    by_status = {}
    for entry in trials.values():
        by_status.setdefault(entry["status"], []).append(entry)
    assert len(by_status.get("finished", [])) == 2, trials
    (failed,) = by_status["failed"]
    assert failed["params"] == {"train.lr_d": 1.0e30}
    assert "non-finite" in failed["error"]
    # Failed once, on the console: Tune's restarts of a one-worker trial end at once instead of diverging again.
    (failed_line,) = [line for line in result.stdout.splitlines()
                      if line.startswith(f"[gansweep] {failed['name']} failed: ")]
    assert "non-finite" in failed_line, result.stdout[-3000:]
    for entry in by_status["finished"]:
        assert entry["metrics"]["step"] == TINY["train.steps"]
        assert entry["full_evaluation"]["n_fake"] == TINY["eval.n_samples"]
        assert entry["value"] == entry["metrics"]["fid"] and entry["stopped_at_step"] is None
    assert {e["params"]["mode"] for e in by_status["finished"]} == {"ambient", "ignore"}
    for entry in by_status["finished"]:  # one worker: trained in the trial's own process, which kept 2 checkpoints
        trial = out / "trials" / entry["name"]
        assert read_result(trial)["trains_in"] == "trial process"
        assert sorted(p.name for p in (trial / "checkpoints").iterdir()) == ["checkpoint_000000020",
                                                                             "checkpoint_000000040"]
    assert "best trial" in result.stdout and f"tensorboard --logdir {out / 'tensorboard'}" in result.stdout
    # A console to read: a line per event, naming the trial as trials.json does; no Tune table or box, no trial's own
    # output, no repr of Ray Train's reports.
    for entry in by_status["finished"]:
        for event in ("started: ", "step 20: val fid ", "step 40: val fid ", "finished: val fid "):
            assert result.stdout.count(f"[gansweep] {entry['name']} {event}") == 1, (event, result.stdout[-3000:])
    for noise in ("TrainingReport(", "Trial status", "Configuration for experiment", "(run_trial pid=", "Traceback"):
        assert noise not in result.stdout + result.stderr, noise
    assert len((result.stdout + result.stderr).splitlines()) <= 30, result.stdout + result.stderr


def test_optuna_study_is_persisted_with_each_trial_state(grid_sweep):
    _, out, _ = grid_sweep
    study = _study(out)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    trials = _trials(out)
    for ot_trial in study.trials:
        entry = next(e for e in trials.values() if e["number"] == ot_trial.number)
        assert ot_trial.params == entry["params"]
        if ot_trial.state.name == "COMPLETE":
            assert ot_trial.value == pytest.approx(entry["metrics"]["fid"])


def _hparams(run_dir: Path) -> dict[str, plugin_data_pb2.HParamsPluginData]:
    """The HParams summaries of a TensorBoard run, by tag (the experiment, a session's start)."""
    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    events.Reload()
    return {tag: plugin_data_pb2.HParamsPluginData.FromString(raw)
            for tag, raw in events.PluginTagToContent("hparams").items()}


def test_tensorboard_has_one_readable_run_per_trial_with_hparams(grid_sweep):
    _, out, _ = grid_sweep
    board = out / "tensorboard"
    trials = _trials(out)
    # Only the trials' runs: the HParams experiment lies in each of them, not in a run named "." at the root.
    assert {path.name for path in board.iterdir()} == set(trials) and all(p.is_dir() for p in board.iterdir())
    for name, entry in trials.items():
        run = board / name
        assert name.startswith(f"{entry['number']:04d}_") and "lr_d=" in name
        hparams = _hparams(run)
        experiment = hparams["_hparams_/experiment"].experiment
        assert {info.name for info in experiment.hparam_infos} == {"train.lr_d", "mode", "status"}
        metrics = [info.name.tag for info in experiment.metric_infos]
        assert metrics[0] == "val/fid" and "loss/reconstruction" not in metrics  # the sweep's metric first
        session = hparams["_hparams_/session_start_info"].session_start_info
        assert {key: (value.string_value or value.number_value) for key, value in session.hparams.items()} == \
            {**entry["params"], "status": entry["status"]}  # finished or failed here
        if entry["status"] == "finished":
            events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
            events.Reload()
            tags = events.Tags()
            assert {"val/fid", "val/fid_best", "loss/d", "test/fid"} <= set(tags["scalars"])
            assert set(metrics) <= set(tags["scalars"])  # HParams lists only what the trials log
            assert sorted(tags["images"])[0] == "samples/fixed_z"  # the Images tab leads with the samples
            assert (out / "trials" / name / "samples.png").is_file()  # the report's grid reads it


def test_report_names_the_best_trial(grid_sweep):
    _, out, _ = grid_sweep
    result = subprocess.run([sys.executable, "-m", "gansweep.cli", "report", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "report" / "metric_vs_mode.png").is_file()
    assert (out / "report" / "samples.png").is_file() and (out / "report" / "val_curves.png").is_file()
    assert "runColorGroup=regex:" in result.stdout  # the TensorBoard address that colours runs by mode


def test_the_best_trial_is_one_trial_with_one_value_on_the_console_in_trials_json_optuna_and_the_report(grid_sweep):
    _, out, result = grid_sweep
    if not (out / "report" / "summary.md").is_file():
        subprocess.run([sys.executable, "-m", "gansweep.cli", "report", str(out)], check=True, timeout=120)
    (best,), value = layout.best_point(layout.read_trials(out), "min")
    assert value == best["metrics"]["fid"] and best["status"] == "finished"  # its last val fid, not a best-so-far
    console = next(line for line in result.stdout.splitlines() if line.startswith("[gansweep] best trial "))
    assert console.startswith(f"[gansweep] best trial {best['name']}: val fid {value:.4g} at step 40")
    study = _study(out)
    assert (study.best_trial.number, study.best_trial.value) == (best["number"], pytest.approx(value))
    assert study.metric_names == ["fid"]  # the dashboard's name for the value, not "Objective 0"
    for trial in study.trials:  # one intermediate value per cheap evaluation, at its training step
        if trial.state.name == "COMPLETE":
            assert sorted(trial.intermediate_values) == [20, 40]
            assert trial.intermediate_values[40] == pytest.approx(trial.value)
    section = (out / "report" / "summary.md").read_text().split("## Best trial", 1)[1].split("##", 1)[0]
    assert f"**{best['name']}**" in section and f"val fid {value:.4g} at its final step 40" in section


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_optuna_dashboard_serves_the_sweep_s_own_study(grid_sweep, optuna_dashboard):
    """README.md's command on a sweep's SQLite study (a PostgreSQL one: test_postgres.py): the dashboard answers on
    127.0.0.1 with the study and its trials."""
    _, out, _ = grid_sweep
    record = layout.read_sweep_record(out)
    assert record["storage"] == f"sqlite:///{out / layout.OPTUNA_DB}"  # the file README.md's command names
    base, _ = optuna_dashboard(record["storage"])
    (summary,) = [s for s in _get_json(f"{base}/api/studies")["study_summaries"]
                  if s["study_name"] == record["study_name"]]
    assert summary["directions"] == ["minimize"]  # the sweep's metric, fid
    served = _get_json(f"{base}/api/studies/{summary['study_id']}")["trials"]
    finished = {e["number"]: e["params"] for e in layout.read_trials(out) if e["status"] == "finished"}
    complete = {t["number"]: {p["name"]: p["param_external_value"] for p in t["params"]}
                for t in served if t["state"] == "Complete"}
    assert complete.keys() == finished.keys() and len(served) == 3
    for number, params in finished.items():
        assert float(complete[number]["train.lr_d"]) == params["train.lr_d"]
    with urllib.request.urlopen(f"{base}/dashboard", timeout=30) as page:  # the page a browser opens
        assert page.status == 200


def test_a_finished_sweep_is_not_overwritten(grid_sweep):
    # (That --resume reruns no finished trial: test_an_interrupted_sweep_resumes_with_every_trial_finished_once.)
    space, out, _ = grid_sweep
    results = {p: p.stat().st_mtime for p in out.glob("trials/*/result.json")}
    again = _sweep(space, "--output", out, timeout=120)
    assert again.returncode == 2 and "already holds a sweep" in again.stderr
    assert {p: p.stat().st_mtime for p in out.glob("trials/*/result.json")} == results


def test_a_ddp_sweep_trains_on_ray_train_and_its_reports_reach_tune(tmp_path):
    space = _space(tmp_path / "ddp.yaml", num_samples=1, resources={"workers": 2},
                   fixed={**TINY, "eval.n_samples": 0}, space={"measurement.p": {"uniform": [0.3, 0.7]}},
                   scheduler={"name": "fifo"}, search={"algorithm": "random", "seed": 0})
    out = tmp_path / "out"
    result = _sweep(space, "--output", out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (entry,) = _trials(out).values()
    assert entry["status"] == "finished" and entry["metrics"]["step"] == TINY["train.steps"]
    # Tune heard the reports through Ray Train's TuneReportCallback: the metric, the value, a console line per FID.
    assert entry["metrics"]["fid_step"] == 40 and entry["value"] == entry["metrics"]["fid"]
    assert f"[gansweep] {entry['name']} step 20: val fid " in result.stdout
    summary = read_result(out / "trials" / entry["name"])
    assert summary["trains_in"] == "ray train" and summary["resources"]["workers"] == 2
    assert summary["checkpoint"].startswith(str(out / "trials" / entry["name"] / "checkpoints" / "checkpoint_"))


@pytest.mark.parametrize("change, keys", [
    ({"fixed": {**TINY, "train.steps": 60}}, "fixed"),
    ({"metric": "classifier_score", "mode": "max"}, "metric, mode, objectives"),
    ({"scheduler": {"name": "asha"}}, "scheduler"),
    ({"search": {"algorithm": "grid", "seed": 7}}, "seed"),
])
def test_resume_refuses_a_changed_sweep_naming_what_changed(grid_sweep, tmp_path, change, keys):
    space, out, _ = grid_sweep
    record = (out / layout.SWEEP_FILE).read_bytes()
    other = _space(tmp_path / "grid.yaml", **{**yaml.safe_load(space.read_text()), **change})
    result = _sweep(other, "--output", out, "--resume", timeout=120)
    assert result.returncode == 2 and f"changes {keys} from the sweep" in result.stderr, result.stderr[-2000:]
    assert (out / layout.SWEEP_FILE).read_bytes() == record


def test_of_two_sweeps_started_on_one_output_at_once_one_is_refused(tmp_path):
    space = _space(tmp_path / "race.yaml", num_samples=1, fixed={**TINY, "eval.n_samples": 0},
                   space={"measurement.p": {"uniform": [0.3, 0.7]}}, scheduler={"name": "fifo"})
    out = tmp_path / "out"
    sweeps = [subprocess.Popen([sys.executable, "-m", "gansweep.cli", "sweep", str(space), "--output", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
              for _ in range(2)]
    try:
        deadline = time.time() + 300
        while all(sweep.poll() is None for sweep in sweeps) and time.time() < deadline:
            time.sleep(0.2)
        (refused,) = [sweep for sweep in sweeps if sweep.poll() is not None]
        assert refused.returncode == 2 and "already holds a sweep" in refused.stderr.read()
    finally:
        for sweep in sweeps:
            if sweep.poll() is None:
                os.killpg(sweep.pid, signal.SIGKILL)  # the one that claimed the directory: no need to finish
            sweep.wait()
    assert layout.read_sweep_record(out)["name"] == "race"


def _wait_for(condition, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the sweep ended (exit {process.returncode}) before {what}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _checkpoint_steps(trial_dir: str) -> list[int]:
    checkpoints = storage.join(trial_dir, "checkpoints")
    return [json.loads(storage.read_text(storage.join(checkpoints, name, "step.json")))["step"]
            for name in storage.list_names(checkpoints) if name.startswith("checkpoint_")
            and storage.is_file(storage.join(checkpoints, name, "step.json"))]


def _trial_dir(sweep_dir: str, number: int) -> str | None:
    names = [n for n in storage.list_names(storage.join(sweep_dir, "trials")) if n.startswith(f"{number:04d}_")]
    return storage.join(sweep_dir, "trials", names[0]) if names else None


def _reported_step(sweep_dir, number: int) -> int:
    trials = _trials(sweep_dir).values()  # trials.json is replaced whole: never read half written
    return max((e["metrics"].get("step", 0) for e in trials if e["number"] == number), default=0)


def _terminated_in_tune_state(sweep_dir: str) -> int:
    """Trials Tune's newest saved experiment state records as ended: what a resumed sweep will not rerun. Tune saves
    it at most every 10 s ('auto' TUNE_GLOBAL_CHECKPOINT_S), so a sweep killed sooner after a trial's end reruns
    that trial (its run resumes at its last step: nothing is trained again)."""
    tune_dir = storage.join(sweep_dir, "tune")
    states = sorted(name for name in storage.list_names(tune_dir) if name.startswith("experiment_state-"))
    if not states:
        return 0
    trials = json.loads(storage.read_text(storage.join(tune_dir, states[-1])))["trial_data"]
    return sum(json.loads(trial)["status"] == "TERMINATED" for trial, _ in trials)


def _trial_actor_pids() -> list[int]:
    """The processes of Tune's trial actors, where one-worker trials train."""
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if "ray::ImplicitFunc" in line]


@pytest.fixture(scope="module")
def interrupted_sweep(tmp_path_factory, s3_endpoint):
    """A sweep on object storage (a real S3 server on 127.0.0.1): two trials one after the other. The process
    training the first (its Tune trial actor: a one-worker trial trains there) is killed after its first
    checkpoint; once Tune has recorded that trial's end and the second has a checkpoint, the whole sweep (driver
    and its local Ray) is killed, then resumed with --resume as from another machine (nothing local kept: the
    study's local copy is removed first)."""
    root = tmp_path_factory.mktemp("interrupted")
    space = _space(
        root / "interrupted.yaml",
        num_samples=2,
        max_concurrent_trials=1,
        fixed={**TINY, "train.steps": 60, "eval.n_samples": 0},
        space={"measurement.p": {"uniform": [0.3, 0.7]}},
        scheduler={"name": "fifo"},
        search={"algorithm": "random", "seed": 1},
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        out = new_bucket(s3_endpoint, monkeypatch) + "/sweeps/interrupted"
        log = (root / "first.log").open("w")
        # Tune saves its state every second, not every 10 s: trial 0's end is recorded before trial 1 is far along.
        sweep = subprocess.Popen([sys.executable, "-m", "gansweep.cli", "sweep", str(space), "--output", out],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"})
        observed = {}
        try:
            # Reported to Tune: the checkpoint of that report is written (it is written before the report).
            _wait_for(lambda: _reported_step(out, 0) >= 20, 300, "trial 0's first checkpoint", sweep)
            pids = _trial_actor_pids()
            assert len(pids) == 1, pids
            os.kill(pids[0], signal.SIGKILL)
            _wait_for(lambda: _terminated_in_tune_state(out) >= 1, 300, "Tune's saved state to record trial 0's end",
                      sweep)
            _wait_for(lambda: _reported_step(out, 1) >= 20, 300, "trial 1's first checkpoint", sweep)
            observed["first_result"] = storage.read_bytes(storage.join(_trial_dir(out, 0), "result.json"))
            # The newest checkpoint already reported (registered): one written but not yet registered when the
            # kill lands is not what the resume may start from.
            reported = _reported_step(out, 1)
            observed["second_steps_at_kill"] = max(step for step in _checkpoint_steps(_trial_dir(out, 1))
                                                   if step <= reported)
        finally:
            os.killpg(sweep.pid, signal.SIGKILL)  # a crash: the driver and the Ray it started
            sweep.wait()
            log.close()
        shutil.rmtree(storage.staging_dir(out))  # another machine: only the bucket holds the sweep
        resumed = _sweep(space, "--output", out, "--resume")
        report = subprocess.run([sys.executable, "-m", "gansweep.cli", "report", out], capture_output=True, text=True,
                                timeout=300)
        yield out, observed, resumed, report


@pytest.fixture(scope="module")
def killed_at_a_trial_s_end(tmp_path_factory):
    """A sweep of two trials under ASHA, one at a time, killed (driver and its Ray) the moment its first trial ended
    as trials.json tells it: inside Tune's save window (TUNE_GLOBAL_CHECKPOINT_S: Tune saved last as the sweep began),
    with the second trial's Optuna trial perhaps asked for already; then resumed."""
    root = tmp_path_factory.mktemp("window")
    space = _space(root / "window.yaml", num_samples=2, max_concurrent_trials=1, fixed={**TINY, "eval.n_samples": 0},
                   space={"measurement.p": {"uniform": [0.3, 0.7]}}, scheduler={"name": "asha", "grace_period": 20},
                   search={"algorithm": "random", "seed": 2})
    out = root / "out"
    with (root / "first.log").open("w") as log:
        sweep = subprocess.Popen([sys.executable, "-m", "gansweep.cli", "sweep", str(space), "--output", str(out)],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "100000"})
        try:
            _wait_for(lambda: any(e["status"] != "running" for e in _trials(out).values()), 300,
                      "the first trial's end", sweep)
        finally:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
    assert _terminated_in_tune_state(str(out)) == 0  # killed inside the window: Tune's state has no trial's end
    ended = {name: (entry, (out / "trials" / name / "result.json").read_bytes()
                    if (out / "trials" / name / "result.json").is_file() else None)
             for name, entry in _trials(out).items() if entry["status"] != "running"}
    return out, ended, _sweep(space, "--output", out, "--resume")


def test_a_sweep_killed_at_a_trial_s_end_resumes_with_optuna_s_record_true_to_each_trial(killed_at_a_trial_s_end):
    out, ended, resumed = killed_at_a_trial_s_end
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    trials = _trials(out)
    for name, (entry, result) in ended.items():  # what ended before the kill stands, nothing trained again
        assert trials[name]["status"] == entry["status"]
        if result is not None:
            assert (out / "trials" / name / "result.json").read_bytes() == result
    study = {t.number: t for t in _study(out).trials}
    assert not [t for t in study.values() if t.state.name == "RUNNING"]
    for entry in trials.values():
        ot_trial = study[entry["number"]]
        expected = {"finished": "COMPLETE", "stopped": "PRUNED"}[entry["status"]]
        assert ot_trial.state.name == expected, (entry["name"], ot_trial.state.name)
        if expected == "COMPLETE":  # the last reported value, as for a trial no kill interrupted
            assert ot_trial.value == pytest.approx(entry["metrics"]["fid"])
    # An Optuna trial no Tune trial came back to (asked for after Tune's last save) is FAIL, not RUNNING forever.
    assert {t.state.name for n, t in study.items() if n not in {e["number"] for e in trials.values()}} <= {"FAIL"}


def test_a_killed_trial_process_resumes_its_trial_from_the_last_checkpoint(interrupted_sweep):
    out = interrupted_sweep[0]
    first = read_result(_trial_dir(out, 0))
    assert first["step"] == 60
    assert first["metrics"]["resumed_from_step"] >= 20  # restarted from a checkpoint, not from step 0


def test_an_interrupted_sweep_resumes_from_the_bucket_with_every_trial_finished_once(interrupted_sweep, tmp_path):
    out, observed, resumed, _ = interrupted_sweep
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    trials = _trials(out)
    assert [e["status"] for e in trials.values()] == ["finished", "finished"], trials
    # The finished trial was not rerun; the unfinished one went on from its checkpoint.
    assert storage.read_bytes(storage.join(_trial_dir(out, 0), "result.json")) == observed["first_result"]
    second = read_result(_trial_dir(out, 1))
    assert second["step"] == 60 and second["metrics"]["resumed_from_step"] >= observed["second_steps_at_kill"]
    # The study as the bucket holds it (what a report or another resume reads): each trial told once.
    record = layout.read_sweep_record(out)
    study = optuna.load_study(study_name=record["study_name"],
                              storage=layout.study_copy(out, record["storage"], tmp_path))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert not Path("s3:").exists()


def test_the_report_and_tensorboard_read_a_sweep_in_the_bucket(interrupted_sweep):
    out, _, _, report = interrupted_sweep
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Source: the Optuna study" in report.stdout and f"wrote {out}/report/" in report.stdout
    assert {"summary.md", "trials.csv", "metric_vs_measurement.p.png"} <= set(storage.list_names(out + "/report"))
    for number in (0, 1):
        name = storage.name_of(_trial_dir(out, number))
        events = EventAccumulator(storage.join(out, "tensorboard", name), size_guidance={"scalars": 0})
        events.Reload()  # through boto3, as `tensorboard --logdir s3://...` reads it
        assert [e.step for e in events.Scalars("val/fid")] == [20, 40, 60]


@pytest.mark.parametrize("error, written", [
    (ValueError("a bad value"), "ValueError: a bad value"),
    # What a trial stopped by ASHA meets: Tune stops it and Ray Train's controller dies under it.
    (__import__("ray").exceptions.ActorDiedError(), None),
])
def test_a_trial_s_error_txt_holds_its_failures_but_not_a_scheduler_s_stop(tmp_path, monkeypatch, error, written):
    from gansweep.run import run_dir, trainer
    from gansweep.sweep import runner
    from gansweep.sweep.space_file import load_space
    from ray import tune

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(trainer, "run_training", fails)
    monkeypatch.setattr(tune, "get_context", lambda: type("Context", (), {"get_trial_name": lambda self: "t0"})())
    space = load_space(_space(tmp_path / "space.yaml", num_samples=1, fixed=TINY,
                              space={"train.lr_d": {"choice": [2e-4]}}))
    with pytest.raises(type(error)):
        runner.run_trial({"train.lr_d": 2e-4}, space, str(tmp_path / "sweep"), None, 1.0, [{"CPU": 2}], None)
    assert run_dir.read_error(layout.trial_dir(str(tmp_path / "sweep"), "t0")) == written


def test_a_trial_that_finishes_after_a_failed_attempt_has_no_error_txt(tmp_path, monkeypatch):
    """Tune restarts a one-worker trial that failed (a lost node, a flaky read): once it finishes, the first attempt's
    error is not the trial's, and trials.json and the report must not show it."""
    from gansweep.run import run_dir, trainer
    from gansweep.sweep import runner
    from gansweep.sweep.space_file import load_space
    from ray import tune

    attempts = []

    def fails_once(*args, **kwargs):
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("the node was lost")

    monkeypatch.setattr(trainer, "run_training", fails_once)
    monkeypatch.setattr(tune, "get_context", lambda: type("Context", (), {"get_trial_name": lambda self: "t0"})())
    space = load_space(_space(tmp_path / "space.yaml", num_samples=1, fixed=TINY,
                              space={"train.lr_d": {"choice": [2e-4]}}))
    sweep = str(tmp_path / "sweep")
    with pytest.raises(OSError):
        runner.run_trial({"train.lr_d": 2e-4}, space, sweep, None, 1.0, [{"CPU": 2}], None)
    assert run_dir.read_error(layout.trial_dir(sweep, "t0")) == "OSError: the node was lost"
    runner.run_trial({"train.lr_d": 2e-4}, space, sweep, None, 1.0, [{"CPU": 2}], None)
    assert run_dir.read_error(layout.trial_dir(sweep, "t0")) is None


def test_a_trial_s_error_no_retry_can_help_ends_each_later_attempt_at_once(tmp_path, monkeypatch):
    """A one-worker trial's Tune restarts (faults.FINAL_ERRORS: a bad checkpoint here) do not train again: each fails
    at once, and error.txt keeps the first attempt's error."""
    from gansweep.run import faults, run_dir, trainer
    from gansweep.sweep import runner
    from gansweep.sweep.space_file import load_space
    from ray import tune

    attempts = []

    def unreadable(*args, **kwargs):
        attempts.append(1)
        raise run_dir.CheckpointError("no checkpoint of t0 can be read (t0/checkpoints/checkpoint_1/state.pt)")

    monkeypatch.setattr(trainer, "run_training", unreadable)
    monkeypatch.setattr(tune, "get_context", lambda: type("Context", (), {"get_trial_name": lambda self: "t0"})())
    space = load_space(_space(tmp_path / "space.yaml", num_samples=1, fixed=TINY,
                              space={"train.lr_d": {"choice": [2e-4]}}))
    sweep = str(tmp_path / "sweep")
    first = "CheckpointError: no checkpoint of t0 can be read (t0/checkpoints/checkpoint_1/state.pt)"
    with pytest.raises(run_dir.CheckpointError):
        runner.run_trial({"train.lr_d": 2e-4}, space, sweep, None, 1.0, [{"CPU": 2}], None)
    for _ in range(2):
        with pytest.raises(faults.RetryCannotHelp) as error:
            runner.run_trial({"train.lr_d": 2e-4}, space, sweep, None, 1.0, [{"CPU": 2}], None)
        assert str(error.value) == first
    assert len(attempts) == 1 and run_dir.read_error(layout.trial_dir(sweep, "t0")) == first


def test_a_stopped_trial_s_hparams_session_says_where_it_stopped(tmp_path):
    from gansweep.sweep.runner import TrialsRecord
    from gansweep.sweep.space import Param

    entry = layout.new_trial_entry("0003_mode=ignore", 3, {"mode": "ignore"})
    entry.update(status=layout.STOPPED, metrics={"step": 100, "fid": 90.0})
    record = TrialsRecord(str(tmp_path), "fid", "min", params=(Param("mode", "choice", choices=["ambient", "ignore"]),))
    record._hparams(entry)
    hparams = _hparams(tmp_path / "tensorboard" / entry["name"])
    session = hparams["_hparams_/session_start_info"].session_start_info
    assert session.hparams["status"].string_value == "stopped at step 100"
    assert session.hparams["mode"].string_value == "ignore"
