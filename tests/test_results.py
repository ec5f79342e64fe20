import json
import multiprocessing as mp
import time

import pandas as pd
import pytest

from bench.errors import BenchError
from bench.files import write_atomically
from bench.store import results as results_mod
from bench.store.results import MIGRATED, ResultsTable, cell_file_name, summarise


def _row(key, method="random", ipc=1, seed=0, acc=50.0):
    return {"cell_key": key, "method": method, "dataset": "digits", "ipc": ipc, "seed": seed, "arch": "convnet",
            "protocol": "dc", "acc_last": acc, "acc_val": acc + 1}


def test_append_skips_done_cells_and_writes_both_formats(tmp_path):
    t = ResultsTable(tmp_path)
    assert t.append([_row("a"), _row("b", seed=1)]) == 2
    assert t.append([_row("a", acc=99.0), _row("c", seed=2)]) == 1
    df = t.load()
    assert sorted(df["cell_key"]) == ["a", "b", "c"]
    assert float(df.loc[df.cell_key == "a", "acc_last"].iloc[0]) == 50.0  # never overwritten
    assert t.has("b") and not t.has("z") and t.done_keys() == {"a", "b", "c"}
    assert not t.parquet.exists()  # appending rewrites no table ...
    t.consolidate()                # ... the end of a run (or plot) assembles it
    assert len(pd.read_csv(t.csv)) == 3
    pd.testing.assert_frame_equal(pd.read_parquet(t.parquet), df)


def test_exclusive_write_first_writer_wins(tmp_path):
    path = tmp_path / "x.json"
    assert write_atomically(path, "first", exclusive=True)
    assert not write_atomically(path, b"second", exclusive=True)
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp left
    assert write_atomically(path, b"replaced") and path.read_bytes() == b"replaced"


def _writer(directory, start):
    t = ResultsTable(directory)
    for i in range(start, start + 15):
        t.append([_row(f"k{i}", seed=i)])


def test_two_writers_never_lose_or_duplicate_rows(tmp_path):
    ctx = mp.get_context("spawn")
    # overlapping ranges: keys k5..k14 are written by both processes, each must appear once
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s)) for s in (0, 5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    df = ResultsTable(tmp_path).consolidate()
    assert sorted(df["cell_key"]) == sorted(f"k{i}" for i in range(20))


def test_unsafe_keys_are_hashed_into_the_cells_folder(tmp_path):
    t = ResultsTable(tmp_path)
    key = "../../escape/x y"
    t.append([_row(key)])
    files = [p for p in tmp_path.rglob("*.json")]
    assert len(files) == 1 and files[0].parent == t.cells and files[0].name == cell_file_name(key)
    assert files[0].name.startswith("_sha256-") and t.has(key) and t.done_keys() == {key}
    assert t.load()["cell_key"].tolist() == [key]


def test_regenerating_from_the_same_cells_is_byte_identical(tmp_path):
    rows = [_row(f"k{i}", method=m, ipc=ipc, seed=s, acc=10.0 + i / 3)
            for i, (m, ipc, s) in enumerate((m, ipc, s) for m in ("random", "herding") for ipc in (1, 10, 2)
                                             for s in (1, 0))]
    a, b = ResultsTable(tmp_path / "a"), ResultsTable(tmp_path / "b")
    a.append(rows)
    for r in reversed(rows):  # another completion order
        b.append([r])
    da, db = a.consolidate(), b.consolidate()
    pd.testing.assert_frame_equal(da, db)
    assert a.csv.read_bytes() == b.csv.read_bytes()
    assert a.parquet.read_bytes() == b.parquet.read_bytes()
    # rows in a stable, readable order: method, then numeric IPC (2 before 10), then seed
    assert list(zip(da["method"], da["ipc"], da["seed"]))[:4] == [("herding", 1, 0), ("herding", 1, 1),
                                                                   ("herding", 2, 0), ("herding", 2, 1)]
    stamp = a.csv.stat().st_mtime_ns
    a.consolidate()
    assert a.csv.stat().st_mtime_ns == stamp  # unchanged content: the files are not rewritten


def test_legacy_parquet_only_directory_loads_and_migrates(tmp_path):
    legacy = pd.DataFrame([_row("old1"), _row("old2", seed=1)])
    legacy.to_parquet(tmp_path / "results.parquet", index=False)
    t = ResultsTable(tmp_path)
    assert t.done_keys() == {"old1", "old2"} and t.has("old1") and not (tmp_path / "cells").exists()
    assert sorted(t.load()["cell_key"]) == ["old1", "old2"]  # reading writes nothing
    assert t.append([_row("old1", acc=1.0), _row("new", seed=2)]) == 1  # a legacy key is not written again
    assert (t.cells / MIGRATED).exists() and (t.cells / "old1.json").exists()
    df = t.consolidate()
    assert sorted(df["cell_key"]) == ["new", "old1", "old2"]
    assert float(df.loc[df.cell_key == "old1", "acc_last"].iloc[0]) == 50.0
    # once migrated, the Parquet is a derived view: a damaged one is regenerated from the cells
    t.parquet.write_bytes(b"garbage")
    assert sorted(ResultsTable(tmp_path).consolidate()["cell_key"]) == ["new", "old1", "old2"]


def test_damaged_files_are_a_clear_error(tmp_path):
    t = ResultsTable(tmp_path / "legacy")
    t.directory.mkdir()
    t.parquet.write_bytes(b"garbage")  # a Parquet-only table: its rows exist nowhere else
    with pytest.raises(BenchError, match="cannot be read"):
        t.load()
    with pytest.raises(BenchError, match="cannot be read"):
        t.append([_row("a")])
    pd.DataFrame({"x": [1]}).to_parquet(t.parquet)  # some other table
    with pytest.raises(BenchError, match="lacks column.*cell_key"):
        t.load()
    c = ResultsTable(tmp_path / "cells")
    c.append([_row("a")])
    (c.cells / "a.json").write_text("{half")
    with pytest.raises(BenchError, match="a.json cannot be read.*delete it"):
        c.load()


def test_append_is_constant_cost(tmp_path, monkeypatch):
    """Appending never reads the table, and row 1,400 costs what row 100 costs."""
    t = ResultsTable(tmp_path)
    t.append([_row("warm")])

    def forbidden(*a, **k):
        raise AssertionError("append read the table")

    monkeypatch.setattr(results_mod.pd, "read_parquet", forbidden)
    monkeypatch.setattr(ResultsTable, "load", forbidden)
    times = []
    for i in range(1500):
        start = time.perf_counter()
        t.append([_row(f"k{i:05d}", seed=i)])
        times.append(time.perf_counter() - start)
    early, late = sorted(times[:300])[150], sorted(times[-300:])[150]  # medians resist scheduler noise
    assert late / early < 2, (early, late)
    assert len(list(t.cells.glob("*.json"))) == 1501


def test_summarise_mean_std_over_seeds():
    df = pd.DataFrame([_row("a", acc=10), _row("b", seed=1, acc=20), _row("c", ipc=5, acc=30)])
    s = summarise(df)
    one = s[s.ipc == 1].iloc[0]
    assert one["mean"] == 15 and abs(one["std"] - 7.0710678) < 1e-5 and one["seeds"] == 2


def test_cell_file_holds_the_row_as_json(tmp_path):
    import numpy as np

    t = ResultsTable(tmp_path)
    t.append([{**_row("n"), "ipc": np.int64(3), "acc_last": np.float32(0.5), "distill_seconds": None}])
    assert json.loads((t.cells / "n.json").read_text())["ipc"] == 3
    df = t.load()
    assert df["ipc"].tolist() == [3] and df["acc_last"].tolist() == [0.5]


def test_train_split_column_legacy_rows_read_as_train_val(tmp_path):
    # a table written before the column existed: its rows were distilled from the train-val split
    legacy = pd.DataFrame([_row("old")])
    assert "train_split" not in legacy.columns
    tmp_path.mkdir(exist_ok=True)
    legacy.to_parquet(tmp_path / "results.parquet", index=False)
    t = ResultsTable(tmp_path)
    assert t.load()["train_split"].tolist() == ["train-val"]
    t.append([_row("new") | {"train_split": "full"}])
    df = t.load().set_index("cell_key")
    assert df.loc["old", "train_split"] == "train-val" and df.loc["new", "train_split"] == "full"
    assert list(df.reset_index().columns)[-1] == "train_split"
