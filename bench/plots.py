"""Figures and tables from stored results (never recomputes): IPC-saturation curves, accuracy
tables, cross-architecture tables, pictures of the synthetic sets and DASM's per-segment
diagnostics, as PNG and PDF.

Example::

    saturation_figure(ResultsTable("results/demo").load(), "results/demo/saturation.png", full_data=97.8)
    write_reports("results/digits")      # everything `dasm-bench plot results/digits` writes
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from bench.paths import safe_slug
from bench.results import summarise

# a fixed colour per method keeps figures comparable across papers and runs
_COLOURS = {"random": "#7f7f7f", "herding": "#bcbd22", "kcenter": "#17becf", "forgetting": "#8c564b",
            "dc": "#1f77b4", "dsa": "#ff7f0e", "dm": "#2ca02c", "idc": "#9467bd", "mtt": "#e377c2",
            "dasm": "#d62728", "seq": "#393b79", "hard-only": "#637939", "dasm-reverse": "#843c39"}


def save_figure(fig, path: str | os.PathLike, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` once per format next to ``path`` (suffix replaced), close it, return the paths."""
    import matplotlib.pyplot as plt

    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        # no creation date: regenerating a figure from the same results leaves the file unchanged
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None} if fmt == "png" else None
        fig.savefig(target, dpi=150, metadata=metadata)
        written.append(target)
    plt.close(fig)
    return written


def saturation_figure(df: pd.DataFrame, path: str | os.PathLike, metric: str = "acc_last",
                      full_data: float | None = None, arch: str = "convnet", title: str | None = None,
                      formats: Sequence[str] = ("png", "pdf"), full_data_label: str = "full data") -> list[Path]:
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
        ax.axhline(full_data, ls="--", color="black", lw=1.2, label=f"{full_data_label} ({full_data:.1f}%)")
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
    return save_figure(fig, path, formats)


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


def synthetic_picture(syn, path: str | os.PathLike, mean: Sequence[float], std: Sequence[float],
                      class_names: Sequence[str] | None = None, max_per_class: int = 10, title: str | None = None,
                      formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """A synthetic set as one image grid (a row per class, up to ``max_per_class`` columns), drawn
    as a single picture so that sets of hundreds of images render in well under a second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torchvision.utils import make_grid

    labels = syn.hard_labels
    classes = sorted(set(labels.tolist()))
    cols = max(1, min(max_per_class, max(int((labels == c).sum()) for c in classes)))
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    pixels = (syn.images.detach().cpu().float() * s + m).clamp(0, 1)
    tiles = []
    for c in classes:  # pad short rows with blanks so every class is one row
        idx = torch.nonzero(labels == c).flatten()[:cols]
        row = pixels[idx]
        if len(row) < cols:
            row = torch.cat([row, torch.ones(cols - len(row), *pixels.shape[1:])])
        tiles.append(row)
    grid = make_grid(torch.cat(tiles), nrow=cols, padding=1, pad_value=1.0)
    size = pixels.shape[-1] + 1
    fig, ax = plt.subplots(figsize=(min(14.0, 0.45 * cols + 1.2), min(14.0, 0.45 * len(classes) + 0.6)))
    image = grid.permute(1, 2, 0).numpy()
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([size * (r + 0.5) for r in range(len(classes))])
    ax.set_yticklabels([class_names[c] if class_names else str(c) for c in classes], fontsize=7)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, formats)


def _full_data(out: Path) -> tuple[float | None, str, str | None]:
    """(accuracy, source, dataset) of ``full_data.json``; Nones when absent or damaged."""
    path = out / "full_data.json"
    if not path.exists():
        return None, "", None
    try:
        record = json.loads(path.read_text())
        return float(record["acc"]), str(record.get("source", "")), record.get("dataset")
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None, "", None  # a damaged record only loses the dashed line


def set_figures(df: pd.DataFrame, out: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Pictures of the stored sets (lowest seed per method, dataset and IPC) under
    ``figures/synthetic/`` and DASM diagnostics under ``figures/dasm/`` for sets that carry them.
    A picture whose file exists is kept: sets are content-addressed, so it cannot be stale."""
    from bench.data import load_dataset
    from bench.errors import BenchError
    from bench.synthetic import SyntheticSet

    if df.empty or "synthetic_path" not in df:
        return []
    written: list[Path] = []
    firsts = df.sort_values("seed", kind="stable").drop_duplicates(["method", "dataset", "ipc"])
    for r in firsts.itertuples(index=False):
        src = out / str(r.synthetic_path)
        # every part comes from a results row (ultimately a set's sidecar): slugs, so no value
        # such as "../../x" can place a figure outside ``out``
        stem = "-".join([safe_slug(r.method), safe_slug(r.dataset), f"ipc{safe_slug(r.ipc)}", f"s{safe_slug(r.seed)}",
                         safe_slug(str(r.config_hash)[:8])])
        picture = out / "figures" / "synthetic" / stem
        dasm_fig = out / "figures" / "dasm" / stem
        need_picture = not picture.with_suffix(".png").exists()
        need_dasm = not dasm_fig.with_suffix(".png").exists()
        if not (need_picture or need_dasm) or not src.exists():
            continue
        try:
            syn = SyntheticSet.load(src)
        except BenchError as exc:
            log(f"skipping the picture of {src.name}: {exc}")
            continue
        if need_picture:
            try:
                data = load_dataset(str(r.dataset))
                mean, std, names = data.mean, data.std, data.class_names
            except BenchError:  # the data is not on this machine: draw with a neutral normalisation
                mean, std, names = (0.5,) * syn.images.shape[1], (0.5,) * syn.images.shape[1], None
            written += synthetic_picture(syn, picture, mean, std, names,
                                         title=f"{r.method} / {r.dataset} / IPC {r.ipc} / seed {r.seed}")
        if need_dasm and isinstance(syn.metadata.get("dasm"), dict):
            written += _dasm_figure(syn, dasm_fig, log)
    return written


def _dasm_figure(syn, path: Path, log: Callable[[str], None]) -> list[Path]:
    try:
        from dasm.diagnostics import diagnostics_figure
    except ImportError:
        return []  # the DASM package is not installed beside the harness
    try:
        return list(diagnostics_figure(syn, path))
    except Exception as exc:  # one unreadable record must not stop regenerating everything else
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log(f"no DASM diagnostics for {path.name}: {message}")
        return []


def write_reports(out_dir: str | os.PathLike, df: pd.DataFrame | None = None, full_data: float | None = None,
                  log: Callable[[str], None] = print, pictures: bool = True) -> list[Path]:
    """Regenerate every table and figure of a results directory from its stored rows and sets:
    ``table_acc_last.md`` (``table_acc_best.md`` only for legacy rows that hold a "best") and ``saturation.{png,pdf}`` (ConvNet rows; a suffix per dataset
    when there are several), cross-architecture tables, set pictures and DASM diagnostics."""
    from bench.cross_arch import BASE_ARCH, write_cross_arch_tables
    from bench.results import ResultsTable

    out = Path(out_dir)
    df = ResultsTable(out).load() if df is None else df
    written: list[Path] = []
    stored_full, source, full_dataset = _full_data(out)
    datasets = sorted(df["dataset"].astype(str).unique()) if len(df) else []
    for dataset in datasets or [""]:
        sub = df[df["dataset"] == dataset] if dataset else df
        base = sub[sub["arch"] == BASE_ARCH] if (sub["arch"] == BASE_ARCH).any() else sub
        suffix = f"_{safe_slug(dataset)}" if len(datasets) > 1 else ""
        for metric in ("acc_last", "acc_best"):
            path = out / f"table_{metric}{suffix}.md"
            if metric == "acc_best" and not base.get(metric, pd.Series(dtype=float)).astype(float).notna().any():
                # new rows carry no "best" (it was a max over test-set evaluations, a test-split
                # selection; see bench.evaluation): no table, and none left from older runs
                path.unlink(missing_ok=True)
                continue
            path.write_text(markdown_table(base, metric))
            written.append(path)
        line = full_data if full_data is not None else (
            stored_full if full_dataset in (None, dataset) or not dataset else None)  # it describes one dataset
        written += saturation_figure(base, out / f"saturation{suffix}", full_data=line,
                                     full_data_label="full data, published" if source == "published" else "full data")
    written += write_cross_arch_tables(df, out)
    if pictures:
        written += set_figures(df, out, log)
    for p in written:
        if p.name == "table_acc_last.md":
            log(p.read_text())
    log(f"wrote {len(written)} files under {out}")
    return written
