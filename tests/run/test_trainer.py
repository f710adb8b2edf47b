"""End to end through the real CLI: Ray Train DDP workers, Ray Data, TensorBoard, checkpoints, resume."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import NO_EVAL, _cut_short, _events, _save_checkpoints, _train, needs_fashion
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.data import cache
from gansweep.gan.build import build_gan
from gansweep.gan.ema import G_EMA_KEY
from gansweep.gan.players import G_KEY
from gansweep.run.run_dir import (
    CHECKPOINTS_DIR,
    latest_checkpoint,
    load_checkpoint,
    read_evaluation,
    read_result,
)
from gansweep.run.trainer import RAY_ENV_DEFAULTS, _fit, _ray_env_defaults
from gansweep.storage import StorageError

pytestmark = needs_fashion

SCALARS = {"loss/d", "loss/g", "d/real", "d/fake", "perf/images_per_s", "perf/data_wait_frac"}
IMAGES = {"training/measured_real", "training/measured_fake", "training/hidden_measured", "samples/fixed_z"}


def test_ray_starts_with_gansweeps_settings_unless_the_environment_names_its_own(monkeypatch):
    own = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
    monkeypatch.setattr(os, "environ", {own: "1.5", "PATH": "/usr/bin"})
    _ray_env_defaults()
    assert os.environ == {**RAY_ENV_DEFAULTS, own: "1.5", "PATH": "/usr/bin"}


@pytest.mark.parametrize("failure, raised, message", [
    (ConfigError("model.g_width=0 must be positive"), ConfigError, "model.g_width=0 must be positive"),
    (OSError("AWS Error NETWORK_CONNECTION"), StorageError,
     "{output}: Ray Train cannot write its run state there (AWS Error NETWORK_CONNECTION)"),
])
def test_a_ray_train_run_s_final_error_is_raised_as_itself_in_one_line(tmp_path, monkeypatch, failure, raised, message):
    """What Train's controller raises: a worker's final error (faults.stop_on_final_error) as the worker's own, and its
    own storage's failure, which the filesystem has retried for its bound, as a StorageError naming the run."""
    from types import SimpleNamespace

    import ray.train.torch
    from ray.train import ControllerError

    class Trainer:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self):
            raise ControllerError(failure)

    monkeypatch.setattr(ray.train.torch, "TorchTrainer", Trainer)
    train = SimpleNamespace(workers=1, use_gpu=False, gpus_per_worker=0)
    plan = SimpleNamespace(config=SimpleNamespace(train=train), output=str(tmp_path), verbose=False)
    with pytest.raises(raised) as error:
        _fit(plan, 1.0, [])
    assert str(error.value) == message.format(output=tmp_path)


# Runs that test other things skip the evaluation (it needs the domain classifier in their fresh cache).


def test_two_worker_hidden_ambient_run_evaluates_periodically_and_at_the_end(tmp_path):
    """Two DDP workers, a hidden measurement, rank 0 evaluating alone. The classifier comes from the user's cache
    (trained there once, ~90 s, when absent), so this test does not train it again."""
    run = tmp_path / "run"
    process = _train(
        run,
        "data.limit=512",
        "train.workers=2",
        "train.batch_size=32",
        "train.steps=8",
        "train.log_every=2",
        "train.image_every=3",
        "train.checkpoint_every=3",
        "eval.every=3",
        "eval.cheap_samples=64",
        "eval.n_samples=300",
        "measurement.name=block_patch",
        "measurement.patch=10",
        "hidden.inject_at=up1",
        "hidden.measurement.name=block_pixel",
        "hidden.measurement.unit=channel",
        "hidden.measurement.p=0.5",
        cache=cache.root(),
        evaluate=True,
    )
    result = read_result(run)
    assert result["step"] == 8
    assert result["resources"]["workers"] == 2
    # A console to read: gansweep's lines, not Ray Train's repr of every report nor Ray Data's per-dataset lines
    # (--verbose brings them back).
    console = process.stdout + process.stderr
    assert "[gansweep] step 8/8 (100%)" in console
    assert "TrainingReport(" not in console and "Starting execution of Dataset" not in console
    assert result["config"]["hidden"]["inject_at"] == "up1"
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "data_wait_frac"):
        assert key in result["metrics"]
    assert 0 < result["metrics"]["d_real"] < 1 and 0 <= result["metrics"]["data_wait_frac"] < 1
    # Fit's fixed cost in its parts: Train's start to the loop's, then the stream's first batch and the first step.
    assert 0 < result["time_to_loop_start_s"] < result["time_to_first_step_s"] < result["wall_time_s"]
    # The set was streamed, measured in the stream: nothing lossy cached, the pieces listed.
    data = result["data"]
    assert data["n_train"] == result["config"]["data"]["limit"] and data["pieces"] == 1 and data["restored_set"] is None
    assert result["data"]["sample_shape"] == [1, 28, 28]

    # fid leads the reported metrics (the one a sweep optimises); the last cheap evaluation is at the end.
    assert next(iter(result["metrics"])) == "fid"
    assert result["metrics"]["fid_step"] == 8 and result["metrics"]["fid"] > 0
    assert result["metrics"]["eval_s_total"] > 0
    # The cheap FID (what a sweep selects on) against the validation split, the reported one against the test split.
    cheap = result["cheap_evaluation"]
    assert (cheap["n_fake"], cheap["n_real"], cheap["reference_split"]) == (64, 5000, "validation")
    full = result["evaluation"]
    assert full["n_fake"] == 300 and full["n_real"] == 10_000 and full["reference_split"] == "test"
    assert full["step"] == 8
    # Recorded with each figure: where it was computed, in fp32 on either device.
    for figures in (result["cheap_evaluation"], full):
        assert (figures["device"], figures["arithmetic"]) == ("cpu", "fp32")
    assert full["fid"] > 0 and 1 <= full["classifier_score"] <= 10
    assert full["classifier_fingerprint"] == result["cheap_evaluation"]["classifier_fingerprint"]
    assert read_evaluation(run)["fid"] == full["fid"]

    events = _events(run)
    assert SCALARS <= set(events.Tags()["scalars"])
    assert IMAGES <= set(events.Tags()["images"])
    assert [e.step for e in events.Scalars("loss/d")] == [2, 3, 4, 6, 8]  # every log_every, and at checkpoints
    real_grid = events.Images("training/measured_real")[-1]
    assert real_grid.width > 28 and real_grid.height > 28
    assert [e.step for e in events.Scalars("val/fid")] == [3, 6, 8]
    assert [e.step for e in events.Scalars("test/fid")] == [8]
    assert events.Scalars("test/fid")[0].value == pytest.approx(full["fid"], rel=1e-5)

    checkpoints = sorted(p.name for p in (run / CHECKPOINTS_DIR).glob("checkpoint_*") if p.is_dir())
    assert len(checkpoints) == 2  # the newest two of steps 3, 6 and 8


def _black_fraction(events, tag: str) -> float:
    """The share of black pixels in TAG's last image grid (its padding is grey)."""
    import io

    import numpy as np
    from PIL import Image

    grid = np.asarray(Image.open(io.BytesIO(events.Images(tag)[-1].encoded_image_string)).convert("L"))
    return float((grid == 0).mean())


def test_a_hidden_only_run_trains_on_the_lossy_set_and_shows_d_unmeasured_fakes(tmp_path):
    """The hidden-space paper's arm through the CLI (the combined arm's is the two-worker run above): D saw the
    Block-Pixel reals and fakes with no pixel blocked, G1(f_hidden(G2(z)))."""
    run = tmp_path / "run"
    _train(run, *SMALL_RUN, "train.steps=4", "train.image_every=4", "measurement.p=0.8", "hidden.inject_at=up1",
           "hidden.measurement.name=block_pixel", "hidden.measurement.unit=channel",
           "hidden.fake_measurement=hidden_only", cache=cache.root())
    result = read_result(run)
    assert result["step"] == 4 and result["config"]["hidden"]["fake_measurement"] == "hidden_only"
    assert 0 < result["metrics"]["d_real"] < 1 and result["metrics"]["loss_g"] > 0
    events = _events(run)
    assert _black_fraction(events, "training/measured_real") > 0.5  # 80% of each image, less the grey padding
    assert _black_fraction(events, "training/measured_fake") < 0.01
    assert "training/hidden_measured" in events.Tags()["images"]


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, s3_bucket):
    """A run on object storage (a real S3 server on 127.0.0.1), killed mid-way (the whole process group, Ray
    included), continues from its checkpoint in the bucket, and ends as the same run trained on a local disk
    without interruption."""
    import signal
    import time

    run = s3_bucket + "/runs/killed"
    common = ["data.limit=200", "train.batch_size=16", "train.log_every=5", "train.checkpoint_every=25",
              "model.g_width=16", "model.d_width=16"]
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", run]
    for item in [*NO_EVAL, *common, "train.steps=100000"]:
        args += ["--set", item]
    env = {**os.environ, "GANSWEEP_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.time() + 300
        while latest_checkpoint(run) is None and time.time() < deadline:
            assert process.poll() is None, "the run ended before its first checkpoint"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert read_result(run) is None

    resumed = _train(run, *common, "train.steps=50", cache=tmp_path / "cache")
    assert "resuming at step 25/50" in resumed.stdout + resumed.stderr
    result = read_result(run)
    assert result["step"] == 50 and result["metrics"]["resumed_from_step"] == 25
    # One curve, not two: the resumed run continues the step count, the killed run's steps past 25 purged. Read
    # from the bucket as `tensorboard --logdir s3://...` reads it.
    assert [e.step for e in _events(run).Scalars("loss/g")] == list(range(5, 51, 5))
    assert not Path("s3:").exists()  # the URI was never taken for a local folder

    # Rerun as it was: nothing to train; it says where it stands and keeps its result.
    again = _train(run, *common, "train.steps=50", cache=tmp_path / "cache")
    assert "resuming at step 50/50" in again.stdout + again.stderr and read_result(run) == result

    # The same run as one never interrupted: the same batches in the same order (the stream restarts at the row
    # it had reached), the same random streams, so the same generator to the last bit.
    straight = tmp_path / "straight"
    _train(straight, *common, "train.steps=50", cache=tmp_path / "cache")
    resumed_g, straight_g = (load_checkpoint(latest_checkpoint(r))[G_KEY] for r in (run, straight))
    assert all(torch.equal(resumed_g[k], straight_g[k]) for k in straight_g)


SMALL_RUN = ("data.limit=200", "train.batch_size=16", "train.log_every=2", "model.g_width=8", "model.d_width=8")


def test_an_unreadable_newest_checkpoint_is_named_once_and_the_run_resumes_from_the_one_before(tmp_path):
    run = tmp_path / "run"
    gan = build_gan(load_config(None, [*NO_EVAL, *SMALL_RUN]), (1, 28, 28))
    newest = _cut_short(_save_checkpoints(gan, run, (10, 20))[1])
    process = _train(run, *SMALL_RUN, "train.steps=14", cache=cache.root())
    console = process.stdout + process.stderr
    assert console.count("cannot be read") == 1 and f"[gansweep] warning: {newest} cannot be read" in console
    assert "resuming at step 10/14" in console and read_result(run)["step"] == 14


def _train_fails(output: Path, *overrides: str) -> tuple[str, str]:
    """`gansweep train` with OVERRIDES (no evaluation) that must exit 2; returns its console and its last line."""
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", str(output)]
    for item in (*NO_EVAL, *overrides):
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "GANSWEEP_CACHE": cache.root()})
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr, result.stderr.strip().splitlines()[-1]


def test_a_run_none_of_whose_checkpoints_can_be_read_fails_at_once_naming_them(tmp_path):
    """Not after Ray Train's retries: the same file fails alike on every try (run.faults)."""
    run = tmp_path / "run"
    gan = build_gan(load_config(None, [*NO_EVAL, *SMALL_RUN]), (1, 28, 28))
    state = _cut_short(_save_checkpoints(gan, run, (10,))[0])
    console, last = _train_fails(run, *SMALL_RUN, "train.steps=14")
    assert last == (f"gansweep: error: no checkpoint of {run} can be read ({state}): remove them to train from the "
                    "start, or restore the run directory from a copy")
    assert console.count(f"[gansweep] warning: {state} cannot be read") == 1  # one attempt


def test_an_image_the_stream_cannot_decode_fails_the_run_at_once_naming_it(tmp_path):
    """With evaluation off, the stream is the first to read the image: it fails in one line, not after Ray Train's
    retries."""
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rows = []
    for pixels in np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8):
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        rows.append(png.getvalue())
    rows[40] = b"not an image"
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"image": pa.array(rows, pa.binary())}), tmp_path / "data" / "part-0.parquet",
                   row_group_size=32)
    console, last = _train_fails(tmp_path / "run", "mode=clean", "data.name=parquet", f"data.root={tmp_path / 'data'}",
                                 *SMALL_RUN[1:], "train.steps=20", "data.validation_size=0")
    assert last.startswith(f"gansweep: error: parquet: {tmp_path / 'data' / 'part-0.parquet'} row ")
    assert "cannot decode the image" in last and console.count("[gansweep] starting step 0/20") == 1


def _descendants(pid: int) -> set[tuple[int, str]]:
    """PID's descendants, each as (pid, its start time in /proc/PID/stat: a pid reused later is not the same)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():  # not a process
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def _running(process: tuple[int, str]) -> bool:
    try:
        fields = Path(f"/proc/{process[0]}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == process[1] and fields[0] != "Z"


def test_no_ray_process_outlives_a_killed_driver(tmp_path):
    """`gansweep train` started its own Ray; the driver alone SIGKILLed, every process of its Ray session ends within
    seconds (Ray's DashboardAgent and RuntimeEnvAgent stayed a minute: run/reaper.py)."""
    import contextlib
    import signal
    import time

    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", str(tmp_path / "run")]
    for item in (*NO_EVAL, *SMALL_RUN, "train.steps=100000"):
        args += ["--set", item]
    log = tmp_path / "train.log"
    with log.open("w") as console:
        process = subprocess.Popen(args, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "GANSWEEP_CACHE": cache.root()})
    try:
        deadline = time.monotonic() + 300
        while "[gansweep] starting step 0/" not in log.read_text():  # Ray up, its Train worker training
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        session = _descendants(process.pid)
        assert len(session) > 5  # GCS, raylet, dashboard, the agents, Train's controller and worker, ...
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 20
        while any(_running(child) for child in session):
            assert time.monotonic() < deadline, [child for child in session if _running(child)]
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever was left of its process group
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.slow  # 1 to 4 min on 2 cores; tests/data/test_stream.py streams the same through the store in seconds
def test_a_training_run_on_a_set_larger_than_the_object_store_completes(tmp_path):
    """6,400 RGB 64x64 images (79 MB of pixels) through a 75 MB object store, more than one epoch."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    from gansweep.config.loading import load_config
    from gansweep.run.trainer import run_training

    n, pixels = 6400, 3 * 64 * 64
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for part in range(4):  # noise: the Parquet files are as large as the pixels
        values = rng.integers(0, 256, n // 4 * pixels, dtype=np.uint8)
        pq.write_table(pa.table({"image": pa.FixedSizeListArray.from_arrays(pa.array(values), pixels)}),
                       data / f"part-{part}.parquet", row_group_size=800)
    store = 75 * 2**20
    assert sum(f.stat().st_size for f in data.iterdir()) > store
    cfg = load_config(None, ["mode=clean", "data.name=parquet", f"data.root={data}", "model.g_width=8",
                             "model.d_width=8", "train.batch_size=64", "train.steps=110", "train.log_every=55",
                             "train.checkpoint_every=110", *NO_EVAL])
    ray.init(address="local", num_cpus=2, object_store_memory=store, include_dashboard=False)
    try:
        assert ray.cluster_resources()["object_store_memory"] <= store
        result = run_training(cfg, tmp_path / "run")
    finally:
        ray.shutdown()
    assert result["step"] == 110 and result["data"]["n_train"] == n  # 7,040 images: past the end of the set
    assert result["data"]["clean_shape"] == [3, 64, 64]


# 2.6 min, the default suite's longest: slow. tests/gan/test_ema.py checks the average, its checkpoint round trip
# and resume equality in the default run; this one checks them end to end through Ray Train.
@pytest.mark.slow
def test_an_ema_run_reports_the_average_with_g_beside_it_and_resumes_the_same_average(tmp_path):
    """train.ema: the cheap and the full evaluation score G's moving average, fid (the sweep's metric) first, with G's
    own figures beside (FIGURE_raw); a run stopped and resumed ends with the average of one never interrupted."""
    ema_run = (*SMALL_RUN, "train.ema=0.9", "train.checkpoint_every=2", "eval.every=2", "eval.cheap_samples=64",
               "eval.n_samples=100")
    straight, split = tmp_path / "straight", tmp_path / "split"
    _train(straight, *ema_run, "train.steps=6", cache=cache.root(), evaluate=True)
    result = read_result(straight)
    metrics, full = result["metrics"], result["evaluation"]
    assert next(iter(metrics)) == "fid" and metrics["fid_step"] == 6
    assert {"fid_raw", "classifier_score_raw"} <= set(metrics) and metrics["fid"] != metrics["fid_raw"]
    assert full["generator"] == "ema" and full["n_fake"] == 100
    for key in ("fid", "kid", "precision", "classifier_score", "nn_pixel_distance"):
        assert f"{key}_raw" in full and full[f"{key}_raw"] is not None, key
    assert full["fid"] != full["fid_raw"]
    events = _events(straight)
    assert [e.step for e in events.Scalars("val/fid_raw")] == [2, 4, 6]
    assert events.Scalars("test/fid_raw")[0].value == pytest.approx(full["fid_raw"], rel=1e-5)

    _train(split, *ema_run, "train.steps=3", cache=cache.root(), evaluate=True)
    resumed = _train(split, *ema_run, "train.steps=6", cache=cache.root(), evaluate=True)
    assert "resuming at step 3/6" in resumed.stdout + resumed.stderr
    split_state, straight_state = (load_checkpoint(latest_checkpoint(r)) for r in (split, straight))
    for key in (G_KEY, G_EMA_KEY):
        assert all(torch.equal(split_state[key][k], straight_state[key][k]) for k in straight_state[key]), key
