"""Published numbers beside measured cells (bench/published/numbers.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.published.numbers import (
    comparison_markdown,
    published_comparison,
    published_numbers,
    write_published_comparison,
)


def _rows(method, ipc, accs, protocol="dc-nodsa", dataset="cifar10-jpeg", arch="convnet"):
    return [{"method": method, "dataset": dataset, "ipc": ipc, "seed": s, "arch": arch, "protocol": protocol,
             "acc_last": a, "data_sha256": "f69c4659" * 8} for s, a in enumerate(accs)]


def test_the_shipped_table_holds_the_dc_papers_coreset_rows():
    rows = {(p.method, p.ipc): (p.mean, p.std, p.protocol) for p in published_numbers("cifar10")}
    assert rows[("random", 1)] == (14.4, 2.0, "dc-nodsa") and rows[("herding", 50)] == (40.4, 0.6, "dc-nodsa")
    assert rows[("forgetting", 10)] == (23.3, 1.0, "dc-nodsa")
    assert published_numbers("cifar10-jpeg") == published_numbers("cifar10")  # the copy has its original's table
    assert published_numbers("digits") == []


def test_each_published_cell_meets_its_measured_seeds():
    df = pd.DataFrame(_rows("random", 1, [14.0, 15.0, 16.0, 13.0, 17.0])  # mean 15.0, std sqrt(2.5)
                      + _rows("herding", 10, [20.0, 20.5, 21.0])           # 10.9 below 31.6: outside
                      + _rows("random", 10, [99.0], protocol="dc")          # another protocol: not compared
                      + _rows("random", 50, [99.0], arch="resnet18"))       # another architecture: not compared
    table = published_comparison(df).set_index(["method", "ipc"])
    assert sorted(table.index) == [("herding", 10), ("random", 1)]
    r = table.loc[("random", 1)]
    assert (r["n"] == 5 and r["measured_mean"] == pytest.approx(15.0)
            and r["measured_std"] == pytest.approx(math.sqrt(2.5)))
    assert r["difference"] == pytest.approx(0.6) and r["combined_spread"] == pytest.approx(math.sqrt(2.5 + 4.0))
    assert bool(r["within"]) and not bool(table.loc[("herding", 10)]["within"])
    md = comparison_markdown(published_comparison(df))
    assert "15.0 ± 1.6 (n=5) / 14.4 ± 2.0 / +0.6 |" in md and "20.5 ± 0.5 (n=3) / 31.6 ± 0.7 / -11.1 (outside)" in md
    assert "combined spread" in md and "DC paper, Table 1" in md


def test_reports_are_written_only_where_published_numbers_apply(tmp_path):
    df = pd.DataFrame(_rows("random", 1, [14.0, 15.0]))
    written = write_published_comparison(df, tmp_path)
    assert [p.name for p in written] == ["published_comparison.md", "published_comparison.csv"]
    assert "sha256 f69c4659f69c..." in (tmp_path / "published_comparison.md").read_text()
    assert write_published_comparison(pd.DataFrame(_rows("random", 1, [90.0], dataset="digits")), tmp_path / "d") == []
