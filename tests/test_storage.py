"""Locations (gansweep.storage) on a local disk and on a real S3 server (moto's, on 127.0.0.1), and the clear errors a
bad URI gets from the CLI before any training: an unreachable endpoint, a missing bucket, denied credentials, a
scheme no filesystem serves."""

from pathlib import Path

import pytest
from conftest import S3_ENV, needs_fashion
from gansweep import cli, storage
from s3_server import start_s3_server, stop_server


@pytest.fixture(params=["local", "s3"])
def location(request, tmp_path):
    """An empty folder: a local one, or a prefix of a new bucket."""
    if request.param == "local":
        return str(tmp_path / "place")
    return request.getfixturevalue("s3_bucket") + "/place"


def test_files_are_written_read_listed_and_deleted(location):
    assert not storage.exists(location) and storage.list_names(location) == []
    storage.write_text(storage.join(location, "a.json"), '{"x": 1}')
    storage.write_bytes(storage.join(location, "sub", "b.bin"), b"\x00\x01")
    assert storage.read_text(storage.join(location, "a.json")) == '{"x": 1}'
    assert storage.read_bytes(storage.join(location, "sub", "b.bin")) == b"\x00\x01"
    assert storage.list_names(location) == ["a.json", "sub"]
    assert storage.is_dir(location) and storage.is_dir(storage.join(location, "sub"))
    assert storage.is_file(storage.join(location, "a.json")) and not storage.is_file(location)
    storage.write_text(storage.join(location, "a.json"), "replaced")  # replaced whole
    assert storage.read_text(storage.join(location, "a.json")) == "replaced"
    storage.delete(storage.join(location, "a.json"))
    storage.delete(storage.join(location, "a.json"))  # a second time: nothing to do
    assert storage.list_names(location) == ["sub"]
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(storage.join(location, "a.json"))


def test_a_lost_endpoint_is_retried_for_the_bound_then_named_and_a_probe_is_not(s3_bucket, s3_relay, monkeypatch):
    """Every request retries with the AWS SDK's backoff for $GANSWEEP_STORAGE_RETRY_S (10 s here: 8 attempts, 6.35 s
    of waits): an outage shorter than that loses nothing; a longer one fails naming the location. A probe before any
    work (check_writable) is refused at once."""
    import threading
    import time

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_relay.url)
    monkeypatch.setenv(storage.RETRY_ENV, "10")
    storage.write_bytes(f"{s3_bucket}/before", b"kept")
    s3_relay.down()
    threading.Timer(1.0, s3_relay.up).start()  # the outage: the endpoint is back a second later
    start = time.monotonic()
    storage.write_bytes(f"{s3_bucket}/during", b"written")
    assert time.monotonic() - start > 1 and storage.read_bytes(f"{s3_bucket}/during") == b"written"

    s3_relay.down()
    start = time.monotonic()
    with pytest.raises(storage.StorageError, match=f"^{s3_bucket}/after: cannot write it .*NETWORK_CONNECTION"):
        storage.write_bytes(f"{s3_bucket}/after", b"lost")
    assert 6 < time.monotonic() - start < 10
    start = time.monotonic()
    with pytest.raises(storage.StorageError, match="cannot reach it"):
        storage.check_writable(f"{s3_bucket}/run", "--output")
    assert time.monotonic() - start < 2
    s3_relay.up()
    assert storage.read_bytes(f"{s3_bucket}/before") == b"kept"


@needs_fashion
def test_a_run_survives_an_endpoint_lost_for_a_while_and_fails_naming_it_when_lost_for_good(s3_bucket, s3_relay,
                                                                                           tmp_path):
    """`gansweep train` into the bucket through the relay, each request retried for 10 s (6.35 s of waits): a 2 s
    outage at a checkpoint is survived; one for good ends the run within the bound, in one message naming the
    location, the checkpoints written before it kept."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from gansweep.data import cache
    from gansweep.run import run_dir

    run = f"{s3_bucket}/run"
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", run]
    for item in ("eval.every=0", "eval.n_samples=0", "data.limit=200", "train.batch_size=16", "train.log_every=10",
                 "train.checkpoint_every=10", "model.g_width=8", "model.d_width=8", "train.steps=100000"):
        args += ["--set", item]
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_relay.url, storage.RETRY_ENV: "10", "GANSWEEP_CACHE": cache.root()}
    log = tmp_path / "train.log"

    def newest() -> int:  # read past the relay, from the server itself
        checkpoints = run_dir.complete_checkpoints(run)
        return run_dir.checkpoint_step(checkpoints[0]) if checkpoints else 0

    def wait_for(condition) -> None:
        deadline = time.monotonic() + 300
        while not condition():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

    with log.open("w") as console:
        process = subprocess.Popen(args, env=env, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: newest() > 0)
        first = newest()
        s3_relay.down()
        threading.Timer(2.0, s3_relay.up).start()
        wait_for(lambda: newest() >= first + 20)  # two checkpoints past the outage

        kept = run_dir.complete_checkpoints(run)  # newest first
        s3_relay.down()
        lost = time.monotonic()
        process.wait(timeout=120)
        seconds = time.monotonic() - lost
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    last = log.read_text().strip().splitlines()[-1]
    # Whichever write met the loss first: a TensorBoard file, a checkpoint, or Ray Train's record of them.
    assert process.returncode == 2 and last.startswith(f"gansweep: error: {run}") and "cannot" in last, last
    assert 6 < seconds < 60
    assert kept[0] in run_dir.complete_checkpoints(run)  # the newest at the loss (Ray Train prunes the oldest itself)


def test_a_new_file_is_created_once_of_two_writers(location):
    target = storage.join(location, "claim.json")
    assert storage.create_new(target, b"first")
    assert not storage.create_new(target, b"second")
    assert storage.read_text(target) == "first"
    assert storage.list_names(location) == ["claim.json"]  # no temporary file left behind


def test_a_local_write_leaves_no_temporary_file(tmp_path):
    storage.write_text(tmp_path / "run.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_mirror_publishes_new_and_changed_files_and_cleans_up(s3_bucket):
    target = s3_bucket + "/logs"
    mirror = storage.Mirror(target)
    (mirror.path / "events.1").write_bytes(b"first")
    mirror.publish()
    assert storage.read_bytes(target + "/events.1") == b"first"
    storage.delete(target + "/events.1")
    mirror.publish()  # unchanged since the last publish: not uploaded again
    assert not storage.exists(target + "/events.1")
    (mirror.path / "events.1").write_bytes(b"first, then more")
    (mirror.path / "nested").mkdir()
    (mirror.path / "nested" / "events.2").write_bytes(b"second")
    mirror.close()
    assert storage.read_bytes(target + "/events.1") == b"first, then more"
    assert storage.read_bytes(target + "/nested/events.2") == b"second"
    assert not mirror.path.exists()


def test_a_local_mirror_is_the_folder_itself(tmp_path):
    with storage.Mirror(tmp_path / "out") as folder:
        assert folder == tmp_path / "out" and folder.is_dir()


def test_folders_are_uploaded_and_downloaded(s3_bucket, tmp_path):
    (tmp_path / "up" / "deep").mkdir(parents=True)
    (tmp_path / "up" / "deep" / "x.txt").write_text("x")
    storage.upload_folder(tmp_path / "up", s3_bucket + "/copy")
    storage.download_folder(s3_bucket + "/copy", tmp_path / "down")
    assert (tmp_path / "down" / "deep" / "x.txt").read_text() == "x"


def test_locations_are_normalised_joined_and_shown_without_credentials(tmp_path, monkeypatch, s3_bucket):
    monkeypatch.chdir(tmp_path)
    assert storage.normalize("runs/a") == str(tmp_path / "runs" / "a")
    assert storage.normalize("file://" + str(tmp_path)) == str(tmp_path)
    assert storage.normalize("s3://bucket/sweeps/x/") == "s3://bucket/sweeps/x"
    assert storage.join("s3://bucket/x", "trials", "t1") == "s3://bucket/x/trials/t1"
    assert storage.parent_of("s3://bucket/x/trials") == "s3://bucket/x" and storage.name_of("s3://b/x/t1") == "t1"
    assert storage.display("s3://AKIA:SECRET@bucket/x") == "s3://bucket/x"
    assert storage.staging_dir("s3://bucket/x") == storage.staging_dir("s3://bucket/x/")  # one place per location
    assert storage.ray_storage(s3_bucket + "/x")[0] == s3_bucket.removeprefix("s3://") + "/x"
    assert storage.ray_storage(tmp_path) == (str(tmp_path), None)


def test_check_writable_names_what_is_wrong(s3_bucket, tmp_path, monkeypatch):
    assert storage.check_writable(s3_bucket + "/new/run/", "--output") == s3_bucket + "/new/run"
    assert storage.list_names(s3_bucket + "/new/run") == []  # the probe is removed
    with pytest.raises(storage.StorageError, match="the bucket s3://no-such-bucket does not exist"):
        storage.check_writable("s3://no-such-bucket/run", "--output")
    storage.write_text(s3_bucket + "/taken", "x")
    with pytest.raises(storage.StorageError, match="taken: it is an object, not a folder"):
        storage.check_writable(s3_bucket + "/taken", "--output")
    (tmp_path / "file").write_text("x")
    with pytest.raises(storage.StorageError, match="is a file, not a folder"):
        storage.check_writable(tmp_path / "file", "--output")
    with pytest.raises(storage.StorageError, match="no filesystem serves this URI"):
        storage.check_writable("nosuchscheme://bucket/run", "--output")


@pytest.fixture(scope="module")
def denying_endpoint():
    """A second S3 server that denies every request (no key is known to it)."""
    server, endpoint = start_s3_server(deny_all=True)
    yield endpoint
    stop_server(server)


def _cli(monkeypatch, capsys, args: list[str], **env) -> tuple[int, str]:
    """`gansweep ARGS` in this process, with ENV set; (exit code, stdout and stderr)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_bad_uris_exit_2_before_any_training(s3_bucket, denying_endpoint, tmp_path, monkeypatch, capsys):
    """Each bad URI: exit 2, one message naming it (and never the secret), no Ray started, nothing written
    locally under a folder named after the URI."""
    import ray

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    bucket = s3_bucket.removeprefix("s3://")
    with socket_port() as closed:
        cases = [
            ({}, "s3://no-such-bucket/run", "the bucket s3://no-such-bucket does not exist"),
            ({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}"}, f"s3://{bucket}/run", "cannot reach it"),
            ({"AWS_ENDPOINT_URL": denying_endpoint}, f"s3://{bucket}/run", "ACCESS_DENIED"),
            ({}, f"nosuchscheme://{bucket}/run", "no filesystem serves this URI"),
        ]
        space = str(Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml")
        for extra, uri, message in cases:
            for command in (["train", "--output", uri], ["sweep", space, "--output", uri]):
                with monkeypatch.context() as patch:
                    code, output = _cli(patch, capsys, command, **extra)
                assert code == 2, (command, output)
                assert f"--output {uri}: " in output and message in output, (command, output)
                assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in output
    # A cache in a missing bucket: refused the same way, before the classifier or Ray.
    code, output = _cli(monkeypatch, capsys, ["train", "--output", str(tmp_path / "run")],
                        GANSWEEP_CACHE="s3://no-such-bucket/c")
    assert code == 2 and "the cache (GANSWEEP_CACHE or data.cache_dir) s3://no-such-bucket/c: the bucket " \
        "s3://no-such-bucket does not exist" in output, output
    assert not ray.is_initialized()
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["cache"])  # no folder named s3: or nosuchscheme:


class socket_port:
    """A port on 127.0.0.1 that nothing listens on (bound, not listening, for the test's duration)."""

    def __enter__(self):
        import socket

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        return self.socket.getsockname()[1]

    def __exit__(self, *exc):
        self.socket.close()


def test_a_local_output_that_cannot_take_files_exits_2_naming_it(tmp_path, monkeypatch, capsys):
    """A folder under a file, or where no folder can be made (/proc), is probed like a bucket: exit 2 and one message
    before Ray, for train and sweep; a folder the probe had to make is removed again."""
    import ray

    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    (tmp_path / "afile.txt").write_text("")
    space = str(Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml")
    for output, reason in ((tmp_path / "afile.txt" / "sub", "Not a directory"), (Path("/proc/gansweep-x"), "")):
        for command in (["train", "--output", str(output)], ["sweep", space, "--output", str(output)]):
            code, text = _cli(monkeypatch, capsys, command)
            assert code == 2 and f"--output {output}: cannot write there" in text and reason in text, (command, text)
    assert not ray.is_initialized()
    fresh = tmp_path / "new" / "deeper" / "run"
    assert storage.check_writable(str(fresh), "--output") == str(fresh)
    assert not (tmp_path / "new").exists()  # probed, and left as it was
