import threading
import time
from dataclasses import dataclass

import pandas as pd
import pytest

from bench import registry
from bench.errors import BenchError
from bench.runner import GridSpec, InlineExecutor, Task, execute, obtain_synthetic, one_line, run_grid
from bench.synthetic import SyntheticSet

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
    cols = ["cell_key", "acc_last", "acc_best", "config_hash", "synthetic_path"]
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


def test_rows_record_the_training_split_and_no_test_selected_best(tmp_path):
    from bench.runner import distill_key, resolved_config

    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1], seeds=[0], protocol="dc-nodsa", epochs=2,
                    num_models=1)
    df = run_grid(spec, tmp_path / "full", device="cpu", **QUIET)
    assert df["train_split"].tolist() == ["full"] and df["acc_best"].isna().all()
    held = GridSpec(**{**spec.__dict__, "train_split": "train-val"})
    df_held = run_grid(held, tmp_path / "held", device="cpu", **QUIET)
    assert df_held["train_split"].tolist() == ["train-val"]
    # the data differ, so the keys differ; a train-val key is what it was before the split existed
    assert df["config_hash"].iloc[0] != df_held["config_hash"].iloc[0]
    config = resolved_config(spec, "random", 1)
    assert distill_key("random", "digits", 1, 0, config, "train-val") == registry.config_hash(
        {"method": "random", "dataset": "digits", "ipc": 1, "seed": 0, "config": registry.config_dict(config)})
