"""The evaluation protocol: train fresh models on a synthetic set, test them on the real test split.

Protocols differ between the reference papers, so every result row names its protocol:

- ``dc``   (DC/DSA/DM): SGD momentum 0.9, wd 5e-4, lr 0.01 x0.1 at E/2, batch 256, 1000 epochs
           with DSA; the LAST-epoch accuracy is the headline number.
- ``dc-nodsa``: the same without augmentation, 300 epochs.
- ``idc``  (IDC): DSA without cutout plus CutMix (beta 1, p 0.5), batch 64, lr 0.01 x0.2 at 2/3
           and 5/6 of 1000 epochs.
- ``mtt``  (MTT): the ``dc`` schedule at the learned synthetic lr stored with the set, in the
           ZCA-whitened space when the set was distilled with ZCA (reference evaluate_synset).

Both last-epoch and best accuracy (max over evenly spaced test evaluations, as MTT/DD-Ranking
report) are recorded, labelled. Example::

    res = evaluate_synthetic(syn, load_dataset("digits"), arch="convnet", protocol=PROTOCOLS["dc"])
    print(res.last_mean, res.last_std)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.data import Dataset, ImageSet
from bench.errors import BenchError, DivergedError
from bench.models import create_model
from bench.paths import safe_slug
from bench.synthetic import SyntheticSet


@dataclass(frozen=True)
class EvalProtocol:
    """How a fresh model is trained on a (synthetic) training set."""

    name: str = "dc"
    epochs: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.5,)  # fractions of `epochs` where lr *= gamma
    gamma: float = 0.1
    dsa: bool = True
    dsa_cutout: bool = True
    cutmix_prob: float = 0.0
    cutmix_beta: float = 1.0
    best_evals: int = 10                    # test evaluations spread over training for "best"
    lr_from_set: bool = False               # MTT: train at the synthetic set's learned lr (metadata "syn_lr")

    def with_epochs(self, epochs: int) -> "EvalProtocol":
        """The same protocol at another budget (tests and CPU runs); the name records it."""
        if epochs <= 0:
            raise BenchError(f"epochs must be positive, got {epochs}")
        if epochs == self.epochs:
            return self
        return dataclasses.replace(self, epochs=epochs, name=f"{self.name.split('@')[0]}@{epochs}ep")


PROTOCOLS: dict[str, EvalProtocol] = {
    "dc": EvalProtocol(),
    "dc-nodsa": EvalProtocol(name="dc-nodsa", epochs=300, dsa=False),
    "idc": EvalProtocol(name="idc", epochs=1000, batch_size=64, milestones=(2 / 3, 5 / 6), gamma=0.2,
                        dsa=True, dsa_cutout=False, cutmix_prob=0.5),
    "mtt": EvalProtocol(name="mtt", lr_from_set=True),
}


def get_protocol(name: str, epochs: int | None = None) -> EvalProtocol:
    """A protocol by name, optionally at a budget: ``dc``, ``dc-nodsa@300ep``; ``epochs`` wins
    over a budget in the name. A malformed name or a budget below 1 epoch is a one-line error."""
    if not isinstance(name, str):
        raise BenchError(f"an evaluation protocol is a name such as 'dc', got {name!r}")
    base, at, budget = name.partition("@")
    if base not in PROTOCOLS:
        raise BenchError(f"unknown evaluation protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    if at:
        digits = budget[:-2] if budget.endswith("ep") else ""
        if not digits.isdigit() or not digits.isascii():
            raise BenchError(f"evaluation protocol {name!r}: expected <protocol>@<N>ep, e.g. {base}@300ep")
        epochs = int(digits) if epochs is None else epochs
    if epochs is None:
        return PROTOCOLS[base]
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise BenchError(f"epochs must be a positive integer, got {epochs!r}")
    return PROTOCOLS[base].with_epochs(epochs)  # raises for epochs < 1


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a one-line error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda") and device != "mps":
        raise BenchError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


# ----------------------------------------------------------------------------- training

def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross entropy for hard (int) or soft (probability rows) targets."""
    return F.cross_entropy(logits, target)


def train_network(model: nn.Module, images: Tensor, labels: Tensor, protocol: EvalProtocol,
                  generator: torch.Generator, device: torch.device, dataset_name: str = "",
                  on_checkpoint: Callable[[int, nn.Module], None] | None = None,
                  checkpoints: tuple[int, ...] = ()) -> nn.Module:
    """Train ``model`` on (images, labels) under ``protocol``; calls ``on_checkpoint(epoch, model)``
    after each epoch listed in ``checkpoints`` (1-based). Raises DivergedError on a NaN loss."""
    from bench.augmentation import DSA, cutmix, strategy_for

    model.to(device).train()
    images, labels = images.to(device), labels.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    steps = sorted({max(1, int(round(f * protocol.epochs))) for f in protocol.milestones})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=protocol.gamma)
    aug = DSA(strategy_for(dataset_name, cutout=protocol.dsa_cutout), siamese=False) if protocol.dsa else None
    n = len(images)
    bs = min(protocol.batch_size, n)
    wanted = set(checkpoints)
    for epoch in range(1, protocol.epochs + 1):
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            x, y = images[idx], labels[idx]
            if aug is not None:
                x = aug(x, generator)
            if protocol.cutmix_prob > 0:
                x, y_a, y_b, lam = cutmix(x, y, generator, beta=protocol.cutmix_beta, prob=protocol.cutmix_prob)
                out = model(x)
                loss = lam * soft_cross_entropy(out, y_a) + (1 - lam) * soft_cross_entropy(out, y_b)
            else:
                loss = soft_cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise DivergedError(f"training diverged: loss became {loss.item()} at epoch {epoch} "
                                    f"(lr {opt.param_groups[0]['lr']:g}); lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if epoch in wanted and on_checkpoint is not None:
            on_checkpoint(epoch, model)
    return model


@torch.no_grad()
def accuracy(model: nn.Module, split: ImageSet, device: torch.device, batch_size: int = 1024) -> float:
    """Top-1 accuracy (%) on a real split."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(split)))
        out = model(split.get(idx).to(device))
        correct += (out.argmax(1).cpu() == split.labels[idx]).sum().item()
    model.train(was_training)
    return 100.0 * correct / max(1, len(split))


@dataclass
class EvalResult:
    """Accuracies (%) of ``num_models`` fresh models: last epoch and best over evaluations."""

    arch: str
    protocol: str
    acc_last: list[float]
    acc_best: list[float]
    seconds: float
    extra: dict = field(default_factory=dict)

    @staticmethod
    def _mean_std(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    @property
    def last_mean(self) -> float:
        return self._mean_std(self.acc_last)[0]

    @property
    def last_std(self) -> float:
        return self._mean_std(self.acc_last)[1]

    @property
    def best_mean(self) -> float:
        return self._mean_std(self.acc_best)[0]

    @property
    def best_std(self) -> float:
        return self._mean_std(self.acc_best)[1]


def _eval_points(protocol: EvalProtocol) -> tuple[int, ...]:
    k = max(1, protocol.best_evals)
    return tuple(sorted({max(1, math.ceil(protocol.epochs * (i + 1) / k)) for i in range(k)} | {protocol.epochs}))


def evaluate_training_set(images: Tensor, labels: Tensor, data: Dataset, arch: str = "convnet",
                          protocol: EvalProtocol = PROTOCOLS["dc"], num_models: int = 5, seed: int = 0,
                          device: torch.device | str = "cpu", split: str = "test",
                          progress: bool = False, target: ImageSet | None = None) -> EvalResult:
    """Train ``num_models`` fresh ``arch`` models on (images, labels) and test each on ``split``
    (or on ``target``, a transformed copy of that split)."""
    device = resolve_device(device)
    if target is None:
        target = {"test": data.test, "val": data.val}[split]
    lasts, bests = [], []
    start = time.perf_counter()
    iterator = range(num_models)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"eval {arch} ({protocol.name})", leave=False)
    for m in iterator:
        g = torch.Generator()
        g.manual_seed(seed * 7919 + m)
        torch.manual_seed(seed * 7919 + m)  # model initialisation
        model = create_model(arch, data.channels, data.num_classes, data.image_size)
        accs: dict[int, float] = {}
        train_network(model, images, labels, protocol, g, device, data.name,
                      on_checkpoint=lambda ep, net: accs.__setitem__(ep, accuracy(net, target, device)),
                      checkpoints=_eval_points(protocol))
        lasts.append(accs[protocol.epochs])
        bests.append(max(accs.values()))
    return EvalResult(arch, protocol.name, lasts, bests, time.perf_counter() - start)


def evaluate_synthetic(syn: SyntheticSet, data: Dataset, arch: str = "convnet",
                       protocol: EvalProtocol = PROTOCOLS["dc"], num_models: int = 5, seed: int = 0,
                       device: torch.device | str = "cpu", split: str = "test",
                       progress: bool = False) -> EvalResult:
    """Evaluate a synthetic set (decoded first) under ``protocol``.

    Example::

        res = evaluate_synthetic(SyntheticSet.load("x.safetensors"), load_dataset("digits"), num_models=3)
    """
    check_compatible(syn, data)
    images, labels = syn.decode()
    target: ImageSet | None = None
    if protocol.lr_from_set and "syn_lr" in syn.metadata:
        protocol = dataclasses.replace(protocol, lr=float(syn.metadata["syn_lr"]))
    if syn.metadata.get("zca_file"):
        images, target = _zca_space(syn, data, images, split)
    return evaluate_training_set(images, labels, data, arch, protocol, num_models, seed, device, split, progress,
                                 target=target)


def _zca_space(syn: SyntheticSet, data: Dataset, images: Tensor, split: str) -> tuple[Tensor, ImageSet]:
    """A set distilled in ZCA-whitened space (MTT) trains and tests in that space, as its reference does."""
    from baselines.mtt_experts import ZCAWhitening

    path = Path(syn.metadata["zca_file"])
    if not path.exists():
        raise BenchError(f"the synthetic set needs its ZCA transform {path}, which is missing")
    zca = ZCAWhitening.load(path)
    real = {"test": data.test, "val": data.val}[split]
    whitened = zca.whiten_normalised(real.images, data)
    identity = ((0.0,) * data.channels, (1.0,) * data.channels)
    return zca.whiten_normalised(images, data), ImageSet(whitened, real.labels, data.num_classes, *identity)


def check_compatible(syn: SyntheticSet, data: Dataset) -> None:
    c, h = syn.images.shape[1], syn.images.shape[-1]
    if c != data.channels or h != data.image_size:
        raise BenchError(f"synthetic set has {c}x{h}x{h} images but {data.name} has "
                         f"{data.channels}x{data.image_size}x{data.image_size}")
    if int(syn.hard_labels.max()) >= data.num_classes:
        raise BenchError(f"synthetic labels exceed the {data.num_classes} classes of {data.name}")
    if syn.labels.ndim == 2 and syn.labels.shape[1] != data.num_classes:
        raise BenchError(f"soft labels have {syn.labels.shape[1]} columns but {data.name} has {data.num_classes} classes")


def full_data_accuracy(data: Dataset, arch: str = "convnet", protocol: EvalProtocol = PROTOCOLS["dc"],
                       num_models: int = 1, seed: int = 0, device: torch.device | str = "cpu",
                       cache_dir: str | os.PathLike = "results/cache") -> EvalResult:
    """Accuracy of ``arch`` trained on the whole training split: computed once, cached as JSON."""
    key = "__".join([safe_slug(data.name), safe_slug(arch), safe_slug(protocol.name), f"m{num_models}", f"s{seed}"])
    path = Path(cache_dir) / "full_data" / f"{key}.json"
    if path.exists():
        try:
            d = json.loads(path.read_text())
            return EvalResult(d["arch"], d["protocol"], d["acc_last"], d["acc_best"], d["seconds"], {"cached": True})
        except (json.JSONDecodeError, KeyError):
            pass  # a damaged cache entry is recomputed
    res = evaluate_training_set(data.train.images, data.train.labels, data, arch, protocol, num_models, seed,
                                device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(res), indent=2))
    os.replace(tmp, path)
    return res
