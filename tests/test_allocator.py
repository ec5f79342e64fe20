"""The C allocator tuning (bench/train/allocator.py): applied where work starts, opt-out, bad values."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import bench.train.allocator as allocator
from bench.errors import BenchError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fresh(mode: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != allocator.ENV}
    if mode is not None:
        env[allocator.ENV] = mode
    out = subprocess.run([sys.executable, "-c",
                          "from bench.train.allocator import tune_allocator as t; print(t(), t())"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_by_default_and_default_on_request():
    assert _fresh(None) == "tuned tuned"  # once per process: the second call reports the first
    assert _fresh("default") == "default default"
    assert "DASM_MALLOC must be one of tuned, default" in _fresh("jemalloc")


def test_bad_mode_is_a_bench_error(monkeypatch):
    monkeypatch.setenv(allocator.ENV, "fast")
    with pytest.raises(BenchError, match="DASM_MALLOC"):
        allocator.mode_from_env()


def test_cli_rejects_a_bad_mode_in_one_line(monkeypatch, capsys):
    from bench.cli.main import main

    monkeypatch.setenv(allocator.ENV, "fast")
    monkeypatch.setattr(allocator, "_state", None)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: DASM_MALLOC must be one of") and err.count("\n") == 1


def test_every_job_tunes_its_worker(monkeypatch):
    import bench.run.jobs as jobs

    calls = []
    monkeypatch.setattr(jobs, "tune_allocator", lambda: calls.append(1) or "tuned")
    jobs.JobEnv("digits", "cpu").start()
    assert calls == [1]
