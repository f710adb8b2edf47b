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
    """Stop the head and its process group; forget its address as `ray stop` would."""
    stop_nodes([head.process])
    if head.address and ADDRESS_FILE.is_file() and ADDRESS_FILE.read_text().strip() == head.address:
        ADDRESS_FILE.unlink()


def stop_nodes(processes: list[subprocess.Popen]) -> None:
    """Stop `ray start --block` nodes: each one's own process first, all at once, which drains the node through the
    GCS and stops its processes (~3 s; a SIGTERM to the whole group stops the GCS under the drain, which then waits
    out a 30 s timeout), then whatever of their process groups is left: SIGTERM, and SIGKILL for what is still there
    after 5 s."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            until = time.monotonic() + grace
            while group_pids(process.pid) and time.monotonic() < until:
                time.sleep(0.1)
        process.wait()


def group_pids(pgid: int) -> list[int]:
    """The live processes of process group PGID."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except ProcessLookupError:
                pass
    return found


RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command of this environment


def submit_job(dashboard: str, job_id: str, entrypoint: list[str], cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 300) -> None:
    """`ray job submit --no-wait` of ENTRYPOINT with the working tree CWD and jobs/runtime_env.yaml. A head that has
    just started prints its address before its job agent is up: submitted again until the agent takes it."""
    env = env or RAY_ENV
    deadline = time.time() + timeout
    while True:
        submit = subprocess.run(
            [*RAY, "job", "submit", "--address", dashboard, "--submission-id", job_id, "--no-wait",
             "--working-dir", ".", "--runtime-env", "jobs/runtime_env.yaml", "--", *entrypoint],
            cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
        )
        if "No available agent to submit job" not in submit.stderr or time.time() > deadline:
            break
        time.sleep(1)
    if submit.returncode != 0:
        raise RuntimeError(f"ray job submit failed:\n{submit.stdout[-2000:]}{submit.stderr[-2000:]}")


def job_status(dashboard: str, job_id: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([*RAY, "job", "status", "--address", dashboard, job_id],
                            capture_output=True, text=True, env=env or RAY_ENV, timeout=60)
    text = result.stdout + result.stderr
    # Running jobs print "Status for job 'ID': RUNNING"; ended ones "Job 'ID' succeeded" (or failed, stopped).
    found = (re.search(r"Status for job '[^']+': (\w+)", text)
             or re.search(r"Job '[^']+' (succeeded|failed|stopped)", text))
    return found.group(1).upper() if found else "UNKNOWN: " + text[-500:]


def job_logs(dashboard: str, job_id: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run([*RAY, "job", "logs", "--address", dashboard, job_id],
                          capture_output=True, text=True, env=env or RAY_ENV, timeout=60).stdout


def wait_job(dashboard: str, job_id: str, env: dict[str, str] | None = None, timeout: float = 600,
             until=None) -> str:
    """Poll the job until it ends (or UNTIL(logs) is true, checked at each poll when given); returns its status."""
    deadline = time.time() + timeout
    while (status := job_status(dashboard, job_id, env)) in ("RUNNING", "PENDING") and time.time() < deadline:
        if until is not None and until(job_logs(dashboard, job_id, env)):
            return status
        time.sleep(2)
    return status


def stop_job(dashboard: str, job_id: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([*RAY, "job", "stop", "--address", dashboard, job_id], capture_output=True, env=env or RAY_ENV,
                   timeout=60)
