"""IDC's outer iteration as snu-mllab/Efficient-Dataset-Condensation runs it, re-stated for timing.

Sources (snu-mllab/Efficient-Dataset-Condensation): ``condense.py`` lines 94-122 and 183-193
(``Synthesizer.subsample``/``decode_zoom``/``sample``), 374-390 and 400-433 (``dist``,
``matchloss`` with ``match='grad'``), 498-555 (one iteration of ``condense``, ``fix_iter`` 1);
``misc/augment.py`` lines 7-258 (``DiffAug``: flip and color first, one other op, cutout last;
``batch=True`` draws one NumPy value for the whole batch, ``batch=False`` one torch value per
image); ``train.py`` lines 169-252 (``train_epoch`` with CutMix and top-1/top-5 accuracy);
``data.py`` lines 342-362 and 429-488 (``ClassBatchSampler``, ``ClassMemDataLoader``: images kept
as a list of per-image tensors and stacked per batch); ``misc/utils.py`` lines 70-84, 156-187 and
317-323 (``accuracy``, ``random_indices``, ``rand_bbox``, ``Normalize``). Images live in pixel
space [0, 1]; ``Normalize`` runs inside the augmentation, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .diffaugment import _grid


@dataclass
class IDCArgs:
    ipc: int = 10
    factor: int = 2
    inner_loop: int = 100
    batch_real: int = 64
    batch_syn_max: int = 128
    metric: str = "mse"
    bias: bool = False
    fc: bool = False
    n_data: int = 2000
    net_epoch: int = 1
    mix_p: float = 0.5
    beta: float = 1.0
    mixup_net: str = "cut"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4


class DiffAug:
    """misc/augment.py 7-83 and the ops it uses here (color, crop, cutout, scale, rotate)."""

    def __init__(self, strategy: str, batch: bool) -> None:
        self.batch = batch
        self.aug = strategy.lower() not in ("", "none")
        self.strategy, self.color, self.cutout, self.flip = [], False, False, False
        for aug in strategy.lower().split("_") if self.aug else []:
            if aug == "flip":
                self.flip = True
            elif aug == "color":
                self.color = True
            elif aug == "cutout":
                self.cutout = True
            else:
                self.strategy.append(aug)
        self.fns = {"crop": self.crop, "scale": self.scale, "rotate": self.rotate}

    def __call__(self, x: Tensor) -> Tensor:
        if not self.aug:
            return x
        if self.flip:
            raise ValueError("flip is not re-stated (the digits strategies drop it)")
        if self.color:
            x = self.brightness(x)
            x = self.saturation(x)
            x = self.contrast(x)
        if self.strategy:
            x = self.fns[self.strategy[np.random.randint(len(self.strategy))]](x)
        if self.cutout:
            x = self.cut(x)
        return x.contiguous()

    def _u(self, x: Tensor):
        return np.random.uniform() if self.batch else torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype)

    def brightness(self, x):  # augment.py 143-152
        return x + (self._u(x) - 0.5) * 1.0

    def saturation(self, x):  # augment.py 154-164
        x_mean = x.mean(dim=1, keepdim=True)
        return (x - x_mean) * (self._u(x) * 2.0) + x_mean

    def contrast(self, x):  # augment.py 166-176
        x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - x_mean) * (self._u(x) + 0.5) + x_mean

    def _theta(self, x: Tensor, rows) -> Tensor:
        if self.batch:
            return torch.tensor(rows(None), dtype=torch.float).expand(x.shape[0], 2, 3)
        return torch.tensor([rows(i) for i in range(x.shape[0])], dtype=torch.float)

    def scale(self, x):  # augment.py 90-109
        r, n = 1.2, None if self.batch else x.shape[0]
        sx = np.random.uniform(size=n) * (r - 1.0 / r) + 1.0 / r
        sy = np.random.uniform(size=n) * (r - 1.0 / r) + 1.0 / r
        theta = self._theta(x, lambda i: [[sx if i is None else sx[i], 0, 0], [0, sy if i is None else sy[i], 0]])
        return F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)

    def rotate(self, x):  # augment.py 111-128
        n = None if self.batch else x.shape[0]
        t = (np.random.uniform(size=n) - 0.5) * 2 * 15.0 / 180 * float(np.pi)

        def rows(i):
            a = t if i is None else t[i]
            return [[np.cos(a), np.sin(-a), 0], [np.sin(a), np.cos(a), 0]]

        theta = self._theta(x, rows)
        return F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)

    def crop(self, x):  # augment.py 200-228
        sx, sy = int(x.size(2) * 0.125 + 0.5), int(x.size(3) * 0.125 + 0.5)
        if self.batch:
            tx, ty = np.random.randint(-sx, sx + 1), np.random.randint(-sy, sy + 1)
        else:
            tx = torch.randint(-sx, sx + 1, size=[x.size(0), 1, 1])
            ty = torch.randint(-sy, sy + 1, size=[x.size(0), 1, 1])
        gb, gx, gy = _grid(x, x.size(2), x.size(3))
        gx = torch.clamp(gx + tx + 1, 0, x.size(2) + 1)
        gy = torch.clamp(gy + ty + 1, 0, x.size(3) + 1)
        return F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)

    def cut(self, x):  # augment.py 230-258
        size = int(x.size(2) * 0.5 + 0.5), int(x.size(3) * 0.5 + 0.5)
        if self.batch:
            ox = np.random.randint(0, x.size(2) + (1 - size[0] % 2))
            oy = np.random.randint(0, x.size(3) + (1 - size[1] % 2))
        else:
            ox = torch.randint(0, x.size(2) + (1 - size[0] % 2), size=[x.size(0), 1, 1])
            oy = torch.randint(0, x.size(3) + (1 - size[1] % 2), size=[x.size(0), 1, 1])
        gb, gx, gy = _grid(x, size[0], size[1])
        gx = torch.clamp(gx + ox - size[0] // 2, min=0, max=x.size(2) - 1)
        gy = torch.clamp(gy + oy - size[1] // 2, min=0, max=x.size(3) - 1)
        mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype)
        mask[gb, gx, gy] = 0
        return x * mask.unsqueeze(1)


class Normalized:
    """``transforms.Compose([Normalize(mean, std), DiffAug(...)])`` (condense.py 356-371)."""

    def __init__(self, mean, std, aug: DiffAug) -> None:
        self.mean = torch.tensor(mean).reshape(1, len(mean), 1, 1)
        self.std = torch.tensor(std).reshape(1, len(mean), 1, 1)
        self.aug = aug

    def __call__(self, x: Tensor) -> Tensor:
        return self.aug((x - self.mean) / self.std)


class ClassMemLoader:
    """data.py 429-488: per-image tensors, class batches from a repeating per-class sampler."""

    def __init__(self, images: Tensor, targets: Tensor, batch_size: int, nclass: int) -> None:
        self.data = [img for img in images]
        self.targets = targets
        self.batch_size = batch_size
        self.cls_idx = [torch.nonzero(targets == c).flatten().tolist() for c in range(nclass)]
        self.class_samplers = [self._repeat(torch.utils.data.BatchSampler(
            torch.utils.data.SubsetRandomSampler(ix), batch_size=min(len(ix), batch_size), drop_last=True))
            for ix in self.cls_idx]
        self.iterator = self._repeat(torch.utils.data.BatchSampler(
            torch.utils.data.SubsetRandomSampler(list(range(len(targets)))), batch_size=batch_size, drop_last=False))
        self.cls_targets = torch.tensor(np.array([np.ones(batch_size) * c for c in range(nclass)]), dtype=torch.long)

    @staticmethod
    def _repeat(sampler):
        while True:
            yield from iter(sampler)

    def class_sample(self, c: int) -> tuple[Tensor, Tensor]:
        indices = next(self.class_samplers[c])
        return torch.stack([self.data[i] for i in indices]), self.cls_targets[c]

    def __iter__(self):
        while True:
            indices = next(self.iterator)
            yield torch.stack([self.data[i] for i in indices]), self.targets[indices]


def decode_zoom(img: Tensor, target: Tensor, factor: int, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """condense.py 102-122 (``resize`` = ``nn.Upsample(size, mode='bilinear')``)."""
    h = img.shape[-1]
    remained = h % factor
    if remained > 0:
        img = F.pad(img, pad=(0, factor - remained, 0, factor - remained), value=0.5)
    s_crop = ceil(h / factor)
    cropped = [img[:, :, i * s_crop:(i + 1) * s_crop, j * s_crop:(j + 1) * s_crop]
               for i in range(factor) for j in range(factor)]
    data_dec = F.interpolate(torch.cat(cropped), size=size, mode="bilinear", align_corners=False)
    return data_dec, torch.cat([target for _ in range(factor ** 2)])


def synset_sample(data: Tensor, targets: Tensor, c: int, args: IDCArgs) -> tuple[Tensor, Tensor]:
    """condense.py 183-193 and 94-100 (decode_type 'single', then subsample to batch_syn_max)."""
    x, y = data[args.ipc * c:args.ipc * (c + 1)], targets[args.ipc * c:args.ipc * (c + 1)]
    if args.factor > 1:
        x, y = decode_zoom(x, y, args.factor, tuple(data.shape[-2:]))
    if x.shape[0] > args.batch_syn_max:
        indices = np.random.permutation(x.shape[0])
        x, y = x[indices[:args.batch_syn_max]], y[indices[:args.batch_syn_max]]
    return x, y


def matchloss(args: IDCArgs, img_real, img_syn, lab_real, lab_syn, model: nn.Module) -> Tensor:  # 400-433
    criterion = nn.CrossEntropyLoss()
    g_real = torch.autograd.grad(criterion(model(img_real), lab_real), model.parameters())
    g_real = [g.detach() for g in g_real]
    g_syn = torch.autograd.grad(criterion(model(img_syn), lab_syn), model.parameters(), create_graph=True)
    loss = None
    for gr, gs in zip(g_real, g_syn):
        if (gr.ndim == 1 and not args.bias) or (gr.ndim == 2 and not args.fc):
            continue
        d = (gr - gs).pow(2).sum() if args.metric == "mse" else (gr - gs).abs().sum()
        loss = d if loss is None else loss + d
    return loss


def _accuracy(output: Tensor, target: Tensor, topk=(1, 5)) -> list[Tensor]:  # misc/utils.py 70-84
    _, pred = output.topk(max(topk), 1, True, True)
    pred = pred.t()
    correct = pred.eq(target.reshape(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / target.size(0)) for k in topk]


def train_epoch(args: IDCArgs, loader, model, criterion, optimizer, aug, n_data: int) -> None:
    """train.py 169-252 with CutMix (misc/utils.py random_indices/rand_bbox)."""
    model.train()
    num_exp = 0
    for input, target in loader:
        with torch.no_grad():
            input = aug(input)
        if np.random.rand(1) < args.mix_p and args.mixup_net == "cut":
            lam = np.random.beta(args.beta, args.beta)
            rand_index = torch.randperm(len(target))
            target_b = target[rand_index]
            W, H = input.size()[2], input.size()[3]
            cut_rat = np.sqrt(1.0 - lam)
            cut_w, cut_h = int(W * cut_rat), int(H * cut_rat)
            cx, cy = np.random.randint(W), np.random.randint(H)
            bbx1, bby1 = np.clip(cx - cut_w // 2, 0, W), np.clip(cy - cut_h // 2, 0, H)
            bbx2, bby2 = np.clip(cx + cut_w // 2, 0, W), np.clip(cy + cut_h // 2, 0, H)
            input[:, :, bbx1:bbx2, bby1:bby2] = input[rand_index, :, bbx1:bbx2, bby1:bby2]
            ratio = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (input.size()[-1] * input.size()[-2]))
            output = model(input)
            loss = criterion(output, target) * ratio + criterion(output, target_b) * (1.0 - ratio)
        else:
            output = model(input)
            loss = criterion(output, target)
        acc1, acc5 = _accuracy(output.data, target, topk=(1, 5))
        loss.item(), acc1.item(), acc5.item()  # the reference's AverageMeter updates
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        num_exp += len(target)
        if n_data > 0 and num_exp >= n_data:
            break


def idc_iteration(args: IDCArgs, model: nn.Module, synset: Tensor, targets: Tensor, optim_img, loader,
                  aug, aug_rand, nclass: int) -> float:
    """condense.py 498-555 for one ``it`` with ``fix_iter`` 1 (``model`` is the fresh network)."""
    model.train()
    optim_net = torch.optim.SGD(model.parameters(), args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    criterion = nn.CrossEntropyLoss()
    loss_total = 0.0
    synset.data = torch.clamp(synset.data, min=0.0, max=1.0)
    for _ in range(args.inner_loop):
        for c in range(nclass):
            img, lab = loader.class_sample(c)
            img_syn, lab_syn = synset_sample(synset, targets, c, args)
            n = img.shape[0]
            img_aug = aug(torch.cat([img, img_syn]))
            loss = matchloss(args, img_aug[:n], img_aug[n:], lab, lab_syn, model)
            loss_total += loss.item()
            optim_img.zero_grad()
            loss.backward()
            optim_img.step()
        if args.n_data > 0:
            for _ in range(args.net_epoch):
                train_epoch(args, loader, model, criterion, optim_net, aug_rand, n_data=args.n_data)
    return loss_total / nclass / args.inner_loop
