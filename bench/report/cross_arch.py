"""Unseen-architecture tables from stored results: how well do ConvNet-distilled sets transfer?

One table per (dataset, IPC, metric): a row per method, a column per evaluation architecture with
``mean ± 95% interval`` over seeds (Student t on per-seed means, bench.report.stats; the mean alone for one
seed), the drop from the ConvNet column in brackets, and the mean drop over the unseen
architectures. Written as Markdown, LaTeX (best per column in bold, ``≈`` where the paired interval
of the difference to the best includes zero) and a tidy CSV.

Example::

    df = ResultsTable("results/digits").load()
    table = cross_arch_summary(df, dataset="digits", ipc=10)
    paths = write_cross_arch_tables(df, "results/digits")   # cross_arch_digits_ipc10.{md,tex,csv}
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from bench.files import write_atomically
from bench.paths import safe_slug
from bench.report.stats import paired_difference, per_seed, t_interval

# the base architecture and display names are presentation, shared with bench.report.figures; importable from here too
from bench.report.style import BASE_ARCH, PRETTY_ARCH, pretty_arch  # noqa: F401

# A run whose best test accuracy over training stays below this multiple of chance did not train
# (e.g. ConvNeXt under plain SGD from an unlucky initialisation); tables count and mark such runs.
UNTRAINED_FACTOR = 1.5


def chance_accuracy(dataset: str) -> float | None:
    """Chance-level accuracy (%) of a registered dataset with a fixed class count, else None."""
    from bench.data.datasets import registered_num_classes

    n = registered_num_classes(dataset)
    return 100.0 / n if n else None


def _method_key(name: str) -> tuple[int, str]:
    # the registry's order: coresets, matching baselines, DASM and its ablations
    from bench.report.style import method_sort_key

    return method_sort_key(name)


def _arch_key(name: str, seen: list[str]) -> tuple[int, int, int]:
    # ConvNet first, then the paper order above, then architectures in the order they appear
    known = list(PRETTY_ARCH)
    return (0 if name == BASE_ARCH else 1, known.index(name) if name in known else len(known), seen.index(name))


def cross_arch_rows(df: pd.DataFrame, dataset: str, ipc: int, base_arch: str = BASE_ARCH) -> pd.DataFrame:
    """The rows a cross-architecture table is made of: methods evaluated on at least one unseen
    architecture, and their base-architecture rows only for the seeds that were (so the drop
    compares the same synthetic sets). A results directory shared with a saturation run keeps
    its ConvNet-only methods and extra seeds out of the table."""
    sub = df[(df["dataset"] == dataset) & (df["ipc"] == ipc)]
    unseen = sub[sub["arch"] != base_arch]
    seeds = unseen.groupby("method")["seed"].agg(set).to_dict()
    keep = [m in seeds and (a != base_arch or s in seeds[m])
            for m, a, s in zip(sub["method"], sub["arch"], sub["seed"])]
    return sub[keep]


def cross_arch_summary(df: pd.DataFrame, dataset: str, ipc: int, metric: str = "acc_last",
                       base_arch: str = BASE_ARCH) -> pd.DataFrame:
    """Long table: method, arch, mean, std, ci95 (the 95% t half-width over seeds, NaN for one seed),
    seeds, untrained, drop (base mean - arch mean, NaN without one) and ``scores`` (seed -> accuracy,
    for paired comparisons; not written to the CSV). ``std`` over seeds, or over the models of the
    one row when there is a single seed.

    ``untrained`` counts the seeds whose best accuracy stayed below 1.5x chance (0 when the
    dataset's class count is not registered).
    """
    sub = cross_arch_rows(df, dataset, ipc, base_arch)
    if sub.empty:
        return pd.DataFrame(columns=["method", "arch", "mean", "std", "ci95", "seeds", "untrained", "drop", "scores"])
    chance = chance_accuracy(dataset)
    groups = sub.groupby(["method", "arch"], sort=False)
    rows = []
    for (method, arch), g in groups:
        values = g[metric].astype(float)
        if len(values) > 1:
            std = float(values.std(ddof=1))
        else:  # a single seed: the spread over that row's fresh models
            std = float(g[f"{metric}_std"].iloc[0]) if f"{metric}_std" in g else 0.0
        untrained = 0
        if chance is not None:
            untrained = int((values < UNTRAINED_FACTOR * chance).sum())
        scores = per_seed(g, metric)
        rows.append({"method": method, "arch": arch, "mean": float(values.mean()), "std": std,
                     "ci95": t_interval(scores.values()).half_width, "seeds": int(len(values)),
                     "untrained": untrained, "scores": scores})
    out = pd.DataFrame(rows)
    base = out[out["arch"] == base_arch].set_index("method")["mean"]
    out["drop"] = [base.get(m, math.nan) - v for m, v in zip(out["method"], out["mean"])]
    arch_order = list(dict.fromkeys(sub["arch"]))
    out["_m"] = out["method"].map(_method_key)
    out["_a"] = out["arch"].map(lambda a: _arch_key(a, arch_order))
    return out.sort_values(["_m", "_a"]).drop(columns=["_m", "_a"]).reset_index(drop=True)


def _wide(summary: pd.DataFrame) -> tuple[list[str], list[str], dict]:
    methods = list(dict.fromkeys(summary["method"]))
    seen = list(dict.fromkeys(summary["arch"]))
    archs = sorted(seen, key=lambda a: _arch_key(a, seen))
    cells = {(r.method, r.arch): r for r in summary.itertuples(index=False)}
    return methods, archs, cells


def _mean_drop(cells: dict, method: str, archs: list[str], base_arch: str) -> float:
    drops = [cells[(method, a)].drop for a in archs if a != base_arch and (method, a) in cells]
    drops = [d for d in drops if not math.isnan(d)]
    return sum(drops) / len(drops) if drops else math.nan


def _best(values: dict[str, float], higher: bool) -> set[str]:
    finite = {k: v for k, v in values.items() if not math.isnan(v)}
    if not finite:
        return set()
    target = max(finite.values()) if higher else min(finite.values())
    return {k for k, v in finite.items() if abs(v - target) < 1e-9}


def _tied(cells: dict, method: str, best: set[str], arch: str) -> bool:
    """The paired 95% interval of (best - method) over >= 2 shared seeds includes zero."""
    mine = cells[(method, arch)].scores
    for b in best:
        theirs = cells[(b, arch)].scores
        if len(set(mine) & set(theirs)) >= 2 and not paired_difference(theirs, mine).excludes_zero:
            return True
    return False


def _table_cells(summary: pd.DataFrame, base_arch: str, bold: tuple[str, str], minus: str,
                 pm: str, dagger: str = "†", tie: str = "≈") -> tuple[list[str], list[list[str]]]:
    methods, archs, cells = _wide(summary)
    unseen = [a for a in archs if a != base_arch]
    header = ["method"] + [pretty_arch(a) for a in archs] + (["mean drop"] if unseen and base_arch in archs else [])
    best = {a: _best({m: cells[(m, a)].mean for m in methods if (m, a) in cells}, higher=True) for a in archs}
    tied = {a: {m for m in methods if (m, a) in cells and m not in best[a] and _tied(cells, m, best[a], a)}
            for a in archs}
    drops = {m: _mean_drop(cells, m, archs, base_arch) for m in methods}
    best_drop = _best(drops, higher=False)
    body = []
    for m in methods:
        row = [m]
        for a in archs:
            if (m, a) not in cells:
                row.append("-")
                continue
            c = cells[(m, a)]
            text = f"{c.mean:.1f}" if math.isnan(c.ci95) else f"{c.mean:.1f} {pm} {c.ci95:.1f}"
            if a != base_arch and not math.isnan(c.drop):
                text += f" ({minus if c.drop > 0 else '+'}{abs(c.drop):.1f})"
            text = f"{bold[0]}{text}{bold[1]}" if m in best[a] else text + (f" {tie}" if m in tied[a] else "")
            row.append(f"{text} {dagger}{c.untrained}" if c.untrained else text)
        if len(header) > len(archs) + 1:
            d = drops[m]
            text = "-" if math.isnan(d) else f"{d:.1f}"
            row.append(f"{bold[0]}{text}{bold[1]}" if m in best_drop else text)
        body.append(row)
    return header, body


def cross_arch_markdown(summary: pd.DataFrame, base_arch: str = BASE_ARCH) -> str:
    """GitHub Markdown; the best mean per column (smallest mean drop) in bold."""
    if summary.empty:
        return "(no results)\n"
    header, body = _table_cells(summary, base_arch, ("**", "**"), "−", "±")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def cross_arch_latex(summary: pd.DataFrame, base_arch: str = BASE_ARCH, caption: str = "",
                     label: str = "tab:cross-arch") -> str:
    """A booktabs table; the best mean per column (smallest mean drop) in bold."""
    if summary.empty:
        return "% no results\n"
    header, body = _table_cells(summary, base_arch, (r"\textbf{", "}"), "$-$", r"$\pm$", r"$^\dagger$",
                                r"$^{\approx}$")
    cols = "l" + "c" * (len(header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(_latex_escape(h) for h in header) + r" \\", r"\midrule"]
    for row in body:
        lines.append(" & ".join([_latex_escape(row[0])] + row[1:]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        text = (_latex_escape(caption).replace("±", r"$\pm$").replace("−", "$-$").replace("†", r"$^\dagger$")
                .replace("≈", r"$\approx$"))
        lines.append(rf"\caption{{{text}}}")
    lines += [rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def cross_arch_settings(df: pd.DataFrame) -> list[tuple[str, int]]:
    """(dataset, IPC) pairs evaluated on more than one architecture, base architecture included."""
    settings = []
    if df.empty:
        return settings
    for (dataset, ipc), g in df.groupby(["dataset", "ipc"]):
        archs = set(g["arch"])
        if len(archs) > 1 and BASE_ARCH in archs:
            settings.append((str(dataset), int(ipc)))
    return sorted(settings)


def write_cross_arch_tables(df: pd.DataFrame, out_dir: str | os.PathLike, metric: str = "acc_last") -> list[Path]:
    """Write ``cross_arch_<dataset>_ipc<N>[_<protocol>].{md,tex,csv}`` and a heatmap
    ``cross_arch_..._heatmap.{png,pdf}`` for every cross-architecture setting and protocol view
    (each method's own protocol: no suffix; one shared protocol for all methods: its name). The
    heatmaps share one colour scale: the same colour is the same accuracy in each of them."""
    from bench.report.figures import heatmap_range
    from bench.report.tables import OWN, protocol_views, view_slug

    views = list(protocol_views(df))
    scale = heatmap_range([cross_arch_summary(rows, d, i, metric) for _, rows in views
                           for d, i in cross_arch_settings(rows)])
    written: list[Path] = []
    for view, rows in views:
        written += _write_view_tables(rows, Path(out_dir), metric, "" if view == OWN else f"_{view_slug(view)}",
                                      "each method's own" if view == OWN else f"{view} for every method", scale)
    return written


def _write_view_tables(df: pd.DataFrame, out: Path, metric: str, suffix: str, where: str,
                       scale: tuple[float, float] | None = None) -> list[Path]:
    from bench.report.figures import cross_arch_heatmap

    written: list[Path] = []
    label_metric = "last-epoch" if metric == "acc_last" else "best"
    for dataset, ipc in cross_arch_settings(df):
        summary = cross_arch_summary(df, dataset, ipc, metric)
        name = f"cross_arch_{safe_slug(dataset)}_ipc{safe_slug(ipc)}{suffix}"  # slugs: values come from result rows
        stem = out / name if metric == "acc_last" else out / f"{name}_{metric}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        setting = cross_arch_rows(df, dataset, ipc)
        protocols = ", ".join(sorted(setting["protocol"].astype(str).unique()))
        seeds = setting.groupby(["method", "arch"])["seed"].nunique()
        known = setting["num_models"].dropna() if "num_models" in setting else ()  # a cell may leave it null
        models = int(known.min()) if len(known) else 1
        n = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
        caption = (f"{dataset} IPC {ipc}: {label_metric} test accuracy (%) of sets distilled with ConvNet, "
                   f"mean ± 95% Student-t half-width over n = {n} seeds x {models} model(s) per seed (mean "
                   f"alone for one seed); (−x) is the drop from ConvNet. Bold: best per column; ≈: the paired "
                   f"95% interval of the difference to the best includes zero. "
                   f"Protocol: {where} ({protocols}).")
        if summary["untrained"].sum() > 0:
            caption += (f" †n: n of the seeds did not train (best accuracy below {UNTRAINED_FACTOR:g}x chance); "
                        "they are kept in the mean.")
        md = stem.with_suffix(".md")
        write_atomically(md, f"{caption}\n\n{cross_arch_markdown(summary)}")
        tex = stem.with_suffix(".tex")
        write_atomically(tex, cross_arch_latex(summary, caption=caption, label=f"tab:cross-arch-{dataset}-ipc{ipc}"))
        csv = stem.with_suffix(".csv")
        write_atomically(csv, summary.drop(columns=["scores"]).assign(dataset=dataset, ipc=ipc, metric=metric)
                         .to_csv(index=False))
        written += [md, tex, csv]
        if metric == "acc_last":
            written += cross_arch_heatmap(summary, out / f"{stem.name}_heatmap",
                                          title=f"{dataset} IPC {ipc}, protocol: {where}", scale=scale)
    return written
