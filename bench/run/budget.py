"""Running a budget ladder (:class:`bench.spec.budget.BudgetSpec`): every rung's grid through the grid
runner (so resume, claims and workers come with it), cheapest rung first; ``max_hours`` stops
before a rung projected to overrun. Each rung distils from ``train-val`` by default and every
evaluation model is scored on the validation split too, so :mod:`bench.report.budget` can choose
the rung on validation and report test accuracy at every rung.

Example::

    run_budget(BudgetSpec(methods=["dm", "idc"], dataset="digits", ipcs=[10], seeds=[0, 1, 2],
                          rungs=[1, 2, 4]), "results/digits/budget")
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.report.budget import budget_rows, summarise_budget, write_budget_reports
from bench.run.runner import run_grid
from bench.spec.budget import BudgetSpec, budget_fields, cell_keys, rung_config

# ----------------------------------------------------------------------------- running

def run_budget(spec: BudgetSpec, out_dir: str | Path, device: str = "auto", workers: int = 1,
               progress: bool = True, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every missing (rung, method, IPC, seed) cell, cheapest rung first; write the tables and
    the figure; returns the per-rung summary. Failed cells are reported after the tables are written."""
    spec.validate()
    out = Path(out_dir)
    rungs = sorted(set(spec.rungs))
    start = time.monotonic()
    failures: list[str] = []
    _warm_caches(spec, device, log)
    for i, rung in enumerate(rungs):
        if spec.max_hours is not None and i > 0:
            projected = projected_seconds(spec, out, rungs[i - 1], rung) / max(1, workers)
            elapsed = time.monotonic() - start
            if elapsed + projected > spec.max_hours * 3600:
                log(f"budget: stopping before rung x{rung}: {elapsed / 3600:.2f} h spent + {projected / 3600:.2f} h "
                    f"projected exceeds --max-hours {spec.max_hours:g}")
                break
        for ipc in spec.ipcs:
            try:
                run_grid(spec.grid(rung, ipc), out, device, progress=progress, log=log, workers=workers)
            except BenchError as exc:  # a failed cell (e.g. a diverged rung) must not stop the ladder
                failures.append(f"x{rung} ipc={ipc}: {exc}")
                log(f"FAILED {failures[-1]}")
    summary = summarise_budget(spec, out)
    for path in write_budget_reports(summary, out, spec.dataset):
        log(f"wrote {path}")
    if failures:
        raise BenchError(f"{len(failures)} rung grid(s) had failures, first: {failures[0]}")
    return summary


def _warm_caches(spec: BudgetSpec, device: str, log: Callable[[str], None]) -> None:
    """Build one-off shared caches (MTT's expert buffer) before the ladder, so that no rung's measured
    seconds include them: a zero-budget distillation of each method with an on-disk ``buffer_dir``."""
    from bench.data.datasets import load_dataset
    from bench.methods.registry import DistillRequest, distill
    from bench.train.evaluation import resolve_device

    for method in spec.methods:
        config = rung_config(spec, method, spec.ipcs[0], 1)
        if not hasattr(config, "buffer_dir"):
            continue
        t0 = time.perf_counter()
        zero = dataclasses.replace(config, **{f: 0 for f in budget_fields(method)})
        data = load_dataset(spec.dataset, spec.data_root, spec.download)
        distill(method, DistillRequest(data, spec.ipcs[0], spec.seeds[0], resolve_device(device), progress=False), zero)
        log(f"budget: {method} cache ready in {time.perf_counter() - t0:.1f}s (not counted in any rung)")


def projected_seconds(spec: BudgetSpec, out: Path, done_rung: int, next_rung: int) -> float:
    """Task-seconds ``next_rung`` should take: the recorded distillation seconds of ``done_rung``
    scaled by the budget ratio, plus its evaluation seconds (evaluation does not scale)."""
    df = budget_rows(spec, out).set_index("cell_key")
    total = 0.0
    for method in spec.methods:
        for ipc in spec.ipcs:
            for key in cell_keys(spec, method, ipc, done_rung).values():
                if key in df.index:
                    row = df.loc[key].fillna(0.0)  # a row without timings projects nothing
                    total += float(row["distill_seconds"]) * next_rung / done_rung + float(row["eval_seconds"])
    return total
