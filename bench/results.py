"""The results table: one tidy pandas table per results directory, stored as Parquet and CSV.

Every row is one evaluated cell (method, dataset, IPC, seed, evaluation architecture, protocol) with
last-epoch accuracy (``acc_best`` is NaN in new rows: see :mod:`bench.evaluation`), the training
split it was distilled from (``train_split``), times, code version and the hash of the resolved config.
Writes are atomic
(write-then-rename) and serialised by a file lock, so a killed run loses at most the cell in flight
and two writers never corrupt the table.

Example::

    table = ResultsTable("results/demo")
    if not table.has(key):
        table.append([row])
    df = table.load()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd

from bench.errors import BenchError

COLUMNS = [
    "cell_key", "method", "dataset", "ipc", "seed", "arch", "protocol", "num_models",
    "acc_last", "acc_last_std", "acc_best", "acc_best_std", "distill_seconds", "eval_seconds",
    "code_version", "config_hash", "synthetic_path", "train_split",
]
# Rows written before the training split was recorded were distilled from the train-val split.
LEGACY_TRAIN_SPLIT = "train-val"


class ResultsTable:
    """Append-only table of evaluated cells at ``<directory>/<name>.parquet`` (+ ``.csv``)."""

    def __init__(self, directory: str | os.PathLike, name: str = "results") -> None:
        self.directory = Path(directory)
        self.parquet = self.directory / f"{name}.parquet"
        self.csv = self.directory / f"{name}.csv"
        self._lock_path = self.directory / f".{name}.lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self) -> pd.DataFrame:
        """All rows (an empty frame with the standard columns when nothing was written)."""
        if not self.parquet.exists():
            return pd.DataFrame(columns=COLUMNS)
        try:
            df = pd.read_parquet(self.parquet)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise BenchError(f"results table {self.parquet} cannot be read: {str(exc).splitlines()[0]}") from None
        return with_train_split(df)

    def done_keys(self) -> set[str]:
        df = self.load()
        return set(df["cell_key"].astype(str)) if "cell_key" in df else set()

    def has(self, cell_key: str) -> bool:
        return cell_key in self.done_keys()

    def append(self, rows: list[dict]) -> pd.DataFrame:
        """Add rows whose ``cell_key`` is new (a re-run never duplicates a cell); returns the table."""
        if not rows:
            return self.load()
        for row in rows:
            if "cell_key" not in row:
                raise ValueError("every results row needs a cell_key")
        with self._locked():
            df = self.load()
            done = set(df["cell_key"].astype(str)) if len(df) else set()
            new = pd.DataFrame([r for r in rows if str(r["cell_key"]) not in done])
            if new.empty:
                return df
            ordered = [c for c in COLUMNS if c in new.columns or c in df.columns]
            extra = [c for c in list(df.columns) + list(new.columns) if c not in ordered]
            frames = [f for f in (df, new) if len(f)]
            out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else new
            out = out.reindex(columns=ordered + list(dict.fromkeys(extra)))
            _atomic_frame_write(out, self.parquet, "parquet")
            _atomic_frame_write(out, self.csv, "csv")
            return out


def with_train_split(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``train_split`` column; legacy rows (no column, or empty) read as "train-val"."""
    if "train_split" not in df.columns:
        df = df.assign(train_split=LEGACY_TRAIN_SPLIT)
    elif df["train_split"].isna().any():
        df = df.assign(train_split=df["train_split"].fillna(LEGACY_TRAIN_SPLIT))
    return df


def _atomic_frame_write(df: pd.DataFrame, path: Path, kind: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if kind == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summarise(df: pd.DataFrame, metric: str = "acc_last") -> pd.DataFrame:
    """Mean and std over seeds per (method, dataset, ipc, arch, protocol)."""
    if df.empty:
        return pd.DataFrame(columns=["method", "dataset", "ipc", "arch", "protocol", "mean", "std", "seeds"])
    keys = ["method", "dataset", "ipc", "arch", "protocol"]
    g = df.groupby(keys, dropna=False)[metric]
    out = g.agg(mean="mean", std="std", seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out.sort_values(keys).reset_index(drop=True)
