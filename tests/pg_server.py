"""A real PostgreSQL server on 127.0.0.1 (Debian's postgresql package), started and stopped by the tests
(conftest.py): a fresh cluster in a temporary folder, one superuser role with a password that TCP connections
must give (scram-sha-256), on a free port. PostgreSQL refuses to run as root: as root, the server runs as Debian's
unprivileged `postgres` user."""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "gansweep"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can run here (not installed, or no unprivileged user to run it as)."""


@dataclass
class PostgresServer:
    process: subprocess.Popen
    folder: Path  # data/, the socket and the log, owned by the server's user
    bin_dir: Path
    user: str | None  # the Unix user the server runs as (None: this process's own)
    port: int
    password: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.is_file() else ""


def _bin_dir() -> Path:
    """Debian's /usr/lib/postgresql/VERSION/bin (the newest), else the folder of an initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb:
        raise PostgresUnavailable("PostgreSQL is not installed (apt-get install -y postgresql; scripts/setup.sh does)")
    return Path(initdb).resolve().parent


def _as_user(user: str | None) -> dict:
    """Popen's arguments that run a command as USER (None: as this process)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def start_pg_server() -> PostgresServer:
    """A new cluster on a free port of 127.0.0.1, once it accepts a password login; raises PostgresUnavailable
    when PostgreSQL cannot run here, RuntimeError (with the server's log) when it does not start."""
    bin_dir = _bin_dir()
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root with no 'postgres' user to run PostgreSQL as") from None
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="gansweep-pg-"))
    password = "pg-" + secrets.token_hex(12)
    (folder / "password").write_text(password + "\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (folder, folder / "password"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    run_as = _as_user(user)
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER, f"--pwfile={folder / 'password'}",
         "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"],
        cwd=folder, check=True, capture_output=True, text=True, timeout=300, **run_as,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (folder / "server.log").open("w")
    if user is not None:
        os.chown(folder / "server.log", pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    process = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(folder / "data"), "-h", "127.0.0.1", "-p", str(port),
         "-k", str(folder), "-c", "fsync=off", "-c", "max_connections=200"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **run_as,
    )
    log.close()
    server = PostgresServer(process, folder, bin_dir, user, port, password)
    _wait_ready(server)
    return server


def _wait_ready(server: PostgresServer, timeout: float = 120) -> None:
    """Until a password login over TCP succeeds, however loaded the machine is."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(server.url(), connect_timeout=5).close()
            return
        except psycopg.OperationalError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                stop_pg_server(server)
                raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{server.port}:\n{server.log()}") from None
            time.sleep(0.1)


def new_database(server: PostgresServer, name: str) -> str:
    """A new empty database NAME on SERVER; returns its URL (with the password)."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as connection:  # CREATE DATABASE: not in a transaction
        connection.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def stop_pg_server(server: PostgresServer) -> None:
    """pg_ctl stop (fast: open connections are closed), its process group killed if it has not stopped; the
    folder removed."""
    if server.process.poll() is None:
        subprocess.run([str(server.bin_dir / "pg_ctl"), "stop", "-D", str(server.folder / "data"), "-m", "fast",
                        "-w", "-t", "60"], cwd=server.folder, capture_output=True, timeout=90,
                       **_as_user(server.user))
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, 9)
            server.process.wait(timeout=30)
    shutil.rmtree(server.folder, ignore_errors=True)
