"""Per-row cost of ``ResultsTable.append`` at several table sizes, two implementations side by side.

    python tests/benchmarks/append_scaling.py OLD_RESULTS_PY [--sizes 100 1000 5000] [--appends 30]

``OLD_RESULTS_PY`` is another version of ``bench/store/results.py`` (e.g. ``git show main:bench/store/results.py
> /tmp/results_main.py``); the current one is ``bench.store.results``. Each size starts from a fresh
directory holding that many rows (written in one call), then times single-row appends; the
median is printed in milliseconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _row(i: int) -> dict:
    return {"cell_key": f"{i:016x}", "method": "random", "dataset": "digits", "ipc": 1 + i % 50, "seed": i,
            "arch": "convnet", "protocol": "dc", "num_models": 5, "acc_last": 50.0 + i % 7, "acc_last_std": 0.5,
            "acc_val": 51.0, "acc_val_std": 0.4, "distill_seconds": 1.5, "eval_seconds": 2.5,
            "code_version": "abc1234", "config_hash": f"{i:016x}", "synthetic_path": f"synthetic/{i:016x}.safetensors"}


def per_row_ms(table_cls, size: int, appends: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        table = table_cls(d)
        table.append([_row(i) for i in range(size)])
        times = []
        for i in range(size, size + appends):
            start = time.perf_counter()
            table.append([_row(i)])
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--appends", type=int, default=30)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("results_old", args.old)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    from bench.store.results import ResultsTable

    print(f"{'rows in table':>14} | {'old ms/row':>10} | {'new ms/row':>10}")
    for size in args.sizes:
        print(f"{size:>14} | {per_row_ms(old.ResultsTable, size, args.appends):>10.2f} | "
              f"{per_row_ms(ResultsTable, size, args.appends):>10.2f}", flush=True)


if __name__ == "__main__":
    main()
