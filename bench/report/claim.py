"""The claim report of a spec with a ``[claim]`` table: is a method better than its references, per
IPC, and how sure are we? Written to ``<out>/<claim.dir>/`` after the spec's run.

From the spec's own cells only (matched by cell key: its methods' configs, IPCs, seeds, first
architecture and its one shared protocol), so the report compares like with like even when the
results directory holds more:

- ``saturation.{md,tex,png,pdf}``: accuracy vs IPC with 95% intervals (the saturation view);
- ``paired_vs_<reference>.{md,tex}``: acc(method) − acc(reference), paired per seed, 95% paired-t
  intervals, ``*`` where the interval excludes zero;
- ``paired_differences.{png,pdf}``: the same, one panel per reference;
- ``paired_differences.csv``: every difference with n, mean, half-width and interval ends, for
  a README or a later test to quote.

The prose (``README.md`` in that directory) is written by a person from these files: it is never
overwritten here.

Example::

    spec = load_spec("claim-digits")
    write_claim_report(ResultsTable(spec.default_out).load(), spec)
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pandas as pd

from bench.files import write_atomically
from bench.report.stats import paired_difference, per_seed
from bench.spec.cells import cell_keys
from bench.spec.experiment import claim_protocol
from bench.vocabulary import REFERENCE_METHOD

if TYPE_CHECKING:
    from bench.spec.experiment import ExperimentSpec






def claim_rows(df: pd.DataFrame, spec: ExperimentSpec) -> pd.DataFrame:
    """The spec's own cells (by key: a row of the same method under another config, e.g. a control
    run with other overrides in the same directory, is not one of them) on its first architecture,
    under its shared protocol."""
    protocol = claim_protocol(spec)
    keep = df["cell_key"].isin(cell_keys(spec.grid())) & (df["arch"].astype(str) == spec.archs[0]) \
        & (df["protocol"].astype(str) == protocol)
    return df[keep]


def difference_records(rows: pd.DataFrame, references: list[str], metric: str = "acc_last") -> list[dict]:
    """One record per (reference, method, IPC): n, mean, 95% half-width, low, high, excludes_zero."""
    records = []
    methods = sorted(set(rows["method"]) - {REFERENCE_METHOD})
    for ref in references:
        for m in methods:
            if m == ref:
                continue
            for ipc in sorted(int(i) for i in rows["ipc"].unique()):
                a = per_seed(rows[(rows["method"] == m) & (rows["ipc"] == ipc)], metric)
                b = per_seed(rows[(rows["method"] == ref) & (rows["ipc"] == ipc)], metric)
                d = paired_difference(a, b)
                if math.isnan(d.mean):
                    continue
                hw = d.half_width
                records.append({"method": m, "reference": ref, "ipc": ipc, "n": d.n, "mean": round(d.mean, 3),
                                "half_width": None if math.isnan(hw) else round(hw, 3),
                                "low": None if math.isnan(hw) else round(d.low, 3),
                                "high": None if math.isnan(hw) else round(d.high, 3),
                                "excludes_zero": bool(d.excludes_zero)})
    return records


def write_claim_report(df: pd.DataFrame, spec: ExperimentSpec, out: str | Path | None = None,
                       log: Callable[[str], None] = print, metric: str = "acc_last") -> list[Path]:
    """Write the claim files (module docstring) for ``spec`` from the results ``df``; [] when the
    spec has no ``[claim]`` table or none of its cells are done yet."""
    from bench.report.figures import paired_difference_panels, saturation_panels
    from bench.report.tables import (
        describe_n,
        paired_difference_caption,
        paired_difference_cells,
        render_latex,
        render_markdown,
        saturation_caption,
        saturation_cells,
    )
    from bench.store.full_data import read_full_data

    if not spec.claim_references:
        return []
    results_dir = Path(out) if out is not None else spec.default_out
    target = results_dir / spec.claim_dir
    rows = claim_rows(df, spec)
    if rows.empty:
        log(f"{spec.name}: no cells of the claim yet; nothing written to {target}")
        return []
    view = claim_protocol(spec)
    full = read_full_data(results_dir)
    label = f"{spec.dataset}-claim"
    written: list[Path] = []

    def text(name: str, body: str) -> None:
        write_atomically(target / name, body)
        written.append(target / name)

    header, body, breaks = saturation_cells(rows, full, metric)
    caption = saturation_caption(view, rows, metric)
    text("saturation.md", render_markdown(header, body, caption))
    text("saturation.tex", render_latex(header, body, breaks, caption, f"tab:saturation-{label}"))
    n = describe_n(rows)
    written += saturation_panels(rows, df, full, target / "saturation", metric,
                                 title=f"{spec.dataset}, protocol {view}\n{n}")
    for ref in spec.claim_references:
        header, body, breaks = paired_difference_cells(rows, ref, metric)
        caption = paired_difference_caption(view, rows, ref)
        text(f"paired_vs_{ref}.md", render_markdown(header, body, caption))
        text(f"paired_vs_{ref}.tex", render_latex(header, body, breaks, caption, f"tab:paired-{ref}-{label}"))
    written += paired_difference_panels(rows, spec.claim_references, target / "paired_differences", metric,
                                        title=f"{spec.dataset}, protocol {view}; {n.split(';')[0]}")
    records = difference_records(rows, spec.claim_references, metric)
    buffer = io.StringIO()
    fields = ["method", "reference", "ipc", "n", "mean", "half_width", "low", "high", "excludes_zero"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    text("paired_differences.csv", buffer.getvalue())
    log(f"claim report: {len(written)} files under {target}")
    return written
