"""How much of the CPU each method's work uses: useful FLOPs per unit, achieved FLOP/s, and the
machine's peak measured by the same process in the same run.

A unit is the cost model's (:mod:`bench.perf.cost_model`: an outer iteration, an MTT matching iteration,
an expert or evaluation epoch). Its FLOPs are counted by torch's own ``FlopCounterMode`` (matmuls
and convolutions, forward and backward, as dispatched: the arithmetic the method asks for, not
what a kernel wastes) at the same two sizes ``k1 < k2`` the timing uses, ``(F(k2) - F(k1)) / (k2 -
k1)``, in runs of their own (counting slows a run, so counted runs are never timed). Achieved
FLOP/s = FLOPs per unit / CPU-seconds per unit. The peak is the better of two microbenchmarks at
the measurement's thread count: an fp32 matmul 2048^2 and the ConvNet's own 128-channel 3x3
convolution at 16x16, batch 256, forward (CPU time, median of ``repeats`` runs).

Example::

    with counting() as log:
        ...  # cost_model._timed_pair records log[(unit, method, ipc)] = flops per unit
    peak = measure_peak(repeats=5)
"""

from __future__ import annotations

import contextlib
import contextvars
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

_LOG: contextvars.ContextVar[dict | None] = contextvars.ContextVar("flop_log", default=None)
PEAK_COLUMNS = ["kernel", "shape", "repeat", "flops", "cpu_seconds", "wall_seconds"]


def count_flops(run: Callable[[], object]) -> int:
    """FLOPs torch dispatches while ``run()`` runs (forward and backward matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as mode:
        run()
    return int(mode.get_total_flops())


@contextlib.contextmanager
def counting() -> Iterator[dict]:
    """While active, the cost model counts each unit's FLOPs into the yielded dict."""
    log: dict = {}
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


def record_unit_flops(unit: str, method: str, ipc: int, run: Callable[[int], object], k1: int, k2: int) -> None:
    """Count FLOPs per unit of ``run`` (slope between k1 and k2) into the active log, if any."""
    log = _LOG.get()
    if log is None:
        return
    f1, f2 = count_flops(lambda: run(k1)), count_flops(lambda: run(k2))
    log[(unit, method, ipc)] = max(0.0, (f2 - f1) / (k2 - k1))


def scale_unit_flops(unit: str, method: str, ipc: int, factor: float) -> None:
    """Scale a counted unit (a unit timed on a subset and scaled to the whole split)."""
    log = _LOG.get()
    if log is not None and (unit, method, ipc) in log:
        log[(unit, method, ipc)] *= factor


def _kernels() -> dict[str, tuple[str, Callable[[], object]]]:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2048, 2048, generator=g), torch.randn(2048, 2048, generator=g)
    x, w = torch.randn(256, 128, 16, 16, generator=g), torch.randn(128, 128, 3, 3, generator=g)
    return {"matmul": ("2048x2048 @ 2048x2048 fp32", lambda: a @ b),
            "conv": ("batch 256, 128->128 channels, 3x3, 16x16, fp32 forward",
                     lambda: torch.nn.functional.conv2d(x, w, padding=1))}


def measure_peak(repeats: int = 5) -> list[list]:
    """Raw peak runs (:data:`PEAK_COLUMNS`), ``repeats`` of each kernel alternating, after a warm-up."""
    kernels = _kernels()
    flops = {name: count_flops(fn) for name, (_, fn) in kernels.items()}  # doubles as the warm-up
    raw = []
    for r in range(repeats):
        for name, (shape, fn) in kernels.items():
            cpu, wall = time.process_time(), time.perf_counter()
            fn()
            raw.append([name, shape, r, flops[name], time.process_time() - cpu, time.perf_counter() - wall])
    return raw


def peak_gflops(raw: list[list] | "object") -> dict[str, float]:
    """Median GFLOP/s per kernel (CPU time) from raw peak rows (a list or a DataFrame)."""
    rows = raw.values.tolist() if hasattr(raw, "values") else raw
    out: dict[str, list[float]] = {}
    for kernel, _shape, _r, flops, cpu, _wall in rows:
        out.setdefault(kernel, []).append(float(flops) / float(cpu) / 1e9)
    return {k: statistics.median(v) for k, v in out.items()}


def summary_rows(cost_dir: str | Path) -> list[dict]:
    """Per counted unit of a cost directory (cost.csv + peak.csv): achieved GFLOP/s and % of the
    best peak kernel, recomputed from the committed files."""
    import math

    import pandas as pd

    cost_dir = Path(cost_dir)
    table = pd.read_csv(cost_dir / "cost.csv")
    peak = peak_gflops(pd.read_csv(cost_dir / "peak.csv"))
    best = max(peak.values())
    rows = []
    for r in table.to_dict("records"):
        flops = float(r.get("flops_per_unit", math.nan))
        if math.isnan(flops) or r["per_unit_seconds"] <= 0:
            continue
        rate = flops / r["per_unit_seconds"] / 1e9
        rows.append({"dataset": r["dataset"], "unit": r["unit"], "method": r["method"], "ipc": int(r["ipc"]),
                     "gflop_per_unit": flops / 1e9, "cpu_seconds": float(r["per_unit_seconds"]), "gflops": rate,
                     "percent_of_peak": 100 * rate / best, "peak": best, "code_version": r["code_version"]})
    return rows


def summary_markdown(cost_dirs: list[str | Path]) -> str:
    """The roofline table of several cost directories (results/perf/README.md), worst first."""
    rows = [r for d in cost_dirs for r in summary_rows(d)]
    lines = ["| dataset | unit | method | IPC | GFLOP per unit | CPU-s per unit | GFLOP/s | % of peak | peak GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["percent_of_peak"]):
        ipc = "-" if r["ipc"] == 0 else str(r["ipc"])
        lines.append(f"| {r['dataset']} | {r['unit']} | {r['method']} | {ipc} | {r['gflop_per_unit']:.2f} | "
                     f"{r['cpu_seconds']:.3f} | {r['gflops']:.2f} | {r['percent_of_peak']:.1f} | {r['peak']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m bench.perf.roofline results/digits/cost results/cifar10/cost
    import sys

    print(summary_markdown(sys.argv[1:]), end="")
