"""The digits budget ladder (results/digits/budget/) is what its README says (issue 25): every rung
distilled from train-val, by one clean code version, the rung chosen on validation only, and every
number of the README recomputed from the ladder's own tables."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from readme_numbers import unchecked_decimals  # noqa: E402

BUDGET = ROOT / "results/digits/budget"
SUMMARIES = sorted(BUDGET.glob("budget-digits-ipc*.csv"))
pytestmark = pytest.mark.skipif(not SUMMARIES, reason="no budget ladder committed")


def _summary() -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, dtype={"flag": str}) for p in SUMMARIES], ignore_index=True)


def test_one_pool_one_clean_version_and_the_choice_on_validation():
    from bench.report.budget import choose_rung

    rows = pd.read_csv(BUDGET / "results.csv")
    ladder = rows[rows["method"].isin(set(_summary()["method"]))]
    versions = set(ladder["code_version"].astype(str))
    assert len(versions) == 1 and not any(v.endswith(".dirty") for v in versions), versions
    assert set(ladder["train_split"]) == {"train-val"} and ladder["acc_val"].notna().all()
    for (ipc, method), g in _summary().groupby(["ipc", "method"]):
        chosen, _ = choose_rung(list(zip(g["rung"], g["val_mean"], g["val_ci95"])))
        assert g.loc[g["chosen"], "rung"].tolist() == [chosen], (ipc, method)  # validation decides, never test


def test_every_decimal_of_the_readme_comes_from_the_ladder():
    from bench.report.budget import WITHIN_POINTS

    values: set[str] = {f"{WITHIN_POINTS:g}"}  # the choosing rule's tolerance
    for key in ("val_mean", "val_ci95", "acc_mean", "acc_ci95", "distill_s"):
        for v in _summary()[key].dropna():
            for digits in (1, 2):
                text = f"{float(v):+.{digits}f}"
                values |= {text, text.lstrip("+"), text.lstrip("+-")}
    unchecked = unchecked_decimals((BUDGET / "README.md").read_text(), values)
    assert not unchecked, f"numbers in the budget README that the ladder does not hold: {unchecked}"
