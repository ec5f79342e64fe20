"""Difficulty of real images under a model trained on the synthetic segments distilled so far.

Before segment k >= 2, DASM trains a fresh model (the base's evaluation architecture, ConvNet)
on the decoded segments 1..k-1 with the evaluation protocol at a short budget, then scores
EVERY real training image by its cross-entropy loss under that model. Losses are ranked within
each class into quantiles in [0, 1] (0 = lowest loss = easiest) and a segment's window selects
its real-data pool.

Boundary rule of :func:`window_pool`: an image is in window ``[lo, hi]`` iff
``lo <= q <= hi`` (both ends closed). A class whose window catches no image (a window narrower
than the gap between two ranks) gets the single image whose quantile is closest to the window's
centre, so no class pool is ever empty.

Example::

    model = train_ranking_model(images, labels, data, "convnet", protocol, seed=0)
    scores = difficulty_scores(model, data)
    q = class_quantiles(scores, data.train.labels, data.num_classes)
    pools = window_pool(q, data.train.labels, (0.25, 1.0), data.num_classes)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.data.datasets import Dataset
from bench.errors import BenchError
from bench.protocols import EvalProtocol
from bench.train.evaluation import train_network
from bench.train.models import create_model


def train_ranking_model(images: Tensor, labels: Tensor, data: Dataset, arch: str, protocol: EvalProtocol,
                        seed: int, device: torch.device | str = "cpu") -> nn.Module:
    """A fresh ``arch`` trained on (images, labels) under ``protocol``; seeded, and the caller's
    global RNG is left untouched (so a K=1 run and the base method see the same RNG state)."""
    device = torch.device(device)
    g = torch.Generator()
    g.manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # model initialisation
        model = create_model(arch, data.channels, data.num_classes, data.image_size)
        train_network(model, images, labels, protocol, g, device, data.name)
    return model.eval()


@torch.no_grad()
@torch.no_grad()  # scores only: no autograd graph over the whole training split
def difficulty_scores(model: nn.Module, data: Dataset, device: torch.device | str = "cpu",
                      batch_size: int = 1024) -> Tensor:
    """Per-sample cross-entropy loss (float64, CPU) of every real training image under ``model``."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    split = data.train
    losses = []
    for start in range(0, len(split), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(split)))
        logits = model(split.get(idx).to(device))
        losses.append(F.cross_entropy(logits, split.labels[idx].to(device), reduction="none").double().cpu())
    model.train(was_training)
    return torch.cat(losses)


def class_quantiles(scores: Tensor, labels: Tensor, num_classes: int,
                    allowed: Sequence[Tensor] | None = None) -> Tensor:
    """Rank ``scores`` within each class into quantiles ``rank / (n_c - 1)`` in [0, 1].

    0 = lowest loss (easiest), 1 = highest. Ties keep index order (stable sort). With ``allowed``
    (per-class index tensors) only those images are ranked and every other image gets NaN. A class
    with a single image gets 0.5.

    Example::

        class_quantiles(torch.tensor([3., 1., 2.]), torch.tensor([0, 0, 0]), 1)  # [1.0, 0.0, 0.5]
    """
    if scores.shape != labels.shape:
        raise BenchError(f"{len(scores)} difficulty scores for {len(labels)} labels")
    q = torch.full(scores.shape, float("nan"), dtype=torch.float64)
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten() if allowed is None else allowed[c].flatten().long()
        n = len(idx)
        if n == 0:
            continue
        order = torch.sort(scores[idx].double(), stable=True).indices
        ranks = torch.empty(n, dtype=torch.float64)
        ranks[order] = torch.arange(n, dtype=torch.float64)
        q[idx] = ranks / (n - 1) if n > 1 else torch.full((1,), 0.5, dtype=torch.float64)
    return q


def window_pool(quantiles: Tensor, labels: Tensor, window: tuple[float, float], num_classes: int) -> list[Tensor]:
    """Per class, the indices (ascending) whose quantile lies in ``window`` (``lo <= q <= hi``).

    Images with a NaN quantile (not ranked) are never chosen. A class left empty gets the one
    ranked image nearest the window's centre, so every pool has >= 1 image.

    Example::

        pools = window_pool(q, data.train.labels, (0.5, 1.0), data.num_classes)  # the harder half
    """
    lo, hi = window
    pools = []
    for c in range(num_classes):
        ranked = (labels == c) & ~torch.isnan(quantiles)
        chosen = torch.nonzero(ranked & (quantiles >= lo) & (quantiles <= hi)).flatten()
        if len(chosen) == 0:
            candidates = torch.nonzero(ranked).flatten()
            if len(candidates) == 0:
                raise BenchError(f"class {c} has no ranked real image to draw a pool from")
            nearest = torch.argmin((quantiles[candidates] - (lo + hi) / 2).abs())
            chosen = candidates[nearest:nearest + 1]
        pools.append(chosen)
    return pools


def uniform_pool(data: Dataset, allowed: Sequence[Tensor] | None = None) -> list[Tensor]:
    """Every allowed training image of each class (the [0, 1] window without a ranking)."""
    return [(data.train.indices_by_class[c] if allowed is None else allowed[c]).clone()
            for c in range(data.num_classes)]


def pool_loss_stats(scores: Tensor | None, pools: Sequence[Tensor],
                    allowed: Sequence[Tensor] | None = None) -> dict[str, float | None]:
    """Mean loss of the pool's images and of all ranked images (None without a ranking)."""
    if scores is None:
        return {"pool_mean_loss": None, "all_mean_loss": None}
    everything = torch.cat(list(allowed)) if allowed is not None else torch.arange(len(scores))
    return {"pool_mean_loss": float(scores[torch.cat(list(pools))].mean()),
            "all_mean_loss": float(scores[everything].mean())}
