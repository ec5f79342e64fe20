"""One timed case per method: our step and the reference's step on the same shapes and budget.

Both sides of a case start from the same kind of state (real-image init drawn with the round's
seed, a fresh ConvNet) and do the same work: our side calls the method's own code (the
registered distiller with ``iterations=1``, or MTT's ``trajectory_gradients`` plus its optimiser
steps), the reference side the re-stated step of :mod:`reference_steps`. Budgets are our shipped
digits IPC-10 settings (``for_setting("digits", 10)``), used by both sides; IDC runs at
multi-formation factor 2 (tiles of 4x4 upsampled to 8x8) so that the decode is part of the work.
Our side includes its per-call setup (real-data pool, init), which the reference does once per
experiment: that favours the reference.

Example::

    cases = build_cases(load_dataset("digits"))
    cases["dc"].ours(0); cases["dc"].reference(0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.data.datasets import Dataset
from bench.train.models import create_model, default_depth

from . import dc_dm
from . import idc as ref_idc
from . import mtt as ref_mtt
from .networks import ReferenceConvNet

IPC = 10


@dataclass
class Case:
    method: str
    step: str
    shapes: str
    ours: Callable[[int], object]       # round seed -> one step of our code
    reference: Callable[[int], object]  # round seed -> one step of the re-stated reference


def _config(method: str, data: Dataset, **overrides):
    from bench.methods.registry import apply_overrides, default_config

    return apply_overrides(default_config(method, data.name, IPC), {"iterations": 1, **overrides})


def _ours(method: str, data: Dataset, config) -> Callable[[int], object]:
    from bench.methods.registry import DistillRequest, get_method

    fn = get_method(method).fn  # the distiller itself: distill()'s metadata stamping is not step work

    def run(seed: int):
        return fn(DistillRequest(data, IPC, seed=seed, progress=False), config)

    return run


def _real(data: Dataset):
    labels = data.train.labels
    images_all = data.train.get(torch.arange(len(labels)))
    indices_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(data.num_classes)]
    return images_all, labels, indices_class


def _factory(data: Dataset) -> Callable[[], torch.nn.Module]:
    return lambda: create_model("convnet", data.channels, data.num_classes, data.image_size)


def reference_factory(data: Dataset) -> Callable[[], torch.nn.Module]:
    """The reference's ConvNet (``networks.py``, re-stated in :mod:`.networks`, with its own
    ``nn.AvgPool2d`` layers) at our depth and padding for ``data``: the same parameters for the
    same seed as ours (``test_convnet_is_the_reference_convnet``), so only the layers' code differs."""
    s = data.image_size
    return lambda: ReferenceConvNet(data.channels, data.num_classes, (s, s), net_depth=default_depth(s),
                                    first_pad=3 if s == 28 else 1)


def _real_init(get_images, data: Dataset, lr: float):
    """main.py 88-100: randn images overwritten by ``ipc`` real ones per class, SGD momentum 0.5."""
    k, ch, s = data.num_classes, data.channels, data.image_size
    image_syn = torch.randn(size=(k * IPC, ch, s, s), dtype=torch.float, requires_grad=True)
    label_syn = torch.arange(k).repeat_interleave(IPC)
    for c in range(k):
        image_syn.data[c * IPC:(c + 1) * IPC] = get_images(c, IPC).detach().data
    return image_syn, label_syn, torch.optim.SGD([image_syn], lr=lr, momentum=0.5)


def dc_case(data: Dataset, dsa: bool) -> Case:
    method = "dsa" if dsa else "dc"
    cfg = _config(method, data)
    images_all, _, indices_class = _real(data)
    from bench.train.augmentation import strategy_for

    args = dc_dm.RefArgs(ipc=IPC, outer_loop=cfg.outer_loop, inner_loop=cfg.inner_loop, batch_real=cfg.batch_real,
                         batch_train=cfg.batch_train, lr_net=cfg.lr_net, dsa=dsa,
                         dsa_strategy=strategy_for(data.name) if dsa else "None")

    def reference(seed: int):
        np.random.seed(seed)
        get_images = dc_dm.reference_get_images(images_all, indices_class)
        image_syn, label_syn, opt = _real_init(get_images, data, cfg.lr_img)
        return dc_dm.dc_iteration(args, dc_dm.reference_network(reference_factory(data)), get_images, image_syn,
                                  label_syn, opt, data.num_classes)

    return Case(method, f"one outer iteration: {cfg.outer_loop} matching rounds over 10 classes, "
                        f"{cfg.inner_loop}-epoch net updates between them" + (", siamese DSA" if dsa else ""),
                f"8x8x1, IPC {IPC}, real {cfg.batch_real}/class, train batch {cfg.batch_train}",
                _ours(method, data, cfg), reference)


def dm_case(data: Dataset) -> Case:
    cfg = _config("dm", data)
    images_all, _, indices_class = _real(data)
    from bench.train.augmentation import strategy_for

    args = dc_dm.RefArgs(ipc=IPC, batch_real=cfg.batch_real, dsa=True, dsa_strategy=strategy_for(data.name))

    def reference(seed: int):
        np.random.seed(seed)
        get_images = dc_dm.reference_get_images(images_all, indices_class)
        image_syn, _, opt = _real_init(get_images, data, cfg.lr_img)
        return dc_dm.dm_iteration(args, dc_dm.reference_network(reference_factory(data)), get_images, image_syn, opt,
                                  data.num_classes)

    return Case("dm", "one iteration: a fresh frozen net, per-class mean-embedding match, siamese DSA",
                f"8x8x1, IPC {IPC}, real {cfg.batch_real}/class (whole class pool)", _ours("dm", data, cfg), reference)


def mix_init(loader: ref_idc.ClassMemLoader, data: Dataset, factor: int) -> torch.Tensor:
    """condense.py 34-38 and 63-85: noise/4 + 0.5 clamped, then 'mix' (the first ipc*factor^2 images
    of each class, nearest-downsampled into the factor x factor tiles)."""
    k, ch, size = data.num_classes, data.channels, data.image_size
    syn = torch.randn(size=(k * IPC, ch, size, size), dtype=torch.float, requires_grad=True)
    syn.data = torch.clamp(syn.data / 4 + 0.5, min=0.0, max=1.0)
    s, remained, n = size // factor, size % factor, IPC
    for c in range(k):
        img = torch.stack([loader.data[i] for i in loader.cls_idx[c][:IPC * factor ** 2]])
        kk, h_loc = 0, 0
        for i in range(factor):
            h_r = s + 1 if i < remained else s
            w_loc = 0
            for j in range(factor):
                w_r = s + 1 if j < remained else s
                syn.data[n * c:n * (c + 1), :, h_loc:h_loc + h_r, w_loc:w_loc + w_r] = F.interpolate(
                    img[kk * n:(kk + 1) * n], size=(h_r, w_r))
                w_loc += w_r
                kk += 1
            h_loc += h_r
    return syn


def idc_case(data: Dataset, factor: int = 2) -> Case:
    cfg = _config("idc", data, factor=factor)
    images_all, labels, _ = _real(data)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    loader = ref_idc.ClassMemLoader(images_all * std + mean, labels, cfg.batch_real, data.num_classes)
    args = ref_idc.IDCArgs(ipc=IPC, factor=factor, inner_loop=cfg.inner_loop, batch_real=cfg.batch_real,
                           batch_syn_max=cfg.batch_syn_max, metric=cfg.metric, n_data=cfg.n_data,
                           mix_p=cfg.mix_p, mixup_net=cfg.mixup_net, lr=cfg.lr_net, momentum=cfg.momentum_net,
                           weight_decay=cfg.weight_decay_net)
    strategy = "_".join(op for op in cfg.aug_type.split("_") if op != "flip")
    aug = ref_idc.Normalized(data.mean, data.std, ref_idc.DiffAug(strategy, batch=True))
    net_strategy = "_".join(op for op in strategy.split("_") if op != "cutout")  # mixup 'cut' drops cutout
    aug_rand = ref_idc.Normalized(data.mean, data.std, ref_idc.DiffAug(net_strategy, batch=False))
    targets = torch.arange(data.num_classes).repeat_interleave(IPC)

    def reference(seed: int):
        np.random.seed(seed)
        torch.manual_seed(seed)
        synset = mix_init(loader, data, factor)
        optim_img = torch.optim.SGD([synset], lr=cfg.lr_img * IPC / 10, momentum=cfg.momentum_img)
        return ref_idc.idc_iteration(args, reference_factory(data)(), synset, targets, optim_img, loader, aug, aug_rand,
                                     data.num_classes)

    return Case("idc", f"one outer iteration: {cfg.inner_loop} rounds of (10 per-class matches with an image step "
                       f"each, a net epoch on {cfg.n_data} real images with DiffAug + CutMix)",
                f"8x8x1, IPC {IPC}, factor {factor} (40 decoded/class), real {cfg.batch_real}/class",
                _ours("idc", data, cfg), reference)


def mtt_case(data: Dataset) -> Case:
    from baselines.mtt import MTTConfig, apply_meta_gradient, plan_student_steps, trajectory_gradients
    from baselines.mtt_experts import ParamLayout
    from bench.train.augmentation import DSA, strategy_for

    cfg = MTTConfig.for_setting(data.name, IPC)
    torch.manual_seed(0)
    layout = ParamLayout(_factory(data)())
    layout.model.train()
    start = layout.flatten()
    target = start + 0.01 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1))
    idx = torch.cat([ix[:IPC] for ix in data.train.indices_by_class])
    init, labels = data.train.get(idx), data.train.labels[idx]
    strategy = strategy_for(data.name)
    dsa = DSA(strategy, siamese=False)

    def _state():
        images = init.clone().requires_grad_(True)
        syn_lr = torch.tensor(cfg.lr_teacher).requires_grad_(True)
        return (images, syn_lr, torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum_img),
                torch.optim.SGD([syn_lr], lr=cfg.lr_lr, momentum=cfg.momentum_img))

    def ours(seed: int):  # mtt()'s loop body, minus the expert-buffer read (baselines/mtt.py)
        images, syn_lr, opt_img, opt_lr = _state()
        plan = plan_student_steps(len(images), cfg.syn_steps, cfg.batch_syn, dsa, torch.Generator().manual_seed(seed))
        res = trajectory_gradients(layout.forward, start, target, images, labels, syn_lr.detach(), plan, None,
                                   "unrolled")
        apply_meta_gradient(res, images, syn_lr, opt_img, opt_lr)
        return res.loss

    def reference(seed: int):
        torch.manual_seed(seed)
        images, syn_lr, opt_img, opt_lr = _state()
        return ref_mtt.student_run(dc_dm.reference_network(reference_factory(data)), images, syn_lr, labels, start,
                                   target, cfg.syn_steps, cfg.batch_syn, strategy, opt_img, opt_lr)

    return Case("mtt", f"student unroll ({cfg.syn_steps} steps, per-sample DSA) + meta-gradient to images and lr "
                       "+ optimiser steps (gradient_mode unrolled)",
                f"8x8x1, IPC {IPC}, batch_syn {cfg.batch_syn}", ours, reference)


def build_cases(data: Dataset, methods=("dc", "dsa", "dm", "idc", "mtt")) -> dict[str, Case]:
    makers = {"dc": lambda: dc_case(data, False), "dsa": lambda: dc_case(data, True), "dm": lambda: dm_case(data),
              "idc": lambda: idc_case(data), "mtt": lambda: mtt_case(data)}
    return {m: makers[m]() for m in methods}
