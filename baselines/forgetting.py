"""Forgetting (Toneva et al., ICLR 2019): per class, keep the real images the network forgets most.

A ConvNet is trained on the real training data (the request's pool) for ``epochs`` epochs. Each
sample's correctness is recorded from the training forward pass of the minibatch that holds it
(once per epoch), as Toneva et al. and DeepCore (PatrickZH/DeepCore ``deepcore/methods/forgetting.py``)
do. A
forgetting event is a transition correct -> incorrect between consecutive epochs. Samples never
classified correctly count as maximally forgettable (Toneva et al. give them infinite
forgetting; DeepCore leaves them at 0 because its counter only sees transitions). Per class the
``ipc`` highest counts are kept (DeepCore ``balance=True``); ties are broken uniformly at random
by the seeded generator (DeepCore: whatever order ``np.argsort`` leaves).

Example::

    from bench.data.datasets import load_dataset
    from bench.methods.registry import DistillRequest, distill
    syn = distill("forgetting", DistillRequest(load_dataset("digits"), ipc=1, seed=0))
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from baselines.real_data_features import (
    STREAM_TRAIN,
    RealNetConfig,
    check_pools,
    network_key,
    pool_union,
    seeded_model,
    selected_real_images,
)
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, register_method
from bench.store.synthetic import SyntheticSet
from bench.train.loop import guarded_step

STREAM_TIES = 2


@dataclass
class ForgettingConfig(RealNetConfig):
    """Budget of the network whose forgetting events are counted (see :class:`RealNetConfig`;
    DeepCore's forgetting class defaults to 200 epochs, its ``main.py`` passes 40)."""


def forgetting_counts(correct: Tensor) -> Tensor:
    """Forgetting events per sample from a ``[epochs, n]`` boolean correctness matrix.

    Counts ``correct[t, i] and not correct[t + 1, i]``. A sample never correct gets ``epochs``,
    more than any learned sample can reach (at most ``epochs // 2`` events), so it ranks first.

    Example::

        forgetting_counts(torch.tensor([[True, True, False], [False, True, False]]))  # tensor([1, 0, 2])
    """
    if correct.ndim != 2 or correct.shape[0] < 1:
        raise BenchError(f"forgetting needs an epochs x n correctness matrix, got shape {tuple(correct.shape)}")
    correct = correct.bool()
    counts = (correct[:-1] & ~correct[1:]).sum(dim=0)
    counts[~correct.any(dim=0)] = correct.shape[0]
    return counts.long()


def highest_scores(scores: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Positions of the ``k`` highest ``scores``, highest first; equal scores in random order."""
    shuffled = torch.randperm(len(scores), generator=generator)
    ranked = torch.sort(scores[shuffled], descending=True, stable=True).indices
    return shuffled[ranked[:k]]


# Correctness records of this process by network_key: forgetting at every IPC of one seed trains the
# very same network (the selection per IPC happens after), minutes per epoch on CIFAR-10 on a CPU.
_RECORDS: "OrderedDict[tuple, Tensor]" = OrderedDict()
_RECORDS_MAX = 8


def record_correctness(request: DistillRequest, config: ForgettingConfig, indices: Tensor) -> Tensor:
    """Train a fresh ConvNet on the training images at ``indices`` and return the ``[epochs, len(indices)]``
    matrix of per-sample correctness seen in each epoch's training forward passes (reused when this
    process recorded the same data, pool, budget and seed before)."""
    key = network_key(request, config, indices)
    if key not in _RECORDS:
        _RECORDS[key] = _train_and_record(request, config, indices)
        while len(_RECORDS) > _RECORDS_MAX:
            _RECORDS.popitem(last=False)
    _RECORDS.move_to_end(key)
    return _RECORDS[key].clone()


def _train_and_record(request: DistillRequest, config: ForgettingConfig, indices: Tensor) -> Tensor:
    data, device = request.data, request.device
    images, labels = data.train.get(indices).to(device), data.train.labels[indices].to(device)
    model = seeded_model(config, request).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    g = request.generator(STREAM_TRAIN)
    n = len(indices)
    correct = torch.zeros(config.epochs, n, dtype=torch.bool)
    for epoch in tqdm(range(config.epochs), desc="forgetting: training", disable=not request.progress, leave=False):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            out = model(images[batch.to(device)])
            loss = F.cross_entropy(out, labels[batch.to(device)])
            # correctness BEFORE this step's update, as the reference records it
            correct[epoch, batch] = (out.argmax(1) == labels[batch.to(device)]).cpu()
            guarded_step(opt, loss, lambda v: f"forgetting: training diverged at epoch {epoch + 1} "
                                              f"(lr {config.lr:g}); lower the learning rate")
    return correct


@register_method("forgetting", ForgettingConfig, kind="coreset",
                 description="most-forgotten real images per class (Toneva et al.; coreset baseline)",
                 order=12, colour="#CC79A7", marker="v")
def forgetting(request: DistillRequest, config: ForgettingConfig) -> SyntheticSet:
    """Per class, the ``ipc`` pool images with the most forgetting events (never-learned first).

    Example::

        syn = distill("forgetting", DistillRequest(load_dataset("digits"), ipc=3, seed=1), overrides={"epochs": 3})
        syn.metadata["forgetting_counts"]    # the selected images' counts, class-major
    """
    check_pools(request)
    union = pool_union(request)
    counts = forgetting_counts(record_correctness(request, config, union))
    g = request.generator(STREAM_TIES)
    chosen, chosen_counts, offset = [], [], 0
    for c in range(request.data.num_classes):
        pool = request.pool_indices(c)
        class_counts = counts[offset:offset + len(pool)]  # pool_union is class-major
        offset += len(pool)
        top = highest_scores(class_counts, request.ipc, g)
        chosen.append(pool[top])
        chosen_counts += class_counts[top].tolist()
    syn = selected_real_images(request, torch.cat(chosen))
    syn.metadata["forgetting_counts"] = chosen_counts
    return syn
