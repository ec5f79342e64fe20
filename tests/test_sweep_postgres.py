"""Two sweep workers share one Optuna study on a real PostgreSQL server.

The ``postgres_url`` fixture (``conftest.py``, ``pg_server.py``) starts a throwaway server on
loopback; the test is skipped with the reason when the server binaries or the psycopg2 driver
are missing. CI needs the Debian package ``postgresql`` and the pip package ``psycopg2-binary``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
STUDY = "pg-two-workers"
TRIALS_PER_WORKER = 2


def test_two_workers_fill_one_postgres_study(postgres_url, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs = []
    start = time.perf_counter()
    for worker in (0, 1):
        # both start at once on an empty database: also exercises the table-creation race
        cmd = [sys.executable, "-m", "bench.cli.main", "sweep", "--dataset", "digits", "--ipc", "3", "--base", "random",
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
