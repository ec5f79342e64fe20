"""Random selection: IPC real images per class drawn uniformly from the allowed pool."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods.registry import DistillRequest, register_method
from bench.store.synthetic import SyntheticSet


@dataclass
class RandomConfig:
    """Random selection has no knobs; the seed decides."""


@register_method("random", RandomConfig, kind="coreset",
                 description="random real images per class (coreset baseline)",
                 order=0, colour="#000000", marker="x")
def random_selection(request: DistillRequest, config: RandomConfig) -> SyntheticSet:
    """Pick ``ipc`` images per class uniformly at random without replacement.

    Example::

        syn = distill("random", DistillRequest(load_dataset("digits"), ipc=10, seed=0))
    """
    g = request.generator()
    chosen = []
    for c in range(request.data.num_classes):
        pool = request.pool_indices(c)
        chosen.append(pool[torch.randperm(len(pool), generator=g)[: request.ipc]])
    idx = torch.cat(chosen)
    return SyntheticSet(request.data.train.get(idx), request.data.train.labels[idx].clone(),
                        metadata={"selected_indices": idx.tolist()})
