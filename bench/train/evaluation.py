"""The evaluation protocol: train fresh models on a synthetic set, test them on the real test split.

The protocols themselves (their names, schedules and references) are defined in :mod:`bench.protocols`
(torch-free, so the CLI's help can list them).

A set distilled in ZCA-whitened space trains and tests in that space under every protocol
(:func:`bench.data.zca.evaluation_space`); soft (K x C) labels train with soft cross-entropy.

The headline number is the LAST-epoch test accuracy, mean +- std over models. There is no
"best" accuracy: taking a maximum over test-set evaluations selects on the test split. The
references' own "best" numbers are not computed here either: MTT's is the best last-epoch test
accuracy over distillation checkpoints (GeorgeCazenavette/mtt-distillation ``distill.py``), a
test-set selection, and IDC's (snu-mllab/Efficient-Dataset-Condensation ``train.py``) evaluates
only at the last epoch outside ImageNet, so it equals the last-epoch accuracy. Any selection our
own code makes (sweeps, DASM, the budget ladder's rung) uses the validation split: when the data
are loaded with ``train_split="train-val"`` (``val`` held out of every method's pool), the same
models are also scored on ``val`` after their last epoch (``EvalResult.acc_val``, the results
table's ``acc_val``), so a later choice between cells never looks at ``acc_last``.

Example::

    res = evaluate_synthetic(syn, load_dataset("digits"), arch="convnet", protocol=PROTOCOLS["dc"])
    print(res.last_mean, res.last_std)
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.data.datasets import Dataset, ImageSet
from bench.errors import BenchError
from bench.protocols import AUGMENTS, PROTOCOLS, SCHEDULES, EvalProtocol
from bench.store.synthetic import SyntheticSet
from bench.train.acceleration import training_step
from bench.train.augmentation import cutmix
from bench.train.loop import guarded_step
from bench.train.models import create_model


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

def make_augmentation(protocol: EvalProtocol, dataset_name: str,
                      image_size: int) -> Callable[[Tensor, torch.Generator], Tensor] | None:
    """The per-batch training augmentation of ``protocol`` (None: none)."""
    from bench.train.augmentation import DSA, ComposedDSA, PerImageChoice, dc_mnist_params, strategy_for

    if not protocol.dsa:
        return None
    if protocol.augment == "dsa":
        return DSA(strategy_for(dataset_name), siamese=False)
    if protocol.augment == "idc":
        # IDC removes DSA's cutout when it evaluates with CutMix (argument.py remove_aug)
        return ComposedDSA(strategy_for(dataset_name, cutout=protocol.cutmix_prob <= 0), siamese=False)
    if protocol.augment == "dc-aug":
        return PerImageChoice("crop_scale_rotate", dc_mnist_params(image_size))
    raise BenchError(f"unknown augmentation {protocol.augment!r}; use one of {', '.join(AUGMENTS)}")


def _new_optimizer(model: nn.Module, protocol: EvalProtocol, lr: float) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=protocol.momentum,
                           weight_decay=protocol.weight_decay)


def train_network(model: nn.Module, images: Tensor, labels: Tensor, protocol: EvalProtocol,
                  generator: torch.Generator, device: torch.device, dataset_name: str = "",
                  on_epoch: Callable[[int, nn.Module, torch.optim.Optimizer], None] | None = None) -> nn.Module:
    """Train ``model`` on (images, labels) under ``protocol``; calls ``on_epoch(epoch, model,
    optimizer)`` after every pass (1-based, with the optimizer that pass used). Raises
    DivergedError on a NaN loss."""
    if protocol.schedule not in SCHEDULES:
        raise BenchError(f"unknown lr schedule {protocol.schedule!r}; use one of {', '.join(SCHEDULES)}")
    model.to(device).train()
    images, labels = images.to(device), labels.to(device)
    lr = protocol.lr
    opt = _new_optimizer(model, protocol, lr)
    if protocol.schedule == "dc":
        # VICO-UoE/DatasetCondensation utils.py evaluate_synset (and mtt-distillation utils.py):
        # `for ep in range(Epoch+1)`, and `if ep in [Epoch//2+1]: lr *= 0.1; optimizer = SGD(...)`
        passes, decay_after = protocol.epochs + 1, {protocol.epochs // 2 + 2}  # 1-based pass numbers
        sched = None
    else:
        # snu-mllab/Efficient-Dataset-Condensation train.py: MultiStepLR([2*E//3, 5*E//6]), stepped per epoch
        passes, decay_after = protocol.epochs, set()
        steps = sorted({max(1, int(f * protocol.epochs + 1e-9)) for f in protocol.milestones})
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=protocol.gamma)
    aug = make_augmentation(protocol, dataset_name, images.shape[-1])
    n = len(images)
    bs = min(protocol.batch_size, n)
    # runtime speed options (bench.train.acceleration: compile, bf16, channels_last); None: the eager code below
    step = training_step(model, device, passes * n)
    for epoch in range(1, passes + 1):
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            x, y = images[idx], labels[idx]
            if aug is not None:
                x = aug(x, generator)
            if protocol.cutmix_prob > 0:
                x, y_a, y_b, lam = cutmix(x, y, generator, beta=protocol.cutmix_beta, prob=protocol.cutmix_prob)
                if step is not None:
                    loss = step.cutmix_loss(x, y_a, y_b, lam)
                else:
                    out = model(x)
                    loss = lam * F.cross_entropy(out, y_a) + (1 - lam) * F.cross_entropy(out, y_b)
            elif step is not None:
                loss = step.loss(x, y)
            else:
                # F.cross_entropy takes hard (int) and soft (probability-row) targets alike
                loss = F.cross_entropy(model(x), y)
            guarded_step(opt, loss, lambda v: f"training diverged: loss became {v} at epoch {epoch} "
                                              f"(lr {opt.param_groups[0]['lr']:g}); lower the learning rate")
        if on_epoch is not None:
            on_epoch(epoch, model, opt)
        if sched is not None:
            sched.step()
        elif epoch in decay_after:
            lr *= protocol.gamma
            opt = _new_optimizer(model, protocol, lr)  # the reference's new optimizer: momentum restarts
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
    """Last-epoch test accuracies (%) of ``num_models`` fresh models and, when the validation
    split was held out of training (``train_split="train-val"``), the same models' validation
    accuracies (``acc_val``; empty otherwise, ``val_mean`` is then NaN)."""

    arch: str
    protocol: str
    acc_last: list[float]
    acc_val: list[float] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @staticmethod
    def _mean_std(values: list[float]) -> tuple[float, float]:
        if not values:
            return math.nan, math.nan
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    @property
    def last_mean(self) -> float:
        return self._mean_std(self.acc_last)[0]

    @property
    def last_std(self) -> float:
        return self._mean_std(self.acc_last)[1]

    @property
    def val_mean(self) -> float:
        return self._mean_std(self.acc_val)[0]

    @property
    def val_std(self) -> float:
        return self._mean_std(self.acc_val)[1]


def holds_out_val(data: Dataset) -> bool:
    """Whether ``data.val`` is disjoint from the training pool (``train_split="train-val"``), i.e.
    whether a validation accuracy on it is an honest basis for a choice."""
    return getattr(data, "train_split", "") == "train-val" and len(data.val) > 0


def evaluate_training_set(images: Tensor, labels: Tensor, data: Dataset, arch: str = "convnet",
                          protocol: EvalProtocol = PROTOCOLS["dc"], num_models: int = 5, seed: int = 0,
                          device: torch.device | str = "cpu", split: str = "test",
                          progress: bool = False, target: ImageSet | None = None,
                          val_target: ImageSet | None = None) -> EvalResult:
    """Train ``num_models`` fresh ``arch`` models on (images, labels) and test each, once, after
    its last epoch on ``split`` (or on ``target``, a transformed copy of that split); with
    ``val_target`` each model is also scored on that (validation) split, into ``acc_val``."""
    device = resolve_device(device)
    if target is None:
        target = {"test": data.test, "val": data.val}[split]
    lasts, vals = [], []
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
        train_network(model, images, labels, protocol, g, device, data.name)
        lasts.append(accuracy(model, target, device))
        if val_target is not None:
            vals.append(accuracy(model, val_target, device))
    return EvalResult(arch, protocol.name, lasts, vals, time.perf_counter() - start)


def evaluate_synthetic(syn: SyntheticSet, data: Dataset, arch: str = "convnet",
                       protocol: EvalProtocol = PROTOCOLS["dc"], num_models: int = 5, seed: int = 0,
                       device: torch.device | str = "cpu", split: str = "test",
                       progress: bool = False) -> EvalResult:
    """Evaluate a synthetic set (decoded first) under ``protocol``.

    Example::

        res = evaluate_synthetic(SyntheticSet.load("x.safetensors"), load_dataset("digits"), num_models=3)
    """
    from bench.data.zca import evaluation_space

    check_compatible(syn, data)
    images, labels = syn.decode()
    if protocol.lr_from_set and "syn_lr" in syn.metadata:
        protocol = dataclasses.replace(protocol, lr=float(syn.metadata["syn_lr"]))
    # a set distilled in ZCA-whitened space trains and tests in that space, as its reference does
    raw = images
    images, target = evaluation_space(syn.metadata, data, raw, split)
    val_target = None
    if split == "test" and holds_out_val(data):  # validation accuracy for later choices (budget rungs)
        val_target = evaluation_space(syn.metadata, data, raw, "val")[1]
        val_target = data.val if val_target is None else val_target
    return evaluate_training_set(images, labels, data, arch, protocol, num_models, seed, device, split, progress,
                                 target=target, val_target=val_target)


def check_compatible(syn: SyntheticSet, data: Dataset) -> None:
    c, h = syn.images.shape[1], syn.images.shape[-1]
    if c != data.channels or h != data.image_size:
        raise BenchError(f"synthetic set has {c}x{h}x{h} images but {data.name} has "
                         f"{data.channels}x{data.image_size}x{data.image_size}")
    if int(syn.hard_labels.max()) >= data.num_classes:
        raise BenchError(f"synthetic labels exceed the {data.num_classes} classes of {data.name}")
    if syn.labels.ndim == 2 and syn.labels.shape[1] != data.num_classes:
        raise BenchError(f"soft labels have {syn.labels.shape[1]} columns but {data.name} has "
                         f"{data.num_classes} classes")
    ipc = syn.metadata.get("ipc")
    # the sidecar's ipc keys the results cell: every distilled or imported set with an ipc holds
    # ipc x classes images, so a hand-edited one would file the accuracy under another IPC
    if isinstance(ipc, int) and not isinstance(ipc, bool) and len(syn) != ipc * data.num_classes:
        raise BenchError(f"synthetic set's metadata says IPC {ipc} ({ipc * data.num_classes} images for "
                         f"{data.num_classes} classes) but it holds {len(syn)} images")


