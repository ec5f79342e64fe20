"""A figure of DASM's per-segment diagnostics, read from a synthetic set's ``metadata["dasm"]``.

Three panels over segments k = 1..K: the difficulty window and the pool share it keeps; the mean
loss of the segment's pool against the mean loss of all real images (under the model trained on
segments 1..k-1: a pool above the line is harder than average); and the validation accuracy of a
model trained on segments 1..k.

Example::

    syn = SyntheticSet.load("results/synthetic/dasm-digits-ipc10-s0.safetensors")
    diagnostics_figure(syn, "results/dasm-diagnostics")   # -> .png and .pdf
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from bench.errors import BenchError
from bench.report.pictures import save_figure
from bench.report.style import OKABE_ITO, accuracy_axis, paper_style, size
from bench.store.synthetic import SyntheticSet


def segment_records(syn: SyntheticSet) -> list[dict[str, Any]]:
    """The per-segment diagnostics DASM stored with the set; one-line error if there are none."""
    dasm = syn.metadata.get("dasm")
    if not isinstance(dasm, dict) or not dasm.get("segments"):
        raise BenchError(f"synthetic set from method {syn.metadata.get('method', '?')!r} has no DASM diagnostics")
    return list(dasm["segments"])


def diagnostics_table(syn: SyntheticSet) -> str:
    """A plain-text table of the diagnostics (one row per segment)."""
    rows = ["seg  size  window      pool  min/cls  pool_loss  all_loss  val_acc"]
    for r in segment_records(syn):
        pl, al = r.get("pool_mean_loss"), r.get("all_mean_loss")
        rows.append(f"{r['segment']:>3}  {r['size']:>4}  [{r['window'][0]:.2f},{r['window'][1]:.2f}]  "
                    f"{r['pool_size']:>5}  {r['pool_min_per_class']:>7}  "
                    f"{'-' if pl is None else f'{pl:.3f}':>9}  {'-' if al is None else f'{al:.3f}':>8}  "
                    f"{r['val_accuracy']:>6.1f}%")
    return "\n".join(rows)


def diagnostics_figures(syn: SyntheticSet, path: str | os.PathLike) -> list[Path]:
    """The registry's ``diagnostics`` hook of DASM and its sequential ablations (what ``dasm-bench
    plot`` draws under ``figures/dasm/``): the figure when the set carries DASM's per-segment
    records, nothing when it does not."""
    if not isinstance(syn.metadata.get("dasm"), dict):
        return []
    return diagnostics_figure(syn, path)


def diagnostics_figure(syn: SyntheticSet, path: str | os.PathLike,
                       formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Draw the per-segment diagnostics of a DASM set; writes one file per format, returns the paths."""
    from bench.report.pictures import pyplot

    plt = pyplot()

    with paper_style():  # the paper style: its palette, print-size text, the page width
        fig = _draw(plt, segment_records(syn), syn.metadata)
    return save_figure(fig, path, formats)


def _draw(plt: Any, records: list[dict[str, Any]], meta: dict[str, Any]) -> Any:
    colours = OKABE_ITO
    ks = [r["segment"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=size("double", 2.9))

    ax = axes[0]
    for r in records:
        lo, hi = r["window"]
        ax.bar(r["segment"], hi - lo, bottom=lo, width=0.6, color=colours["vermillion"], alpha=0.35)
        ax.text(r["segment"], hi + 0.02, f"{r['pool_size']} imgs\n(min {r['pool_min_per_class']}/class)",
                ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("difficulty quantile window")
    ax.set_title("real-data pool per segment")

    ax = axes[1]
    ranked = [r for r in records if r.get("pool_mean_loss") is not None]
    if ranked:
        ax.plot([r["segment"] for r in ranked], [r["pool_mean_loss"] for r in ranked], "o-",
                color=colours["vermillion"], label="pool mean loss")
        ax.plot([r["segment"] for r in ranked], [r["all_mean_loss"] for r in ranked], "s--", color=colours["black"],
                label="all real images")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no ranked segment\n(all windows unranked)", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_ylabel("mean CE loss (model on segments < k)")
    ax.set_title("difficulty of each segment's pool")

    ax = axes[2]
    ax.plot(ks, [r["val_accuracy"] for r in records], "o-", color=colours["blue"])
    cumulative = [sum(r["size"] for r in records[:i + 1]) for i in range(len(records))]
    for k, acc, ipc in zip(ks, [r["val_accuracy"] for r in records], cumulative):
        # below the point: the axis stops at 100 %, where a label above would meet the title
        ax.annotate(f"IPC {ipc}", (k, acc), textcoords="offset points", xytext=(0, -6), ha="center", va="top",
                    fontsize=7)
    ax.set_ylabel("val accuracy (%), segments 1..k")
    ax.margins(y=0.15)
    accuracy_axis(ax)
    ax.set_title("accuracy as segments are added")

    for ax in axes:
        ax.set_xticks(ks)
        ax.set_xlabel("segment k")
        ax.grid(True, alpha=0.3)
    dasm = meta.get("dasm", {})
    fig.suptitle(f"{meta.get('method', 'dasm')} on {meta.get('dataset', '?')}, IPC {meta.get('ipc', '?')}, "
                 f"seed {meta.get('seed', '?')}: base {dasm.get('base', '?')}, schedule {dasm.get('schedule', '?')}")
    fig.tight_layout()
    return fig
