"""Compare a fresh run's results table with a reference one, cell by cell, within the noise.

A cell is (method, dataset, ipc, seed, arch, protocol). A cell agrees when

    |acc_run - acc_ref| <= max(k_std x std over the reference's seeds of that (method, ipc, arch,
                               protocol), k_images test images)

The seed spread is the noise a reader of the reference table already accepts between two seeds;
the test-image floor keeps a cell whose seeds happen to agree exactly from demanding bit-identical
training (thread counts, BLAS kernels and CPU instruction sets change the last bits of a float sum,
and a few hundred SGD steps can turn that into one or two test images). Identical code on the same
torch build is expected to give differences of zero or a test image or two.

A run restricted to part of its spec (``dasm-bench run ... --methods random --ipc 1``, recorded in
its ``run_selection.json``, :mod:`bench.spec.run_selection`) is expected to hold only the reference cells
it was asked for: the others are counted as "not run", not as missing. Any other run (the whole
spec, a ``grid``) must hold every reference cell.

Example::

    report = compare_results("runs/demo-20260101-120000", "results/demo")
    print(report.line())                 # one line: agree / disagree, and where
    assert report.agree
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pandas as pd

from bench.errors import BenchError
from bench.spec.run_selection import in_selection, read_selection
from bench.store.results import ResultsTable

KEYS = ["method", "dataset", "ipc", "seed", "arch", "protocol"]
GROUP = ["method", "dataset", "ipc", "arch", "protocol"]  # the seeds of a group give the noise


@dataclass
class CellDiff:
    key: tuple
    run: float
    reference: float
    tolerance: float

    @property
    def diff(self) -> float:
        return self.run - self.reference

    @property
    def ok(self) -> bool:
        return abs(self.diff) <= self.tolerance + 1e-9

    def describe(self) -> str:
        method, _dataset, ipc, seed, arch, protocol = self.key
        return (f"{method} ipc={ipc} seed={seed} {arch} {protocol}: {self.run:.1f} vs {self.reference:.1f} "
                f"({self.diff:+.1f}, tol {self.tolerance:.1f})")


@dataclass
class Comparison:
    """The cell-by-cell outcome; ``line()`` is the one-line summary the demo prints."""

    cells: list[CellDiff]
    missing: list[tuple] = field(default_factory=list)   # in the reference, expected from the run, absent
    extra: list[tuple] = field(default_factory=list)     # in the run, not in the reference
    metric: str = "acc_last"
    not_run: list[tuple] | None = None  # a restricted run: reference cells it was not asked for (else None)

    @property
    def outside(self) -> list[CellDiff]:
        return [c for c in self.cells if not c.ok]

    @property
    def agree(self) -> bool:
        return bool(self.cells) and not self.outside and not self.missing

    def line(self, shown: int = 3) -> str:
        n = len(self.cells)
        biggest = max((abs(c.diff) for c in self.cells), default=0.0)
        exact = sum(abs(c.diff) < 1e-9 for c in self.cells)
        cells = "cells" if self.not_run is None else f"computed cells ({len(self.not_run)} reference cells not run)"
        head = f"{n} {cells} compared on {self.metric} ({exact} identical, largest |diff| {biggest:.2f} points)"
        if self.agree:
            return f"agree: all {head}, every one within the noise"
        parts = []
        if self.outside:
            worst = sorted(self.outside, key=lambda c: -abs(c.diff) / max(c.tolerance, 1e-9))
            more = f" and {len(worst) - shown} more" if len(worst) > shown else ""
            parts.append(f"{len(worst)} outside the noise: " + "; ".join(c.describe() for c in worst[:shown]) + more)
        if self.missing:
            parts.append(f"{len(self.missing)} reference cells missing from the run (e.g. {_fmt(self.missing[0])})")
        if not self.cells:
            parts.append("no cell in common")
        return f"DISAGREE: {head}; " + "; ".join(parts)


def _fmt(key: tuple) -> str:
    return " ".join(f"{k}={v}" for k, v in zip(KEYS, key))


def _load(directory: str | os.PathLike, what: str) -> pd.DataFrame:
    from pathlib import Path

    if not str(directory).strip():  # Path("") is the working directory
        raise BenchError(f"{what} is an empty path; give a results directory")
    if Path(directory).exists() and not Path(directory).is_dir():
        raise BenchError(f"{directory} ({what}) is a file, not a results directory")
    table = ResultsTable(directory)
    if not table.exists():
        raise BenchError(f"no results table in {directory} ({what}; expected {table.parquet.name} "
                         f"or {table.cells.name}/)")
    df = table.load()
    lacking = [c for c in KEYS if c not in df.columns]
    if lacking:
        raise BenchError(f"results table in {directory} lacks the columns {lacking}")
    return df


def _test_size(dataset: str) -> int | None:
    """How many test images the dataset has (None when it cannot be loaded here)."""
    from bench.data.datasets import load_dataset

    try:
        return len(load_dataset(dataset).test.labels)
    except Exception:  # a real dataset not on this machine: fall back to the seed spread alone
        return None


def compare_results(run: str | os.PathLike, reference: str | os.PathLike, metric: str = "acc_last",
                    k_std: float = 2.0, k_images: float = 2.0, test_sizes: dict[str, int] | None = None
                    ) -> Comparison:
    """Match the two tables on (method, dataset, ipc, seed, arch, protocol) and test each common cell.

    ``test_sizes`` maps a dataset to its test-set size (loaded when not given)."""
    ran, ref = _load(run, "the run"), _load(reference, "the reference")
    if metric not in ran.columns or metric not in ref.columns:
        raise BenchError(f"metric {metric!r} is not a column of both tables")
    for df, directory in ((ran, run), (ref, reference)):
        if not (pd.api.types.is_numeric_dtype(df[metric]) or df[metric].isna().all()):
            raise BenchError(f"metric {metric!r} is not a numeric column (e.g. acc_last, acc_val)")
        _check_values(df[metric], metric, directory)
    # a rerun may hold a cell twice (e.g. another num_models): compare means
    ran_cells = {k: v.mean() for k, v in _grouped(ran, KEYS, metric).items()}
    ref_cells = {k: v.mean() for k, v in _grouped(ref, KEYS, metric).items()}
    spread = {k: v.std() if v.notna().sum() > 1 else 0.0 for k, v in _grouped(ref, GROUP, metric).items()}
    sizes = dict(test_sizes or {})
    cells = []
    for key in (k for k in ref_cells if k in ran_cells):
        dataset = key[1]
        if dataset not in sizes:
            sizes[dataset] = _test_size(str(dataset))
        floor = 100.0 * k_images / sizes[dataset] if sizes[dataset] else 0.0
        noise = float(spread.get(tuple(key[i] for i in (0, 1, 2, 4, 5)), 0.0))
        cells.append(CellDiff(key, float(ran_cells[key]), float(ref_cells[key]), max(k_std * noise, floor)))
    missing = sorted((k for k in ref_cells if k not in ran_cells), key=_as_text)
    selections = read_selection(run)
    not_run = None
    if selections is not None:  # a restricted run: only the cells it was asked for are expected
        not_run = [k for k in missing if not in_selection(k, selections)]
        missing = [k for k in missing if in_selection(k, selections)]
    extra = sorted((k for k in ran_cells if k not in ref_cells), key=_as_text)
    return Comparison(sorted(cells, key=lambda c: _as_text(c.key)), missing, extra, metric, not_run)


def _check_values(values: pd.Series, metric: str, directory: str | os.PathLike) -> None:
    """A damaged table is refused, not compared: an inf (or, for an accuracy, a value outside
    0..100) would make every cell "outside the noise" and the verdict meaningless. NaN is "not measured"."""
    from bench.store.results import _PERCENT

    known = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    low, high = (0.0, 100.0) if metric in _PERCENT else (-math.inf, math.inf)
    bad = known[~known.map(math.isfinite) | (known < low) | (known > high)]
    if len(bad):
        where = "a finite number" + (" in [0, 100]" if metric in _PERCENT else "")
        raise BenchError(f"results table in {directory}: {metric} must be {where}, got {bad.iloc[0]!r} "
                         f"({len(bad)} rows); the table is damaged")


def _as_text(key: tuple) -> tuple:
    return tuple(map(str, key))  # keys may mix numbers, text and None: sorted as text


def _grouped(df: pd.DataFrame, keys: list[str], metric: str) -> dict[tuple, pd.Series]:
    """``metric`` per key; a missing key value (an imported set records no IPC or seed) is None,
    which a pandas MultiIndex cannot look up when it holds NaN."""
    groups: dict[tuple, list] = {}
    for values, number in zip(df[keys].itertuples(index=False, name=None), df[metric]):
        key = tuple(None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values)
        groups.setdefault(key, []).append(number)
    return {k: pd.Series(v, dtype=float) for k, v in groups.items()}


def compare_main(run: str, reference: str, metric: str = "acc_last", k_std: float = 2.0,
                 k_images: float = 2.0, verbose: bool = False) -> int:
    """The `dasm-bench compare` command: prints one line; 0 when the run agrees, 1 when not."""
    report = compare_results(run, reference, metric, k_std, k_images)
    if verbose:
        for c in report.cells:
            print(("  ok   " if c.ok else "  FAIL ") + c.describe())
        for k in report.missing:
            print(f"  missing {_fmt(k)}")
    print(report.line())
    return 0 if report.agree else 1

