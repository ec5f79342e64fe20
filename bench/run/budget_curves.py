"""Budget curves: each method distilled at a ladder of budgets (x1, x2, x4, ... of its configured
one), accuracy recorded against measured distillation seconds, and the budget the curve justifies.

Rung ``r`` multiplies the method's budget fields (``MethodSpec.budget_fields``, declared where the
method registers: ``iterations`` for DC/DSA/DM/IDC, MTT's ``iterations`` and
``expansion_iterations``). DASM and its ablations (configs with ``base``/``base_overrides``) have
their base's budget: the rung scales the base's fields of every segment through ``base_overrides``.
Coresets have no budget and are refused. Every rung distils from scratch (its config, hence its
set's key, differs from every other rung's), through the grid runner, so resume, claims and workers
come with it; rungs run cheapest first and ``max_hours`` stops before a rung projected to overrun.

The rung is chosen on validation accuracy: every rung distils from ``train-val`` (the training
split less its validation part), each evaluation model is scored on the validation split too
(``acc_val``), the choice reads only that, and test accuracy is reported at every rung, the chosen
one included. Rows without a validation score (a ``full`` pool) are summarised but never chosen.

Example::

    run_budget(BudgetSpec(methods=["dm", "idc"], dataset="digits", ipcs=[10], seeds=[0, 1, 2],
                          rungs=[1, 2, 4]), "results/digits/budget")
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.methods.registry import apply_overrides, default_config, get_method
from bench.report.stats import t_interval
from bench.run.runner import run_grid
from bench.spec.cells import cells
from bench.spec.grid import GridSpec
from bench.store.results import ResultsTable
from bench.vocabulary import OWN_PROTOCOL

ARCH = "convnet"
WITHIN_POINTS = 0.5  # a rung this close to the best rung's mean counts as converged


@dataclass
class BudgetSpec:
    """Methods x IPCs x seeds on one dataset, each at every rung of ``rungs``.

    ``overrides``: per-method config fields applied before scaling (the x1 budget itself may be set,
    e.g. ``{"dm": {"iterations": 50}}``); ``protocol`` OWN_PROTOCOL ("default") = each method's own."""

    methods: list[str]
    dataset: str
    ipcs: list[int]
    seeds: list[int] = field(default_factory=lambda: [0])
    rungs: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    protocol: str = OWN_PROTOCOL
    epochs: int | None = None
    num_models: int = 5
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_hours: float | None = None
    data_root: str | None = None
    download: bool = False
    train_split: str = "train-val"  # the choice needs a held-out validation split (module docstring)

    def validate(self) -> None:
        if not self.methods or not self.ipcs or not self.seeds or not self.rungs:
            raise BenchError("budget needs at least one method, IPC, seed and rung")
        bad = [r for r in self.rungs if not isinstance(r, int) or r <= 0]
        if bad:
            raise BenchError(f"rungs must be positive integers (budget multipliers), got {bad[0]}")
        if self.max_hours is not None and not self.max_hours > 0:
            raise BenchError(f"--max-hours must be positive, got {self.max_hours}")
        unknown = sorted(set(self.overrides) - set(self.methods))
        if unknown:
            raise BenchError(f"override for {unknown[0]!r}, which is not among the methods {','.join(self.methods)}")
        for method in self.methods:
            get_method(method)
            budget_fields_of(self, method)  # a method without a budget is refused before anything runs
        for ipc in self.ipcs:
            grid = self.grid(max(self.rungs), ipc)
            grid.validate()  # dataset, IPC, protocol
            for method in self.methods:
                rung_config(self, method, ipc, max(self.rungs))

    def grid(self, rung: int, ipc: int) -> GridSpec:
        """The grid of one rung at one IPC (a method's x1 budget may depend on IPC): every
        method's config scaled by ``rung``."""
        overrides = {m: rung_overrides(self, m, ipc, rung) for m in self.methods}
        return GridSpec(methods=list(self.methods), dataset=self.dataset, ipcs=[ipc], seeds=list(self.seeds),
                        archs=[ARCH], protocol=self.protocol, epochs=self.epochs, num_models=self.num_models,
                        overrides=overrides, data_root=self.data_root, download=self.download,
                        train_split=self.train_split)


# ----------------------------------------------------------------------------- the ladder

def _base_config(spec: BudgetSpec, method: str, ipc: int) -> Any:
    config = default_config(method, spec.dataset, ipc)
    user = spec.overrides.get(method)
    return apply_overrides(config, user) if user else config


def _scaled(config: Any, fields: Sequence[str], rung: int, who: str) -> dict[str, int]:
    out = {}
    for name in fields:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BenchError(f"budget field {who}.{name} must be an integer, got {value!r}")
        out[name] = value * rung
    return out


def budget_fields(method: str) -> tuple[str, ...]:
    """The method's budget fields; a method without any is a one-line error."""
    fields = get_method(method).budget_fields
    if not fields:
        raise BenchError(f"method {method!r} has no distillation budget to ladder "
                         "(no budget_fields at registration; coresets have none)")
    return fields


def budget_fields_of(spec: BudgetSpec, method: str) -> tuple[str, ...]:
    """The fields a rung scales: the method's own, or (DASM variants) its base's."""
    config = _base_config(spec, method, spec.ipcs[0])
    if _has_base(config):
        get_method(config.base)
        return budget_fields(config.base)
    return budget_fields(method)


def _has_base(config: Any) -> bool:
    return hasattr(config, "base") and hasattr(config, "base_overrides")


def rung_overrides(spec: BudgetSpec, method: str, ipc: int, rung: int) -> dict[str, Any]:
    """Config overrides of ``method`` at ``rung``: the user's overrides plus its budget fields x rung.

    Example::

        rung_overrides(BudgetSpec(["dm"], "digits", [10]), "dm", 10, 4)   # {"iterations": 800}
    """
    config = _base_config(spec, method, ipc)
    user = dict(spec.overrides.get(method, {}))
    if _has_base(config):  # DASM and its ablations
        fields = budget_fields(config.base)
        schedule = getattr(config, "resolved_schedule", None)
        sizes = sorted(set(schedule(ipc).sizes)) if schedule else [ipc]
        # every segment's base config at its own size, then scaled; one dict serves all segments,
        # so their x1 budgets must agree (they do for the shipped defaults)
        per_size = [_scaled(apply_overrides(default_config(config.base, spec.dataset, n), config.base_overrides)
                            if config.base_overrides else default_config(config.base, spec.dataset, n),
                            fields, rung, config.base) for n in sizes]
        if any(p != per_size[0] for p in per_size):
            raise BenchError(f"{method}'s segments ({'+'.join(map(str, sizes))} images per class) have different "
                             f"{config.base} budgets; fix them with base_overrides")
        return {**user, "base_overrides": {**config.base_overrides, **per_size[0]}}
    return {**user, **_scaled(config, budget_fields(method), rung, method)}


def rung_config(spec: BudgetSpec, method: str, ipc: int, rung: int) -> Any:
    """The resolved config ``method`` distils with at ``rung``."""
    return apply_overrides(default_config(method, spec.dataset, ipc), rung_overrides(spec, method, ipc, rung))


def budget_label(spec: BudgetSpec, method: str, ipc: int, rung: int) -> str:
    """``iterations=800`` (or ``base iterations=12`` for DASM): what the rung sets."""
    over = rung_overrides(spec, method, ipc, rung)
    fields = budget_fields_of(spec, method)
    if _has_base(_base_config(spec, method, ipc)):
        return "base " + " ".join(f"{k}={over['base_overrides'][k]}" for k in fields)
    return " ".join(f"{k}={over[k]}" for k in fields)


def cell_keys(spec: BudgetSpec, method: str, ipc: int, rung: int) -> dict[int, str]:
    """seed -> the results cell key of (method, ipc, rung, seed) on the ConvNet: the rung's grid's cells."""
    return {cell.seed: cell.key for cell in cells(spec.grid(rung, ipc)) if cell.method == method}


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


def _rows(spec: BudgetSpec, out: Path) -> pd.DataFrame:
    table = ResultsTable(out)
    return table.load() if table.exists() else pd.DataFrame(columns=["cell_key"])


def projected_seconds(spec: BudgetSpec, out: Path, done_rung: int, next_rung: int) -> float:
    """Task-seconds ``next_rung`` should take: the recorded distillation seconds of ``done_rung``
    scaled by the budget ratio, plus its evaluation seconds (evaluation does not scale)."""
    df = _rows(spec, out).set_index("cell_key")
    total = 0.0
    for method in spec.methods:
        for ipc in spec.ipcs:
            for key in cell_keys(spec, method, ipc, done_rung).values():
                if key in df.index:
                    row = df.loc[key].fillna(0.0)  # a row without timings projects nothing
                    total += float(row["distill_seconds"]) * next_rung / done_rung + float(row["eval_seconds"])
    return total


def choose_rung(points: Sequence[tuple[int, float, float]]) -> tuple[int, str]:
    """``points``: (rung, mean, half-width) of one method at one IPC. Returns the chosen rung, the
    smallest whose mean is within ``WITHIN_POINTS`` of the best rung's mean or whose interval
    overlaps the best's, and a flag: "not converged: ..." when that is the largest rung measured
    (the percentage is the next-smaller rung's mean as a share of the best rung's).

    Example::

        choose_rung([(1, 80.0, 1.0), (2, 85.0, 0.5), (4, 85.3, 0.5)])   # (2, "")
    """
    pts = sorted(points)
    _, best, best_hw = max(pts, key=lambda p: (p[1], -p[0]))
    chosen = next(r for r, m, hw in pts if m >= best - WITHIN_POINTS or abs(best - m) <= hw + best_hw)
    if chosen != pts[-1][0]:
        return chosen, ""
    if len(pts) == 1:
        return chosen, "not converged: one rung measured"
    prev = pts[-2]
    return chosen, f"not converged: x{prev[0]} is {100.0 * prev[1] / best:.1f}% of best rung"


def summarise_budget(spec: BudgetSpec, out: str | Path) -> pd.DataFrame:
    """One row per (ipc, method, rung) measured: budget, seeds, distill seconds, validation and test
    accuracy means and 95% intervals over seeds, and the chosen-budget mark and flag. The rung is
    chosen on the validation means (:func:`choose_rung`); a ladder with a rung lacking validation
    scores is not chosen, flagged "no validation split" (never chosen on test)."""
    df = _rows(spec, Path(out)).set_index("cell_key")
    records = []
    for ipc in spec.ipcs:
        for method in spec.methods:
            group = []
            for rung in sorted(set(spec.rungs)):
                keys = [k for k in cell_keys(spec, method, ipc, rung).values() if k in df.index]
                if not keys:
                    continue
                rows = df.loc[keys]
                iv = t_interval(rows["acc_last"].tolist())  # bench.report.stats: the one interval
                vals = rows["acc_val"].tolist() if "acc_val" in rows else []
                val = t_interval(vals) if vals and not any(math.isnan(v) for v in vals) else None
                group.append({"val_mean": val.mean if val else math.nan, "val_ci95": val.half_width if val else math.nan,
                              "dataset": spec.dataset, "ipc": ipc, "method": method, "rung": rung,
                              "budget": budget_label(spec, method, ipc, rung), "seeds": len(keys),
                              "distill_s": float(rows["distill_seconds"].mean()), "acc_mean": iv.mean,
                              "acc_ci95": iv.half_width,
                              "protocol": str(rows["protocol"].iloc[0]), "chosen": False, "flag": "",
                              "train_split": str(rows["train_split"].iloc[0]) if "train_split" in rows else "full"})
            if group and any(math.isnan(g["val_mean"]) for g in group):
                group[-1]["flag"] = "no validation split: not chosen"
            elif group:
                chosen, flag = choose_rung([(g["rung"], g["val_mean"], g["val_ci95"]) for g in group])
                for g in group:
                    if g["rung"] == chosen:
                        g["chosen"], g["flag"] = True, flag
            records.extend(group)
    return pd.DataFrame(records, columns=["dataset", "ipc", "method", "rung", "budget", "seeds", "distill_s",
                                          "val_mean", "val_ci95", "acc_mean", "acc_ci95", "protocol", "chosen",
                                          "flag", "train_split"])


# ----------------------------------------------------------------------------- tables and figure

def budget_markdown(summary: pd.DataFrame) -> str:
    """The Markdown table of one (dataset, ipc)."""
    from bench.report.plots import frame_to_markdown

    shown = pd.DataFrame({
        "method": summary["method"], "rung": [f"x{r}" for r in summary["rung"]], "budget": summary["budget"],
        "seeds": summary["seeds"], "distill s (mean)": summary["distill_s"].map(lambda v: f"{v:.1f}"),
        "validation % (95% CI)": [_interval(m, h) for m, h in zip(summary["val_mean"], summary["val_ci95"])],
        "test % (95% CI)": [_interval(m, h) for m, h in zip(summary["acc_mean"], summary["acc_ci95"])],
        "chosen": ["**chosen**" + (f" ({f})" if f else "") if c else f for c, f in
                   zip(summary["chosen"], summary["flag"])],
    })
    ds, ipc = summary["dataset"].iloc[0], summary["ipc"].iloc[0]
    caption = (f"Budget ladder, {ds} IPC {ipc} (ConvNet, {', '.join(sorted(set(summary['protocol'])))}): "
               f"last-epoch accuracy, mean ± 95% t-interval over {_seeds(summary)} seeds (one set each), on the "
               f"validation split (held out of the training pool, {_pools(summary)}) and on the test split, against "
               f"measured distillation seconds. Chosen on validation only: the smallest rung whose validation mean "
               f"is within {WITHIN_POINTS} points of the best rung's or whose interval overlaps it; test accuracy "
               "is reported, not used. \"not converged\" when that is the largest rung measured (the percentage "
               "is the next-smaller rung's validation mean as a share of the best).\n\n")
    return caption + frame_to_markdown(shown)


def _interval(mean: float, half: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.2f} ± {half:.2f}" if not math.isnan(half) else f"{mean:.2f}"


def _seeds(summary: pd.DataFrame) -> str:
    n = sorted(set(int(v) for v in summary["seeds"]))
    return str(n[0]) if len(n) == 1 else f"{n[0]}-{n[-1]}"


def _pools(summary: pd.DataFrame) -> str:
    return "pool train-val" if "train_split" not in summary else "pool " + "/".join(sorted(set(summary["train_split"])))


def with_stored_summaries(summary: pd.DataFrame, out: Path, dataset: str) -> pd.DataFrame:
    """``summary`` plus the (IPC, method) ladders already summarised in ``out`` that this run did not
    measure, so that a later run of one method or one IPC adds to the tables and the figure instead
    of replacing them with its own part."""
    frames = [summary]
    ran = set(zip(summary["ipc"].astype(int), summary["method"].astype(str)))
    for path in sorted(out.glob(f"budget-{dataset}-ipc*.csv")):
        stored = pd.read_csv(path, dtype={"budget": str, "flag": str, "method": str, "protocol": str})
        if not set(summary.columns) <= set(stored.columns):
            continue  # written by another version of this module: leave it alone
        stored["flag"] = stored["flag"].fillna("")
        stored["chosen"] = stored["chosen"].astype(bool)
        keep = [(int(i), str(m)) not in ran for i, m in zip(stored["ipc"], stored["method"])]
        frames.append(stored.loc[keep, list(summary.columns)])
    merged = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else summary
    from bench.report.style import method_sort_key  # the registry's order, as the report's tables use

    order = merged["method"].map(lambda m: method_sort_key(str(m)))
    return merged.assign(_order=order).sort_values(["ipc", "_order", "rung"], kind="stable") \
        .drop(columns="_order").reset_index(drop=True)


def write_budget_reports(summary: pd.DataFrame, out: str | Path, dataset: str) -> list[Path]:
    """``budget-<dataset>-ipc<N>.{md,csv}`` per IPC and ``budget-<dataset>.{png,pdf}``, from this
    run's summary and the ladders stored beside it (:func:`with_stored_summaries`)."""
    from bench.files import write_atomically

    out = Path(out)
    summary = with_stored_summaries(summary, out, dataset)
    written: list[Path] = []
    for ipc, g in summary.groupby("ipc"):
        stem = out / f"budget-{dataset}-ipc{ipc}"
        write_atomically(stem.with_suffix(".md"), budget_markdown(g))
        write_atomically(stem.with_suffix(".csv"), g.to_csv(index=False, float_format="%.4f"))
        written += [stem.with_suffix(".md"), stem.with_suffix(".csv")]
    if len(summary):
        written += budget_figure(summary, out / f"budget-{dataset}.png")
    return written


def budget_figure(summary: pd.DataFrame, path: str | Path) -> list[Path]:
    """Accuracy against distillation seconds (log x), a curve per method, error bars = 95% intervals,
    rungs labelled, the chosen rung ringed; one panel per IPC. Drawn in the paper style
    (:mod:`bench.report.style`: colour-blind-safe colours, a marker per method, TrueType fonts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report.plots import save_figure
    from bench.report.style import (
        accuracy_axis,
        accuracy_yerr,
        log_ticks,
        method_style,
        ordered_methods,
        paper_style,
        size,
    )

    ipcs = sorted(summary["ipc"].unique())
    with paper_style():
        fig, axes = plt.subplots(1, len(ipcs), figsize=size("double" if len(ipcs) > 1 else "single", 2.8),
                                 squeeze=False)
        for ax, ipc in zip(axes[0], ipcs):
            at_ipc = summary[summary["ipc"] == ipc]
            for method in ordered_methods(at_ipc["method"].astype(str).unique()):
                g = at_ipc[at_ipc["method"] == method].sort_values("rung")
                style = method_style(method)
                colour = style["color"]
                ax.errorbar(g["distill_s"], g["acc_mean"], yerr=accuracy_yerr(g["acc_mean"], g["acc_ci95"]), capsize=2,
                            elinewidth=0.7, ms=3.5, **{k: v for k, v in style.items() if k != "zorder"})
                for x, y, r in zip(g["distill_s"], g["acc_mean"], g["rung"]):
                    ax.annotate(f"x{r}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7,
                                color=colour)
                c = g[g["chosen"]]
                ax.scatter(c["distill_s"], c["acc_mean"], s=70, facecolors="none", edgecolors=colour, lw=1.0)
            ax.set_xscale("log")
            ax.set_xlabel("distillation seconds (mean, log)")
            ax.set_ylabel("test accuracy, last epoch (%)")
            log_ticks(ax, "x")  # at least three labelled ticks, plain numbers
            accuracy_axis(ax)
            ax.set_title(f"{summary['dataset'].iloc[0]} IPC {ipc}")
            ax.grid(True, alpha=0.3, which="both")
            ax.legend(loc="best")  # wherever it hides the fewest points
        # two short lines: one long line ran off both edges of a single-column figure
        fig.suptitle("budget ladder: accuracy vs distillation time\n(ring = budget chosen on validation; bars = 95% CI)")
        fig.tight_layout()
    return save_figure(fig, path)
