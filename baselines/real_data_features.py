"""Shared machinery of the coreset baselines that look at a network trained on REAL data.

Herding and k-center greedy select in the feature space (``ConvNet.embed``: features before
the head) of a ConvNet trained on the real training images the request allows; forgetting
trains the same network with the same budget. This module holds that budget
(:class:`RealNetConfig`), the training and embedding helpers, and the final
"indices -> SyntheticSet" step. It registers no method.

The network is trained on the union of ``request.pool_indices(c)`` over all classes: the pool is
the only real data a method may use, and without a pool it is the whole training split (as in
DeepCore and the DC paper's coreset baselines). ``request.frozen`` is ignored: a coreset selects
real images and never trains on synthetic ones.

Example::

    from bench.data.datasets import load_dataset
    from bench.methods.registry import DistillRequest
    request = DistillRequest(load_dataset("digits"), ipc=1, seed=0)
    per_class = class_embeddings(request, RealNetConfig.for_setting("digits", 1))
    per_class[3].shape          # (len(request.pool_indices(3)), feature_dim)
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bench.data.datasets import ImageSet
from bench.errors import BenchError
from bench.methods.registry import DistillRequest
from bench.protocols import EvalProtocol
from bench.store.synthetic import SyntheticSet
from bench.train.evaluation import train_network
from bench.train.models import create_model

# Stream of request.generator(stream) that shuffles the real data while training the network;
# methods draw their own randomness (k-center's first centre, tie breaks) from other streams.
STREAM_TRAIN = 100
# Offset mixed into the seed of the network's initialisation (kept apart from every generator stream).
_INIT_SALT = 7_777


@dataclass
class RealNetConfig:
    """Budget of the ConvNet trained on the real training data.

    Defaults are DeepCore's selection arguments (PatrickZH/DeepCore ``main.py``: ``--selection_epochs 40``,
    ``--selection_lr 0.1``, momentum 0.9, weight decay 5e-4, batch 256, constant learning rate),
    i.e. the paper-scale (CIFAR) budget. DeepCore also uses Nesterov momentum; our shared
    ``train_network`` uses plain momentum.
    """

    arch: str = "convnet"
    epochs: int = 40
    lr: float = 0.1
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4

    @classmethod
    def for_setting(cls, dataset: str, ipc: int) -> "RealNetConfig":
        """Short CPU budgets for the embedded datasets, DeepCore's defaults elsewhere.

        Example::

            HerdingConfig.for_setting("digits", 1).epochs     # 5
        """
        name = dataset.lower()
        if name == "digits":
            # ~0.8 s per epoch on one loaded CPU core; 5 epochs reach ~95% test accuracy.
            return cls(epochs=5)
        if name == "mnist5k":
            # ~70 s per epoch on one loaded CPU core (28x28 through a depth-3 ConvNet). With only 2
            # epochs the constant lr 0.1 is still noisy (78% test accuracy) while 0.01 gives 94%.
            return cls(epochs=2, lr=0.01)
        return cls()

    def validate(self) -> None:
        kind = type(self).__name__
        if not self.arch.lower().startswith("convnet"):
            raise BenchError(f"{kind} arch must be a ConvNet variant (it needs .embed), got {self.arch!r}")
        if self.epochs < 1:
            raise BenchError(f"{kind} epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0:
            raise BenchError(f"{kind} lr must be positive, got {self.lr}")
        if self.batch_size < 1:
            raise BenchError(f"{kind} batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.momentum < 1:
            raise BenchError(f"{kind} momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise BenchError(f"{kind} weight_decay must be >= 0, got {self.weight_decay}")

    def protocol(self) -> EvalProtocol:
        """This budget as an :class:`EvalProtocol` for ``train_network`` (no augmentation, constant lr)."""
        return EvalProtocol(name=f"real-net@{self.epochs}ep", epochs=self.epochs, batch_size=self.batch_size,
                            lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                            schedule="multistep", milestones=(), dsa=False)


# ----------------------------------------------------------------------------- pools

def check_pools(request: DistillRequest) -> None:
    """One-line error when a class's pool holds fewer than ``ipc`` images (a coreset cannot repeat)."""
    request.check_pool_sizes(request.ipc, "coreset")


def pool_union(request: DistillRequest) -> Tensor:
    """All training-split indices the request allows, class-major."""
    return torch.cat([request.pool_indices(c) for c in range(request.data.num_classes)])


def seeded_model(config: RealNetConfig, request: DistillRequest, stream: int = 0) -> nn.Module:
    """A fresh ``config.arch`` initialised from (seed, stream) under a forked RNG, on CPU.

    Forking keeps the caller's global RNG untouched and makes the init identical on every device.
    """
    data = request.data
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.seed * 1_000_003 + _INIT_SALT + stream)
        model = create_model(config.arch, data.channels, data.num_classes, data.image_size)
    if not hasattr(model, "embed"):
        raise BenchError(f"architecture {config.arch!r} has no .embed (features before the head)")
    return model


# ----------------------------------------------------------------------------- features

# Trained real-data networks of this process, by everything that determines their weights. Herding
# and k-center at every IPC of one seed train the very same network (same data, pool, budget, seed
# and generator stream); on CIFAR-10 that is minutes per epoch on a CPU, so it is trained once. The
# entries are state dicts (~1.3 MB for ConvNet-3); a hit gives the same weights bit for bit.
_TRAINED: "OrderedDict[tuple, dict[str, Tensor]]" = OrderedDict()
_TRAINED_MAX = 8
trained_networks = 0  # networks actually trained in this process (tests check the cache with it)


def network_key(request: DistillRequest, config: RealNetConfig, indices: Tensor) -> tuple:
    """Everything that determines a real-data network trained for ``request`` on ``indices``: the data
    (name, copy, split), the pool, the :class:`RealNetConfig` budget, the seed and the device."""
    data = request.data
    fields = tuple(getattr(config, f.name) for f in dataclasses.fields(RealNetConfig))
    return (data.name, data.extra.get("sha256"), data.extra.get("root"), data.train_split, len(data.train),
            hashlib.sha256(indices.numpy().tobytes()).hexdigest(), fields, request.seed, str(request.device))


def train_real_network(request: DistillRequest, config: RealNetConfig, desc: str = "real-data net") -> nn.Module:
    """Train a ConvNet on the request's real pool images under ``config`` (``bench.train.evaluation.train_network``);
    a network this process already trained for the same data, pool, budget and seed is reused."""
    global trained_networks
    data = request.data
    indices = pool_union(request)
    model = seeded_model(config, request)
    key = network_key(request, config, indices)
    if key in _TRAINED:
        _TRAINED.move_to_end(key)
        model.load_state_dict(_TRAINED[key])
        return model.to(request.device)
    with tqdm(total=config.epochs, desc=desc, disable=not request.progress, leave=False) as bar:
        train_network(model, data.train.get(indices), data.train.labels[indices], config.protocol(),
                      request.generator(STREAM_TRAIN), request.device, data.name,
                      on_epoch=lambda epoch, net, opt: bar.update(1))
    trained_networks += 1
    _TRAINED[key] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    while len(_TRAINED) > _TRAINED_MAX:
        _TRAINED.popitem(last=False)
    return model


@torch.no_grad()
def embed_images(model: nn.Module, split: ImageSet, indices: Tensor, device: torch.device,
                 batch_size: int = 512) -> Tensor:
    """``model.embed`` of ``split`` images at ``indices`` (eval mode), as a CPU float32 matrix."""
    was_training = model.training
    model.eval()
    out = [model.embed(split.get(indices[start:start + batch_size]).to(device)).float().cpu()
           for start in range(0, len(indices), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, getattr(model, "feature_dim", 0))


def class_embeddings(request: DistillRequest, config: RealNetConfig, desc: str = "real-data net") -> list[Tensor]:
    """Per class ``c``, the embeddings of ``request.pool_indices(c)`` (row i <-> pool index i)
    under a ConvNet trained on the request's real pool images."""
    model = train_real_network(request, config, desc)
    return [embed_images(model, request.data.train, request.pool_indices(c), request.device)
            for c in range(request.data.num_classes)]


# ----------------------------------------------------------------------------- output

def selected_real_images(request: DistillRequest, indices: Tensor) -> SyntheticSet:
    """The real training images at ``indices`` (class-major) as a SyntheticSet with hard labels;
    ``metadata["selected_indices"]`` records the training-split indices."""
    idx = indices.long()
    return SyntheticSet(request.data.train.get(idx).clone(), request.data.train.labels[idx].clone(),
                        metadata={"selected_indices": idx.tolist()})


def feature_coreset(request: DistillRequest, config: RealNetConfig, desc: str,
                    order: Callable[[Tensor], Tensor]) -> SyntheticSet:
    """Per class, the pool images at ``order(features)[:ipc]`` positions, where ``features`` are the
    class's pool embeddings (:func:`class_embeddings`); classes are visited in order, so an
    ``order`` that draws from a generator draws class by class.

    Example::

        syn = feature_coreset(request, config, "herding: feature net", lambda f: herding_order(f, request.ipc))
    """
    check_pools(request)
    features = class_embeddings(request, config, desc=desc)
    chosen = [request.pool_indices(c)[order(f)] for c, f in enumerate(features)]
    return selected_real_images(request, torch.cat(chosen))
