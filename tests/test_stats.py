"""Intervals, paired differences and metrics against hand-computed values."""

import math

import pandas as pd
import pytest

from bench.report.metrics import (
    augmentation_robust_score,
    gap_recovered,
    gap_recovered_interval,
    hard_label_recovery,
    improvement_over_random,
    label_robust_score,
)
from bench.report.stats import cell_intervals, format_interval, paired_difference, t_interval, t_quantile


def test_t_quantiles_match_the_table():
    assert t_quantile(3) == pytest.approx(4.303, abs=1e-3)   # t_{0.975, 2}
    assert t_quantile(2) == pytest.approx(12.706, abs=1e-3)  # t_{0.975, 1}
    assert t_quantile(10) == pytest.approx(2.262, abs=1e-3)  # t_{0.975, 9}


def test_interval_on_known_numbers():
    iv = t_interval([90.0, 92.0, 94.0])  # mean 92, sd 2
    assert iv.mean == pytest.approx(92.0)
    assert iv.sd == pytest.approx(2.0)
    assert iv.half_width == pytest.approx(4.303 * 2 / math.sqrt(3), abs=1e-3)  # 4.968
    assert (iv.low, iv.high) == pytest.approx((92 - 4.9683, 92 + 4.9683), abs=1e-3)
    assert format_interval(iv) == "92.0 ± 5.0"


def test_one_seed_has_no_interval():
    iv = t_interval([91.0])
    assert iv.mean == 91.0 and math.isnan(iv.half_width) and not iv.excludes_zero
    assert format_interval(iv) == "91.0"


def test_paired_difference_uses_shared_seeds_only():
    a = {0: 96.0, 1: 96.5, 2: 97.0, 3: 50.0}
    b = {0: 94.0, 1: 94.0, 2: 94.0, 4: 10.0}
    d = paired_difference(a, b)  # differences 2, 2.5, 3: mean 2.5, sd 0.5
    assert d.n == 3
    assert d.mean == pytest.approx(2.5)
    assert d.half_width == pytest.approx(4.303 * 0.5 / math.sqrt(3), abs=1e-3)  # 1.242
    assert d.excludes_zero


def test_paired_difference_including_zero_is_not_significant():
    d = paired_difference({0: 95.0, 1: 96.0, 2: 97.5}, {0: 94.0, 1: 94.0, 2: 94.0})
    # differences 1, 2, 3.5: mean 2.167, sd 1.258, half-width 3.126 -> [-0.96, 5.29]
    assert d.mean == pytest.approx(2.1667, abs=1e-3)
    assert d.half_width == pytest.approx(3.126, abs=1e-3)
    assert not d.excludes_zero


def test_pairing_is_narrower_than_unpaired_when_seeds_move_together():
    a = {0: 80.0, 1: 90.0, 2: 85.0}
    b = {s: v - 1.0 for s, v in a.items()}
    d = paired_difference(a, b)
    assert d.half_width == pytest.approx(0.0) and d.mean == pytest.approx(1.0)
    assert t_interval(a.values()).half_width > 10


def test_cell_intervals_use_per_seed_means():
    df = pd.DataFrame({"method": "m", "dataset": "d", "ipc": 1, "arch": "convnet", "protocol": "dc",
                       "seed": [0, 0, 1, 2], "acc_last": [89.0, 91.0, 92.0, 94.0], "num_models": 2})
    row = cell_intervals(df).iloc[0]
    assert row["seeds"] == 3 and row["models"] == 2
    assert row["mean"] == pytest.approx(92.0)  # seed 0 averages to 90
    assert row["half_width"] == pytest.approx(4.968, abs=1e-3)


def test_metrics_on_known_numbers():
    ior = improvement_over_random({0: 96.0, 1: 96.5, 2: 97.0}, {0: 94.0, 1: 94.0, 2: 94.0})
    assert ior.mean == pytest.approx(2.5) and ior.excludes_zero
    assert gap_recovered(96.0, 90.0, 98.0) == pytest.approx(0.75)
    assert gap_recovered(80.0, 90.0, 98.0) == pytest.approx(-1.25)
    assert math.isnan(gap_recovered(96.0, 98.0, 98.0))
    g = gap_recovered_interval({0: 96.0, 1: 94.0}, {0: 90.0, 1: 90.0}, 98.0)
    assert g.mean == pytest.approx((0.75 + 0.5) / 2)
    assert hard_label_recovery(95.0, 98.0) == pytest.approx(3.0)
    # DD-Ranking: alpha = 0.5 * 0.10 - 0.5 * 0.02 = 0.04
    e = math.e
    assert label_robust_score(95.0, 85.0, 97.0) == pytest.approx((math.exp(0.04) - 1 / e) / (e - 1 / e))
    assert label_robust_score(100.0, 0.0, 100.0) == pytest.approx((math.exp(0.5) - 1 / e) / (e - 1 / e))
    assert augmentation_robust_score(95.0, 85.0, 90.0, 80.0) == pytest.approx(
        (math.exp(0.1) - 1 / e) / (e - 1 / e))
