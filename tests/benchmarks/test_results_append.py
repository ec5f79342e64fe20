"""Appending 10,000 results rows one at a time: the per-row cost stays flat (not part of the CI gate).

Run with ``pytest tests/benchmarks/test_results_append.py -m slow --benchmark-enable -s``; it prints
the median cost of a row in each block of 1,000 and the cost of assembling the whole table once
(``consolidate``: what the end of a run and ``dasm-bench plot`` pay). The fast counterpart,
``tests/test_results.py::test_append_is_constant_cost``, is in the default suite.
Before/after figures at fixed table sizes: ``tests/benchmarks/append_scaling.py``.
"""

from __future__ import annotations

import statistics
import time

import pytest

from bench.store.results import ResultsTable

ROWS = 10_000
BLOCK = 1_000


def _row(i: int) -> dict:
    return {"cell_key": f"{i:016x}", "method": "random", "dataset": "digits", "ipc": 1 + i % 50, "seed": i,
            "arch": "convnet", "protocol": "dc", "num_models": 5, "acc_last": 50.0 + i % 7, "acc_last_std": 0.5,
            "acc_val": 51.0, "acc_val_std": 0.4, "distill_seconds": 1.5, "eval_seconds": 2.5,
            "code_version": "abc1234", "config_hash": f"{i:016x}", "synthetic_path": f"synthetic/{i:016x}.safetensors"}


def _append_all(directory) -> list[float]:
    table = ResultsTable(directory)
    times = []
    for i in range(ROWS):
        start = time.perf_counter()
        table.append([_row(i)])
        times.append(time.perf_counter() - start)
    return times


@pytest.mark.slow
def test_append_10000_rows_per_row_cost_is_flat(benchmark, tmp_path):
    times = benchmark.pedantic(_append_all, args=(tmp_path,), rounds=1, iterations=1)
    blocks = [statistics.median(times[i:i + BLOCK]) * 1e3 for i in range(0, ROWS, BLOCK)]
    start = time.perf_counter()
    df = ResultsTable(tmp_path).consolidate()
    consolidate_s = time.perf_counter() - start
    benchmark.extra_info.update({"median_ms_per_row_by_block": blocks, "consolidate_s": consolidate_s})
    print(f"\nmedian ms/row in rows 1-1000 .. 9001-10000: {' '.join(f'{b:.2f}' for b in blocks)}; "
          f"mean {1e3 * statistics.fmean(times):.2f} ms/row; consolidate {ROWS} rows: {consolidate_s:.2f} s")
    assert len(df) == ROWS and df["cell_key"].is_unique
    assert blocks[-1] / blocks[0] < 2, blocks
