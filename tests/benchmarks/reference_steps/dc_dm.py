"""DC/DSA's outer iteration and DM's iteration as VICO-UoE/DatasetCondensation runs them, re-stated.

Sources (VICO-UoE/DatasetCondensation): ``main.py`` lines 146-218 (one DC/DSA training
iteration), ``main_DM.py`` lines 138-194 (one DM iteration, the ConvNet branch), ``utils.py``
lines 105-114 (``TensorDataset``), 218-271 (``distance_wb``, ``match_loss``) and 297-333 (``epoch``).
What the reference does and we do not, kept here because it is the reference's work: the match
loss's ``backward()`` also fills the network's ``.grad``; the synthetic set is deep-copied and
wrapped in a ``DataLoader`` (per-image ``__getitem__`` and collate) for every inner-loop round;
every training batch computes its accuracy through NumPy; the siamese DSA re-seeds the global
generator before every draw.

Example::

    args = RefArgs(ipc=10, outer_loop=10, inner_loop=5, batch_real=64)
    loss = dc_iteration(args, make_net, get_images, image_syn, label_syn, optimizer_img, num_classes=10)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .diffaugment import ParamDiffAug, diff_augment


@dataclass
class RefArgs:
    """The ``args`` fields the steps read (main.py / main_DM.py argparse names)."""

    ipc: int = 10
    outer_loop: int = 10
    inner_loop: int = 50
    batch_real: int = 256
    batch_train: int = 256
    lr_net: float = 0.01
    dsa: bool = False
    dsa_strategy: str = "None"
    dis_metric: str = "ours"
    device: str = "cpu"
    dsa_param: ParamDiffAug = field(default_factory=ParamDiffAug)


class TensorDataset(torch.utils.data.Dataset):  # utils.py 105-114
    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images.detach().float()
        self.labels = labels.detach()

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def __len__(self) -> int:
        return self.images.shape[0]


def distance_wb(gwr: Tensor, gws: Tensor) -> Tensor:  # utils.py 218-235
    shape = gwr.shape
    if len(shape) == 4:
        gwr = gwr.reshape(shape[0], shape[1] * shape[2] * shape[3])
        gws = gws.reshape(shape[0], shape[1] * shape[2] * shape[3])
    elif len(shape) == 3:
        gwr = gwr.reshape(shape[0], shape[1] * shape[2])
        gws = gws.reshape(shape[0], shape[1] * shape[2])
    elif len(shape) == 1:  # biases and norm weights: reshaped, then ignored
        gwr = gwr.reshape(1, shape[0])
        gws = gws.reshape(1, shape[0])
        return torch.tensor(0, dtype=torch.float, device=gwr.device)
    return torch.sum(1 - torch.sum(gwr * gws, dim=-1) / (torch.norm(gwr, dim=-1) * torch.norm(gws, dim=-1) + 0.000001))


def match_loss(gw_syn, gw_real, args: RefArgs) -> Tensor:  # utils.py 239-271, dis_metric 'ours'
    if args.dis_metric != "ours":
        raise ValueError("only the 'ours' distance is re-stated")
    dis = torch.tensor(0.0).to(args.device)
    for ig in range(len(gw_real)):
        dis += distance_wb(gw_real[ig], gw_syn[ig])
    return dis


def epoch_train(dataloader, net: nn.Module, optimizer, criterion, args: RefArgs, aug: bool) -> tuple[float, float]:
    """utils.py 297-333 with mode 'train' (DC's evaluation augmentation is muted while learning)."""
    loss_avg, acc_avg, num_exp = 0.0, 0, 0
    net = net.to(args.device)
    net.train()
    for datum in dataloader:
        img = datum[0].float().to(args.device)
        if aug and args.dsa:
            img = diff_augment(img, args.dsa_strategy, param=args.dsa_param)
        lab = datum[1].long().to(args.device)
        n_b = lab.shape[0]
        output = net(img)
        loss = criterion(output, lab)
        acc = np.sum(np.equal(np.argmax(output.cpu().data.numpy(), axis=-1), lab.cpu().data.numpy()))
        loss_avg += loss.item() * n_b
        acc_avg += acc
        num_exp += n_b
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss_avg / num_exp, acc_avg / num_exp


def dc_iteration(args: RefArgs, make_net: Callable[[], nn.Module], get_images: Callable[[int, int], Tensor],
                 image_syn: Tensor, label_syn: Tensor, optimizer_img: torch.optim.Optimizer,
                 num_classes: int) -> float:
    """main.py 146-218: a fresh net, ``outer_loop`` rounds of per-class gradient matching + one image
    step, with ``inner_loop`` epochs of network training between rounds. Returns ``loss_avg``."""
    channel, h, w = image_syn.shape[1:]
    net = make_net()
    net.train()
    net_parameters = list(net.parameters())
    optimizer_net = torch.optim.SGD(net.parameters(), lr=args.lr_net)
    optimizer_net.zero_grad()
    criterion = nn.CrossEntropyLoss().to(args.device)
    loss_avg = 0.0
    for ol in range(args.outer_loop):
        # main.py 163-175: BatchNorm statistics are frozen on real data only for BatchNorm nets
        if any("BatchNorm" in m._get_name() for m in net.modules()):
            raise ValueError("the BatchNorm branch is not re-stated (the ConvNet uses instance norm)")
        loss = torch.tensor(0.0).to(args.device)
        for c in range(num_classes):
            img_real = get_images(c, args.batch_real)
            lab_real = torch.ones((img_real.shape[0],), device=args.device, dtype=torch.long) * c
            img_syn = image_syn[c * args.ipc:(c + 1) * args.ipc].reshape((args.ipc, channel, h, w))
            lab_syn = torch.ones((args.ipc,), device=args.device, dtype=torch.long) * c
            if args.dsa:
                seed = int(time.time() * 1000) % 100000
                img_real = diff_augment(img_real, args.dsa_strategy, seed=seed, param=args.dsa_param)
                img_syn = diff_augment(img_syn, args.dsa_strategy, seed=seed, param=args.dsa_param)
            output_real = net(img_real)
            loss_real = criterion(output_real, lab_real)
            gw_real = torch.autograd.grad(loss_real, net_parameters)
            gw_real = [g.detach().clone() for g in gw_real]
            output_syn = net(img_syn)
            loss_syn = criterion(output_syn, lab_syn)
            gw_syn = torch.autograd.grad(loss_syn, net_parameters, create_graph=True)
            loss += match_loss(gw_syn, gw_real, args)
        optimizer_img.zero_grad()
        loss.backward()
        optimizer_img.step()
        loss_avg += loss.item()
        if ol == args.outer_loop - 1:
            break
        image_syn_train, label_syn_train = copy.deepcopy(image_syn.detach()), copy.deepcopy(label_syn.detach())
        trainloader = torch.utils.data.DataLoader(TensorDataset(image_syn_train, label_syn_train),
                                                  batch_size=args.batch_train, shuffle=True, num_workers=0)
        for _ in range(args.inner_loop):
            epoch_train(trainloader, net, optimizer_net, criterion, args, aug=args.dsa)
    return loss_avg / (num_classes * args.outer_loop)


def dm_iteration(args: RefArgs, make_net: Callable[[], nn.Module], get_images: Callable[[int, int], Tensor],
                 image_syn: Tensor, optimizer_img: torch.optim.Optimizer, num_classes: int) -> float:
    """main_DM.py 138-194 (ConvNet branch): a fresh frozen net, per-class mean-embedding matching
    under siamese DSA, one image step. Returns the per-class average loss."""
    channel, h, w = image_syn.shape[1:]
    net = make_net()
    net.train()
    for param in list(net.parameters()):
        param.requires_grad = False
    embed = net.embed
    loss = torch.tensor(0.0).to(args.device)
    for c in range(num_classes):
        img_real = get_images(c, args.batch_real)
        img_syn = image_syn[c * args.ipc:(c + 1) * args.ipc].reshape((args.ipc, channel, h, w))
        if args.dsa:
            seed = int(time.time() * 1000) % 100000
            img_real = diff_augment(img_real, args.dsa_strategy, seed=seed, param=args.dsa_param)
            img_syn = diff_augment(img_syn, args.dsa_strategy, seed=seed, param=args.dsa_param)
        output_real = embed(img_real).detach()
        output_syn = embed(img_syn)
        loss += torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0)) ** 2)
    optimizer_img.zero_grad()
    loss.backward()
    optimizer_img.step()
    return loss.item() / num_classes


def reference_get_images(images_all: Tensor, indices_class: list[list[int]]) -> Callable[[int, int], Tensor]:
    """main.py 79-81: ``n`` random images of class ``c`` through ``np.random.permutation``."""

    def get_images(c: int, n: int) -> Tensor:
        idx_shuffle = np.random.permutation(indices_class[c])[:n]
        return images_all[idx_shuffle]

    return get_images


def reference_network(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """utils.py 124-209 (``get_network``): re-seed the global generator from the clock, build the net."""

    def make_net() -> nn.Module:
        torch.random.manual_seed(int(time.time() * 1000) % 100000)
        return factory().to("cpu")

    return make_net
