"""The committed CIFAR-10 results: each table from one clean code version, each rendering recomputed
from the rows beneath it, and every number in their READMEs found in the tables they cite."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import pandas as pd
import pytest
from readme_numbers import decimals, unchecked_decimals

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "results" / "cifar10"
SHARED_PUBLISHED = REPO.parent / "shared" / "data" / "published"
ARCHIVE_SHA256 = "f69c465918f15cb789eabb27413402e80cba9a96f46b1cfd65e3ae621860ade8"  # shared/data/cifar10-jpeg README


def _one_clean_version(versions) -> str:
    found = sorted({str(v) for v in versions})
    assert len(found) == 1, f"a table mixes code versions: {found}"
    assert not found[0].endswith(".dirty") and "+g" in found[0], found[0]
    return found[0]


# ----------------------------------------------------------------------------- published sets

def test_published_table_is_one_clean_version_and_renders_from_its_csv(tmp_path):
    from bench.published.evaluate import read_table, render_table

    rows = read_table(ROOT / "published")
    _one_clean_version(r.code_version for r in rows)
    assert all(r.models >= 5 and r.arch == "convnet" for r in rows)
    if SHARED_PUBLISHED.is_dir():  # every published set in the shared folder is in the table
        folders = sorted(p.name for p in SHARED_PUBLISHED.iterdir() if p.is_dir())
        assert sorted(r.folder for r in rows) == folders
    copy = tmp_path / "published"
    shutil.copytree(ROOT / "published", copy)
    assert render_table(copy).read_text() == (ROOT / "published" / "published.md").read_text()


# ----------------------------------------------------------------------------- coresets

def _coreset_table() -> pd.DataFrame:
    from bench.store.results import ResultsTable

    return ResultsTable(ROOT / "coresets").load()


def test_coreset_cells_are_one_clean_version_on_the_jpeg_copy():
    df = _coreset_table()
    assert len(df) >= 10
    _one_clean_version(df["code_version"])
    assert set(df["dataset"]) == {"cifar10-jpeg"} and set(df["data_sha256"]) == {ARCHIVE_SHA256}
    assert set(df["protocol"].astype(str)) == {"dc-nodsa"}  # the DC paper's Table 1 protocol


def test_coreset_comparison_recomputes_from_the_cells():
    from bench.published.numbers import published_comparison

    fresh = published_comparison(_coreset_table())
    committed = pd.read_csv(ROOT / "coresets" / "published_comparison.csv")
    assert len(fresh) == len(committed) >= 2
    key = ["method", "ipc"]
    fresh, committed = fresh.sort_values(key).reset_index(drop=True), committed.sort_values(key).reset_index(drop=True)
    assert fresh[key].values.tolist() == committed[key].values.tolist()
    for col in ("measured_mean", "measured_std", "published_mean", "difference", "combined_spread"):
        assert fresh[col].tolist() == pytest.approx(committed[col].tolist(), abs=1e-4), col
    assert fresh["within"].tolist() == committed["within"].astype(bool).tolist()
    assert (committed["n"] >= 3).all()
    random = committed[committed["method"] == "random"]
    assert len(random) == 2 and (random["n"] == 5).all()  # random: all five seeds at IPC 1 and 10


# ----------------------------------------------------------------------------- cost

def test_cost_rows_recompute_from_the_raw_runs():
    from bench.perf.cost_model import EXPERT_SUBSET

    cost = pd.read_csv(ROOT / "cost" / "cost.csv")
    raw = pd.read_csv(ROOT / "cost" / "cost_raw.csv")
    _one_clean_version(cost["code_version"])
    assert set(cost["threads"]) == {1}
    for _, row in cost.iterrows():
        runs = raw[(raw["unit"] == row["unit"]) & (raw["method"] == row["method"]) & (raw["ipc"] == row["ipc"])]
        assert runs["repeat"].nunique() == row["repeats"]
        slopes = []
        for _, rep in runs.groupby("repeat"):
            t = dict(zip(rep["size"], rep["cpu_seconds"]))
            slopes.append(max(0.0, (t[row["k2"]] - t[row["k1"]]) / (row["k2"] - row["k1"])))
        per = statistics.median(slopes)
        if row["unit"] == "expert epoch":  # timed on a subset, scaled to the 50,000 training images
            per *= 50_000 / EXPERT_SUBSET
        assert row["per_unit_seconds"] == pytest.approx(per, rel=1e-4), row.to_dict()
        hours = (row["setup_seconds"] + row["reference_units"] * row["per_unit_seconds"]) / 3600
        assert row["reference_hours"] == pytest.approx(hours, rel=1e-4)


# ----------------------------------------------------------------------------- READMEs

def _rendered_decimals() -> set[str]:
    tables = [ROOT / "published" / "published.md", ROOT / "coresets" / "published_comparison.md",
              ROOT / "coresets" / "table_acc_last.md", ROOT / "cost" / "cost.md"]
    found = set()
    for t in tables:
        found |= set(decimals(t.read_text()))
    # the DC set under the DSA protocol (a probe, code b3af889): its mean, std and difference
    probe = pd.read_csv(ROOT / "published" / "dc_set_under_dsa_protocol.csv").iloc[0]
    _one_clean_version([probe["code_version"]])
    found |= {f"{probe['measured_mean']:.2f}", f"{probe['measured_std']:.2f}",
              f"{probe['measured_mean'] - 28.3:+.2f}"}
    return found


def test_results_readme_states_only_numbers_from_its_tables():
    text = (ROOT / "README.md").read_text()
    assert len(decimals(text)) >= 10  # it does report numbers
    assert not unchecked_decimals(text, _rendered_decimals())


def test_main_readme_cifar_section_states_only_numbers_from_the_tables():
    text = (REPO / "README.md").read_text()
    start = text.index("## CIFAR-10, offline")
    section = text[start:text.index("\n## ", start + 1)]
    assert "results/cifar10/README.md" in section and "cifar10-jpeg" in section
    assert not unchecked_decimals(section, _rendered_decimals())
