"""Paper tables from stored results: accuracy vs IPC and improvement over random, per protocol view,
as Markdown and LaTeX, with 95% intervals, the best per column in bold and ties marked.

A *view* is one way of choosing which protocol each method's rows come from:

- ``own``: each method under its own protocol (its registered ``eval_protocol``), as papers report;
- a protocol name such as ``idc@200ep``: every method under that one shared protocol. Written for
  each protocol some method was evaluated under besides its own (``protocols = ["own", "idc"]``).

Comparisons always pair a method with ``random`` (and full data) under the SAME protocol as the
method's row, whatever the view.

Example::

    df = ResultsTable("results/digits").load()
    for view, rows in protocol_views(df):
        print(saturation_markdown(rows, df, read_full_data("results/digits"), view))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

import pandas as pd

from bench.report.metrics import gap_recovered_interval, improvement_over_random
from bench.report.stats import Interval, paired_difference, per_seed, t_interval
from bench.vocabulary import OWN_PROTOCOL, REFERENCE_METHOD

OWN = OWN_PROTOCOL   # the view of each method under its own protocol
REFERENCE = REFERENCE_METHOD
TIE = "≈"
SIGNIFICANT = "*"


def base_protocol(name: str) -> str:
    return str(name).split("@")[0]


def own_protocol(method: str) -> str | None:
    from bench.methods.registry import list_methods

    spec = list_methods().get(method)
    return spec.protocol if spec is not None else None


def own_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Each method's rows under its own protocol (a method with one protocol: those rows)."""
    keep = []
    for method, g in df.groupby("method", sort=False):
        protocols = set(g["protocol"].astype(str))
        own = own_protocol(str(method))
        chosen = {p for p in protocols if base_protocol(p) == own} if len(protocols) > 1 else protocols
        keep.append(g[g["protocol"].astype(str).isin(chosen or protocols)])
    return pd.concat(keep) if keep else df


def shared_protocols(df: pd.DataFrame) -> list[str]:
    """Protocols some method (other than random) was evaluated under besides its own."""
    found = []
    for (method, protocol), _ in df.groupby(["method", "protocol"], sort=False):
        if method != REFERENCE and base_protocol(protocol) != own_protocol(str(method)) \
                and df[df["method"] == method]["protocol"].nunique() > 1:
            found.append(str(protocol))
    return sorted(set(found))


def protocol_views(df: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(view name, rows) for ``own`` and for each shared protocol."""
    if df.empty:
        return
    yield OWN, own_rows(df)
    for protocol in shared_protocols(df):
        yield protocol, df[df["protocol"].astype(str) == protocol]


def view_slug(view: str) -> str:
    """A file-name part: ``own``, ``idc-200ep``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", view).strip("-")


@dataclass
class Cell:
    text: str
    bold: bool = False
    mark: str = ""


def _scores(rows: pd.DataFrame, metric: str) -> dict[tuple[str, int], dict[int, float]]:
    return {(str(m), int(i)): per_seed(g, metric) for (m, i), g in rows.groupby(["method", "ipc"], sort=False)}


def _fmt(iv: Interval, digits: int = 1, signed: bool = False) -> str:
    if math.isnan(iv.mean):
        return "-"
    sign = "+" if signed else ""
    mean = f"{iv.mean:{sign}.{digits}f}".replace("-", "−")  # a typographic minus (LaTeX: $-$)
    return mean if math.isnan(iv.half_width) else f"{mean} ± {iv.half_width:.{digits}f}"


def count_test_images(dataset: str) -> int | None:
    """Test-split size of a dataset on this machine (None when it is not available)."""
    try:
        from bench.data.datasets import load_dataset

        return len(load_dataset(dataset).test)
    except Exception:  # a dataset that is not on this machine only loses the count in the caption
        return None


def describe_n(rows: pd.DataFrame) -> str:
    """``n = 3 seeds x 1 model, 539 test images (1 image = 0.19 points)`` for a caption."""
    seeds = rows.groupby(["method", "ipc", "protocol"])["seed"].nunique()
    s = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    known = rows["num_models"].dropna() if "num_models" in rows else ()  # a cell may leave it null
    models = int(known.min()) if len(known) else 1
    text = f"n = {s} seeds x {models} model{'s' if models != 1 else ''} per seed"
    datasets = rows["dataset"].astype(str).unique()
    tests = count_test_images(str(datasets[0])) if len(datasets) == 1 else None
    if tests:
        text += f"; {tests} test images, 1 image = {100 / tests:.2f} points"
    return text


def describe_view(view: str, rows: pd.DataFrame) -> str:
    if view != OWN:
        return f"protocol {view} for every method"
    by = rows.groupby("protocol")["method"].agg(lambda m: ", ".join(sorted(set(m)))).to_dict()
    return "each method's own protocol (" + "; ".join(f"{p}: {m}" for p, m in sorted(by.items())) + ")"


def group_breaks(methods: list[str]) -> list[int]:
    """Row indices where a table of one row per method starts a new method group, and its end:
    where ``render_latex`` puts a rule."""
    from bench.report.style import method_group

    return [k for k in range(1, len(methods)) if method_group(methods[k]) != method_group(methods[k - 1])] \
        + [len(methods)]


def saturation_cells(rows: pd.DataFrame, full: dict[str, dict[str, Any]], metric: str = "acc_last"
                     ) -> tuple[list[str], list[tuple[str, list[Cell]]], list[int]]:
    """Header, (row label, cells) and group breaks of the accuracy-vs-IPC table of one view."""
    from bench.report.style import ordered_methods
    from bench.store.full_data import full_data_label, references_for_rows

    ipcs = sorted(int(i) for i in rows["ipc"].unique())
    methods = ordered_methods(rows["method"])
    scores = _scores(rows, metric)
    best: dict[int, str] = {}
    for ipc in ipcs:
        means = {m: t_interval(scores[(m, ipc)].values()).mean for m in methods if (m, ipc) in scores}
        best[ipc] = max(means, key=lambda m: means[m])
    body = []
    for m in methods:
        cells = []
        for ipc in ipcs:
            if (m, ipc) not in scores:
                cells.append(Cell("-"))
                continue
            iv = t_interval(scores[(m, ipc)].values())
            tie = m != best[ipc] and not paired_difference(scores[(best[ipc], ipc)], scores[(m, ipc)]).excludes_zero \
                and len(set(scores[(best[ipc], ipc)]) & set(scores[(m, ipc)])) >= 2
            cells.append(Cell(_fmt(iv), bold=m == best[ipc], mark=TIE if tie else ""))
        body.append((m, cells))
    breaks = group_breaks(methods)
    dataset = str(rows["dataset"].iloc[0]) if len(rows) else None
    for name, (rec, foreign) in references_for_rows(full, rows["protocol"].astype(str).unique(), dataset).items():
        body.append((f"full data ({full_data_label(name, foreign)})", [Cell(f"{rec['acc']:.1f}") for _ in ipcs]))
    return ["method"] + [f"IPC {i}" for i in ipcs], body, breaks


def improvement_cells(rows: pd.DataFrame, all_rows: pd.DataFrame, full: dict[str, dict[str, Any]],
                      metric: str = "acc_last", gap: bool = False
                      ) -> tuple[list[str], list[tuple[str, list[Cell]]], list[int]]:
    """Improvement over random (points; paired, same protocol, IPC and seed) or, with ``gap``, the
    share of the random-to-full-data gap recovered; ``*`` where the 95% interval excludes zero."""
    from bench.report.style import ordered_methods

    ipcs = sorted(int(i) for i in rows["ipc"].unique())
    methods = [m for m in ordered_methods(rows["method"]) if m != REFERENCE]
    random_rows = all_rows[all_rows["method"] == REFERENCE]
    body = []
    dataset = str(rows["dataset"].iloc[0]) if len(rows) else None
    for m in methods:
        cells = []
        for ipc in ipcs:
            mine = rows[(rows["method"] == m) & (rows["ipc"] == ipc)]
            if mine.empty:
                cells.append(Cell("-"))
                continue
            protocol = str(mine["protocol"].iloc[0])
            rand = per_seed(random_rows[(random_rows["ipc"] == ipc) & (random_rows["protocol"] == protocol)
                                        & (random_rows["arch"] == mine["arch"].iloc[0])], metric)
            if not rand:
                cells.append(Cell("-"))
                continue
            if gap:
                rec = full.get(protocol)  # the same protocol only: a share of another protocol's gap means nothing
                if rec is None or rec.get("dataset") not in (None, dataset):
                    cells.append(Cell("-"))
                    continue
                iv = gap_recovered_interval(per_seed(mine, metric), rand, float(rec["acc"]))
                cells.append(Cell(_fmt(iv, 2), mark=SIGNIFICANT if iv.excludes_zero else ""))
            else:
                iv = improvement_over_random(per_seed(mine, metric), rand)
                cells.append(Cell(_fmt(iv, 1, signed=True), mark=SIGNIFICANT if iv.excludes_zero else ""))
        body.append((m, cells))
    breaks = group_breaks(methods)
    return ["method"] + [f"IPC {i}" for i in ipcs], body, breaks


def paired_difference_cells(rows: pd.DataFrame, reference: str, metric: str = "acc_last"
                            ) -> tuple[list[str], list[tuple[str, list[Cell]]], list[int]]:
    """acc(method) − acc(``reference``) per IPC, paired per seed (same protocol, IPC and seed),
    mean ± 95% paired-t half-width; ``*`` where the interval excludes zero; random is left out."""
    from bench.report.style import ordered_methods

    ipcs = sorted(int(i) for i in rows["ipc"].unique())
    methods = [m for m in ordered_methods(rows["method"]) if m not in (reference, REFERENCE)]
    scores = _scores(rows, metric)
    body = []
    for m in methods:
        cells = []
        for ipc in ipcs:
            iv = paired_difference(scores.get((m, ipc), {}), scores.get((reference, ipc), {}))
            cells.append(Cell(_fmt(iv, 1, signed=True), mark=SIGNIFICANT if iv.excludes_zero else ""))
        body.append((m, cells))
    breaks = group_breaks(methods)
    return ["method"] + [f"IPC {i}" for i in ipcs], body, breaks


def paired_difference_caption(view: str, rows: pd.DataFrame, reference: str) -> str:
    dataset = ", ".join(sorted(rows["dataset"].astype(str).unique()))
    arch = ", ".join(sorted(rows["arch"].astype(str).unique()))
    return (f"{dataset} / {arch}, {describe_view(view, rows)}: acc(method) − acc({reference}) in points, paired "
            f"per seed (the same seed's sets, the same protocol and IPC); mean ± 95% paired-t half-width "
            f"({describe_n(rows)}). {SIGNIFICANT}: the interval excludes zero; -: a side is missing.")


# ----------------------------------------------------------------------------- rendering

def render_markdown(header: list[str], body: list[tuple[str, list[Cell]]], caption: str = "") -> str:
    """A GitHub Markdown table; bold as ``**x**``, marks after the value."""
    lines = [caption, ""] if caption else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for label, cells in body:
        texts = [(f"**{c.text}**" if c.bold else c.text) + (f" {c.mark}" if c.mark else "") for c in cells]
        lines.append("| " + " | ".join([label] + texts) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    text = text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")
    return (text.replace("±", r"$\pm$").replace("−", "$-$").replace("≈", r"$\approx$").replace("†", r"$^\dagger$")
            .replace(" x ", r" $\times$ "))


def render_latex(header: list[str], body: list[tuple[str, list[Cell]]], breaks: list[int], caption: str = "",
                 label: str = "tab:results") -> str:
    """A booktabs table: ``\\textbf`` for the best, marks as superscripts, a rule between groups."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{l{'c' * (len(header) - 1)}}}",
             r"\toprule", " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    for k, (row_label, cells) in enumerate(body):
        if k and k in breaks:
            lines.append(r"\midrule")
        texts = []
        for c in cells:
            t = latex_escape(c.text)
            t = rf"\textbf{{{t}}}" if c.bold else t
            texts.append(t + (rf"$^{{{latex_escape(c.mark).strip('$')}}}$" if c.mark else ""))
        lines.append(" & ".join([latex_escape(row_label)] + texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines += [rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def saturation_caption(view: str, rows: pd.DataFrame, metric: str = "acc_last") -> str:
    what = "last-epoch" if metric == "acc_last" else "best"
    dataset = ", ".join(sorted(rows["dataset"].astype(str).unique()))
    arch = ", ".join(sorted(rows["arch"].astype(str).unique()))
    return (f"{dataset} / {arch}, {describe_view(view, rows)}: {what} test accuracy (%), mean ± half-width of "
            f"the 95% Student-t interval over seeds ({describe_n(rows)}). Bold: best per column; {TIE}: the "
            f"paired 95% interval of its difference to the best includes zero (a tie). Full data: the same "
            f"network trained on the whole training split, under the protocol named in the row.")


def improvement_caption(view: str, rows: pd.DataFrame, gap: bool) -> str:
    dataset = ", ".join(sorted(rows["dataset"].astype(str).unique()))
    arch = ", ".join(sorted(rows["arch"].astype(str).unique()))
    what = ("share of the random-to-full-data gap recovered, (acc - random) / (full - random)" if gap else
            "improvement over random (points), acc(method) - acc(random)")
    return (f"{dataset} / {arch}, {describe_view(view, rows)}: {what}, paired per seed with random under the "
            f"same protocol and IPC; mean ± 95% paired-t half-width ({describe_n(rows)}). {SIGNIFICANT}: the "
            f"interval excludes zero; -: no random{' or full data' if gap else ''} under the method's protocol.")
