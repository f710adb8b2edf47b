"""Shared test helpers: the Debian Fashion-MNIST that many tests read, a small random generator, a run directory
written as the trainer leaves it, the CLI run in a subprocess, a real S3 server (moto's), a real PostgreSQL server
and optuna-dashboard on 127.0.0.1."""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gansweep import storage
from gansweep.config.loading import load_config
from gansweep.gan.build import build_gan
from gansweep.nets.models import Generator, random_generator
from gansweep.run.run_dir import (
    CHECKPOINTS_DIR,
    STATE_FILE,
    RunRecord,
    save_checkpoint,
    write_run_record,
)
from pg_server import (
    PostgresServer,
    PostgresUnavailable,
    start_pg_server,
    stop_pg_server,
)
from s3_server import S3_ENV, Relay, start_s3_server, stop_server
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not FASHION.is_dir(), reason=f"{FASHION} absent: needs apt-get install -y dataset-fashion-mnist"
)

Z_DIM = 64
NO_EVAL = ("eval.every=0", "eval.n_samples=0")
# A sweep's tiny trial: a cheap FID at steps 20 and 40, checkpoints at the same steps, a full evaluation of 200.
TINY_SWEEP = {
    "data.limit": 512,
    "model.g_width": 16,
    "model.d_width": 16,
    "train.steps": 40,
    "train.batch_size": 32,
    "train.log_every": 10,
    "train.checkpoint_every": 20,
    "train.image_every": 20,
    "eval.every": 20,
    "eval.cheap_samples": 100,
    "eval.n_samples": 200,
    "measurement.name": "block_pixel",
}


def _generator(seed: int = 0, width: int = 16) -> Generator:
    return random_generator(seed, width, Z_DIM)


def _save_run(gan, cfg, run_dir: Path, step: int, clean_shape=(1, 28, 28)) -> Path:
    """GAN saved as the trainer leaves a run directory: run.json and one checkpoint; returns the checkpoint."""
    checkpoint = run_dir / CHECKPOINTS_DIR / "checkpoint_000"
    checkpoint.mkdir(parents=True)
    save_checkpoint(gan, step, [gan.rng_state()], checkpoint)
    write_run_record(run_dir, RunRecord(cfg, clean_shape))
    return checkpoint


def _save_checkpoints(gan, run_dir: Path, steps: tuple[int, ...]) -> list[Path]:
    """Complete checkpoints of GAN at STEPS in RUN_DIR's checkpoints folder, named as Ray Train names its own."""
    folders = []
    for step in steps:
        folder = run_dir / CHECKPOINTS_DIR / f"checkpoint_2026-01-01_00-00-{step:02d}"
        folder.mkdir(parents=True)
        save_checkpoint(gan, step, [gan.rng_state()], folder)
        folders.append(folder)
    return folders


def _cut_short(checkpoint: Path) -> Path:
    """CHECKPOINT's state file cut to half its size (as a copy killed mid-way leaves it); returns the file."""
    state = checkpoint / STATE_FILE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    return state


def _fake_run(run_dir, step: int):
    """A small untrained run directory."""
    cfg = load_config(None, ["data.limit=500", "model.g_width=8", "model.d_width=8"])
    gan = build_gan(cfg, (1, 28, 28))
    _save_run(gan, cfg, run_dir, step)
    return gan


def _train(output: Path, *overrides: str, cache: Path, evaluate: bool = False) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", str(output)]
    for item in (() if evaluate else NO_EVAL) + overrides:
        args += ["--set", item]
    env = {**os.environ, "GANSWEEP_CACHE": str(cache)}
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _events(run: Path | str) -> EventAccumulator:
    """The run's TensorBoard events, read as TensorBoard reads them (a URI through boto3)."""
    accumulator = EventAccumulator(storage.join(run, "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "gansweep.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def _run_of(generator, run_dir, step: int = 7, overrides: tuple[str, ...] = ()):
    """A run directory holding GENERATOR's weights, as load_sampler reads it (config OVERRIDES: KEY=VALUE)."""
    cfg = load_config(None, [f"model.z_dim={Z_DIM}", "model.g_width=16", *overrides])
    gan = build_gan(cfg, (1, 28, 28))
    gan.players.G.load_state_dict(generator.state_dict())
    _save_run(gan, cfg, run_dir, step)


_buckets = itertools.count()


@pytest.fixture(scope="session")
def s3_endpoint():
    server, endpoint = start_s3_server()
    yield endpoint
    stop_server(server)


def new_bucket(endpoint: str, monkeypatch) -> str:
    """A new empty bucket on ENDPOINT's S3 server, as s3://NAME, with the standard AWS environment pointing at the
    server (set through MONKEYPATCH: a subprocess or a Ray started afterwards inherits it)."""
    import boto3

    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    name = f"gansweep-test-{os.getpid()}-{next(_buckets)}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> str:
    return new_bucket(s3_endpoint, monkeypatch)


@pytest.fixture
def s3_relay(s3_endpoint) -> Relay:
    """A relay in front of the session's S3 server (s3_server.Relay) that the test can take down and bring back."""
    relay = Relay(s3_endpoint)
    yield relay
    relay.down()


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """A PostgreSQL server on 127.0.0.1 for the session (pg_server.py): skipped where PostgreSQL is not installed,
    except on CI, whose set-up installs it."""
    try:
        server = start_pg_server()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed on CI: {exc}")
        pytest.skip(str(exc))
    yield server
    stop_pg_server(server)


@pytest.fixture
def optuna_dashboard(tmp_path):
    """start(STORAGE_URL) runs `optuna-dashboard STORAGE_URL --host 127.0.0.1 --port FREE` (as README.md says), waits
    until its API answers, and returns (its base URL, its console log file); every server started is stopped, by its
    process group, at the end of the test."""
    servers = []

    def start(storage_url: str) -> tuple[str, Path]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = tmp_path / f"optuna-dashboard-{port}.log"
        with log.open("w") as stream:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "optuna-dashboard"), storage_url, "--host", "127.0.0.1",
                 "--port", str(port)], stdout=stream, stderr=subprocess.STDOUT, start_new_session=True)
        servers.append(server)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # ready once its API answers, however loaded the machine is
            try:
                with urllib.request.urlopen(base + "/api/studies", timeout=5) as response:
                    json.load(response)
                return base, log
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"optuna-dashboard did not answer on {base}:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)

    yield start
    for server in servers:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
