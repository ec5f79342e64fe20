"""Metrics beyond raw accuracy, each defined once (docs/metrics.md explains them for readers).

All take per-seed accuracies in percent (``{seed: acc}``) of cells evaluated under ONE protocol,
IPC, dataset and architecture: comparing across protocols is exactly what they exist to avoid.

- :func:`improvement_over_random` (IOR): ``acc(method) - acc(random)``, paired per seed.
  DD-Ranking's IOR (NUS-HPC-AI-Lab/DD-Ranking, ddranking/metrics/hard_label.py,
  ``ior = syn_acc - random_acc``), here with both sets under the same protocol and seed.
- :func:`gap_recovered`: ``(acc - random) / (full - random)``, the share of the random-to-full-data
  gap a method closes (1 = full data, 0 = no better than random, < 0 worse than random).
- :func:`hard_label_recovery` (HLR): ``full - acc``, DD-Ranking's hard-label recovery
  (same file, ``hlr = full_data_acc - syn_acc``): how far the set stays from the whole training split.
- :func:`label_robust_score` (LRS, hard labels): DD-Ranking's
  ``alpha = w * IOR - (1 - w) * HLR`` on accuracies as fractions, mapped to [0, 1] by
  ``(e^alpha - e^-1) / (e - e^-1)`` (w = 0.5 as on its leaderboard). Our sets carry hard labels
  only, so LRS is the label-robust score as DD-Ranking defines it for hard labels.
- :func:`augmentation_robust_score` (ARS): DD-Ranking's
  ``beta = g * IOR(with augmentation) + (1 - g) * IOR(without)`` mapped the same way; here the
  protocol pair ``dc`` (DSA) / ``dc-nodsa`` is the with / without augmentation pair.

Example::

    >>> d = improvement_over_random({0: 96.0, 1: 96.5, 2: 97.0}, {0: 94.0, 1: 94.0, 2: 94.0})
    >>> round(d.mean, 2), d.excludes_zero
    (2.5, True)
    >>> round(gap_recovered(96.0, 90.0, 98.0), 3)
    0.75
"""

from __future__ import annotations

import math
from typing import Mapping

from bench.report.stats import Interval, paired_difference, t_interval

LRS_WEIGHT = 0.5   # DD-Ranking's leaderboard default (IOR and HLR equally important)
ARS_WEIGHT = 0.5


def improvement_over_random(method: Mapping[int, float], random: Mapping[int, float]) -> Interval:
    """IOR in points: mean and paired-t 95% interval over the seeds both were evaluated on."""
    return paired_difference(method, random)


def gap_recovered(acc: float, random: float, full: float) -> float:
    """Share of the random-to-full-data gap closed: ``(acc - random) / (full - random)``.

    NaN when full data is not above random (the ratio has no meaning then)."""
    gap = full - random
    if math.isnan(gap) or gap <= 0:
        return math.nan
    return (acc - random) / gap


def gap_recovered_interval(method: Mapping[int, float], random: Mapping[int, float], full: float) -> Interval:
    """:func:`gap_recovered` per shared seed (each seed's own random), with a t interval over seeds.

    The full-data accuracy is one fixed reference per protocol, so the interval only carries
    the seed-to-seed spread of the paired gap."""
    shared = sorted(set(method) & set(random))
    return t_interval([gap_recovered(method[s], random[s], full) for s in shared])


def hard_label_recovery(acc: float, full: float) -> float:
    """DD-Ranking's HLR in points: ``full - acc`` (smaller is better)."""
    return full - acc


def _normalise(alpha: float) -> float:
    return (math.exp(alpha) - math.exp(-1)) / (math.exp(1) - math.exp(-1))


def label_robust_score(acc: float, random: float, full: float, weight: float = LRS_WEIGHT) -> float:
    """DD-Ranking's hard-label LRS in [0, 1] from accuracies in percent.

    >>> round(label_robust_score(90.0, 90.0, 90.0), 4)   # no gain, nothing left: alpha = 0
    0.2689
    """
    ior = (acc - random) / 100.0
    hlr = (full - acc) / 100.0
    return _normalise(weight * ior - (1 - weight) * hlr)


def augmentation_robust_score(acc_aug: float, random_aug: float, acc_plain: float, random_plain: float,
                              weight: float = ARS_WEIGHT) -> float:
    """DD-Ranking's ARS in [0, 1]: IOR with and without training augmentation (percent inputs)."""
    beta = weight * (acc_aug - random_aug) / 100.0 + (1 - weight) * (acc_plain - random_plain) / 100.0
    return _normalise(beta)
