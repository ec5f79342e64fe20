"""`--executor slurm` on a real single-node Slurm (the ``slurm_cluster`` fixture, tests/slurm_cluster.py):
a spec runs to completion; a request no node can satisfy fails in one line within a minute, before
or after submitting; a job cancelled with ``scancel`` is reported in one line and a rerun fills in
exactly the missing rows; two Slurm jobs share one Optuna study through PostgreSQL.

The cluster has no accounting (``sacct`` fails), like many small clusters: the runs must stay quiet
about it. Skipped with the reason where Slurm cannot start (not root, packages missing).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from bench.errors import BenchError
from bench.run import slurm as slurm_queue
from bench.run.executors import SlurmOptions, make_executor
from bench.run.runner import run_grid
from bench.spec.grid import GridSpec

REPO = Path(__file__).resolve().parents[1]
SPEC = """
name = "slurm-test"
dataset = "digits"
ipc = {ipc}
seeds = [0, 1]
archs = ["convnet"]

[evaluation]
protocol = "dc-nodsa"
epochs = 2
models = 1

[methods.random]
"""


def _spec(tmp_path: Path, ipc: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent(SPEC.format(ipc=ipc)))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.cli.main", "run", *args, "--executor", "slurm", "--no-progress", "--no-report"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def _rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv")


def test_spec_runs_to_completion_on_slurm(slurm_cluster, tmp_path):
    out = tmp_path / "out"
    start = time.perf_counter()
    proc = subprocess.run(_cli(str(_spec(tmp_path, "[1]")), "--out", str(out), "--cpus-per-job", "1"),
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(out)
    assert len(rows) == 2 and sorted(rows["seed"]) == [0, 1] and rows["cell_key"].is_unique
    assert (rows["acc_last"] > 0).all()
    # the jobs really ran on Slurm: submitit's folder names them by Slurm job id
    assert any(p.name.endswith("_result.pkl") for p in (out / "submitit").iterdir())
    assert "Bypassing sacct" not in proc.stdout + proc.stderr  # no accounting here, and no noise about it
    status = [ln for ln in proc.stdout.splitlines() if ln.startswith("slurm jobs:")]
    assert status and status[-1].endswith(", 4 done"), proc.stdout  # 2 distillations + 2 evaluations
    assert "queued" in status[0] and "running" in status[0]
    print(f"slurm: 4 jobs, 2 cells in {seconds:.1f}s")


def test_request_no_node_can_satisfy_fails_before_submitting(slurm_cluster, tmp_path):
    start = time.perf_counter()
    proc = subprocess.run(_cli(str(_spec(tmp_path, "[1]")), "--out", str(tmp_path / "out"),
                               "--cpus-per-job", str(slurm_cluster.cpus + 1)),
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert f"--cpus-per-job {slurm_cluster.cpus + 1} > {slurm_cluster.cpus}" in lines[0]
    assert "partition 'debug'" in lines[0]
    assert time.perf_counter() - start < 60
    assert not (tmp_path / "out" / "submitit").exists()  # nothing was submitted

    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1], seeds=[0], protocol="dc-nodsa", epochs=2,
                    num_models=1)
    with pytest.raises(BenchError, match="partition 'gpu' does not exist; change --partition"):
        run_grid(spec, tmp_path / "out", executor="slurm", progress=False, slurm=SlurmOptions(partition="gpu"))
    with pytest.raises(BenchError, match=r"--time 90 > the partition's limit of 60 min; use --time 60 or less"):
        slurm_queue.fit_request(slurm_queue.SlurmRequest(1, None, 0, 90),
                                slurm_queue.PartitionOffer("short", (slurm_queue.NodeOffer("n", 2, 4096, 0),), 60))
    assert not (tmp_path / "out" / "submitit").exists()


def test_pending_reason_that_never_clears_fails_within_a_minute(slurm_cluster, tmp_path, monkeypatch):
    # the partition's description claims more CPUs than the node has (as a stale or partial view
    # would): the pre-check passes, Slurm leaves the job pending with PartitionConfig forever
    real = slurm_queue.partition_offer

    def inflated(partition):
        offer = real(partition)
        nodes = tuple(slurm_queue.NodeOffer(n.name, n.cpus * 4, n.mem_mb, n.gpus) for n in offer.nodes)
        return slurm_queue.PartitionOffer(offer.name, nodes, offer.max_time_min)

    monkeypatch.setattr(slurm_queue, "partition_offer", inflated)
    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1], seeds=[0], protocol="dc-nodsa", epochs=2,
                    num_models=1)
    start = time.perf_counter()
    with pytest.raises(BenchError) as info:
        run_grid(spec, tmp_path, device="cpu", executor="slurm", progress=False, log=lambda line: None,
                 slurm=SlurmOptions(cpus_per_job=slurm_cluster.cpus * 2, poll_seconds=2.0))
    seconds = time.perf_counter() - start
    message = str(info.value)
    assert "\n" not in message and "can never start (pending: PartitionConfig)" in message, message
    assert f"asks for {slurm_cluster.cpus * 2} CPUs" in message and "--cpus-per-job" in message
    assert "cancelled 1 pending job(s)" in message
    assert seconds < 60
    job_id = message.split("Slurm job ")[1].split()[0]
    state = slurm_cluster.run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T").stdout.strip()
    assert state == "CANCELLED"  # it does not sit in the queue after we leave


def _running_job(cluster, deadline: float) -> str | None:
    while time.monotonic() < deadline:
        running = cluster.run("squeue", "-h", "-t", "running", "-o", "%i").stdout.split()
        if running:
            return running[0]
        time.sleep(0.3)
    return None


def test_cancelled_job_is_reported_and_a_rerun_completes(slurm_cluster, tmp_path):
    out, spec = tmp_path / "out", _spec(tmp_path, "[1]")  # 2 cells: 2 distillations, then 2 evaluations
    start = time.perf_counter()
    run = subprocess.Popen(_cli(str(spec), "--out", str(out), "--cpus-per-job", "1"), cwd=REPO, env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cancelled = None
        deadline = time.monotonic() + 120
        while cancelled is None and time.monotonic() < deadline:
            job = _running_job(slurm_cluster, deadline)
            if job is not None and slurm_cluster.run("scancel", job, check=False).returncode == 0:
                cancelled = job  # (a job that finished just before scancel is simply skipped)
        assert cancelled is not None, "no job ever ran"
        stdout, stderr = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 2, stdout + stderr
    lines = _error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error: 1 task(s) failed"), stderr
    assert f"Slurm job {cancelled} ended CANCELLED without a result" in lines[0]
    assert "rerun to retry the rest" in lines[0]
    assert sum(ln.startswith("FAILED ") for ln in stdout.splitlines()) == 1, stdout
    partial = _rows(out)
    assert len(partial) == 1  # only the cancelled job's cell is missing
    first = time.perf_counter() - start

    proc = subprocess.run(_cli(str(spec), "--out", str(out), "--cpus-per-job", "1"), cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(out)
    assert len(rows) == 2 and rows["cell_key"].is_unique
    assert sorted(zip(rows["ipc"], rows["seed"])) == [(1, 0), (1, 1)]
    # the rows the first run wrote are kept as they were, not recomputed
    kept = rows.set_index("cell_key").loc[partial["cell_key"], "acc_last"]
    assert list(kept) == list(partial["acc_last"])
    print(f"cancelled run {first:.1f}s, rerun {time.perf_counter() - start - first:.1f}s")


def test_two_slurm_jobs_share_one_postgres_study(slurm_cluster, postgres_url, tmp_path):
    from bench.cli.main import main

    study = "slurm-two-workers"
    executor = make_executor("slurm", workers=2, threads=1, out=tmp_path,
                             slurm=SlurmOptions(cpus_per_job=1, poll_seconds=2.0))
    handles = []
    for worker in (0, 1):
        argv = ["sweep", "--dataset", "digits", "--ipc", "3", "--base", "random", "--trials", "2",
                "--storage", postgres_url, "--study", study, "--worker", str(worker),
                "--out", str(tmp_path / f"w{worker}"), "--device", "cpu", "--set", "difficulty_epochs=2",
                "--set", "difficulty_protocol=dc-nodsa", "--protocol", "dc-nodsa", "--epochs", "2", "--models", "1"]
        handles.append(executor.submit(main, argv))
    pending = list(handles)
    deadline = time.monotonic() + 300
    while pending and time.monotonic() < deadline:
        for h in executor.wait(pending):
            pending.remove(h)
            assert executor.result(h) == 0, (h.inner.stdout() or "") + (h.inner.stderr() or "")
    assert not pending
    trials = optuna.load_study(study_name=study, storage=postgres_url).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    workers = [t.user_attrs["worker"] for t in trials]
    assert sorted(w.split("@")[0] for w in workers) == ["0", "0", "1", "1"]
    assert len({w.split(":")[-1] for w in workers}) == 2  # two processes: the two Slurm jobs
    job_ids = ",".join(h.inner.job_id for h in handles)
    for _ in range(60):  # a job's result is written just before its process (and so the job) ends
        states = slurm_cluster.run("squeue", "-h", "-t", "all", "-j", job_ids, "-o", "%T").stdout.split()
        if states == ["COMPLETED", "COMPLETED"]:
            break
        time.sleep(0.5)
    assert states == ["COMPLETED", "COMPLETED"]


# ----------------------------------------------------------------------------- without a cluster

@pytest.mark.parametrize("text, minutes", [("UNLIMITED", None), ("30", 30), ("30:00", 30), ("04:00:00", 240),
                                           ("1-00:00:00", 1440), ("2-12", 3600), ("1-01:30", 1530),
                                           ("00:00:30", 1)])
def test_slurm_time_formats(text, minutes):
    assert slurm_queue.parse_minutes(text) == minutes


def test_gpus_counted_from_gres():
    assert slurm_queue.gpu_count("gpu:a100:4(S:0-1),gpu:v100:1") == 5
    assert slurm_queue.gpu_count("gpu:2,shard:8") == 2
    assert slurm_queue.gpu_count("(null)") == 0


def test_defaults_fit_the_partition_and_bad_requests_name_the_flag():
    small = slurm_queue.PartitionOffer("small", (slurm_queue.NodeOffer("a", 2, 8192, 0),
                                                 slurm_queue.NodeOffer("g", 16, 65536, 2)), 120)
    fitted = slurm_queue.fit_request(slurm_queue.SlurmRequest(None, None, 0, None), small)
    assert (fitted.cpus, fitted.time_min) == (4, 120)          # 4 CPUs fit node g; 240 min > the 120 limit
    only_small = slurm_queue.PartitionOffer("tiny", (slurm_queue.NodeOffer("a", 2, 8192, 0),), None)
    assert slurm_queue.fit_request(slurm_queue.SlurmRequest(None, None, 0, None), only_small).cpus == 2
    with pytest.raises(BenchError, match="--gpus-per-job 4 > 2; lower --gpus-per-job"):
        slurm_queue.fit_request(slurm_queue.SlurmRequest(1, None, 4, 60), small)
    with pytest.raises(BenchError, match="--mem-gb 100 > 64; lower --mem-gb"):
        slurm_queue.fit_request(slurm_queue.SlurmRequest(1, 100, 0, 60), small)
    with pytest.raises(BenchError, match="no single node has all of it"):
        slurm_queue.fit_request(slurm_queue.SlurmRequest(8, 10, 0, 60), slurm_queue.PartitionOffer(
            "split", (slurm_queue.NodeOffer("c", 16, 4096, 0), slurm_queue.NodeOffer("m", 2, 65536, 0)), None))
    with pytest.raises(BenchError, match="--cpus-per-job must be >= 1, got 0"):
        slurm_queue.fit_request(slurm_queue.SlurmRequest(0, None, 0, 60), small)


@pytest.mark.parametrize("reason, fatal", [("PartitionConfig", True), ("QOSMaxCpuPerJobLimit", True),
                                           ("AssocMaxWallDurationPerJobLimit", True), ("Resources", False),
                                           ("Priority", False), ("QOSMaxJobsPerUserLimit", False),
                                           ("ReqNodeNotAvail, UnavailableNodes:n1", False),
                                           ("ReqNodeNotAvail, UnavailableNodes:ghost", True)])
def test_pending_reasons_that_never_clear(reason, fatal, monkeypatch):
    monkeypatch.setattr(slurm_queue, "_hostnames", lambda hostlist: hostlist.split(","))
    assert slurm_queue.never_clears(reason, {"n1", "n2"}) is fatal
