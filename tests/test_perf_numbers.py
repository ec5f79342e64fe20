"""Every speed figure of results/perf/README.md is recomputed from the committed raw runs it cites.

The reference comparison (tests/benchmarks/reference_evaluation.py) from its raw CSV and metadata;
the roofline (bench/perf/roofline.py) from each cost directory's cost.csv and peak.csv. A number in the
README that none of those gives fails (tests/readme_numbers.py), so a figure typed by hand, or left
behind when the data changed, cannot stay.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from readme_numbers import unchecked_decimals  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PERF = ROOT / "results" / "perf"
COST_DIRS = [ROOT / "results" / "digits" / "cost", ROOT / "results" / "cifar10" / "cost"]

_spec = importlib.util.spec_from_file_location("reference_evaluation",
                                               ROOT / "tests" / "benchmarks" / "reference_evaluation.py")
reference_evaluation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_evaluation)
_spec = importlib.util.spec_from_file_location("profile_evaluation",
                                               ROOT / "tests" / "benchmarks" / "profile_evaluation.py")
profile_evaluation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile_evaluation)


def _profiles() -> dict[str, list[float]]:
    """profile CSV name -> the convolution's share (%) per run."""
    return {p.name: profile_evaluation.shares(pd.read_csv(p)) for p in sorted(PERF.glob("profile_evaluation_*.csv"))}


def _reference():
    raw = pd.read_csv(PERF / reference_evaluation.RAW)
    meta = json.loads((PERF / reference_evaluation.META).read_text())
    return raw, meta


def test_reference_table_is_recomputed_from_its_raw_runs():
    raw, meta = _reference()
    assert (PERF / "reference_evaluation.md").read_text() == reference_evaluation.markdown(
        reference_evaluation.summarise(raw), meta)
    # the rules for a speed figure: >= 5 alternating rounds per side, one process (same allocator/threads)
    for (ipc, side), g in raw.groupby(["ipc", "side"]):
        assert g["round"].nunique() >= 5, (ipc, side)
    assert meta["reference_commit"] != "unknown" and not meta["code_version"].endswith(".dirty")
    order = raw.groupby(["ipc", "round"])["side"].apply(lambda s: list(dict.fromkeys(s)))
    assert all(sides == ["ours", "reference"] for sides in order)  # alternating within every round


def test_roofline_tables_carry_their_raw_runs():
    from bench.perf.roofline import peak_gflops, summary_rows

    for cost_dir in COST_DIRS:
        peak = pd.read_csv(cost_dir / "peak.csv")
        assert peak.groupby("kernel")["repeat"].nunique().min() >= 5
        rows = summary_rows(cost_dir)
        assert rows, cost_dir
        raw = pd.read_csv(cost_dir / "cost_raw.csv")
        table = pd.read_csv(cost_dir / "cost.csv")
        assert table["repeats"].min() >= 5 and raw.groupby(["unit", "method", "ipc"])["repeat"].nunique().min() >= 5
        assert len(set(table["code_version"])) == 1 and not table["code_version"].iloc[0].endswith(".dirty")
        best = max(peak_gflops(peak).values())
        md = (cost_dir / "cost.md").read_text()
        assert f"({best:.1f} GFLOP/s" in md
        for r in rows:
            assert f"| {r['gflops']:.2f} | {r['percent_of_peak']:.1f} |" in md


def _expected() -> set[str]:
    from bench.perf.roofline import peak_gflops, summary_rows

    raw, meta = _reference()
    out: set[str] = {f"{meta['load_average_end']:.1f}"}
    for r in reference_evaluation.summarise(raw):
        out |= {f"{r['ours_ms']:.1f}", f"{r['reference_ms']:.1f}", f"{r['speedup']:.2f}", f"{r['speedup_min']:.2f}",
                f"{r['speedup_max']:.2f}"}
    import statistics

    for values in _profiles().values():
        out |= {f"{statistics.median(values):.1f}", f"{min(values):.1f}", f"{max(values):.1f}"}
    for cost_dir in COST_DIRS:
        for r in summary_rows(cost_dir):
            out |= {f"{r['gflop_per_unit']:.2f}", f"{r['cpu_seconds']:.3f}", f"{r['gflops']:.2f}",
                    f"{r['percent_of_peak']:.1f}", f"{r['peak']:.1f}"}
        out |= {f"{v:.1f}" for v in peak_gflops(pd.read_csv(cost_dir / "peak.csv")).values()}
        out |= {f"{v:.2f}" for v in pd.read_csv(cost_dir / "cost.csv")["setup_seconds"]}
    return out


def test_every_number_in_the_performance_readme_comes_from_the_raw_runs():
    text = (PERF / "README.md").read_text()
    assert not unchecked_decimals(text, _expected())
    from bench.perf.roofline import summary_markdown

    assert summary_markdown(COST_DIRS) in text  # the roofline table, as recomputed
    assert (PERF / "reference_evaluation.md").read_text().split("\n\n")[0] in text


def test_profiles_hold_five_runs_of_one_clean_version():
    profiles = _profiles()
    assert profiles
    for name, values in profiles.items():
        assert len(values) >= 5 and all(0 < v < 100 for v in values), name
        meta = json.loads((PERF / name.replace(".csv", ".json")).read_text())
        assert not meta["code_version"].endswith(".dirty") and meta["runs"] == len(values)


@pytest.mark.parametrize("name", ["before_after.md", "references.md"])
def test_figures_without_raw_runs_are_gone(name):
    assert not (PERF / name).exists()
