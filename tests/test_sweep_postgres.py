"""Two sweep workers share one Optuna study on a real PostgreSQL server.

The fixture starts a throwaway server on loopback (``initdb`` + ``pg_ctl`` from
``/usr/lib/postgresql/*/bin``, a free port, the unix socket in a temporary directory; as user
``nobody`` when the tests run as root, since PostgreSQL refuses root). Skipped with the reason
when the server binaries or the psycopg2 driver are missing. CI needs the Debian package
``postgresql`` (server binaries) and the pip package ``psycopg2-binary``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

REPO = Path(__file__).resolve().parents[1]
STUDY = "pg-two-workers"
TRIALS_PER_WORKER = 2


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


@pytest.fixture(scope="module")
def postgres_url():
    psycopg2 = pytest.importorskip("psycopg2",
                                   reason="the psycopg2 driver is not installed (pip install psycopg2-binary)")
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
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
            pytest.skip("running as root without `runuser` or user `nobody` to start PostgreSQL as")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = [runuser, "-u", "nobody", "--"]
    data, log = os.path.join(root, "data"), os.path.join(root, "server.log")
    port = _free_port()

    def run(*cmd: str) -> None:
        proc = subprocess.run([*as_user, *cmd], cwd=root, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            server_log = Path(log).read_text() if os.path.exists(log) else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}\n{server_log}")

    run(str(bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-locale", "-E", "UTF8", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60",
        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE sweeps")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       cwd=root, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_fill_one_postgres_study(postgres_url, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs = []
    start = time.perf_counter()
    for worker in (0, 1):
        # both start at once on an empty database: also exercises the table-creation race
        cmd = [sys.executable, "-m", "bench.cli", "sweep", "--dataset", "digits", "--ipc", "3", "--base", "random",
               "--trials", str(TRIALS_PER_WORKER), "--storage", postgres_url, "--study", STUDY,
               "--worker", str(worker), "--out", str(tmp_path / f"w{worker}"), "--device", "cpu",
               "--set", "difficulty_epochs=2", "--set", "difficulty_protocol=dc-nodsa",
               "--protocol", "dc-nodsa", "--epochs", "2", "--models", "1"]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = [p.communicate(timeout=420)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
    study = optuna.load_study(study_name=STUDY, storage=postgres_url)
    trials = study.trials
    assert len(trials) == 2 * TRIALS_PER_WORKER
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS_PER_WORKER))
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    workers = [t.user_attrs["worker"] for t in trials]
    assert sorted(w.split("@")[0] for w in workers) == ["0", "0", "1", "1"]
    assert len({w.split(":")[-1] for w in workers}) == 2  # two distinct processes
    for worker in (0, 1):
        best = (tmp_path / f"w{worker}" / "best.json").read_text()
        assert '"schedule"' in best and "postgres@127.0.0.1" in best
    print(f"two workers, {len(trials)} trials in {time.perf_counter() - start:.1f}s")
