"""End to end through the real CLI: Ray Train DDP workers, Ray Data, TensorBoard, checkpoints, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NO_EVAL, _events, _train, needs_fashion
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = needs_fashion

SCALARS = {"loss/d", "loss/g", "d/real", "d/fake", "perf/images_per_s", "perf/data_wait_frac"}
IMAGES = {"images/measured_real", "images/measured_fake", "images/hidden_measured", "images/samples"}


# Runs that test other things skip the evaluation (it needs the domain classifier in their fresh cache).


def test_two_worker_hidden_ambient_run(tmp_path):
    run = tmp_path / "run"
    _train(
        run,
        "data.limit=256",
        "train.workers=2",
        "train.batch_size=32",
        "train.steps=6",
        "train.log_every=2",
        "train.image_every=3",
        "train.checkpoint_every=3",
        "measurement.name=block_patch",
        "measurement.patch=10",
        "hidden.inject_at=up1",
        "hidden.measurement.name=block_pixel",
        "hidden.measurement.unit=channel",
        "hidden.measurement.p=0.5",
        cache=tmp_path / "cache",
    )
    result = json.loads((run / "result.json").read_text())
    assert result["step"] == 6
    assert result["resources"]["workers"] == 2
    assert result["config"]["hidden"]["inject_at"] == "up1"
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "data_wait_frac"):
        assert key in result["metrics"]
    assert 0 < result["metrics"]["d_real"] < 1 and 0 <= result["metrics"]["data_wait_frac"] < 1
    assert result["time_to_first_step_s"] > 0

    events = _events(run)
    assert SCALARS <= set(events.Tags()["scalars"])
    assert IMAGES <= set(events.Tags()["images"])
    assert [e.step for e in events.Scalars("loss/d")] == [2, 3, 4, 6]  # every log_every, and at checkpoints
    real_grid = events.Images("images/measured_real")[-1]
    assert real_grid.width > 28 and real_grid.height > 28

    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("checkpoint_*") if p.is_dir())
    assert len(checkpoints) == 2  # steps 3 and 6

    # The lossy training set was cached once under its fingerprint, for every later trial to reuse.
    cached = list((tmp_path / "cache" / "lossy").glob("*.npy"))
    assert len(cached) == 1 and result["data"]["lossy_cache"] == str(cached[0])


def test_rerun_resumes_from_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    common = ["data.limit=200", "train.batch_size=16", "train.log_every=2", "train.checkpoint_every=4",
              "measurement.name=block_pixel", "measurement.p=0.8"]
    _train(run, *common, "train.steps=4", cache=tmp_path / "cache")
    first = json.loads((run / "result.json").read_text())
    assert first["step"] == 4 and first["metrics"]["resumed_from_step"] == 0

    second_run = _train(run, *common, "train.steps=8", cache=tmp_path / "cache")
    assert "resuming at step 4/8" in second_run.stdout + second_run.stderr
    second = json.loads((run / "result.json").read_text())
    assert second["step"] == 8 and second["metrics"]["resumed_from_step"] == 4

    # One curve, not two: the resumed run continues the step count without duplicates.
    steps = [e.step for e in _events(run).Scalars("loss/g")]
    assert steps == [2, 4, 6, 8]


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    """A run killed mid-way (the whole process group, Ray included) continues from its checkpoint."""
    import signal
    import time

    run = tmp_path / "run"
    common = ["data.limit=200", "train.batch_size=16", "train.log_every=5", "train.checkpoint_every=25",
              "model.g_width=16", "model.d_width=16"]
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", str(run)]
    for item in [*NO_EVAL, *common, "train.steps=100000"]:
        args += ["--set", item]
    env = {**os.environ, "GANSWEEP_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.time() + 300
        while not list((run / "checkpoints").glob("checkpoint_*/state.pt")) and time.time() < deadline:
            assert process.poll() is None, "the run ended before its first checkpoint"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (run / "result.json").exists()

    resumed = _train(run, *common, "train.steps=50", cache=tmp_path / "cache")
    assert "resuming at step 25/50" in resumed.stdout + resumed.stderr
    result = json.loads((run / "result.json").read_text())
    assert result["step"] == 50 and result["metrics"]["resumed_from_step"] == 25


def test_training_evaluates_periodically_and_at_the_end(tmp_path):
    """Two DDP workers; rank 0 evaluates alone. The classifier comes from the user's cache (trained there
    once, ~90 s, when absent), so this test does not train it again."""
    from gansweep.data.sources import cache_dir

    run = tmp_path / "run"
    _train(
        run,
        "data.limit=512",
        "train.workers=2",
        "train.batch_size=32",
        "train.steps=8",
        "train.log_every=2",
        "eval.every=3",
        "eval.cheap_samples=64",
        "eval.n_samples=300",
        cache=cache_dir(),
        evaluate=True,
    )
    result = json.loads((run / "result.json").read_text())
    # fid leads the reported metrics (the one a sweep optimises); the last cheap evaluation is at the end.
    assert next(iter(result["metrics"])) == "fid"
    assert result["metrics"]["fid_step"] == 8 and result["metrics"]["fid"] > 0
    assert result["metrics"]["eval_s_total"] > 0
    assert result["cheap_evaluation"]["n_fake"] == 64 and result["cheap_evaluation"]["reference_split"] == "test"

    full = result["evaluation"]
    assert full["n_fake"] == 300 and full["n_real"] == 10_000 and full["step"] == 8
    assert full["fid"] > 0 and 1 <= full["classifier_score"] <= 10
    assert full["classifier_fingerprint"] == result["cheap_evaluation"]["classifier_fingerprint"]
    assert json.loads((run / "evaluation.json").read_text())["fid"] == full["fid"]

    events = _events(run)
    assert [e.step for e in events.Scalars("eval/fid")] == [3, 6, 8]
    assert [e.step for e in events.Scalars("eval_full/fid")] == [8]
    assert events.Scalars("eval_full/fid")[0].value == pytest.approx(full["fid"], rel=1e-5)
