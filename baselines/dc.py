"""DC (gradient matching) and DSA (DC with Differentiable Siamese Augmentation).

Reference: VICO-UoE/DatasetCondensation ``main.py`` (``--method DC`` / ``--method DSA``) and
``utils.py`` (``match_loss``, ``get_loops``, ``epoch``). One iteration:

1. a freshly initialised network (ConvNet by default);
2. ``outer_loop`` rounds of: (BatchNorm nets: freeze statistics on 16 real images per
   class) -> for every class, the distance between the gradient of the CE loss on a real
   batch (256 images of the class) and on the class's synthetic images, summed over
   classes -> one SGD step on the synthetic images (lr 0.1, momentum 0.5) -> unless it is
   the last round, ``inner_loop`` epochs of SGD (lr 0.01) on the synthetic set (batch 256);
3. DSA: the real and the synthetic batch of a class get the SAME sampled transform
   (siamese), and the inner network training augments per sample.

DASM interface: only ``request.pool_indices(c)`` real images are used; ``request.frozen``
images (earlier segments) join the synthetic side of every class's gradient and the
inner network's training set, but receive no gradient (SeqMatch style).

Example::

    syn = distill("dc", DistillRequest(load_dataset("digits"), ipc=10, seed=0))
    syn = distill("dsa", DistillRequest(load_dataset("digits"), ipc=10, seed=0))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from tqdm.auto import tqdm

from baselines.gradient_matching import (
    FrozenImages,
    RealPool,
    check_finite,
    check_metric,
    class_matching_loss,
    freeze_batchnorm,
    get_loops,
    loss_curve,
    seeded_model,
    train_on_tensors,
)
from bench.errors import BenchError
from bench.methods.registry import DSA_REFERENCE, DistillRequest, register_method
from bench.store.synthetic import SyntheticSet
from bench.train.augmentation import DSA
from bench.train.loop import has_batchnorm, resolve_dsa_strategy
from bench.train.models import create_model


@dataclass
class DCConfig:
    """DC hyper-parameters; defaults are the reference's (main.py argparse, CIFAR-10).

    ``outer_loop``/``inner_loop`` None: the reference table by IPC (:func:`get_loops`).
    ``init``: "noise" (reference default for DC) or "real". ``metric``: "ours", "mse",
    "cos" (or IDC's "l1"). ``momentum_net`` 0: the current reference (its first release
    used 0.5). ``dsa_strategy`` "auto": the reference strategy for the dataset (no flip on digits);
    before the shared vocabulary this was ``""`` and ``arch`` was ``model`` (both still accepted,
    and hashed under the old spelling: ``bench.methods.registry.config_dict``).
    Evaluated as the reference evaluates DC: no augmentation, 300 epochs ("dc-nodsa"; its
    MNIST-only crop/scale/rotate augmentation has no protocol here).
    """

    eval_protocol: ClassVar[str] = "dc-nodsa"
    LEGACY_NAMES: ClassVar[dict[str, str]] = {"model": "arch"}
    LEGACY_VALUES: ClassVar[dict[str, dict[str, str]]] = {"dsa_strategy": {"": DSA_REFERENCE}}

    iterations: int = 1000
    outer_loop: int | None = None
    inner_loop: int | None = None
    lr_img: float = 0.1
    momentum_img: float = 0.5
    lr_net: float = 0.01
    momentum_net: float = 0.0
    batch_real: int = 256
    batch_train: int = 256
    init: str = "noise"
    metric: str = "ours"
    arch: str = "convnet"
    dsa: bool = False
    dsa_strategy: str = DSA_REFERENCE
    bn_images_per_class: int = 16

    def __post_init__(self) -> None:
        if self.dsa_strategy == "":  # the old spelling of "the reference strategy"
            self.dsa_strategy = DSA_REFERENCE

    @classmethod
    def for_setting(cls, dataset: str, ipc: int) -> "DCConfig":
        """Reference values (loops by IPC) for cifar10/cifar100 and other datasets; short CPU
        budgets for the embedded datasets (init "real": noise needs the full 1000
        iterations to become useful)."""
        outer, inner = get_loops(ipc)
        if dataset == "digits":
            # ~50 image updates in all; real batch 64 (the class pools hold ~113 images).
            # Budget from measurement, read on TEST accuracy before issue 25 (to be re-chosen on validation;
            # results/digits/budget/budget-digits-ipc10.md, `nox -s budget`):
            # at IPC 10 x1 (96.97 ± 0.67) is within the seed interval of the best rung measured,
            # x8 = 40 iterations (97.19 ± 0.35), at 1/8 of its distillation seconds.
            return cls(iterations=max(2, 50 // outer), outer_loop=outer, inner_loop=min(inner, 5),
                       batch_real=64, init="real")
        if dataset == "mnist5k":
            # 28x28 costs ~20x digits per image (~1.2 s per class match on a loaded core):
            # a smoke-scale budget with fewer matching rounds and a small real batch
            return cls(iterations=20 if outer == 1 else 2, outer_loop=min(outer, 3), inner_loop=min(inner, 2),
                       batch_real=16, init="real")
        return cls(outer_loop=outer, inner_loop=inner)

    def validate(self) -> None:
        check_metric(self.metric)
        if self.init not in ("real", "noise"):
            raise BenchError(f"init must be 'real' or 'noise', got {self.init!r}")
        for name in ("lr_img", "lr_net", "batch_real", "batch_train", "bn_images_per_class"):
            if getattr(self, name) <= 0:
                raise BenchError(f"{name} must be positive, got {getattr(self, name)}")
        if self.iterations < 0:
            raise BenchError(f"iterations must be >= 0, got {self.iterations}")
        for name in ("outer_loop", "inner_loop"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BenchError(f"{name} must be >= 1 (or none for the reference table), got {value}")
        if not 0 <= self.momentum_img < 1 or not 0 <= self.momentum_net < 1:
            raise BenchError("momentum_img and momentum_net must be in [0, 1)")


@dataclass
class DSAConfig(DCConfig):
    """DSA = DC with siamese augmentation in matching and per-sample augmentation in the
    inner network training; the reference commands use ``--init real``. Evaluated with DSA,
    1000 epochs ("dc")."""

    eval_protocol: ClassVar[str] = "dc"
    init: str = "real"
    dsa: bool = True


def gradient_matching(request: DistillRequest, config: DCConfig) -> SyntheticSet:
    """Run DC (``config.dsa`` False) or DSA (True); returns the new ``ipc`` images per class."""
    data, device, ipc = request.data, request.device, request.ipc
    num_classes, ch, size = data.num_classes, data.channels, data.image_size
    outer, inner = get_loops(ipc)
    outer, inner = config.outer_loop or outer, config.inner_loop or inner
    g_init, g_real, g_aug, g_net, g_train = (request.generator(s) for s in range(5))

    pool = RealPool(request, device)
    frozen = FrozenImages(request.frozen, data, 1, device)
    labels = torch.arange(num_classes, device=device).repeat_interleave(ipc)
    if config.init == "real":
        init = torch.cat([pool.sample_filled(c, ipc, g_init) for c in range(num_classes)])
    else:
        init = torch.randn(num_classes * ipc, ch, size, size, generator=g_init).to(device)
    syn = init.detach().clone().requires_grad_(True)
    opt_img = torch.optim.SGD([syn], lr=config.lr_img, momentum=config.momentum_img)

    strategy = resolve_dsa_strategy(config.dsa_strategy, data.name)
    siamese = DSA(strategy, siamese=True) if config.dsa else None
    per_sample = DSA(strategy, siamese=False) if config.dsa else None
    name = "dsa" if config.dsa else "dc"
    curve: list[float] = []
    bar = tqdm(range(config.iterations), desc=name, disable=not request.progress, leave=False)
    for it in bar:
        net = seeded_model(lambda: create_model(config.arch, ch, num_classes, size), g_net, device)
        params = list(net.parameters())
        opt_net = torch.optim.SGD(net.parameters(), lr=config.lr_net, momentum=config.momentum_net)
        batchnorm = has_batchnorm(net)
        total = 0.0
        for ol in range(outer):
            if batchnorm:
                freeze_batchnorm(net, torch.cat([pool.sample(c, config.bn_images_per_class, g_real)
                                                 for c in range(num_classes)]))
            loss = torch.zeros((), device=device)
            for c in range(num_classes):
                x_real = pool.sample(c, config.batch_real, g_real)
                x_syn = torch.cat([frozen.of_class(c), syn[c * ipc:(c + 1) * ipc]])
                if siamese is not None:
                    t = siamese.sample(g_aug)  # one transform for both batches of this class
                    x_real, x_syn = t(x_real), t(x_syn)
                y_real = torch.full((len(x_real),), c, device=device)
                y_syn = torch.full((len(x_syn),), c, device=device)
                loss = loss + class_matching_loss(net, params, x_real, y_real, x_syn, y_syn, config.metric)
            check_finite(loss, f"{name} iteration {it}")
            opt_img.zero_grad(set_to_none=True)
            loss.backward(inputs=[syn])  # the network's own gradients are not needed here
            opt_img.step()
            total += loss.item()
            if ol == outer - 1:
                break
            # inner loop: train the network on the whole synthetic set (earlier segments included)
            train_on_tensors(net, opt_net, torch.cat([frozen.images, syn.detach()]),
                             torch.cat([frozen.labels, labels]), inner, config.batch_train, g_train,
                             augment=per_sample)
        curve.append(total / (num_classes * outer))
        bar.set_postfix(loss=f"{curve[-1]:.4f}")

    meta = {"matching_loss": loss_curve(curve), "outer_loop": outer, "inner_loop": inner,
            "dsa_strategy": strategy if config.dsa else "none", "frozen_images": len(frozen)}
    return SyntheticSet(syn.detach().cpu(), labels.cpu(), metadata=meta)


@register_method("dc", DCConfig, kind="matching",
                 description="DC: per-class gradient matching (Zhao et al., ICLR 2021)",
                 order=20, colour="#0072B2", marker="o",
                 budget_fields=("iterations",))  # outer/inner loops are per-IPC structure, not budget
def dc(request: DistillRequest, config: DCConfig) -> SyntheticSet:
    """Dataset Condensation with gradient matching.

    Example::

        syn = distill("dc", DistillRequest(load_dataset("digits"), ipc=10, seed=0))
    """
    return gradient_matching(request, config)


@register_method("dsa", DSAConfig, kind="matching",
                 description="DSA: gradient matching with siamese augmentation (Zhao & Bilen, ICML 2021)",
                 order=21, colour="#56B4E9", marker="D",
                 budget_fields=("iterations",))
def dsa(request: DistillRequest, config: DSAConfig) -> SyntheticSet:
    """Dataset Condensation with Differentiable Siamese Augmentation.

    Example::

        syn = distill("dsa", DistillRequest(load_dataset("digits"), ipc=10, seed=0))
    """
    return gradient_matching(request, config)
