"""Budget ladders reported (never recomputed): one row per (IPC, method, rung) with validation and
test accuracy and 95% intervals over seeds, the rung each curve justifies, chosen on VALIDATION
accuracy only (:func:`choose_rung`; a rung without validation scores, a ``full`` pool, is reported
but never chosen), the per-IPC tables and the figure.

Example::

    summary = summarise_budget(spec, "results/digits/budget")
    write_budget_reports(summary, "results/digits/budget", "digits")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.report.stats import t_interval
from bench.spec.budget import BudgetSpec, budget_label, cell_keys
from bench.store.results import ResultsTable

WITHIN_POINTS = 0.5  # a rung this close to the best rung's mean counts as converged


def budget_rows(spec: BudgetSpec, out: Path) -> pd.DataFrame:
    table = ResultsTable(out)
    return table.load() if table.exists() else pd.DataFrame(columns=["cell_key"])




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
    df = budget_rows(spec, Path(out)).set_index("cell_key")
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
                group.append({"val_mean": val.mean if val else math.nan,
                              "val_ci95": val.half_width if val else math.nan,
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
    from bench.report.pictures import pyplot

    plt = pyplot()

    from bench.report.pictures import save_figure
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
        fig.suptitle("budget ladder: accuracy vs distillation time\n"
                     "(ring = budget chosen on validation; bars = 95% CI)")
        fig.tight_layout()
    return save_figure(fig, path)
