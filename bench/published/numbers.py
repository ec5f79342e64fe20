"""Published numbers beside measured ones: does this harness reproduce the tables a reader knows?

``bench/published/<dataset>.toml`` holds published ConvNet-3 accuracies (mean, std, where they were
printed, and the protocol they were measured under). :func:`published_comparison` pairs each with the
measured cells of the same method, IPC and protocol in a results table - on the dataset itself or on
a copy registered ``settings_as`` it (``cifar10-jpeg``) - and reports the difference and whether it
lies within the combined spread, ``|measured - published| <= sqrt(std_measured^2 + std_published^2)``
(both stds as printed: over seeds here, over the authors' runs there). That is a one-standard-
deviation test on purpose: a row outside it is worth a sentence saying why, not proof of a bug.

Example::

    from bench.store.results import ResultsTable
    table = published_comparison(ResultsTable("results/cifar10/coresets").load())
    table[["method", "ipc", "measured", "published", "difference", "within"]]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import tomllib

from bench.errors import BenchError

BASE_ARCH = "convnet"
COLUMNS = ["dataset", "method", "ipc", "protocol", "n", "measured_mean", "measured_std", "published_mean",
           "published_std", "difference", "combined_spread", "within", "source"]


@dataclass(frozen=True)
class PublishedNumber:
    """One published cell: ``method`` at ``ipc`` on ``dataset`` under ``protocol``, mean +- std (%)."""

    dataset: str
    method: str
    ipc: int
    protocol: str
    mean: float
    std: float
    source: str


def published_numbers(dataset: str) -> list[PublishedNumber]:
    """The shipped published numbers for ``dataset`` (its ``settings_as`` name: a copy has its original's
    table); empty when none are shipped."""
    from bench.data.datasets import settings_name

    name = settings_name(dataset)
    path = resources.files("bench") / "published" / f"{name}.toml"
    if not path.is_file():
        return []
    data = tomllib.loads(path.read_text())
    out = []
    for block in data.get("rows", []):
        for method, ipc, mean, std in block["values"]:
            out.append(PublishedNumber(data["dataset"], str(method), int(ipc), str(block["protocol"]),
                                       float(mean), float(std), str(block["source"])))
    return out


def _per_seed(rows: pd.DataFrame) -> pd.Series:
    """One accuracy per seed (its models' mean is the cell's ``acc_last`` already)."""
    return rows.groupby("seed")["acc_last"].mean().astype(float)


def published_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Every published number with measured cells in ``df`` (ConvNet rows, same dataset or copy,
    method, IPC and protocol), one row each; columns :data:`COLUMNS` (``measured_std`` over seeds,
    ``n`` seeds). Empty when nothing matches."""
    out = []
    if len(df):
        base = df[df["arch"].astype(str) == BASE_ARCH]
        for dataset in sorted(base["dataset"].astype(str).unique()):
            rows = base[base["dataset"].astype(str) == dataset]
            for pub in published_numbers(dataset):
                cell = rows[(rows["method"] == pub.method) & (rows["ipc"].astype(int) == pub.ipc)
                            & (rows["protocol"].astype(str) == pub.protocol)]
                if cell.empty:
                    continue
                seeds = _per_seed(cell)
                mean = float(seeds.mean())
                std = float(seeds.std(ddof=1)) if len(seeds) > 1 else float("nan")
                spread = math.sqrt(std ** 2 + pub.std ** 2) if not math.isnan(std) else float("nan")
                diff = mean - pub.mean
                out.append([dataset, pub.method, pub.ipc, pub.protocol, len(seeds), mean, std, pub.mean,
                            pub.std, diff, spread, bool(abs(diff) <= spread) if not math.isnan(spread) else False,
                            pub.source])
    return pd.DataFrame(out, columns=COLUMNS)


def _method_order(methods: list[str]) -> list[str]:
    from bench.methods.registry import get_method

    def key(name: str) -> tuple:
        try:
            return (get_method(name).order, name)
        except (BenchError, AttributeError):
            return (10 ** 6, name)

    return sorted(methods, key=key)


def comparison_markdown(table: pd.DataFrame, dataset_note: str = "") -> str:
    """The comparison as a Markdown table (one row per method, a column per IPC: measured, published,
    difference, and a mark when outside the combined spread) with a caption saying what +- means."""
    ipcs = sorted(table["ipc"].astype(int).unique())
    lines = ["| method | protocol | " + " | ".join(f"IPC {i}: measured / published / difference" for i in ipcs) + " |",
             "|---|---|" + "---|" * len(ipcs)]
    for method in _method_order(list(table["method"].unique())):
        for protocol in sorted(table[table["method"] == method]["protocol"].unique()):
            cells = []
            for ipc in ipcs:
                r = table[(table["method"] == method) & (table["protocol"] == protocol) & (table["ipc"] == ipc)]
                if r.empty:
                    cells.append("-")
                    continue
                r = r.iloc[0]
                mark = "" if r["within"] else " (outside)"
                cells.append(f"{r['measured_mean']:.1f} ± {r['measured_std']:.1f} (n={int(r['n'])}) / "
                             f"{r['published_mean']:.1f} ± {r['published_std']:.1f} / {r['difference']:+.1f}{mark}")
            lines.append(f"| {method} | {protocol} | " + " | ".join(cells) + " |")
    sources = "; ".join(sorted(table["source"].unique()))
    caption = (f"Measured: mean ± std over n seeds (one selection and one fresh ConvNet-3 each), last-epoch test "
               f"accuracy (%){dataset_note}. Published: mean ± std as printed ({sources}). "
               f"Difference = measured - published; (outside): |difference| > sqrt(std_measured² + "
               f"std_published²), the combined spread.")
    return "\n".join(lines) + "\n\n" + caption + "\n"


def write_published_comparison(df: pd.DataFrame, out: str | os.PathLike) -> list[Path]:
    """``published_comparison.{md,csv}`` under ``out`` when any published number has measured cells."""
    from bench.files import write_atomically

    table = published_comparison(df)
    if table.empty:
        return []
    out = Path(out)
    notes = []
    for dataset in sorted(table["dataset"].unique()):
        rows = df[df["dataset"].astype(str) == dataset]
        shas = sorted(set(rows["data_sha256"].dropna().astype(str))) if "data_sha256" in rows else []
        if shas:
            notes.append(f"; {dataset}: the data copy with sha256 {', '.join(s[:12] + '...' for s in shas)}")
    md, csv = out / "published_comparison.md", out / "published_comparison.csv"
    write_atomically(md, comparison_markdown(table, "".join(notes)))
    write_atomically(csv, table.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    return [md, csv]
