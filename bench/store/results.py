"""The results table: one tidy pandas table per results directory, stored as cell files, Parquet and CSV.

Every row is one evaluated cell (method, dataset, IPC, seed, evaluation architecture, protocol) with
last and best accuracy, times, code version and the hash of the resolved config.

Storage. Each finished cell is its own small JSON file, ``<dir>/cells/<cell_key>.json``, written
once and atomically (temp file + ``link(2)``, see ``bench.files.write_atomically``): appending
a row costs the same at 10 or 10,000 rows, takes no lock, and a second row for a key already
written is a no-op (first writer wins), so duplicates cannot exist. ``results.parquet`` and
``results.csv`` are assembled from the cells by ``consolidate()`` (at the end of a run, by
``dasm-bench plot`` and ``evaluate``), sorted by (dataset, method, ipc, seed, arch, protocol,
cell_key), so the same cells always give byte-identical files. ``load()`` assembles the same
frame in memory, so a reader sees every row even while a run is going or after it was killed.

Why no lock: on NFS/Lustre ``fcntl`` locks may not work, but creating a name with ``link`` and
replacing one with ``rename`` are atomic there as on a local disk, and that is all this uses. Two
``consolidate()`` calls racing each write a complete table; the last rename wins.

Directories written before cell files (Parquet only) are migrated lazily: until the first append
they load from the Parquet (plus any cells); the first append copies every Parquet row into a
cell file, then drops the marker ``cells/.migrated``, after which the Parquet is only a derived view.
A kill at any moment loses at most the cell in flight, never a row already written.

Rows record last-epoch test accuracy, the same models' validation accuracy when the validation split
was held out (``acc_val``, else NaN: see :mod:`bench.train.evaluation`) and the training split the set was
distilled from (``train_split``). Tables written before then had an ``acc_best`` column (a max over
test-set evaluations); it held NaN in every committed row and is dropped when a table is assembled.

Example::

    table = ResultsTable("results/demo")
    if not table.has(key):
        table.append([row])
    df = table.consolidate()   # writes results.parquet + results.csv, returns the table
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.bounds import MAX_IPC, MAX_MODELS, MAX_SEED, check_int, check_number
from bench.errors import BenchError
from bench.files import read_regular, refuse_link, write_atomically
from bench.vocabulary import LEGACY_TRAIN_SPLIT

COLUMNS = [
    "cell_key", "method", "dataset", "ipc", "seed", "arch", "protocol", "num_models",
    "acc_last", "acc_last_std", "acc_val", "acc_val_std", "distill_seconds", "eval_seconds",
    "code_version", "config_hash", "synthetic_path", "train_split",
]
# the columns of older tables that held a max over test-set evaluations (a selection on test)
LEGACY_BEST = ("acc_best", "acc_best_std")
SORT_KEYS = ["dataset", "method", "ipc", "seed", "arch", "protocol", "cell_key"]
MIGRATED = ".migrated"
# a key is its own file name when it is plainly safe; anything else (slashes, dots first, long) is hashed
_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]{0,127}")
_HASHED = "_sha256-"


def cell_file_name(cell_key: str) -> str:
    """``<key>.json`` for a safe key, else ``_sha256-<hex>.json`` (safe keys never start with ``_``)."""
    if _SAFE_KEY.fullmatch(cell_key):
        return f"{cell_key}.json"
    return f"{_HASHED}{hashlib.sha256(cell_key.encode()).hexdigest()}.json"


def results_row(syn: Any, res: Any, cell_key: str, synthetic_path: str | None = None, num_models: int | None = None,
                config_hash: str | None = None, train_split: str = LEGACY_TRAIN_SPLIT) -> dict[str, Any]:
    """The results row of one evaluated cell: ``res`` (an ``EvalResult``) of the set ``syn``.

    The one row builder (grid runner, ``dasm-bench evaluate``, ``bench.results_row``): the set's
    identity comes from its metadata, ``config_hash`` defaults to the set's own key and
    ``train_split`` is used only when the set does not record its split.

    Example::

        row = results_row(syn, res, eval_key(syn.metadata["config_hash"], res.arch, protocol, 5))
    """
    from bench.version import code_version

    meta = syn.metadata
    seconds = meta.get("seconds")
    return {
        "cell_key": cell_key, "method": meta.get("method"), "dataset": meta.get("dataset"), "ipc": meta.get("ipc"),
        "seed": meta.get("seed"), "arch": res.arch, "protocol": res.protocol,
        "num_models": len(res.acc_last) if num_models is None else num_models,
        "acc_last": res.last_mean, "acc_last_std": res.last_std,
        # no "best": a max over test evaluations would select on the test split (bench.train.evaluation);
        # the validation accuracy of the same models (NaN unless val was held out) is what choices use
        "acc_val": getattr(res, "val_mean", float("nan")), "acc_val_std": getattr(res, "val_std", float("nan")),
        "distill_seconds": float("nan") if seconds is None else float(seconds), "eval_seconds": res.seconds,
        "code_version": code_version(), "config_hash": config_hash or meta.get("config_hash", "unknown"),
        "synthetic_path": synthetic_path,
        # the split the set was distilled from (a method may hold part of it out, e.g. DASM's val)
        "train_split": str(meta.get("train_split", train_split)),
        # only sets distilled from an identified copy (cifar10-jpeg) carry it; other tables keep their columns
        **({"data_sha256": str(meta["data_sha256"])} if meta.get("data_sha256") else {}),
    }


class ResultsTable:
    """Append-only table of evaluated cells under ``<directory>`` (cells + ``<name>.parquet`` / ``.csv``)."""

    def __init__(self, directory: str | os.PathLike, name: str = "results") -> None:
        self.directory = Path(directory)
        self.parquet = self.directory / f"{name}.parquet"
        self.csv = self.directory / f"{name}.csv"
        self.cells = self.directory / ("cells" if name == "results" else f"cells-{name}")
        # a planted link would send every new cell (and every read) to another folder
        refuse_link(self.cells, "results cells folder")
        self._migrated = False          # this instance saw the marker (it is never removed)
        self._legacy: tuple[tuple, set[str]] | None = None  # (Parquet stat, its keys) while unmigrated

    # ------------------------------------------------------------------ reading
    def exists(self) -> bool:
        """Whether anything was ever written here (a Parquet or a cell)."""
        return self.parquet.exists() or any(True for _ in self._cell_names())

    def load(self) -> pd.DataFrame:
        """All rows (an empty frame with the standard columns when nothing was written)."""
        legacy = None if self._is_migrated() else self._read_legacy()
        rows = [self._read_cell(self.cells / name) for name in sorted(self._cell_names())]
        return with_train_split(assemble(legacy, rows))

    def done_keys(self) -> set[str]:
        """Keys of every written cell: file names only (no file is opened unless its key was hashed)."""
        keys = set()
        for name in self._cell_names():
            if name.startswith(_HASHED):
                keys.add(str(self._read_cell(self.cells / name)["cell_key"]))
            else:
                keys.add(name[:-len(".json")])
        return keys if self._is_migrated() else keys | self._legacy_keys()

    def has(self, cell_key: str) -> bool:
        """Whether the cell is written: one ``stat``, plus the legacy Parquet's keys until migrated."""
        if (self.cells / cell_file_name(str(cell_key))).exists():
            return True
        return not self._is_migrated() and str(cell_key) in self._legacy_keys()

    # ------------------------------------------------------------------ writing
    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Write each row whose ``cell_key`` is new as its own cell file; returns how many were new.

        O(1) per row: nothing else is read or rewritten (call ``consolidate()`` for the Parquet)."""
        rows = list(rows)
        for row in rows:
            if "cell_key" not in row:
                raise ValueError("every results row needs a cell_key")
            check_row(json.loads(json.dumps(row, default=_plain)))  # as it will be read back
        if not rows:
            return 0
        self._migrate()
        return sum(self._write_cell(row) for row in rows)

    def consolidate(self) -> pd.DataFrame:
        """Assemble every row and (re)write ``<name>.parquet`` and ``.csv`` atomically; returns the table.

        Deterministic: the same cells give byte-identical files, and files whose bytes would not
        change are not touched (a read-only, up-to-date directory can still be plotted)."""
        df = self.load()
        if df.empty and not self.parquet.exists():
            return df
        buf = io.BytesIO()
        try:
            df.to_parquet(buf, index=False)
        except Exception as exc:  # pyarrow: cells that disagree on an extra column's type
            raise BenchError(f"results under {self.directory} cannot be stored as Parquet "
                             f"({_first_line(exc)}); a hand-edited cell?") from None
        for path, data in ((self.parquet, buf.getvalue()), (self.csv, df.to_csv(index=False).encode())):
            if not holds_bytes(path, data):
                write_atomically(path, data)
        return df

    # ------------------------------------------------------------------ internals
    def _cell_names(self) -> Iterable[str]:
        try:
            with os.scandir(self.cells) as it:
                # temporaries are ``.<name>.*.tmp`` and the marker is hidden: neither ends in .json visibly
                return [e.name for e in it if e.name.endswith(".json") and not e.name.startswith(".")]
        except FileNotFoundError:
            return []

    def _read_cell(self, path: Path) -> dict[str, Any]:
        try:
            row = json.loads(read_regular(path, "results cell"))
            if not isinstance(row, dict) or not isinstance(row.get("cell_key"), str) or not row["cell_key"]:
                raise ValueError("not a results row")
            check_row(row)
        except (OSError, ValueError, BenchError, RecursionError) as exc:  # written atomically: outside damage
            raise BenchError(f"results cell {path} cannot be read ({_first_line(exc)}); "
                             "delete it to evaluate that cell again") from None
        if path.name != cell_file_name(row["cell_key"]):
            # a copied or renamed cell would be counted as another cell: in the table and in has()
            raise BenchError(f"results cell {path} holds the row of cell {row['cell_key']!r}, whose file is "
                             f"{cell_file_name(row['cell_key'])}; rename or delete it")
        return row

    def _write_cell(self, row: dict[str, Any]) -> bool:
        path = self.cells / cell_file_name(str(row["cell_key"]))
        if path.exists():
            return False
        return write_atomically(path, json.dumps(row, default=_plain), exclusive=True)

    def _is_migrated(self) -> bool:
        if not self._migrated:
            self._migrated = (self.cells / MIGRATED).exists()
        return self._migrated

    def _read_legacy(self) -> pd.DataFrame | None:
        if not self.parquet.exists():
            return None
        try:
            df = pd.read_parquet(io.BytesIO(read_regular(self.parquet, "results table")))
        except FileNotFoundError:
            return None
        except BenchError:
            raise
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise BenchError(f"results table {self.parquet} cannot be read: {str(exc).splitlines()[0]}") from None
        return check_schema(df, self.parquet)

    def _legacy_keys(self) -> set[str]:
        try:
            st = self.parquet.stat()
        except FileNotFoundError:
            return set()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._legacy is None or self._legacy[0] != stamp:
            df = self._read_legacy()
            keys = set(df["cell_key"].astype(str)) if df is not None else set()
            self._legacy = (stamp, keys)
        return self._legacy[1]

    def _migrate(self) -> None:
        """Copy a Parquet-only table's rows into cell files once, then mark the directory migrated.

        Concurrent migrators write the same rows (first wins); the marker appears only after every
        row is a cell, so a reader that sees it may ignore the Parquet."""
        if self._is_migrated():
            return
        legacy = self._read_legacy()
        if legacy is not None:
            for row in legacy.to_dict("records"):
                self._write_cell(row)
        write_atomically(self.cells / MIGRATED, b"")
        self._migrated = True


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


def holds_bytes(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file holding exactly ``data`` (a FIFO or a link to elsewhere
    is not read: the writer's rename replaces it)."""
    if path.is_symlink():
        return False
    try:
        return read_regular(path) == data
    except (OSError, BenchError):
        return False


# a cell's fields, by kind: each is checked when the cell is read, before any table is built from it
_TEXT = ("method", "dataset", "arch", "protocol", "code_version", "config_hash", "synthetic_path", "train_split")
_COUNTS = {"ipc": (1, MAX_IPC), "seed": (0, MAX_SEED), "num_models": (1, MAX_MODELS)}
_PERCENT = ("acc_last", "acc_last_std", "acc_val", "acc_val_std", "acc_best", "acc_best_std")
_SECONDS = ("distill_seconds", "eval_seconds")


def check_row(row: dict[str, Any]) -> None:
    """A BenchError naming the first field of a results row with the wrong type or range: text
    fields are strings (or null), ``ipc``/``seed``/``num_models`` integers in range (or null: an
    imported set may have none), accuracies percentages and times seconds (NaN or null when not
    measured), and any other field a JSON scalar. A row that passes stores as Parquet.

    Example::

        check_row({"cell_key": "k", "seed": 1e30})   # BenchError: seed must be an integer in [0, 4294967295]
    """
    for key, value in row.items():
        if value is None or key == "cell_key":
            continue
        if key in _TEXT:
            if not isinstance(value, str):
                raise BenchError(f"field {key!r} must be text, got {value!r:.40}")
            _check_name(key, value)
        elif key in _COUNTS:
            check_int(value, f"field {key!r}", *_COUNTS[key])
        elif key in _PERCENT or key in _SECONDS:
            if isinstance(value, float) and math.isnan(value):
                continue
            check_number(value, f"field {key!r}", 0, 100 if key in _PERCENT else None)
        elif not isinstance(value, (str, int, float, bool)):
            raise BenchError(f"field {key!r} must be a JSON scalar, got a {type(value).__name__}")


def _check_name(key: str, value: str) -> None:
    """The text fields a table groups by and reads meaning from: a train_split other than the two
    the harness writes would claim what was trained on, and a protocol whose base is not a known
    one (``dc@300ep``, ``mtt@lr0.01``, ``dc@hard`` are) is no protocol this code evaluated under."""
    from bench.data.core import TRAIN_SPLITS
    from bench.protocols import PROTOCOLS

    if key == "train_split" and value not in TRAIN_SPLITS:
        raise BenchError(f"field 'train_split' must be one of {', '.join(TRAIN_SPLITS)}, got {value!r:.40}")
    if key == "protocol" and value.partition("@")[0] not in PROTOCOLS:
        raise BenchError(f"field 'protocol' must name one of {', '.join(PROTOCOLS)}, got {value!r:.40}")


def _plain(value: Any) -> Any:
    """JSON for numpy / pandas scalars (what a row built from a frame holds)."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _sort_key(column: pd.Series) -> pd.Series:
    return column.map(lambda v: (1, "") if v is None or (isinstance(v, float) and math.isnan(v))
                      else (0, f"{float(v):024.6f}" if isinstance(v, numbers.Real) else str(v)))


def assemble(legacy: pd.DataFrame | None, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One frame from legacy Parquet rows and cell rows: the first row of a key wins, standard
    columns first (then others as first seen), rows sorted by ``SORT_KEYS``."""
    frames = [f for f in (legacy, pd.DataFrame(rows) if rows else None) if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    df = df.drop_duplicates("cell_key", keep="first")
    # the legacy "best" column (a test-split selection) is dropped once it holds nothing
    empty_best = [c for c in LEGACY_BEST if c in df.columns and df[c].isna().all()]
    df = df.drop(columns=empty_best)
    ordered = [c for c in COLUMNS if c in df.columns]
    df = df[ordered + [c for c in df.columns if c not in ordered]]
    by = [c for c in SORT_KEYS if c in df.columns]
    # a per-value key (numbers before text, missing last) sorts any mix of types the same way every time
    return df.sort_values(by, key=_sort_key, kind="stable").reset_index(drop=True)


# what every reader (runner, reports, cross-architecture tables) indexes without checking
REQUIRED_COLUMNS = ["cell_key", "method", "dataset", "ipc", "seed", "arch", "protocol", "acc_last"]


def check_schema(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``df`` itself, or a one-line error when a stored table lacks the standard columns (a file
    written by another tool, or by hand) - before anything is computed or appended to it."""
    if df.empty and not len(df.columns):
        return df
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    # a Parquet column of lists or structs (numpy arrays, dicts) cannot key a cell: every reader groups by them
    nested = next((c for c in REQUIRED_COLUMNS if not missing and df[c].dtype == object
                   and not df[c].map(lambda v: v is None or isinstance(v, (str, numbers.Number))).all()), None)
    if missing or nested:
        raise BenchError(f"results table {path} is not a dasm-bench table: " + (
            f"it lacks column(s) {', '.join(missing)}" if missing else f"column {nested} holds lists or mappings")
            + "; move it away or point at another directory")
    return df


def repair_csv(table: "ResultsTable", df: pd.DataFrame) -> bool:
    """The CSV is a copy of the table for people and spreadsheets: when it is missing, damaged or
    stale, rewrite it from ``df`` (the rows of record). True if it was rewritten."""
    if not table.exists():
        return False
    data = df.to_csv(index=False).encode()
    if holds_bytes(table.csv, data):
        return False
    write_atomically(table.csv, data)
    return True


def with_train_split(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``train_split`` column; legacy rows (no column, or empty) read as "train-val"."""
    if "train_split" not in df.columns:
        df = df.assign(train_split=LEGACY_TRAIN_SPLIT)
    elif df["train_split"].isna().any():
        df = df.assign(train_split=df["train_split"].fillna(LEGACY_TRAIN_SPLIT))
    return df


def summarise(df: pd.DataFrame, metric: str = "acc_last") -> pd.DataFrame:
    """Mean and std over seeds per (method, dataset, ipc, arch, protocol)."""
    if df.empty:
        return pd.DataFrame(columns=["method", "dataset", "ipc", "arch", "protocol", "mean", "std", "seeds"])
    keys = ["method", "dataset", "ipc", "arch", "protocol"]
    g = df.groupby(keys, dropna=False)[metric]
    out = g.agg(mean="mean", std="std", seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out.sort_values(keys).reset_index(drop=True)
