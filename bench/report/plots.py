"""Figures and tables from stored results (never recomputes): IPC-saturation curves, accuracy
tables, cross-architecture tables, pictures of the synthetic sets and each method's own
diagnostics figure (a hook on its registered spec), as PNG and PDF. The paper tables live in
:mod:`bench.report.tables`, the paper figures in :mod:`bench.report.figures`, their look in :mod:`bench.report.style`,
the figure writer and set picture in :mod:`bench.report.pictures`; :func:`write_reports` writes them all.

Example::

    saturation_figure(ResultsTable("results/demo").load(), "results/demo/saturation.png", full_data=97.8)
    write_reports("results/digits")      # everything `dasm-bench plot results/digits` writes
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from bench.files import refuse_linked_folders, write_atomically
from bench.paths import safe_slug
from bench.report.pictures import save_figure, synthetic_picture
from bench.store.results import COLUMNS, summarise


def saturation_figure(df: pd.DataFrame, path: str | os.PathLike, metric: str = "acc_last",
                      full_data: float | None = None, arch: str = "convnet", title: str | None = None,
                      formats: Sequence[str] = ("png", "pdf"), full_data_label: str = "full data") -> list[Path]:
    """Accuracy against IPC (log axis), a line per method (registry order and style) with a +-1 std
    band over seeds, and the full-data accuracy as a dashed line; one axis, for quick looks (the
    paper figure with intervals is :func:`bench.report.figures.saturation_panels`). Returns the paths."""
    from bench.report.pictures import pyplot

    plt = pyplot()

    from bench.report.style import accuracy_axis, clip_accuracy, method_style, ordered_methods, paper_style, size

    sub = df[df["arch"] == arch] if "arch" in df and (df["arch"] == arch).any() else df
    summary = summarise(sub, metric)
    with paper_style():
        fig, ax = plt.subplots(figsize=size("single", 2.8))
        for method in ordered_methods(summary["method"]):
            g = summary[summary["method"] == method].sort_values("ipc")
            line = method_style(method)
            ax.plot(g["ipc"], g["mean"], **line)
            # a band past 100 % is drawn to 100: no accuracy lies beyond it
            ax.fill_between(g["ipc"], clip_accuracy(g["mean"] - g["std"]), clip_accuracy(g["mean"] + g["std"]),
                            alpha=0.12, color=line["color"], lw=0)
        if full_data is not None:
            ax.axhline(full_data, ls="--", color="#555555", lw=0.9, label=f"{full_data_label} ({full_data:.1f}%)")
        ipcs = sorted(summary["ipc"].unique()) if len(summary) else [1]
        ax.set_xscale("log")
        ax.set_xticks(ipcs)
        ax.set_xticklabels([str(int(i)) for i in ipcs])
        ax.minorticks_off()
        ax.set_xlabel("images per class (IPC, log)")
        label = "last-epoch" if metric == "acc_last" else "best"
        protocols = ", ".join(sorted(sub["protocol"].astype(str).unique())) if len(sub) else ""
        ax.set_ylabel(f"test accuracy, {label} (%)")
        accuracy_axis(ax)
        datasets = ", ".join(sorted(sub["dataset"].astype(str).unique())) if len(sub) else ""
        seeds = _span(summary["seeds"]) if len(summary) else "0"
        # the band is a spread, not an interval: say so, and over how many seeds
        ax.set_title((title or f"{datasets} / {arch} ({protocols})") + f"\nband: ±1 std over {seeds} seeds")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, handlelength=2.4)
        fig.tight_layout()
        return save_figure(fig, path, formats)


def markdown_table(df: pd.DataFrame, metric: str = "acc_last") -> str:
    """Methods as rows, IPC as columns, ``mean ± std`` over seeds, under a caption saying so."""
    summary = summarise(df, metric)
    if summary.empty:
        return "(no results)\n"
    summary["cell"] = summary.apply(lambda r: f"{r['mean']:.1f} ± {r['std']:.1f}", axis=1)
    wide = summary.pivot_table(index="method", columns="ipc", values="cell", aggfunc="first")
    wide.columns = [f"IPC {c}" for c in wide.columns]
    return spread_caption(df, summary, metric) + "\n\n" + frame_to_markdown(wide.reset_index())


def _span(values: pd.Series) -> str:
    low, high = int(values.min()), int(values.max())
    return f"{low}" if low == high else f"{low}-{high}"


def spread_caption(df: pd.DataFrame, summary: pd.DataFrame, metric: str = "acc_last") -> str:
    """What a :func:`markdown_table` cell's ± is, and over how many runs (a reader cannot tell a
    standard deviation from an interval, nor n, from the numbers alone)."""
    what = "last-epoch" if metric == "acc_last" else "best"
    models = df["num_models"] if "num_models" in df and df["num_models"].notna().any() else pd.Series([1])
    n_models = _span(models.dropna())
    text = (f"{what.capitalize()} test accuracy (%): mean ± sample standard deviation over {_span(summary['seeds'])} "
            f"seeds ({n_models} model{'s' if n_models != '1' else ''} each; a seed's value is the mean over its "
            f"models).")
    if int(summary["seeds"].min()) == 1:
        text += " A cell of one seed shows ± 0.0."
    keys = ["method", "dataset", "ipc", "arch", "protocol"]
    if "seed" in df and (df.groupby(keys, dropna=False)["seed"].nunique()
                         < df.groupby(keys, dropna=False).size()).any():
        text += " A seed evaluated more than once (e.g. with another number of models) counts once per row."
    return text


def frame_to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no extra dependency such as tabulate)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def set_figures(df: pd.DataFrame, out: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Pictures of the stored sets (lowest seed per method, dataset and IPC) under
    ``figures/synthetic/``, and the method's own diagnostics figure (its registered ``diagnostics``
    hook, e.g. DASM's per-segment records) under ``figures/<method group>/`` for sets that carry
    them. A picture whose file exists is kept: sets are content-addressed, so it cannot be stale."""
    from bench.data.datasets import load_dataset
    from bench.errors import BenchError
    from bench.store.synthetic import SyntheticSet

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
        need_picture = not picture.with_suffix(".png").exists()
        group, diagnostics = _diagnostics_hook(str(r.method))
        diag_fig = out / "figures" / safe_slug(group) / stem if diagnostics else None
        need_diag = diag_fig is not None and not diag_fig.with_suffix(".png").exists()
        if not (need_picture or need_diag) or not src.exists():
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
        if need_diag:
            try:
                written += list(diagnostics(syn, diag_fig))
            except Exception as exc:  # one unreadable record must not stop regenerating everything else
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log(f"no {r.method} diagnostics for {diag_fig.name}: {message}")
    return written


def _diagnostics_hook(method: str) -> tuple[str, Callable | None]:
    """(group, diagnostics hook) of a registered method; no hook for a name the registry does not
    know (an imported set's ``--method``) or a method package that is not installed."""
    from bench.errors import BenchError
    from bench.methods.registry import get_method

    try:
        spec = get_method(method)
        return spec.group, spec.hook("diagnostics")
    except (BenchError, ImportError):
        return "", None


def view_reports(base: pd.DataFrame, all_rows: pd.DataFrame, full: dict, out: Path, suffix: str = "",
                 metric: str = "acc_last") -> list[Path]:
    """The paper tables and figures of one dataset's base-architecture rows, per protocol view:
    ``saturation_<view>.{md,tex}``, ``improvement_<view>.{md,tex}`` (over random and share of the
    gap to full data), ``saturation[_<view>].{png,pdf}`` (the own view keeps the plain name),
    ``dasm_difference_<view>`` and ``accuracy_vs_seconds_<view>`` figures."""
    from bench.report.figures import paired_figure, saturation_panels, seconds_figure
    from bench.report.tables import (
        OWN,
        describe_n,
        improvement_caption,
        improvement_cells,
        protocol_views,
        render_latex,
        render_markdown,
        saturation_caption,
        saturation_cells,
        view_slug,
    )

    written: list[Path] = []
    dataset = str(base["dataset"].iloc[0]) if len(base) else ""
    for view, rows in protocol_views(base):
        slug = view_slug(view) + suffix
        label = f"{dataset}-{view_slug(view)}"
        header, body, breaks = saturation_cells(rows, full, metric)
        caption = saturation_caption(view, rows, metric)
        written += _write_text(out / f"saturation_{slug}.md", render_markdown(header, body, caption))
        written += _write_text(out / f"saturation_{slug}.tex",
                               render_latex(header, body, breaks, caption, f"tab:saturation-{label}"))
        md, tex = [], []
        for gap in (False, True):
            header, body, breaks = improvement_cells(rows, all_rows, full, metric, gap=gap)
            caption = improvement_caption(view, rows, gap)
            md.append(render_markdown(header, body, caption))
            tex.append(render_latex(header, body, breaks, caption, f"tab:{'gap' if gap else 'ior'}-{label}"))
        written += _write_text(out / f"improvement_{slug}.md", "\n".join(md))
        written += _write_text(out / f"improvement_{slug}.tex", "\n".join(tex))
        where = "each method's own protocol" if view == OWN else f"protocol {view}"
        figure = out / (f"saturation{suffix}" if view == OWN else f"saturation_{slug}")
        n = describe_n(rows)
        written += saturation_panels(rows, all_rows, full, figure, metric, title=f"{dataset}, {where}\n{n}")
        for method, against in _paired_claims(set(rows["method"].astype(str))):
            written += paired_figure(rows, method, against, out / f"{safe_slug(method)}_difference_{slug}", metric,
                                     title=f"{dataset}, {where}\n{n.split(';')[0]}")
        written += seconds_figure(rows, out / f"accuracy_vs_seconds_{slug}", metric, title=f"{dataset}, {where}\n{n}")
    return written


def _paired_claims(present: set[str]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """(method, its registered ``paired_against``) for every method in the rows that has one."""
    from bench.methods.registry import list_methods

    return [(name, spec.paired_against) for name, spec in list_methods().items()
            if name in present and spec.paired_against]


def _write_text(path: Path, text: str) -> list[Path]:
    write_atomically(path, text)  # the one writer: a link planted at ``path`` is replaced, not followed
    return [path]


def mixed_versions_warning(df: pd.DataFrame, out: str | os.PathLike) -> str:
    """A one-line warning naming the code versions when the rows of ``out`` come from more than one:
    a table is computed by one code version unless the difference provably cannot touch it."""
    versions = sorted(df["code_version"].dropna().astype(str).unique()) if "code_version" in df else []
    if len(versions) <= 1:
        return ""
    counts = df["code_version"].astype(str).value_counts()
    named = ", ".join(f"{v} ({counts[v]} rows)" for v in versions)
    return f"warning: {out} mixes {len(versions)} code versions: {named}"


# what every table and figure places a row by: a row lacking one (an imported set records no IPC,
# a hand-edited cell may hold null) stays in the stored table but cannot be drawn
_PLACED_TEXT = ("method", "dataset", "arch", "protocol")
_PLACED_NUMBERS = ("ipc", "seed", "acc_last")


def drawable_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows the reports can place (text keys non-empty, IPC, seed and accuracy finite numbers)
    with every standard column (one no cell holds reads as missing), and the cell keys of the others.

    Example::

        rows, left_out = drawable_rows(ResultsTable("results/mine").load())
    """
    if df.empty:
        return df, []
    numeric = {"ipc", "seed", "num_models", "acc_last", "acc_last_std", "acc_val", "acc_val_std",
               "distill_seconds", "eval_seconds"}
    absent = [c for c in COLUMNS if c not in df.columns]
    if absent:  # check_row lets a cell leave out any field; the figures index them all
        df = df.assign(**{c: math.nan if c in numeric else None for c in absent})
    ok = pd.Series(True, index=df.index)
    for column in _PLACED_TEXT:
        if column in df:
            ok &= df[column].map(lambda v: isinstance(v, str) and bool(v.strip()))
    for column in _PLACED_NUMBERS:
        if column in df:
            ok &= df[column].map(lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)
                                 and math.isfinite(v))
    return df[ok], df.loc[~ok, "cell_key"].astype(str).tolist()


def write_reports(out_dir: str | os.PathLike, df: pd.DataFrame | None = None, full_data: float | None = None,
                  log: Callable[[str], None] = print, pictures: bool = True) -> list[Path]:
    """Regenerate every table and figure of a results directory from its stored rows and sets:
    ``table_acc_last.md`` (each method's own protocol), the paper tables and figures of
    :func:`view_reports` (ConvNet rows; a suffix per dataset when there are several),
    cross-architecture tables and heatmaps, set pictures and method diagnostics. ``full_data``
    (a percentage) replaces the stored full-data references."""
    from bench.published.numbers import write_published_comparison
    from bench.report.cross_arch import BASE_ARCH, write_cross_arch_tables
    from bench.report.tables import own_rows
    from bench.store.full_data import read_full_data
    from bench.store.results import ResultsTable

    out = Path(out_dir)
    refuse_linked_folders(out)  # cells/, figures/...: a planted link would take the writes elsewhere
    df = ResultsTable(out).load() if df is None else df
    written: list[Path] = []
    full = read_full_data(out) if full_data is None else {"given": {"acc": float(full_data), "protocol": "given"}}
    warning = mixed_versions_warning(df, out)
    if warning:
        log(warning)
    df, left_out = drawable_rows(df)
    if left_out:
        log(f"note: {len(left_out)} row(s) lack a method, dataset, architecture, protocol, IPC, seed or accuracy "
            f"and are left out of the tables and figures: {', '.join(map(repr, left_out[:5]))}"
            f"{' ...' if len(left_out) > 5 else ''}")
    datasets = sorted(df["dataset"].astype(str).unique()) if len(df) else []
    for dataset in datasets:
        sub = df[df["dataset"] == dataset]
        base = sub[sub["arch"] == BASE_ARCH] if (sub["arch"] == BASE_ARCH).any() else sub
        suffix = f"_{safe_slug(dataset)}" if len(datasets) > 1 else ""
        written += _write_text(out / f"table_acc_last{suffix}.md", markdown_table(own_rows(base), "acc_last"))
        # no "best" table: it was a max over test-set evaluations, a test-split selection (bench.train.evaluation)
        (out / f"table_acc_best{suffix}.md").unlink(missing_ok=True)
        written += view_reports(base, base, full, out, suffix)
    written += write_cross_arch_tables(df, out)
    written += write_published_comparison(df, out)
    if pictures:
        written += set_figures(df, out, log)
    for p in written:
        if p.name.startswith("saturation_own") and p.suffix == ".md":
            log(p.read_text())
    log(f"wrote {len(written)} tables and figures under {out}")  # the command line counts every file it wrote
    return written
