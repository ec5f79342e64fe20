import multiprocessing as mp

import pandas as pd
import pytest

from bench.errors import BenchError
from bench.results import ResultsTable, summarise


def _row(key, method="random", ipc=1, seed=0, acc=50.0):
    return {"cell_key": key, "method": method, "dataset": "digits", "ipc": ipc, "seed": seed, "arch": "convnet",
            "protocol": "dc", "acc_last": acc, "acc_best": acc + 1}


def test_append_skips_done_cells_and_writes_both_formats(tmp_path):
    t = ResultsTable(tmp_path)
    t.append([_row("a"), _row("b", seed=1)])
    t.append([_row("a", acc=99.0), _row("c", seed=2)])
    df = t.load()
    assert sorted(df["cell_key"]) == ["a", "b", "c"]
    assert float(df.loc[df.cell_key == "a", "acc_last"].iloc[0]) == 50.0  # never overwritten
    assert len(pd.read_csv(t.csv)) == 3 and t.has("b") and not t.has("z")


def _writer(directory, start):
    t = ResultsTable(directory)
    for i in range(start, start + 15):
        t.append([_row(f"k{i}", seed=i)])


def test_two_writers_never_lose_rows(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s)) for s in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert sorted(ResultsTable(tmp_path).load()["cell_key"]) == sorted(
        [f"k{i}" for i in range(15)] + [f"k{i}" for i in range(100, 115)])


def test_damaged_table_is_a_clear_error(tmp_path):
    t = ResultsTable(tmp_path)
    t.append([_row("a")])
    t.parquet.write_bytes(b"garbage")
    with pytest.raises(BenchError, match="cannot be read"):
        t.load()


def test_summarise_mean_std_over_seeds():
    df = pd.DataFrame([_row("a", acc=10), _row("b", seed=1, acc=20), _row("c", ipc=5, acc=30)])
    s = summarise(df)
    one = s[s.ipc == 1].iloc[0]
    assert one["mean"] == 15 and abs(one["std"] - 7.0710678) < 1e-5 and one["seeds"] == 2


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
