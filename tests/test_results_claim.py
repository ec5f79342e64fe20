"""The digits claim (results/digits/claim/) is what its README says (issue 25): one pool, one code
version, coresets among the competitors, and every number of the README recomputed from the files
of the directory (its paired report, its table, the learning-rate control and the budget ladder)."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from readme_numbers import prose, unchecked_decimals  # noqa: E402

CLAIM = ROOT / "results/digits/claim"
LR = ROOT / "results/digits/lr-control"
BUDGET = ROOT / "results/digits/budget"
README = CLAIM / "README.md"

pytestmark = pytest.mark.skipif(not (CLAIM / "results.csv").is_file(), reason="no claim table committed")


def _formats(value: float) -> set[str]:
    """How a README writes a number: 1 or 2 decimals, signed or not, and the Unicode minus."""
    out = set()
    for digits in (1, 2):
        text = f"{value:+.{digits}f}"
        out |= {text, text.lstrip("+"), text.replace("-", "−"), text.lstrip("+-")}
    return out


def _table_numbers(path: Path) -> set[str]:
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("|"):
            found |= set(re.findall(r"[+-−]?\d+\.\d+", line))
    return found


def _expected() -> set[str]:
    values: set[str] = set()
    for path in (CLAIM / "paired/paired_differences.csv", LR / "claim/paired_differences.csv"):
        with open(path) as fh:
            for row in csv.DictReader(fh):
                for key in ("mean", "half_width", "low", "high"):
                    values |= _formats(float(row[key]))
    for path in (CLAIM / "paired/saturation.md", LR / "claim/saturation.md"):
        values |= _table_numbers(path)
    for path in BUDGET.glob("budget-digits-ipc*.csv"):
        df = pd.read_csv(path)
        for key in ("val_mean", "val_ci95", "acc_mean", "acc_ci95"):
            for v in df[key].dropna():
                values |= _formats(float(v))
    rows = pd.read_csv(CLAIM / "results.csv")
    for (method, ipc), g in rows.groupby(["method", "ipc"]):
        values |= _formats(float(g["distill_seconds"].median()))
    from scipy.stats import t as student_t

    values.add(f"{student_t.ppf(0.975, 4):.2f}")          # the paired-t quantile on 4 degrees of freedom
    values.add(f"{100 / 539:.2f}")                         # one digits test image, in points
    # the learning-rate control's two rates: IDC's digits default and the one the tuned study found
    import tomllib

    from bench.methods.registry import default_config

    lr_spec = tomllib.loads((ROOT / "bench/specs/claim-digits-lr.toml").read_text())
    values.add(f"{lr_spec['methods']['idc']['lr_img']:g}")
    values.add(f"{default_config('idc', 'digits', 20).lr_img:g}")
    full = __import__("json").loads((CLAIM / "full_data.json").read_text())
    for record in full.get("by_protocol", {}).values():
        values |= _formats(float(record["acc"]))
    return values


def test_one_pool_and_one_clean_code_version():
    rows = pd.read_csv(CLAIM / "results.csv")
    versions = set(rows["code_version"].astype(str))
    assert len(versions) == 1 and not any(v.endswith(".dirty") for v in versions), versions
    assert set(rows["train_split"]) == {"train-val"}
    assert set(rows["protocol"]) == {"idc@200ep"}
    # the coresets are competitors in the claim, not left out
    assert {"random", "herding", "kcenter", "forgetting"} <= set(rows["method"])
    assert rows.groupby(["method", "ipc"]).size().eq(5).all()  # 5 seeds everywhere
    from bench.data.datasets import load_dataset

    pool = load_dataset("digits", train_split="train-val")
    text = " ".join(README.read_text().split())
    assert f"{len(pool.train.labels):,} of digits' {len(load_dataset('digits').train.labels):,} training" in text
    assert f"The {len(pool.val.labels)} validation images" in text and f"All {len(rows)} rows" in text
    (version,) = versions
    assert f"`{version.split('+g')[-1][:7]}`" in text


def test_every_decimal_of_the_readme_comes_from_the_files():
    unchecked = unchecked_decimals(README.read_text(), _expected())
    assert not unchecked, f"numbers in the claim README that no file here holds: {unchecked}"


def test_the_readme_names_the_best_method_of_every_column_as_the_table_does():
    table = (CLAIM / "paired/saturation.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| method"))
    ipcs = re.findall(r"IPC (\d+)", header)
    best = {ipc: [] for ipc in ipcs}
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == len(ipcs) + 1 and not line.startswith("| method") and not set(line) <= set("|-"):
            for ipc, cell in zip(ipcs, cells[1:]):
                if cell.startswith("**"):
                    best[ipc].append(cells[0])
    text = " ".join(prose(README.read_text()).split())
    for ipc, methods in best.items():
        assert methods, f"no best method at IPC {ipc}"
        sentence = re.search(rf"\| best at IPC {ipc} \| ([^|]+) \|", README.read_text())
        assert sentence, f"the README's best-per-IPC table has no row for IPC {ipc}"
        assert sentence.group(1).strip().strip("*") in methods, (ipc, sentence.group(1), methods)
    assert "coreset" in text
