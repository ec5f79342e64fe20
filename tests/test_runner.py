import threading
import time
from dataclasses import dataclass

import pandas as pd
import pytest

from bench.errors import BenchError
from bench.methods import registry
from bench.run.executors import InlineExecutor
from bench.run.jobs import obtain_synthetic
from bench.run.runner import run_grid
from bench.run.scheduling import Task, execute, one_line
from bench.spec.grid import GridSpec
from bench.store.synthetic import SyntheticSet

QUIET = {"progress": False, "log": lambda s: None}


def test_grid_runs_reuses_sets_and_skips_done_cells(tmp_path):
    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1, 2], seeds=[0, 1], archs=["convnet"],
                    protocol="dc-nodsa", epochs=2, num_models=1)
    df = run_grid(spec, tmp_path, device="cpu", **QUIET)
    assert len(df) == 4 and set(df["ipc"]) == {1, 2}
    sets = sorted((tmp_path / "synthetic").glob("*.safetensors"))
    assert len(sets) == 4
    stamp = [p.stat().st_mtime_ns for p in sets]
    # adding an architecture reuses the stored sets and only evaluates the new cells
    spec.archs = ["convnet", "convnet_bn"]
    df2 = run_grid(spec, tmp_path, device="cpu", **QUIET)
    assert len(df2) == 8 and len(df2["cell_key"].unique()) == 8
    assert [p.stat().st_mtime_ns for p in sets] == stamp
    df3 = run_grid(spec, tmp_path, device="cpu", **QUIET)
    pd.testing.assert_frame_equal(df2, df3)


@pytest.mark.slow  # ~40 s of worker start-up on a loaded 2-core machine; the pool path itself is in test_kill_resume
def test_parallel_workers_give_the_inline_results(tmp_path):
    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1, 2], seeds=[0], archs=["convnet", "convnet_bn"],
                    protocol="dc-nodsa", epochs=2, num_models=1)
    inline = run_grid(spec, tmp_path / "inline", device="cpu", workers=1, **QUIET)
    pooled = run_grid(spec, tmp_path / "pool", device="cpu", workers=2, threads=1, **QUIET)
    cols = ["cell_key", "acc_last", "config_hash", "synthetic_path"]
    # spawned workers are seeded exactly as this process: identical cells and accuracies
    pd.testing.assert_frame_equal(inline[cols].sort_values("cell_key").reset_index(drop=True),
                                  pooled[cols].sort_values("cell_key").reset_index(drop=True))


def test_one_set_is_made_once_by_concurrent_makers(tmp_path, digits):
    """The per-set lock: a second maker waits and loads what the first one saved."""
    path = tmp_path / "synthetic" / "k.safetensors"
    calls = []
    results = []

    def make():
        calls.append(1)
        time.sleep(0.5)  # long enough that the other thread asks while this one holds the lock
        idx = digits.train.indices_by_class[0][:2]
        return SyntheticSet(digits.train.get(idx), digits.train.labels[idx].clone())

    threads = [threading.Thread(target=lambda: results.append(obtain_synthetic(path, make))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(cached for _, cached in results) == [False, True]
    assert all(syn.images.equal(results[0][0].images) for syn, _ in results)


def test_two_runners_on_one_directory_distill_each_set_once(tmp_path, monkeypatch):
    from baselines.random_selection import RandomConfig, random_selection

    calls = []

    def counted(request, config):
        calls.append((request.ipc, request.seed))
        time.sleep(0.3)  # both runners reach the set while it is being made
        return random_selection(request, config)

    monkeypatch.setitem(registry._METHODS, "counted",
                        registry.MethodSpec("counted", counted, RandomConfig, "coreset", "test"))
    spec = GridSpec(methods=["counted"], dataset="digits", ipcs=[1, 2], seeds=[0], archs=["convnet", "convnet_bn"],
                    protocol="dc-nodsa", epochs=2, num_models=1)
    errors = []

    def runner():
        try:
            run_grid(spec, tmp_path, device="cpu", **QUIET)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(calls) == [(1, 0), (2, 0)]  # each set distilled once, by one of the runners
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert len(df) == 4 and df["cell_key"].is_unique


def test_damaged_set_is_remade(tmp_path, digits):
    path = tmp_path / "s.safetensors"
    idx = digits.train.indices_by_class[1][:1]
    SyntheticSet(digits.train.get(idx), digits.train.labels[idx].clone()).save(path)
    path.write_bytes(path.read_bytes()[:-8])
    syn, cached = obtain_synthetic(path, lambda: SyntheticSet(digits.train.get(idx), digits.train.labels[idx].clone()))
    assert not cached and SyntheticSet.load(path).images.equal(syn.images)


@dataclass
class _NoConfig:
    pass


def test_a_failing_method_does_not_stop_the_grid(tmp_path, monkeypatch):
    def broken(request, config):
        raise RuntimeError("boom in the distiller")

    monkeypatch.setitem(registry._METHODS, "always-fails",
                        registry.MethodSpec("always-fails", broken, _NoConfig, "coreset", "test"))
    spec = GridSpec(methods=["always-fails", "random"], dataset="digits", ipcs=[1], seeds=[0],
                    archs=["convnet", "convnet_bn"], protocol="dc-nodsa", epochs=2, num_models=1)
    with pytest.raises(BenchError) as info:
        run_grid(spec, tmp_path, device="cpu", **QUIET)
    message = str(info.value)
    assert "1 task(s) failed" in message and "boom in the distiller" in message and "2 evaluation cells" in message
    df = pd.read_parquet(tmp_path / "results.parquet")  # the healthy method's cells were written
    assert sorted(df["arch"]) == ["convnet", "convnet_bn"] and set(df["method"]) == {"random"}


def test_evaluations_run_before_queued_distillations():
    order = []

    def job(name):
        order.append(name)
        return name

    def distilled(name):
        return [Task(job, f"eval-{name}", f"eval {name}", priority=0)]

    tasks = [Task(job, n, n, priority=1, on_done=distilled) for n in ("a", "b")]
    assert execute(tasks, InlineExecutor(), max_in_flight=1, log=lambda s: None) == []
    assert order == ["a", "eval-a", "b", "eval-b"]


def test_one_line_error_messages():
    assert one_line(BenchError("bad thing")) == "BenchError: bad thing"
    remote = RuntimeError("Job failed with trace:\n----\nTraceback (most recent call last):\n  File x\n"
                          "bench.errors.DivergedError: training diverged\n----\nlogs at /tmp/x")
    assert one_line(remote) == "bench.errors.DivergedError: training diverged"


def test_submitit_local_executor(tmp_path):
    pytest.importorskip("submitit")
    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1], seeds=[0], archs=["convnet"],
                    protocol="dc-nodsa", epochs=2, num_models=1)
    df = run_grid(spec, tmp_path, device="cpu", workers=2, executor="submitit-local", **QUIET)
    assert len(df) == 1 and df.iloc[0]["method"] == "random"
    assert (tmp_path / df.iloc[0]["synthetic_path"]).exists() and (tmp_path / "submitit").is_dir()


def test_unknown_executor_and_missing_submitit_are_one_line(tmp_path, monkeypatch):
    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1], seeds=[0], protocol="dc-nodsa", epochs=2,
                    num_models=1)
    with pytest.raises(BenchError, match="unknown executor 'sge'"):
        run_grid(spec, tmp_path, device="cpu", executor="sge", **QUIET)
    import sys

    monkeypatch.setitem(sys.modules, "submitit", None)  # import fails as if it were not installed
    with pytest.raises(BenchError, match="pip install submitit"):
        run_grid(spec, tmp_path, device="cpu", executor="slurm", **QUIET)


# ----------------------------------------------------------------------------- claims on evaluation cells

def _counting_runner(out, counter, barrier, spec):
    """One runner process whose evaluations are counted (a line per evaluation) and take 0.4 s."""
    import os

    import bench.run.jobs as jobs
    from bench.train.evaluation import EvalResult

    def fake_evaluate(syn, data, arch, protocol, num_models, seed, device, **kwargs):
        with open(counter, "a") as fh:  # O_APPEND: whole lines from both processes
            fh.write(f"{os.getpid()} {syn.metadata['ipc']} {syn.metadata['seed']} {arch}\n")
        time.sleep(0.4)
        return EvalResult(arch, protocol.name, [50.0], [51.0], 0.4)

    jobs.evaluate_synthetic = fake_evaluate
    barrier.wait(120)
    run_grid(spec, out, device="cpu", progress=False, log=lambda s: None)


def test_two_runner_processes_evaluate_each_cell_once(tmp_path):
    import multiprocessing as mp

    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1, 2], seeds=[0, 1, 2], archs=["convnet", "convnet_bn"],
                    protocol="dc-nodsa", epochs=1, num_models=1)
    counter = tmp_path / "evaluations.txt"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_counting_runner, args=(str(tmp_path / "res"), str(counter), barrier, spec))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = [ln.split() for ln in counter.read_text().splitlines()]
    cells = [tuple(ln[1:]) for ln in lines]
    assert len(cells) == 12 and len(set(cells)) == 12  # every cell evaluated, none twice
    assert len({ln[0] for ln in lines}) == 2  # and the two runners split the work
    df = pd.read_parquet(tmp_path / "res" / "results.parquet")
    assert len(df) == 12 and df["cell_key"].is_unique
    assert not list((tmp_path / "res" / ".claims").glob("*.claim"))  # every claim was released


def test_claims_are_exclusive_and_a_dead_holders_claim_is_taken_over(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from bench.run.cell_claims import CellClaims

    mine, other = CellClaims(tmp_path), CellClaims(tmp_path)
    assert mine.acquire("k") and not other.acquire("k")  # a live holder (this pid) keeps its claim
    mine.release("k")
    assert other.acquire("k")
    other.close()
    # a claim whose process is gone (pid of a finished child) is stale at once on its host
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = mine.path("dead")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": mine.host, "pid": int(dead.stdout), "token": "x"}))
    assert mine.acquire("dead") and json.loads(path.read_text())["pid"] == os.getpid()
    # a claim from another host is stale once nobody touched it for stale_seconds
    remote = mine.path("remote")
    remote.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "y"}))
    assert not mine.acquire("remote")
    old = time.time() - 400
    os.utime(remote, (old, old))
    assert mine.acquire("remote")
    mine.close()
    assert not list(path.parent.glob("*.claim")) and not list(path.parent.glob(".*"))


def test_a_cell_held_by_another_runner_waits_and_is_not_evaluated(tmp_path):
    from bench.run.cell_claims import CellClaims
    from bench.run.scheduling import CellGate, Progress
    from bench.store.results import ResultsTable

    table = ResultsTable(tmp_path)
    other = CellClaims(tmp_path)
    assert other.acquire("held")
    ran = []

    finished = threading.Event()

    def finish_elsewhere():  # the other runner writes the row once ours has moved on, then lets its claim go
        deadline = time.monotonic() + 60
        while ran != ["free"] and time.monotonic() < deadline:  # a condition, not a guessed delay
            time.sleep(0.01)
        table.append([{"cell_key": "held", "method": "random"}])
        other.release("held")
        finished.set()

    threading.Thread(target=finish_elsewhere).start()
    tasks = [Task(ran.append, name, name, priority=0, claim=name) for name in ("held", "free")]
    gate = CellGate(table, CellClaims(tmp_path), Progress(2, False, "", lambda s: None), poll_seconds=0.1)
    assert execute(tasks, InlineExecutor(), max_in_flight=1, log=lambda s: None, gate=gate) == []
    # it came back to the held cell until the other runner finished it, and ran only its own
    assert ran == ["free"] and finished.is_set()


def test_rows_record_the_training_split_and_no_test_selected_best(tmp_path):
    from bench.methods.config import distill_key
    from bench.spec.cells import resolved_config

    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1], seeds=[0], protocol="dc-nodsa", epochs=2,
                    num_models=1)
    df = run_grid(spec, tmp_path / "full", device="cpu", **QUIET)
    # no "best" column; no validation accuracy where val was part of the training pool
    assert df["train_split"].tolist() == ["full"] and "acc_best" not in df and df["acc_val"].isna().all()
    held = GridSpec(**{**spec.__dict__, "train_split": "train-val"})
    df_held = run_grid(held, tmp_path / "held", device="cpu", **QUIET)
    assert df_held["train_split"].tolist() == ["train-val"]
    assert 0 < df_held["acc_val"].iloc[0] <= 100  # val held out: the same model scored on it
    # the data differ, so the keys differ; a train-val key is what it was before the split existed
    assert df["config_hash"].iloc[0] != df_held["config_hash"].iloc[0]
    config = resolved_config(spec, "random", 1)
    assert distill_key("random", "digits", 1, 0, config, "train-val") == registry.config_hash(
        {"method": "random", "dataset": "digits", "ipc": 1, "seed": 0, "config": registry.config_dict(config)})


def test_tensorboard_logs_each_cell_and_its_sets_curves(tmp_path):
    """`--tensorboard DIR`: every finished cell's accuracy (step = seed) and, once per set, the
    matching-loss curve the set stores, as offline event files TensorBoard reads."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bench.cli.main import main

    logdir = tmp_path / "tb"
    assert main(["grid", "--methods", "random,dc", "--ipc", "1", "--seeds", "0,1", "--epochs", "1",
                 "--models", "1", "--out", str(tmp_path / "res"), "--device", "cpu", "--no-progress",
                 "--tensorboard", str(logdir)]) == 0
    events = EventAccumulator(str(logdir))
    events.Reload()
    tags = events.Tags()["scalars"]
    acc = [t for t in tags if t.startswith("acc_last/digits/dc/")]
    assert len(acc) == 1 and sorted(e.step for e in events.Scalars(acc[0])) == [0, 1]
    assert any(t.startswith("acc_last/digits/random/") for t in tags)
    loss = [t for t in tags if t.startswith("distill/dc/ipc1/s0/") and t.endswith("matching_loss")]
    assert loss and len(events.Scalars(loss[0])) > 1  # one point per stored iteration


def test_evaluate_and_the_grid_share_one_row_builder_and_cell_key(tmp_path, capsys):
    """`dasm-bench evaluate --results` on a grid's stored set, with the set's own seed, is the
    grid's cell (first writer wins: no second row); another seed is another cell."""
    from bench.cli.main import main

    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1], seeds=[0], protocol="dc-nodsa", epochs=1,
                    num_models=1)
    out = tmp_path / "res"
    grid_row = run_grid(spec, out, device="cpu", **QUIET).iloc[0]
    syn = next((out / "synthetic").glob("*.safetensors"))
    args = ["evaluate", str(syn), "--protocol", "dc-nodsa", "--epochs", "1", "--models", "1", "--results", str(out),
            "--device", "cpu", "--no-progress"]
    assert main(args + ["--seed", "0"]) == 0
    df = pd.read_parquet(out / "results.parquet")
    assert df["cell_key"].tolist() == [grid_row["cell_key"]]
    assert main(args + ["--seed", "1"]) == 0
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == 2 and df["cell_key"].is_unique
    mine = df[df["cell_key"] != grid_row["cell_key"]].iloc[0]
    # the same identity as the grid's row; only where the set lies is said differently
    for col in ("method", "dataset", "ipc", "seed", "arch", "protocol", "num_models", "config_hash", "train_split"):
        assert mine[col] == grid_row[col], col
    assert "acc_best" not in df and mine["synthetic_path"] == str(syn)


def test_full_data_references_are_planned_once_for_run_and_grid(tmp_path):
    from bench.run.full_data_jobs import full_data_jobs
    from bench.store.full_data import read_full_data, write_full_data

    spec = GridSpec(methods=["random", "idc"], dataset="digits", ipcs=[1], protocols=["own", "idc"])
    jobs = full_data_jobs(spec, tmp_path, "convnet", "cpu", epochs=3)
    assert sorted(j.key for j in jobs) == ["dc", "idc"]  # keyed by the protocol the sets' rows carry
    assert all(j.env.train_split == "full" and j.protocol.epochs == 3 for j in jobs)
    # a current record is not trained again; one trained otherwise (here: another split) is
    first, *rest = jobs
    write_full_data(tmp_path, {"dataset": "digits", "arch": "convnet", "protocol": first.protocol.name, "acc": 90.0,
                               "train_split": "full", "key": first.key})
    assert [j.key for j in full_data_jobs(spec, tmp_path, "convnet", "cpu", epochs=3)] == [j.key for j in rest]
    write_full_data(tmp_path, {"dataset": "digits", "arch": "convnet", "protocol": first.protocol.name, "acc": 90.0,
                               "key": first.key})  # no split recorded: the legacy train-val split
    assert len(full_data_jobs(spec, tmp_path, "convnet", "cpu", epochs=3)) == len(jobs)
    # a published number is recorded at once, no job
    assert full_data_jobs(spec, tmp_path, "convnet", "cpu", published=84.8) == []
    assert read_full_data(tmp_path)["published"]["acc"] == 84.8
