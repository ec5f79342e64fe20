"""Figures from stored results (never recomputes): IPC-saturation curves.

Example::

    saturation_figure(ResultsTable("results/demo").load(), "results/demo/saturation.png", full_data=97.8)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.results import summarise

# a fixed colour per method keeps figures comparable across papers and runs
_COLOURS = {"random": "#7f7f7f", "herding": "#bcbd22", "kcenter": "#17becf", "forgetting": "#8c564b",
            "dc": "#1f77b4", "dsa": "#ff7f0e", "dm": "#2ca02c", "idc": "#9467bd", "mtt": "#e377c2",
            "dasm": "#d62728", "seq": "#393b79", "hard-only": "#637939", "dasm-reverse": "#843c39"}


def saturation_figure(df: pd.DataFrame, path: str | os.PathLike, metric: str = "acc_last",
                      full_data: float | None = None, arch: str = "convnet", title: str | None = None,
                      formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Accuracy against IPC (log axis), a line per method with a +-1 std band over seeds,
    and the full-data accuracy as a dashed line. Writes one file per format; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = df[df["arch"] == arch] if "arch" in df and (df["arch"] == arch).any() else df
    summary = summarise(sub, metric)
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for method, g in summary.groupby("method", sort=False):
        g = g.sort_values("ipc")
        colour = _COLOURS.get(str(method))
        ax.plot(g["ipc"], g["mean"], marker="o", label=str(method), color=colour, lw=1.8)
        ax.fill_between(g["ipc"], g["mean"] - g["std"], g["mean"] + g["std"], alpha=0.18, color=colour, lw=0)
    if full_data is not None:
        ax.axhline(full_data, ls="--", color="black", lw=1.2, label=f"full data ({full_data:.1f}%)")
    ipcs = sorted(summary["ipc"].unique()) if len(summary) else [1]
    ax.set_xscale("log")
    ax.set_xticks(ipcs)
    ax.set_xticklabels([str(int(i)) for i in ipcs])
    ax.minorticks_off()
    ax.set_xlabel("images per class (IPC)")
    label = "last-epoch" if metric == "acc_last" else "best"
    protocols = ", ".join(sorted(sub["protocol"].astype(str).unique())) if len(sub) else ""
    ax.set_ylabel(f"test accuracy, {label} (%)")
    datasets = ", ".join(sorted(sub["dataset"].astype(str).unique())) if len(sub) else ""
    ax.set_title(title or f"IPC saturation: {datasets} / {arch} ({protocols})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        fig.savefig(target, dpi=150)
        written.append(target)
    plt.close(fig)
    return written


def markdown_table(df: pd.DataFrame, metric: str = "acc_last") -> str:
    """Methods as rows, IPC as columns, ``mean ± std`` over seeds."""
    summary = summarise(df, metric)
    if summary.empty:
        return "(no results)\n"
    summary["cell"] = summary.apply(lambda r: f"{r['mean']:.1f} ± {r['std']:.1f}", axis=1)
    wide = summary.pivot_table(index="method", columns="ipc", values="cell", aggfunc="first")
    wide.columns = [f"IPC {c}" for c in wide.columns]
    return frame_to_markdown(wide.reset_index())


def frame_to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no extra dependency such as tabulate)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
