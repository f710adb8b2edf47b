"""moto's S3 server on 127.0.0.1, started and stopped by the tests (conftest.py) and the bucket benchmark."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# The standard AWS environment a client of the server needs (moto accepts any key until told otherwise).
S3_ENV = {"AWS_ACCESS_KEY_ID": "gansweep-test", "AWS_SECRET_ACCESS_KEY": "gansweep-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


def start_s3_server(*, deny_all: bool = False) -> tuple[subprocess.Popen, str]:
    """moto's S3 server on a free port of 127.0.0.1, once it answers HTTP; returns (process, endpoint URL).
    DENY_ALL: it enforces authentication from the first request (no key is known to it, so every one is denied)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if deny_all else {})}
    server = subprocess.Popen([shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server",
                               "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:  # ready once it answers, however loaded the machine is
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=5).close()
            return server, endpoint
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"moto_server did not start on {endpoint}") from None
            time.sleep(0.1)


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
