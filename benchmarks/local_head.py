"""A real local Ray head (`ray start --head`) for the benchmarks and tests that join one as a cluster would."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gansweep.run.trainer import free_port

# Token auth stays on, as on a real cluster: every client of this head (drivers, `ray job`) needs the mode and
# the token. A fresh machine has no ~/.ray/auth_token (and `ray start` refuses to start without one), so the head
# and its clients share one of their own unless the caller's environment names one: nothing written to $HOME.
# This Python's bin first on PATH: a job's `python` and the head's workers are this environment's.
RAY_ENV = {
    "RAY_AUTH_TOKEN": secrets.token_hex(16),
    **os.environ, "RAY_AUTH_MODE": "token",
    "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
}
ADDRESS_FILE = Path("/tmp/ray/ray_current_cluster")  # what `ray start` writes and `ray stop` removes


@dataclass
class Head:
    process: subprocess.Popen
    address: str  # host:port that drivers join with RAY_ADDRESS
    dashboard: str  # http://127.0.0.1:PORT, for `ray job submit --address`


def start_head(cpus: int, log: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Head:
    """A Ray head with `cpus` CPUs, dashboard on 127.0.0.1, in its own process group (stopped with it); ENV: its
    environment (default RAY_ENV), ARGS: more of `ray start`'s options."""
    dashboard_port = free_port()
    process = subprocess.Popen(
        ["ray", "start", "--head", "--block", f"--num-cpus={cpus}", f"--port={free_port()}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", *args],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, env=env or RAY_ENV,
    )
    # The head prints the address workers join with (the node's IP, not 127.0.0.1).
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        found = re.search(r"ray start --address='([^']+)'", log.read_text())
        if found:
            return Head(process, found.group(1), f"http://127.0.0.1:{dashboard_port}")
        time.sleep(1)
    stop_head(Head(process, "", ""))
    raise RuntimeError(f"the Ray head did not start; see {log}")


def stop_head(head: Head) -> None:
    """Stop the head's whole process group; forget its address as `ray stop` would."""
    try:
        os.killpg(head.process.pid, signal.SIGTERM)
        head.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.process.pid, signal.SIGKILL)
        head.process.wait()
    except ProcessLookupError:
        pass
    if head.address and ADDRESS_FILE.is_file() and ADDRESS_FILE.read_text().strip() == head.address:
        ADDRESS_FILE.unlink()
