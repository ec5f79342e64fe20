"""k-center greedy (Sener & Savarese, ICLR 2018): per class, repeatedly add the real image farthest
from its nearest already chosen centre.

Features are ``ConvNet.embed`` of a ConvNet trained on the real training data
(:mod:`baselines.real_data_features`), the same space as herding, as the DC paper's k-center
baseline. Details follow DeepCore's ``k_center_greedy`` (PatrickZH/DeepCore ``deepcore/methods/kcentergreedy.py``,
``balance=True``): Euclidean distance; the FIRST centre is drawn uniformly at random from the
class (DeepCore: ``np.random.randint(0, sample_num)`` under the run's seed; here from
``request.generator(STREAM_FIRST_CENTER)``), then each further centre is the point whose
distance to its nearest centre is largest. Deviation: DeepCore returns the chosen indices sorted
by dataset index; we keep the selection order within each class.

Example::

    from bench.data.datasets import load_dataset
    from bench.methods.registry import DistillRequest, distill
    syn = distill("kcenter", DistillRequest(load_dataset("digits"), ipc=1, seed=0))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from baselines.real_data_features import RealNetConfig, feature_coreset
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, register_method
from bench.store.synthetic import SyntheticSet

STREAM_FIRST_CENTER = 1


@dataclass
class KCenterConfig(RealNetConfig):
    """Budget of the feature network (see :class:`RealNetConfig`); the first centre is seeded."""


def kcenter_order(features: Tensor, k: int, first: int) -> Tensor:
    """Positions (rows of ``features``) of ``k`` greedy k-center picks, starting with row ``first``.

    After ``first``, each step picks the row with the largest Euclidean distance to its nearest
    chosen centre (ties go to the lowest row).

    Example::

        kcenter_order(torch.tensor([[0.], [1.], [2.], [10.], [11.], [5.]]), 4, first=0)  # tensor([0, 4, 5, 2])
    """
    if features.ndim != 2:
        raise BenchError(f"k-center needs an N x D feature matrix, got shape {tuple(features.shape)}")
    n = features.shape[0]
    if not 0 <= k <= n:
        raise BenchError(f"k-center cannot pick {k} of {n} samples")
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    if not 0 <= first < n:
        raise BenchError(f"k-center first centre {first} is outside 0..{n - 1}")
    x = features.double()
    order = [first]
    nearest = (x - x[first]).norm(dim=1)   # distance of every row to its nearest centre so far
    nearest[first] = -1.0                   # chosen rows never win the argmax again
    for _ in range(k - 1):
        p = int(torch.argmax(nearest))
        order.append(p)
        nearest = torch.minimum(nearest, (x - x[p]).norm(dim=1))
        nearest[order] = -1.0
    return torch.tensor(order, dtype=torch.long)


@register_method("kcenter", KCenterConfig, kind="coreset",
                 description="k-center greedy on features of a ConvNet trained on real data (coreset baseline)",
                 order=11, colour="#56B4E9", marker="^")
def kcenter(request: DistillRequest, config: KCenterConfig) -> SyntheticSet:
    """Per class, ``ipc`` k-center greedy picks among the pool's real images (random first centre).

    Example::

        syn = distill("kcenter", DistillRequest(load_dataset("digits"), ipc=3, seed=1), overrides={"epochs": 2})
    """
    g = request.generator(STREAM_FIRST_CENTER)
    return feature_coreset(request, config, "k-center: feature net",
                           lambda f: kcenter_order(f, request.ipc, int(torch.randint(len(f), (1,), generator=g))))
