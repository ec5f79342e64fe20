"""Paper figures from stored results, all in the one style of :mod:`bench.report.style` and written by
:func:`bench.report.pictures.save_figure` (PNG + PDF, TrueType fonts):

- :func:`saturation_panels`: accuracy vs IPC with 95% bands; beside it test error on a log axis,
  which keeps high-IPC differences visible when all accuracies crowd near full data; and the
  improvement over random (paired, same protocol) with intervals on a symmetric-log axis;
- :func:`paired_figure`: a method minus the references it registered (DASM: idc, seq), paired per seed, with
  intervals (filled markers: the interval excludes zero);
- :func:`cross_arch_heatmap`: accuracy of each method on each architecture;
- :func:`seconds_figure`: accuracy against distillation seconds.

Example::

    df = ResultsTable("results/digits").load()
    saturation_panels(own_rows(df), df, read_full_data("results/digits"), "results/digits/saturation")
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bench.report.metrics import improvement_over_random
from bench.report.pictures import pyplot, save_figure
from bench.report.stats import paired_difference, per_seed, t_interval
from bench.report.style import (
    BASE_ARCH,
    accuracy_axis,
    accuracy_yerr,
    clip_accuracy,
    log_ticks,
    method_style,
    ordered_methods,
    paper_style,
    pretty_arch,
    size,
)
from bench.vocabulary import REFERENCE_METHOD

FORMATS = ("png", "pdf")


def _plt():
    return pyplot()


def _ipc_axis(ax, ipcs: Sequence[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(list(ipcs))
    ax.set_xticklabels([str(int(i)) for i in ipcs])
    ax.minorticks_off()
    ax.set_xlabel("images per class (IPC, log)")


def _legend_rect(fig, entries: int, ncol: int) -> tuple[float, float, float, float]:
    """``tight_layout`` rect leaving room for a figure legend of ``entries`` in ``ncol`` columns
    along the bottom (about 0.15 in per 7 pt row), added to the figure's height so the panels keep
    theirs; the legend stays inside the printed width."""
    rows = math.ceil(entries / max(1, ncol))
    # the legend gets height of its own: a six-row legend once squashed the panels above it
    width, height = fig.get_size_inches()
    legend = 0.15 * rows + 0.05
    fig.set_size_inches(width, height + legend)
    return (0, legend / (height + legend), 1, 1)


def legend_columns(fig, labels: list[str], cap: int, handle_in: float = 0.45) -> int:
    """Columns for a bottom legend that fit the figure's width: a column is the handle plus the
    longest label at ~0.055 in per 7 pt character (six columns of long labels ran off both edges)."""
    longest = max((len(str(lab)) for lab in labels), default=1)
    fit = int(fig.get_size_inches()[0] // (handle_in + 0.055 * longest))
    return max(1, min(cap, len(labels), fit))


def _jitter(k: int, n: int, spread: float = 0.12) -> float:
    """A multiplicative x offset (log axis) so that error bars of n methods do not overlap."""
    return float(np.exp(spread * ((k - (n - 1) / 2) / max(1, n - 1)))) if n > 1 else 1.0


def saturation_panels(rows: pd.DataFrame, all_rows: pd.DataFrame, full: dict[str, dict[str, Any]],
                      path: str | os.PathLike, metric: str = "acc_last", title: str = "",
                      formats: Sequence[str] = FORMATS) -> list[Path]:
    """(a) accuracy vs IPC (mean, 95% band), (b) test error on a log axis, (c) improvement over
    random with 95% paired intervals (symmetric-log axis: linear within ±2 points)."""
    from bench.store.full_data import full_data_label, references_for_rows

    plt = _plt()
    methods = ordered_methods(rows["method"])
    ipcs = sorted(int(i) for i in rows["ipc"].unique())
    random_rows = all_rows[all_rows["method"] == REFERENCE_METHOD]
    with paper_style():
        fig, (left, error, right) = plt.subplots(1, 3, figsize=size("double", 2.5))
        others = [m for m in methods if m != REFERENCE_METHOD]
        # random once per protocol of the view: each method's same-protocol baseline is on the plot
        view_protocols = sorted(rows[rows["method"] != REFERENCE_METHOD]["protocol"].astype(str).unique())
        lines: list[tuple[str, pd.DataFrame, dict]] = []
        for m in methods:
            if m != REFERENCE_METHOD:
                lines.append((m, rows[rows["method"] == m], method_style(m)))
                continue
            protocols = view_protocols or sorted(rows[rows["method"] == m]["protocol"].astype(str).unique())
            present = set(random_rows["protocol"].astype(str))
            for k, protocol in enumerate(p for p in protocols if p in present):
                g = random_rows[random_rows["protocol"].astype(str) == protocol]
                style = {**method_style(m), "color": ("#000000", "#777777", "#BBBBBB")[min(k, 2)],
                         "label": f"{REFERENCE_METHOD}, {protocol}" if len(protocols) > 1 else REFERENCE_METHOD}
                lines.insert(k, (m, g[g["arch"].isin(rows["arch"].unique())], style))
        extent: list[float] = [0.0]
        for m, g, style in lines:
            xs, means, lows, highs, diffs = [], [], [], [], []
            for ipc in ipcs:
                cell = g[g["ipc"] == ipc]
                if cell.empty:
                    continue
                iv = t_interval(per_seed(cell, metric).values())
                xs.append(ipc)
                means.append(iv.mean)
                lows.append(iv.low if not math.isnan(iv.half_width) else iv.mean)
                highs.append(iv.high if not math.isnan(iv.half_width) else iv.mean)
                rand = random_rows[(random_rows["ipc"] == ipc) & (random_rows["protocol"] == cell["protocol"].iloc[0])
                                   & (random_rows["arch"] == cell["arch"].iloc[0])]
                diffs.append(improvement_over_random(per_seed(cell, metric), per_seed(rand, metric)))
            left.plot(xs, means, **style)
            # an interval past 100 % is drawn to 100: no accuracy lies beyond it
            left.fill_between(xs, clip_accuracy(lows), clip_accuracy(highs), color=style["color"], alpha=0.10, lw=0)
            error.plot(xs, [100 - v for v in means], **{**style, "label": None})
            if m == REFERENCE_METHOD:
                continue
            k = others.index(m)
            x = [xi * _jitter(k, len(others)) for xi, d in zip(xs, diffs) if not math.isnan(d.mean)]
            d_ok = [d for d in diffs if not math.isnan(d.mean)]
            extent += [d.mean - e for d, e in zip(d_ok, [0 if math.isnan(d.half_width) else d.half_width
                                                           for d in d_ok])]
            extent += [d.mean + (0 if math.isnan(d.half_width) else d.half_width) for d in d_ok]
            err = [0 if math.isnan(d.half_width) else d.half_width for d in d_ok]
            right.errorbar(x, [d.mean for d in d_ok], yerr=err, capsize=1.5, elinewidth=0.7,
                           **{**style, "label": None})
        dataset = str(rows["dataset"].iloc[0]) if len(rows) else None
        refs = references_for_rows(full, rows["protocol"].astype(str).unique(), dataset)
        for k, (name, (rec, foreign)) in enumerate(refs.items()):
            ls = (0, (4, 2)) if k == 0 else (0, (1, 1))
            acc = float(rec["acc"])
            left.axhline(acc, color="#555555", lw=0.9, ls=ls, label=f"full data, {full_data_label(name, foreign)} "
                         f"({acc:.1f})", zorder=1)
            error.axhline(100 - acc, color="#555555", lw=0.9, ls=ls, zorder=1)
        for ax in (left, error, right):
            _ipc_axis(ax, ipcs)
        error.set_yscale("log")
        error.set_ylabel("test error (%, log)")
        from matplotlib.ticker import FuncFormatter

        error.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        # minor ticks in plain numbers too, only where the axis spans under a decade (CIFAR-10's
        # 65-85% error had no major tick and its minor ones read "8 x 10^1")
        error.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if error.get_ylim()[1] / max(error.get_ylim()[0], 1e-9) < 10 else ""))
        right.set_yscale("symlog", linthresh=2.0)
        low, high = min(extent), max(extent)  # symlog autoscaling clips points at the edge: pad by hand
        right.set_ylim(low - 0.15 * max(abs(low), 2.0), high + 0.15 * max(abs(high), 2.0))
        right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
        label = "last-epoch" if metric == "acc_last" else "best"
        left.set_ylabel(f"test accuracy, {label} (%)")
        accuracy_axis(left)
        right.axhline(0, color="black", lw=0.7, zorder=1)
        right.set_ylabel("over random (points, symlog)")  # the axis is linear only within ±2
        left.set_title("(a) accuracy, 95% band")
        error.set_title("(b) error: high-IPC differences")
        right.set_title("(c) vs random, paired 95% CI")
        handles, labels = left.get_legend_handles_labels()
        ncol = legend_columns(fig, labels, 6, handle_in=0.55)
        fig.legend(handles, labels, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, 0.0),
                   handlelength=2.6, columnspacing=1.2)
        if title:
            fig.suptitle(title, fontsize=8)
        fig.tight_layout(rect=_legend_rect(fig, len(labels), ncol))
        return save_figure(fig, path, formats)


def _paired_lines(ax, rows: pd.DataFrame, pairs: Sequence[tuple[str, str, str, dict]], ipcs: Sequence[int],
                  metric: str, slots: Sequence[str] | None = None) -> None:
    """One line per ``(a, b, label, style)``: a − b per IPC, paired per seed, 95% error bars;
    hollow markers, filled where the interval excludes zero. ``slots``: the labels in jitter order
    (a method keeps its horizontal offset across panels)."""
    slots = list(slots) if slots is not None else [p[2] for p in pairs]
    for a, b, label, style in pairs:
        k = slots.index(label)
        xs, ds = [], []
        for ipc in ipcs:
            da = per_seed(rows[(rows["method"] == a) & (rows["ipc"] == ipc)], metric)
            db = per_seed(rows[(rows["method"] == b) & (rows["ipc"] == ipc)], metric)
            d = paired_difference(da, db)
            if not math.isnan(d.mean):
                xs.append(ipc * _jitter(k, len(slots), 0.08))
                ds.append(d)
        err = [0 if math.isnan(d.half_width) else d.half_width for d in ds]
        colour, marker = style["color"], style["marker"]
        ax.errorbar(xs, [d.mean for d in ds], yerr=err, color=colour, marker=marker, mfc="white", ms=5,
                    ls="-", lw=1.0, capsize=2, elinewidth=0.8, label=label)
        for x, d in zip(xs, ds):
            if d.excludes_zero:
                ax.plot([x], [d.mean], marker=marker, color=colour, ms=5, zorder=4)
    ax.axhline(0, color="black", lw=0.7)
    _ipc_axis(ax, ipcs)


def paired_figure(rows: pd.DataFrame, method: str, against: Sequence[tuple[str, str]], path: str | os.PathLike,
                  metric: str = "acc_last", title: str = "", formats: Sequence[str] = FORMATS) -> list[Path]:
    """Paired differences of ``method`` to each ``(reference, label)`` per IPC (a method's registered
    ``paired_against``; DASM: its base and seq); [] when no pair is present.

    Example::

        paired_figure(rows, "dasm", get_method("dasm").paired_against, "results/digits/dasm_difference_own")
    """
    plt = _plt()
    # each difference in the look of the method it is taken against: one palette, the registry's
    pairs = [(method, b, label, method_style(b)) for b, label in against if {method, b} <= set(rows["method"])]
    if not pairs:
        return []
    ipcs = sorted(int(i) for i in rows["ipc"].unique())
    with paper_style():
        fig, ax = plt.subplots(figsize=size("single", 2.8))
        _paired_lines(ax, rows, pairs, ipcs, metric)
        ax.set_ylabel("difference (points)")
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=2, handlelength=1.8,
                   columnspacing=1.0, bbox_to_anchor=(0.5, 0.0))
        ax.set_title((f"{title}\n" if title else "") + "paired per seed, 95% CI; filled: CI excludes 0")
        fig.tight_layout(rect=_legend_rect(fig, len(pairs), 2))
        return save_figure(fig, path, formats)


def paired_difference_panels(rows: pd.DataFrame, references: Sequence[str], path: str | os.PathLike,
                             metric: str = "acc_last", title: str = "",
                             formats: Sequence[str] = FORMATS) -> list[Path]:
    """One panel per reference method: every other method minus it per IPC, paired per seed, with
    95% intervals (the claim figure). [] when no reference is among the rows.

    Example::

        paired_difference_panels(rows, ["idc", "seq"], "results/digits/claim/paired_differences")
    """
    plt = _plt()
    present = set(rows["method"])
    refs = [r for r in references if r in present]
    if not refs:
        return []
    ipcs = sorted(int(i) for i in rows["ipc"].unique())
    with paper_style():
        fig, axes = plt.subplots(1, len(refs), figsize=size("double" if len(refs) > 1 else "single", 2.9),
                                 sharey=True, squeeze=False)
        handles: dict[str, Any] = {}
        everyone = [m for m in ordered_methods(present) if m != REFERENCE_METHOD]
        for ax, ref in zip(axes[0], refs):
            pairs = [(m, ref, m, method_style(m)) for m in everyone if m != ref]
            _paired_lines(ax, rows, pairs, ipcs, metric, slots=everyone)
            ax.set_title(f"method − {ref}")
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        # a coreset 50 points down at IPC 1 would flatten the 1-point differences that matter at
        # high IPC: beyond ±10 points the axis is symmetric-log (linear within ±2) and says so
        spread = max((abs(v) for ax in axes[0] for line in ax.get_lines() for v in line.get_ydata()), default=0.0)
        if spread > 10:
            from matplotlib.ticker import FuncFormatter

            for ax in axes[0]:
                ax.set_yscale("symlog", linthresh=2.0)
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
        axes[0][0].set_ylabel("difference (points" + (", symlog)" if spread > 10 else ")"))
        ncol = legend_columns(fig, list(handles), 6 if len(refs) > 1 else 3)
        fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=ncol,
                   handlelength=1.8, columnspacing=1.0, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle((f"{title}\n" if title else "") + "paired per seed, 95% CI; filled: CI excludes 0")
        fig.tight_layout(rect=_legend_rect(fig, len(handles), ncol))
        return save_figure(fig, path, formats)


def heatmap_range(summaries: Sequence[pd.DataFrame]) -> tuple[float, float]:
    """One colour scale (lowest, highest mean) for every heatmap of a report: the same colour is
    the same accuracy in each of them."""
    means = [float(v) for s in summaries for v in s["mean"] if not math.isnan(float(v))] if summaries else []
    return (min(means), max(means)) if means else (0.0, 100.0)


def _cell_n(summary: pd.DataFrame) -> tuple[str, bool]:
    """What a heatmap says about n: ``n = 3 seeds per cell``, and whether cells differ (then each
    cell states its own n)."""
    seeds = sorted({int(s) for s in summary["seeds"]}) if "seeds" in summary and len(summary) else [1]
    if len(seeds) == 1:
        return f"n = {seeds[0]} seed{'s' if seeds[0] != 1 else ''} per cell", False
    return f"n = {seeds[0]}-{seeds[-1]} seeds per cell (in each cell)", True


def cross_arch_heatmap(summary: pd.DataFrame, path: str | os.PathLike, title: str = "",
                       formats: Sequence[str] = FORMATS, scale: tuple[float, float] | None = None) -> list[Path]:
    """Methods x architectures, colour = mean accuracy, each cell ``mean ± 95% CI`` (the mean alone
    for one seed) and n stated. ``scale``: the colour range shared by the report's heatmaps
    (:func:`heatmap_range`); this summary's own range without one."""
    plt = _plt()
    methods = ordered_methods(summary["method"])
    archs = list(dict.fromkeys(summary["arch"]))
    archs = [a for a in archs if a == BASE_ARCH] + [a for a in archs if a != BASE_ARCH]
    grid = np.full((len(methods), len(archs)), np.nan)
    texts: dict[tuple[int, int], str] = {}
    n_text, per_cell = _cell_n(summary)
    for r in summary.to_dict("records"):
        i, j = methods.index(r["method"]), archs.index(r["arch"])
        grid[i, j] = r["mean"]
        ci = float(r.get("ci95", math.nan))
        texts[(i, j)] = f"{r['mean']:.1f}" + ("" if math.isnan(ci) else f"\n±{ci:.1f}") \
            + (f"\nn={int(r['seeds'])}" if per_cell else "")
    lo, hi = scale if scale is not None else heatmap_range([summary])
    with paper_style():
        width = "double" if len(archs) > 4 else "single"
        fig, ax = plt.subplots(figsize=size(width, (0.5 + 0.12 * per_cell) * len(methods) + 1.5))
        image = ax.imshow(grid, cmap="cividis", aspect="auto", vmin=lo, vmax=hi)
        for (i, j), text in texts.items():
            light = (grid[i, j] - lo) / (hi - lo + 1e-9) > 0.6  # cividis is light at the top
            ax.text(j, i, text, ha="center", va="center", fontsize=7, linespacing=1.0,
                    color="black" if light else "white")
        ax.set_xticks(range(len(archs)))
        ax.set_xticklabels([pretty_arch(a) for a in archs], rotation=30, ha="right")
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(methods)
        ax.grid(False)
        for side in ax.spines.values():
            side.set_visible(False)
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02).set_label("test accuracy (%)")
        # what a cell holds, under the title: a reader cannot tell an interval from a std, nor n
        ax.set_title((f"{title}\n" if title else "") + f"cell: mean ± 95% CI; {n_text}")
        fig.tight_layout()
        return save_figure(fig, path, formats)


def seconds_figure(rows: pd.DataFrame, path: str | os.PathLike, metric: str = "acc_last", title: str = "",
                   formats: Sequence[str] = FORMATS) -> list[Path]:
    """Accuracy (mean, 95% CI) against distillation seconds (log axis), one panel per IPC so each
    compares equal budgets; methods that take no time (random selection) are a horizontal band."""
    plt = _plt()
    methods = ordered_methods(rows["method"])
    ipcs = sorted(int(i) for i in rows["ipc"].unique())
    with paper_style():
        kind = "double" if len(ipcs) > 1 else "single"
        fig, axes = plt.subplots(1, len(ipcs), figsize=size(kind, 2.4), sharex=True, squeeze=False)
        for ax, ipc in zip(axes[0], ipcs):
            for m in methods:
                cell = rows[(rows["method"] == m) & (rows["ipc"] == ipc)]
                if cell.empty:
                    continue
                iv = t_interval(per_seed(cell, metric).values())
                seconds = float(pd.to_numeric(cell["distill_seconds"], errors="coerce").mean())
                if math.isnan(seconds):  # no timing recorded (imported or hand-made rows)
                    continue
                style = method_style(m)
                if seconds < 0.1:  # selection without training: a reference level, not a point
                    ax.axhline(iv.mean, color=style["color"], lw=0.8, ls=":", label=f"{m} (~0 s)")
                    continue
                ax.errorbar([seconds], [iv.mean], yerr=accuracy_yerr([iv.mean], [iv.half_width]),
                            capsize=1.5, elinewidth=0.7, ls="none",
                            **{k: v for k, v in style.items() if k not in ("linestyle", "linewidth")})
            ax.set_xscale("log")
            ax.set_title(f"IPC {ipc}")
            ax.set_xlabel("seconds per set (log)")
            accuracy_axis(ax)
        log_ticks(axes[0][0], "x")  # the panels share x: enough labelled ticks on all of them
        axes[0][0].set_ylabel("test accuracy (%)")
        handles, labels = axes[0][-1].get_legend_handles_labels()
        if not labels:  # no row recorded a distillation time: nothing to draw
            plt.close(fig)
            return []
        ncol = legend_columns(fig, labels, 6 if kind == "double" else 3)
        fig.legend(handles, labels, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, 0.0))
        if title:
            fig.suptitle(f"accuracy (95% CI) against distillation time; {title}")
        fig.tight_layout(rect=_legend_rect(fig, len(labels), ncol))
        return save_figure(fig, path, formats)
