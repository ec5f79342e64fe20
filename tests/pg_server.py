"""A throwaway PostgreSQL server on loopback, for the tests that share an Optuna study.

``start_postgres()`` runs ``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` on a free
port, the unix socket in a temporary directory, as user ``nobody`` when the tests run as root
(PostgreSQL refuses root), and yields it; ``new_database()`` returns the SQLAlchemy URL of a new
empty database. It raises ``PostgresUnavailable`` with the reason when the server binaries or the
psycopg2 driver are missing; the ``postgres_url`` fixture in ``conftest.py`` turns that into a
skip. CI needs the Debian package ``postgresql`` (server binaries) and the pip package
``psycopg2-binary``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class PostgresUnavailable(RuntimeError):
    """Why no server could be started (the tests skip with it)."""


def _server_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                   if Path(p).parent.name.isdigit() else 0)
    for d in reversed(found):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A running server; ``new_database()`` gives each test an empty database of its own."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._count = 0

    def new_database(self) -> str:
        import psycopg2

        self._count += 1
        name = f"test{self._count}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"


@contextmanager
def start_postgres() -> Iterator[PostgresServer]:
    """Start a server, yield it; stop it and delete its files on exit."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("the psycopg2 driver is not installed (pip install psycopg2-binary)") from None
    bindir = _server_bin()
    if bindir is None:
        raise PostgresUnavailable("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                                  "(apt-get install postgresql)")
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="dasm-pg-")  # under /tmp: reachable by `nobody` (pytest's tmp_path is not)
    if os.geteuid() == 0:  # postgres refuses to run as root
        runuser = shutil.which("runuser")
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            nobody = None
        if runuser is None or nobody is None:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable("running as root without `runuser` or user `nobody` to start PostgreSQL as")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = [runuser, "-u", "nobody", "--"]
    data, log = os.path.join(root, "data"), os.path.join(root, "server.log")
    port = _free_port()

    def run(*cmd: str) -> None:
        proc = subprocess.run([*as_user, *cmd], cwd=root, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            server_log = Path(log).read_text() if os.path.exists(log) else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}\n{server_log}")

    try:
        run(str(bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-locale", "-E", "UTF8",
            "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60",
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        yield PostgresServer(port)
    finally:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                           cwd=root, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
