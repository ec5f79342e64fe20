"""SIGKILL a running `dasm-bench run` after its first row, rerun it: nothing lost, nothing duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.methods.config import distill_key
from bench.spec.cells import eval_key, method_protocol, resolved_config
from bench.spec.experiment import load_spec
from bench.store.results import ResultsTable
from bench.store.synthetic import SyntheticSet

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
name = "kill-resume"
dataset = "digits"
ipc = [1, 2]
seeds = [0, 1]
archs = ["convnet"]

[evaluation]
protocol = "dc-nodsa"
epochs = 2
models = 1

[methods.random]
[methods.herding]
epochs = 1
"""


def _expected_cells(spec) -> set[str]:
    grid = spec.grid()
    keys = set()
    for method in spec.method_names():
        for ipc in spec.ipcs:
            config = resolved_config(grid, method, ipc)
            for seed in spec.seeds:
                dkey = distill_key(method, spec.dataset, ipc, seed, config)
                keys |= {eval_key(dkey, a, method_protocol(grid, method, config), spec.num_models) for a in spec.archs}
    return keys


def _rows(table: Path) -> int:
    """Rows written so far: a running grid writes cell files; results.parquet is assembled at its end."""
    try:
        return len(ResultsTable(table.parent).load())
    except Exception:  # not written yet
        return 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_sigkill_then_rerun_loses_and_duplicates_nothing(tmp_path):
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    out = tmp_path / "res"
    table = out / "results.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench.cli.main", "run", str(spec_path), "--out", str(out), "--device", "cpu",
           "--no-progress", "--no-report"]
    # two spawned workers: the kill also orphans them, which must not hurt the rerun
    proc = subprocess.Popen(cmd + ["--workers", "2"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _rows(table) == 0:
            assert proc.poll() is None, f"the run ended before writing a row: {proc.stderr.read().decode()[-500:]}"
            assert time.monotonic() < deadline, "no row was written in 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        rows_at_kill = _rows(table)
        # the orphaned workers notice their parent is gone and leave by themselves
        deadline = time.monotonic() + 30
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(proc.pid), "worker processes outlived their killed parent"
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()

    expected = _expected_cells(load_spec(spec_path))
    assert 1 <= rows_at_kill < len(expected) == 8, rows_at_kill

    rerun = subprocess.run(cmd + ["--workers", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    df = pd.read_parquet(table)
    assert len(df) == len(expected) and set(df["cell_key"]) == expected  # exact cell set, no duplicates
    assert sorted(zip(df["method"], df["ipc"], df["seed"])) == sorted(
        (m, i, s) for m in ("random", "herding") for i in (1, 2) for s in (0, 1))
    assert pd.read_csv(out / "results.csv")["cell_key"].tolist() == df["cell_key"].tolist()
    for rel in df["synthetic_path"]:
        syn = SyntheticSet.load(out / rel)  # checksum-verified: no half-written set survived the kill
        assert len(syn) == syn.metadata["ipc"] * 10
    assert len(list((out / "synthetic").glob("*.safetensors"))) == 8
    assert not list((out / "synthetic").glob("*.tmp"))  # a killed maker's temporaries are swept
    assert not list((out / ".claims").glob("*.claim"))  # the killed runner's claims were taken over
