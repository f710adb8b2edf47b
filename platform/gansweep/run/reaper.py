"""A local Ray session ends with the driver that started it, however the driver ends (a SIGKILL too).

Ray ties the processes it starts itself (GCS, raylet, dashboard) to the driver: the kernel kills them when it dies.
Not the raylet's agents (DashboardAgent, RuntimeEnvAgent): a raylet killed under them is an unexpected end, which
they report to the GCS, gone too, and wait a minute for it. trainer.init_ray starts this reaper beside a local Ray,
holding the one end of a pipe to it: when the driver's process ends, the pipe closes, and the reaper kills every
process still holding a file of the session open (its logs: every process of the session holds some)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

_started: list[subprocess.Popen] = []  # the pipe's driver end stays open as long as this process lives


def start(session_dir: str) -> None:
    """A reaper for the Ray session in SESSION_DIR, which this process started. In a session of its own, so that
    what stops the driver's process group (Ctrl-C) leaves it to clean up, and holding none of the driver's output
    (a caller reading it to its end would wait for the reaper too)."""
    _started.append(subprocess.Popen([sys.executable, "-m", __name__, session_dir, str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True))


def session_processes(session_dir: str) -> list[int]:
    """The processes (of this user) with a file under SESSION_DIR open."""
    found = []
    for process in Path("/proc").iterdir():
        try:
            if process.name.isdigit() and any(os.readlink(fd).startswith(f"{session_dir}/")
                                              for fd in (process / "fd").iterdir()):
                found.append(int(process.name))
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def main(session_dir: str, driver: int) -> None:
    sys.stdin.buffer.read()  # returns once the driver's end is closed: its process ended
    for pid in session_processes(session_dir):
        if pid != driver:  # ending normally, after ray.shutdown(), it may still hold its own log open
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
