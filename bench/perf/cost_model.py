"""What each method costs on a dataset on this machine: CPU-seconds per unit of work, measured, and
the reference budgets' cost extrapolated from them.

A unit is a distiller's outer iteration (its registered ``budget_fields`` set to k), an MTT matching
iteration, an expert (or feature-network) epoch over the training set, or an evaluation epoch at an
IPC. Each is timed as process CPU time (all threads) at two sizes ``k1 < k2`` of the same run,
alternating, ``repeats`` times each: ``per_unit = (t(k2) - t(k1)) / (k2 - k1)`` (median over repeats),
so start-up work (loading, initial images, the first test pass) cancels; ``setup = t(k1) - k1 *
per_unit``. CPU time rather than wall time, so that a loaded machine inflates the figure less.

Two shortcuts, both because a unit's cost does not depend on the values it computes with:
- MTT's matching iteration is timed against an expert buffer trained on 512 training images for
  the few epochs a start epoch needs (the trajectory's values differ, its arithmetic does not);
- an expert epoch over the 50,000 images is timed on 2,560 of them and scaled by the ratio of
  training-set sizes (a ConvNet epoch is a fixed number of equal batches).

Example::

    rows, raw = measure_costs(load_dataset("digits"), methods=["dm"], ipcs=[1], repeats=1)
    print(cost_markdown(rows))

From the command line: ``dasm-bench cost --dataset cifar10-jpeg --data-root ../shared/data --out DIR``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from bench.data.core import Dataset, ImageSet

if TYPE_CHECKING:
    import pandas as pd

DISTILLERS = ("dc", "dsa", "dm", "idc")
TIMED_METHODS = (*DISTILLERS, "mtt")  # dasm: its cost is IDC's per segment plus its ranking models (see cost.md)
RAW_COLUMNS = ["unit", "method", "ipc", "size", "repeat", "cpu_seconds", "wall_seconds"]
COLUMNS = ["unit", "method", "ipc", "per_unit_seconds", "setup_seconds", "repeats", "k1", "k2",
           "reference_units", "reference_hours", "threads", "code_version", "flops_per_unit"]
# per-unit work differs by orders of magnitude: a DM iteration is a few forward passes, a DC one a
# whole outer loop; cheap units get more of them, so the difference stands above timer noise
UNITS_PER_METHOD = {"dm": (2, 10)}
EXPERT_SUBSET = 2560  # training images an expert epoch is timed on (scaled to the whole split)


@dataclass(frozen=True)
class CostRow:
    """One unit's measured CPU cost and the reference budget's extrapolated cost."""

    unit: str                 # "outer iteration", "matching iteration", "expert epoch", "evaluation epoch"
    method: str               # a method, "mtt", or an evaluation protocol
    ipc: int
    per_unit_seconds: float
    setup_seconds: float
    repeats: int
    k1: int
    k2: int
    reference_units: int      # the reference budget in this unit (0: none)
    reference_hours: float    # setup + reference_units * per_unit, in hours
    threads: int
    code_version: str
    flops_per_unit: float = float("nan")  # counted (bench.perf.roofline) when asked for; NaN otherwise


def _cpu_seconds(run: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def _timed_pair(unit: str, method: str, ipc: int, run: Callable[[int], object], k1: int, k2: int,
                repeats: int, raw: list[list]) -> tuple[float, float]:
    """Alternate k1 and k2 runs ``repeats`` times; (median per-unit, median setup) CPU-seconds.

    Under :func:`bench.perf.roofline.counting` the unit's FLOPs are counted first, in untimed runs."""
    from bench.perf.roofline import record_unit_flops

    record_unit_flops(unit, method, ipc, run, k1, k2)
    per, setup = [], []
    for r in range(repeats):
        t1, w1 = _cpu_seconds(lambda: run(k1))
        t2, w2 = _cpu_seconds(lambda: run(k2))
        raw += [[unit, method, ipc, k1, r, t1, w1], [unit, method, ipc, k2, r, t2, w2]]
        unit_cost = max(0.0, (t2 - t1) / (k2 - k1))
        per.append(unit_cost)
        setup.append(max(0.0, t1 - k1 * unit_cost))
    return statistics.median(per), statistics.median(setup)


def _subset(data: Dataset, n: int, seed: int = 0) -> Dataset:
    """``data`` with its training split cut to ``n`` class-balanced images (name kept)."""
    train = data.train
    g = torch.Generator().manual_seed(seed)
    per = max(1, n // train.num_classes)
    idx = torch.cat([torch.nonzero(train.labels == c).flatten()[torch.randperm(int((train.labels == c).sum()),
                                                                                generator=g)[:per]]
                     for c in range(train.num_classes)])
    small = ImageSet(train.data[idx], train.labels[idx], train.num_classes, data.mean, data.std)
    return dataclasses.replace(data, train=small)


def _distiller_cost(data: Dataset, method: str, ipc: int, k1: int, k2: int, repeats: int,
                    raw: list[list]) -> tuple[float, float, int]:
    from bench.methods.registry import DistillRequest, default_config, distill, get_method

    fields = get_method(method).budget_fields or ()
    config = default_config(method, data.name, ipc)
    reference = int(getattr(config, fields[0])) if fields else 0

    def run(k: int) -> None:
        distill(method, DistillRequest(data, ipc=ipc, seed=0, progress=False), config,
                overrides={f: k for f in fields})

    k1, k2 = UNITS_PER_METHOD.get(method, (k1, k2))
    per, setup = _timed_pair("outer iteration", method, ipc, run, k1, k2, repeats, raw)
    return per, setup, reference


def _mtt_cost(data: Dataset, ipc: int, k1: int, k2: int, repeats: int,
              raw: list[list]) -> tuple[float, float, int, object]:
    from bench.methods.registry import DistillRequest, default_config, distill

    config = default_config("mtt", data.name, ipc)
    buffer_dir = tempfile.mkdtemp(prefix="dasm-cost-mtt-")
    small = _subset(data, 512)
    # the fewest expert epochs the start epochs need, and one expert (see the module docstring)
    epochs = config.max_start_epoch - 1 + config.expert_epochs
    config = dataclasses.replace(config, num_experts=1, train_epochs=epochs, buffer_dir=buffer_dir,
                                 max_start_epoch_final=None, expansion_iterations=0)
    reference = int(default_config("mtt", data.name, ipc).iterations)

    def run(k: int) -> None:
        distill("mtt", DistillRequest(small, ipc=ipc, seed=0, progress=False), config, overrides={"iterations": k})

    run(1)  # builds the small buffer once, outside the timed runs
    per, setup = _timed_pair("matching iteration", "mtt", ipc, run, k1, k2, repeats, raw)
    return per, setup, reference, config


def _expert_epoch_cost(data: Dataset, repeats: int, raw: list[list],
                       n: int = EXPERT_SUBSET) -> tuple[float, float, int]:
    """CPU-seconds of one expert epoch over the whole training split (timed on ``n`` images).

    An expert epoch (mtt-distillation buffer.py) is a ConvNet SGD epoch over real images at batch 256
    with DSA: the evaluator's training loop under ``dc`` does the same arithmetic, so it is timed with
    that (the harness does not import a method's module)."""
    from bench.methods.registry import default_config
    from bench.protocols import get_protocol
    from bench.train.acceleration import Acceleration, use_options
    from bench.train.evaluation import evaluate_training_set

    config = default_config("mtt", data.name, 1)
    small = _subset(data, n)
    images, labels = small.train.images, small.train.labels
    scale = len(data.train) / len(small.train)
    protocol = get_protocol("dc" if config.dsa else "dc-nodsa")

    def run(k: int) -> None:
        with use_options(Acceleration(compile="off")):
            evaluate_training_set(images, labels, data, "convnet", protocol.with_epochs(k), 1, 0, "cpu")

    per, setup = _timed_pair("expert epoch", "mtt", 0, run, 1, 2, repeats, raw)
    from bench.perf.roofline import scale_unit_flops

    scale_unit_flops("expert epoch", "mtt", 0, scale)
    reference = config.num_experts * config.train_epochs
    return per * scale, setup, reference


def _evaluation_cost(data: Dataset, protocol_name: str, ipc: int, k1: int, k2: int, repeats: int,
                     raw: list[list]) -> tuple[float, float, int]:
    from bench.protocols import get_protocol
    from bench.train.acceleration import Acceleration, use_options
    from bench.train.evaluation import evaluate_training_set

    protocol = get_protocol(protocol_name)
    idx = _subset(data, ipc * data.num_classes).train
    images, labels = idx.images, idx.labels
    # the one test pass cancels in the slope but its noise does not: over CIFAR-10's 10,000 test
    # images (~30 CPU-s) it drowned the few epochs' difference, so score 10 test images instead
    target = data.test.subset(torch.arange(10))

    def run(k: int) -> None:
        with use_options(Acceleration(compile="off")):
            evaluate_training_set(images, labels, data, "convnet", protocol.with_epochs(k), 1, 0, "cpu",
                                  target=target)

    per, setup = _timed_pair("evaluation epoch", protocol_name, ipc, run, k1, k2, repeats, raw)
    return per, setup, protocol.epochs


def measure_costs(data: Dataset, methods: Iterable[str] = (*DISTILLERS, "mtt"), ipcs: Iterable[int] = (1, 10, 50),
                  protocols: Iterable[str] = ("dc", "dc-nodsa"), repeats: int = 5,
                  repeats_at: dict[int, int] | None = None, k: tuple[int, int] = (1, 2),
                  eval_epochs: tuple[int, int] = (2, 6), report: Callable[[str], None] = print,
                  checkpoint: Callable[[list[CostRow], list[list]], object] | None = None,
                  peak: list[list] | None = None, eval_ipcs: Iterable[int] | None = None
                  ) -> tuple[list[CostRow], list[list]]:
    """Measure every unit for ``methods`` x ``ipcs`` (+ MTT experts, + evaluation epochs per protocol).

    ``repeats_at`` lowers the repeat count at costly IPCs (``{50: 1}``); the table says how many ran.
    Returns the rows and the raw timings (:data:`RAW_COLUMNS`); ``checkpoint(rows, raw)`` is called
    after each row, so a long measurement that is stopped keeps what it measured.

    ``eval_ipcs``: the IPCs whose evaluation epochs are timed (default: ``ipcs``; an evaluation epoch
    is cheap where a distiller's iteration is not). ``peak``: a list to receive the machine's peak runs
    (:func:`bench.perf.roofline.measure_peak`, before and after the units, in this process); given,
    each unit's FLOPs are counted too (the roofline)."""
    from bench.perf.roofline import counting, measure_peak
    from bench.version import code_version

    threads, version, raw, rows = torch.get_num_threads(), code_version(), [], []
    with counting() if peak is not None else contextlib.nullcontext() as flops:
        if peak is not None:
            peak += measure_peak(repeats)
        evals = list(ipcs if eval_ipcs is None else eval_ipcs)
        _measure(data, list(methods), list(ipcs), evals, protocols, repeats, repeats_at, k, eval_epochs, report,
                 checkpoint, rows, raw, threads, version, flops)
        if peak is not None:
            peak += [[kernel, shape, r + repeats, *rest] for kernel, shape, r, *rest in measure_peak(repeats)]
    return rows, raw


def _measure(data, methods, ipcs, eval_ipcs, protocols, repeats, repeats_at, k, eval_epochs, report, checkpoint,
             rows, raw, threads, version, flops) -> None:
    def add(unit: str, method: str, ipc: int, per: float, setup: float, n: int, k1: int, k2: int, ref: int):
        counted = float("nan") if flops is None else flops.get((unit, method, ipc), float("nan"))
        rows.append(CostRow(unit, method, ipc, per, setup, n, k1, k2, ref, (setup + ref * per) / 3600, threads,
                            version, counted))
        report(f"{unit:>18} {method:>8} ipc {ipc:>3}: {per:9.3f} CPU-s per unit, setup {setup:7.2f} s "
               f"(reference {ref} units ~{rows[-1].reference_hours:.1f} h)")
        if checkpoint is not None:
            checkpoint(rows, raw)

    for ipc in sorted(set(ipcs) | set(eval_ipcs)):
        n = (repeats_at or {}).get(ipc, repeats)
        for method in methods if ipc in ipcs else ():
            if method == "mtt":
                per, setup, ref, _ = _mtt_cost(data, ipc, *k, n, raw)
                add("matching iteration", "mtt", ipc, per, setup, n, *k, ref)
            else:
                per, setup, ref = _distiller_cost(data, method, ipc, *k, n, raw)
                add("outer iteration", method, ipc, per, setup, n, *UNITS_PER_METHOD.get(method, k), ref)
        for protocol in protocols if ipc in eval_ipcs else ():
            per, setup, ref = _evaluation_cost(data, protocol, ipc, *eval_epochs, n, raw)
            add("evaluation epoch", protocol, ipc, per, setup, n, *eval_epochs, ref)
    if "mtt" in methods:
        per, setup, ref = _expert_epoch_cost(data, repeats, raw)
        add("expert epoch", "mtt", 0, per, setup, repeats, 1, 2, ref)


def cost_markdown(rows: list[CostRow], dataset: str = "", machine: str = "",
                  peak: dict[str, float] | None = None) -> str:
    """The cost table: CPU-seconds per unit, setup, repeats, the reference budget and its hours;
    with ``peak`` (GFLOP/s per kernel, :func:`bench.perf.roofline.peak_gflops`) the roofline columns too."""
    best = max(peak.values()) if peak else None
    head = ("| unit | method | IPC | CPU-s per unit | setup CPU-s | runs per size | reference budget (units) "
            "| reference budget, CPU hours |")
    lines = [head + (" GFLOP per unit | GFLOP/s | % of peak |" if best else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if best else "")]
    for r in rows:
        ipc = "-" if r.ipc == 0 else str(r.ipc)
        ref = f"{r.reference_units:,}" if r.reference_units else "-"
        line = (f"| {r.unit} | {r.method} | {ipc} | {r.per_unit_seconds:.3f} | {r.setup_seconds:.2f} | "
                f"{r.repeats} | {ref} | {r.reference_hours:.2f} |")
        if best:
            line += " " + " | ".join(roofline_cells(r.flops_per_unit, r.per_unit_seconds, best)) + " |"
        lines.append(line)
    versions = sorted({r.code_version for r in rows})
    threads = sorted({r.threads for r in rows})
    caption = (f"CPU time per unit{' on ' + dataset if dataset else ''}: median over the runs of "
               f"(t(k2) - t(k1)) / (k2 - k1), process CPU seconds, {'/'.join(map(str, threads))} torch thread(s)"
               f"{', ' + machine if machine else ''}; code {', '.join(versions)}. Reference budget: the "
               f"method's default (reference) config for the setting; its hours = setup + units x per unit, "
               f"an extrapolation, not a run. Expert epoch: one epoch over the training split, per expert "
               f"(reference = experts x epochs).")
    if best:
        caption += (" Roofline: FLOPs per unit counted by torch's FlopCounterMode (matmuls and convolutions, "
                    "forward and backward) at the same two sizes; GFLOP/s = FLOPs per unit / CPU-s per unit; "
                    f"peak = the best measured kernel in this run ({best:.1f} GFLOP/s: "
                    + ", ".join(f"{k} {v:.1f}" for k, v in sorted(peak.items())) + "; raw runs in peak.csv).")
    return "\n".join(lines) + "\n\n" + caption + "\n"


def roofline_cells(flops: float, seconds: float, peak: float) -> list[str]:
    """GFLOP per unit, achieved GFLOP/s and % of ``peak``, formatted ("-" when not counted)."""
    if not flops == flops or seconds <= 0:  # NaN: not counted
        return ["-", "-", "-"]
    rate = flops / seconds / 1e9
    return [f"{flops / 1e9:.2f}", f"{rate:.2f}", f"{100 * rate / peak:.1f}"]


def machine_note() -> str:
    """CPU model, cores and the 1-minute load average at the time of writing (a loaded machine's
    CPU-seconds are a little higher: shared caches)."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores, load average {load:.1f}"


def write_costs(rows: list[CostRow], raw: list[list], out: str, dataset: str, machine: str,
                peak_raw: list[list] | None = None) -> list:
    """``cost.csv`` (rows), ``cost_raw.csv`` (every timed run) and ``cost.md`` under ``out``; with
    ``peak_raw`` also ``peak.csv`` (the peak kernels' runs) and the roofline columns."""
    import pandas as pd

    from bench.files import write_atomically

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([dataclasses.astuple(r) for r in rows], columns=COLUMNS)
    table.insert(0, "dataset", dataset)
    table["machine"] = machine
    raw_table = pd.DataFrame(raw, columns=RAW_COLUMNS)
    raw_table.insert(0, "dataset", dataset)
    paths = [out_dir / "cost.csv", out_dir / "cost_raw.csv", out_dir / "cost.md"]
    write_atomically(paths[0], table.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    write_atomically(paths[1], raw_table.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    peak = None
    if peak_raw:
        from bench.perf.roofline import PEAK_COLUMNS, peak_gflops

        peak = peak_gflops(peak_raw)
        paths.append(out_dir / "peak.csv")
        write_atomically(paths[3], pd.DataFrame(peak_raw, columns=PEAK_COLUMNS).to_csv(
            index=False, float_format="%.6g", lineterminator="\n"))
    write_atomically(paths[2], cost_markdown(rows, dataset, machine, peak))
    return paths



# ----------------------------------------------------------------------------- estimates from a committed table

def cost_table_for(dataset: str, root: str = "results") -> Path | None:
    """The committed cost table of ``dataset`` (or of the dataset it copies, ``cifar10-jpeg`` ->
    ``results/cifar10/cost/cost.csv``), None when there is none."""
    from bench.data.datasets import settings_name

    for name in dict.fromkeys([dataset, settings_name(dataset)]):
        path = Path(root) / name / "cost" / "cost.csv"
        if path.is_file():
            return path
    return None


class CostEstimator:
    """CPU-seconds of a cell from a cost table: distillation (setup + budget x per unit; MTT's expert
    buffer not included) and evaluation (models x (setup + epochs x per epoch)); None where the table
    has no row for it.

    Example::

        est = CostEstimator.load(cost_table_for("cifar10-jpeg"))
        est.evaluation_seconds("dc", 10, epochs=1000, models=5)
    """

    def __init__(self, rows: "pd.DataFrame") -> None:
        self.rows = rows

    @classmethod
    def load(cls, path) -> "CostEstimator":
        import pandas as pd

        return cls(pd.read_csv(path))

    def _row(self, unit: str, method: str, ipc: int):
        r = self.rows[(self.rows["unit"] == unit) & (self.rows["method"] == method) & (self.rows["ipc"] == ipc)]
        return None if r.empty else r.iloc[0]

    def distill_seconds(self, method: str, ipc: int, config) -> float | None:
        from bench.methods.registry import get_method

        fields = get_method(method).budget_fields
        if not fields:
            return None
        unit = "matching iteration" if method == "mtt" else "outer iteration"
        r = self._row(unit, method, ipc)
        if r is None:
            return None
        return float(r["setup_seconds"]) + int(getattr(config, fields[0])) * float(r["per_unit_seconds"])

    def evaluation_seconds(self, protocol: str, ipc: int, epochs: int, models: int) -> float | None:
        r = self._row("evaluation epoch", protocol.partition("@")[0], ipc)
        if r is None:
            return None
        return models * (float(r["setup_seconds"]) + epochs * float(r["per_unit_seconds"]))
