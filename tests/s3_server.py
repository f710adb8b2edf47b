"""moto's S3 server on 127.0.0.1, started and stopped by the tests (conftest.py) and the bucket benchmark, and a relay
in front of it that a test can take down and bring back."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
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


class Relay:
    """A TCP relay on a free port of 127.0.0.1 in front of ENDPOINT (http://host:port): an S3 endpoint that a test can
    lose (down: connections refused, open ones cut) and bring back on the same port (up), while the server behind it
    keeps its objects (moto's are in memory: a restarted moto would hold none). url is the endpoint to give clients."""

    def __init__(self, endpoint: str):
        host, port = endpoint.removeprefix("http://").rsplit(":", 1)
        self.target = (host, int(port))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.open: set[socket.socket] = set()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """From now on connections are refused, and those open are cut."""
        with self.lock:
            listener, self.listener, sockets, self.open = self.listener, None, self.open, set()
        if listener is not None:  # not down already
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by down()
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:  # went down meanwhile
                    client.close()
                    server.close()
                    return
                self.open |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
