"""Confidence intervals for results cells and paired differences between methods.

**The unit of replication is the seed.** A results row is one synthetic set (one seed) trained
``num_models`` times; those models share the set, so they are not independent draws of the
method's accuracy: the spread between sets (distillation seed) is the one that matters, and
models within a seed only make each seed's mean less noisy. The interval of a cell is therefore a
Student-t interval on the per-seed means (``n`` = seeds, ``n - 1`` degrees of freedom), not a
normal interval over seeds x models, which would treat correlated models as independent and be
too narrow. With one seed no interval can be given (NaN): the spread over that seed's models
says nothing about another seed's set.

**Comparisons are paired.** Two methods evaluated on the same seeds (and the same test split)
share the seed's randomness (the real images a seed draws, the evaluation models' initialisation
stream), so the difference is computed per shared seed and its interval is a paired-t interval
on those differences (Student, 1908; e.g. Wasserman, *All of Statistics*, 2004, sec. 10.7).
A difference is marked significant when that 95% interval excludes zero.

Example::

    >>> iv = t_interval([90.0, 92.0, 94.0])          # mean 92, sd 2, n 3
    >>> round(iv.mean, 3), round(iv.half_width, 3)    # t_{0.975,2} = 4.303 -> 4.303 * 2 / sqrt(3)
    (92.0, 4.968)
    >>> d = paired_difference({0: 96.0, 1: 96.5, 2: 97.0}, {0: 94.0, 1: 94.0, 2: 94.0})
    >>> round(d.mean, 3), round(d.half_width, 3), d.n, d.excludes_zero
    (2.5, 1.242, 3, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided ``level`` Student-t interval: ``mean ± half_width`` over ``n`` values."""

    mean: float
    half_width: float   # NaN when n < 2
    n: int
    sd: float = math.nan

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero (False without an interval)."""
        return not math.isnan(self.half_width) and (self.low > 0 or self.high < 0)


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided Student-t quantile with ``n - 1`` degrees of freedom (4.303 for n=3)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, n - 1))


def t_interval(values: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean and Student-t interval of independent values (per-seed means)."""
    x = np.asarray([float(v) for v in values if not math.isnan(float(v))], dtype=float)
    n = int(len(x))
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    if n == 1:
        return Interval(float(x[0]), math.nan, 1)
    sd = float(x.std(ddof=1))
    return Interval(float(x.mean()), t_quantile(n, level) * sd / math.sqrt(n), n, sd)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL) -> Interval:
    """``a - b`` over the seeds both have: mean difference and paired-t interval (n = shared seeds)."""
    shared = sorted(set(a) & set(b))
    return t_interval([a[s] - b[s] for s in shared], level)


def per_seed(df: pd.DataFrame, metric: str = "acc_last") -> dict[int, float]:
    """Seed -> the metric of one cell's rows (a seed with several rows, e.g. two runs, is averaged)."""
    if df.empty:
        return {}
    return {int(k): float(v) for k, v in df.groupby("seed")[metric].mean().items()}


def cell_intervals(df: pd.DataFrame, metric: str = "acc_last",
                   keys: tuple[str, ...] = ("method", "dataset", "ipc", "arch", "protocol")) -> pd.DataFrame:
    """One row per cell (``keys``): mean, 95% half-width, seeds, models per seed, CI low/high.

    Example::

        cell_intervals(ResultsTable("results/digits").load())
    """
    cols = list(keys) + ["mean", "half_width", "low", "high", "seeds", "models"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in df.groupby(list(keys), dropna=False, sort=False):
        iv = t_interval(per_seed(g, metric).values())
        models = int(g["num_models"].min()) if "num_models" in g else 1
        rows.append(dict(zip(keys, key if isinstance(key, tuple) else (key,)),
                         mean=iv.mean, half_width=iv.half_width, low=iv.low, high=iv.high,
                         seeds=iv.n, models=models))
    return pd.DataFrame(rows, columns=cols)


def format_interval(iv: Interval, digits: int = 1, pm: str = "±") -> str:
    """``92.0 ± 5.0`` (or just ``92.0`` without an interval)."""
    if math.isnan(iv.mean):
        return "-"
    if math.isnan(iv.half_width):
        return f"{iv.mean:.{digits}f}"
    return f"{iv.mean:.{digits}f} {pm} {iv.half_width:.{digits}f}"
