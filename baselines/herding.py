"""Herding (Welling, ICML 2009): per class, greedily pick real images whose running feature mean
tracks the class mean.

Features are ``ConvNet.embed`` of a ConvNet trained on the real training data
(:mod:`baselines.real_data_features`), as the DC paper's herding baseline and DeepCore
(PatrickZH/DeepCore ``deepcore/methods/herding.py``, ``balance=True``: per class, Euclidean metric).

Deviation from DeepCore: DeepCore takes ``argmax`` of the distance between ``(i+1)*mu - sum``
and the candidates, i.e. the sample that moves the running mean FARTHEST from the class mean.
Herding (Welling 2009; as used by iCaRL and the coreset baselines of the DC paper) picks the
CLOSEST one, so we take ``argmin``. DeepCore also returns the chosen indices sorted by
dataset index; we keep the herding order within each class.

Example::

    from bench.data.datasets import load_dataset
    from bench.methods.registry import DistillRequest, distill
    syn = distill("herding", DistillRequest(load_dataset("digits"), ipc=1, seed=0))
    syn.metadata["selected_indices"]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from baselines.real_data_features import RealNetConfig, feature_coreset
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, register_method
from bench.store.synthetic import SyntheticSet


@dataclass
class HerdingConfig(RealNetConfig):
    """Budget of the feature network (see :class:`RealNetConfig`); herding itself has no knobs."""


def herding_order(features: Tensor, k: int) -> Tensor:
    """Positions (rows of ``features``) of the first ``k`` herding picks, in selection order.

    Step ``i`` (0-based) picks the unselected row ``x`` minimising
    ``|| mu - (s + x) / (i + 1) ||``, where ``mu`` is the mean of all rows and ``s`` the sum of the
    rows picked so far; equivalently ``|| (i + 1) * mu - s - x ||``. Ties go to the lowest row.

    Example::

        herding_order(torch.tensor([[0.], [1.], [2.], [3.], [10.]]), 5)   # tensor([3, 2, 1, 4, 0])
    """
    if features.ndim != 2:
        raise BenchError(f"herding needs an N x D feature matrix, got shape {tuple(features.shape)}")
    n = features.shape[0]
    if not 0 <= k <= n:
        raise BenchError(f"herding cannot pick {k} of {n} samples")
    x = features.double()  # float64: near-ties between candidates must not flip with summation order
    mu = x.mean(dim=0)
    running_sum = torch.zeros_like(mu)
    available = torch.ones(n, dtype=torch.bool)
    order = []
    for i in range(k):
        dist = ((i + 1) * mu - running_sum - x).norm(dim=1)
        dist[~available] = float("inf")
        p = int(torch.argmin(dist))
        order.append(p)
        available[p] = False
        running_sum += x[p]
    return torch.tensor(order, dtype=torch.long)


@register_method("herding", HerdingConfig, kind="coreset",
                 description="herding on features of a ConvNet trained on real data (coreset baseline)",
                 order=10, colour="#0072B2", marker="s")
def herding(request: DistillRequest, config: HerdingConfig) -> SyntheticSet:
    """Per class, the first ``ipc`` herding picks among the pool's real images (herding order kept).

    Example::

        syn = distill("herding", DistillRequest(load_dataset("digits"), ipc=3, seed=1), overrides={"epochs": 2})
    """
    return feature_coreset(request, config, "herding: feature net", lambda f: herding_order(f, request.ipc))
