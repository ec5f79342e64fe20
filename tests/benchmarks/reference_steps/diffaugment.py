"""DSA as VICO-UoE/DatasetCondensation runs it (``utils.py``, lines 474-650), re-stated for timing.

What makes it the reference's and not ours (``bench.train.augmentation.DSA``): one op drawn per call
with ``torch.randint`` on the GLOBAL generator; the siamese pair re-seeds that generator with the
same seed before every draw (``set_seed_DiffAug``) and then copies sample 0's parameters over the
batch (so it still draws one value per image); scale/rotate build their affine matrices in a
Python loop over the batch (``[[sx[i], 0, 0], ...] for i in range(n)``); crop and cutout index
with a 3-D ``meshgrid``. Only ``affine_grid``/``grid_sample`` get ``align_corners=False`` spelled
out (the reference relies on that default and gets a warning per call).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class ParamDiffAug:
    """utils.py lines 474-484 (plus the two fields DiffAugment sets on it)."""

    def __init__(self) -> None:
        self.aug_mode = "S"
        self.prob_flip = 0.5
        self.ratio_scale = 1.2
        self.ratio_rotate = 15.0
        self.ratio_crop_pad = 0.125
        self.ratio_cutout = 0.5
        self.brightness = 1.0
        self.saturation = 2.0
        self.contrast = 0.5
        self.latestseed = -1
        self.Siamese = False


def _reseed(param: ParamDiffAug) -> None:
    # utils.py 487-492 (set_seed_DiffAug): the siamese pair replays the same global-RNG stream
    if param.latestseed == -1:
        return
    torch.random.manual_seed(param.latestseed)
    param.latestseed += 1


def diff_augment(x: Tensor, strategy: str = "", seed: int = -1, param: ParamDiffAug | None = None) -> Tensor:
    """utils.py 495-520 (mode 'S'): one op of ``strategy`` per call; ``seed != -1`` is siamese."""
    if strategy in ("None", "none", ""):
        return x
    param = param or ParamDiffAug()
    param.Siamese = seed != -1
    param.latestseed = seed
    ops = strategy.split("_")
    _reseed(param)
    op = ops[torch.randint(0, len(ops), size=(1,)).item()]
    for f in _FNS[op]:
        x = f(x, param)
    return x.contiguous()


def _affine(x: Tensor, theta: Tensor) -> Tensor:
    grid = F.affine_grid(theta, x.shape, align_corners=False).to(x.device)
    return F.grid_sample(x, grid, align_corners=False)


def _scale(x: Tensor, param: ParamDiffAug) -> Tensor:  # utils.py 524-539
    ratio = param.ratio_scale
    _reseed(param)
    sx = torch.rand(x.shape[0]) * (ratio - 1.0 / ratio) + 1.0 / ratio
    _reseed(param)
    sy = torch.rand(x.shape[0]) * (ratio - 1.0 / ratio) + 1.0 / ratio
    theta = torch.tensor([[[sx[i], 0, 0], [0, sy[i], 0]] for i in range(x.shape[0])], dtype=torch.float)
    if param.Siamese:
        theta[:] = theta[0]
    return _affine(x, theta)


def _rotate(x: Tensor, param: ParamDiffAug) -> Tensor:  # utils.py 542-553
    ratio = param.ratio_rotate
    _reseed(param)
    a = (torch.rand(x.shape[0]) - 0.5) * 2 * ratio / 180 * float(math.pi)
    theta = torch.tensor([[[torch.cos(a[i]), torch.sin(-a[i]), 0], [torch.sin(a[i]), torch.cos(a[i]), 0]]
                          for i in range(x.shape[0])], dtype=torch.float)
    if param.Siamese:
        theta[:] = theta[0]
    return _affine(x, theta)


def _flip(x: Tensor, param: ParamDiffAug) -> Tensor:  # utils.py 556-562
    _reseed(param)
    randf = torch.rand(x.size(0), 1, 1, 1, device=x.device)
    if param.Siamese:
        randf[:] = randf[0]
    return torch.where(randf < param.prob_flip, x.flip(3), x)


def _brightness(x: Tensor, param: ParamDiffAug) -> Tensor:  # utils.py 565-572
    _reseed(param)
    randb = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
    if param.Siamese:
        randb[:] = randb[0]
    return x + (randb - 0.5) * param.brightness


def _saturation(x: Tensor, param: ParamDiffAug) -> Tensor:  # utils.py 575-583
    x_mean = x.mean(dim=1, keepdim=True)
    _reseed(param)
    rands = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
    if param.Siamese:
        rands[:] = rands[0]
    return (x - x_mean) * (rands * param.saturation) + x_mean


def _contrast(x: Tensor, param: ParamDiffAug) -> Tensor:  # utils.py 586-594
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    _reseed(param)
    randc = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
    if param.Siamese:
        randc[:] = randc[0]
    return (x - x_mean) * (randc + param.contrast) + x_mean


def _grid(x: Tensor, rows: int, cols: int) -> tuple[Tensor, Tensor, Tensor]:
    dev = x.device
    return torch.meshgrid(torch.arange(x.size(0), dtype=torch.long, device=dev),
                          torch.arange(rows, dtype=torch.long, device=dev),
                          torch.arange(cols, dtype=torch.long, device=dev), indexing="ij")


def _crop(x: Tensor, param: ParamDiffAug) -> Tensor:  # utils.py 597-617
    ratio = param.ratio_crop_pad
    shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    _reseed(param)
    tx = torch.randint(-shift_x, shift_x + 1, size=[x.size(0), 1, 1], device=x.device)
    _reseed(param)
    ty = torch.randint(-shift_y, shift_y + 1, size=[x.size(0), 1, 1], device=x.device)
    if param.Siamese:
        tx[:] = tx[0]
        ty[:] = ty[0]
    gb, gx, gy = _grid(x, x.size(2), x.size(3))
    gx = torch.clamp(gx + tx + 1, 0, x.size(2) + 1)
    gy = torch.clamp(gy + ty + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)


def _cutout(x: Tensor, param: ParamDiffAug) -> Tensor:  # utils.py 620-640
    ratio = param.ratio_cutout
    size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    _reseed(param)
    ox = torch.randint(0, x.size(2) + (1 - size[0] % 2), size=[x.size(0), 1, 1], device=x.device)
    _reseed(param)
    oy = torch.randint(0, x.size(3) + (1 - size[1] % 2), size=[x.size(0), 1, 1], device=x.device)
    if param.Siamese:
        ox[:] = ox[0]
        oy[:] = oy[0]
    gb, gx, gy = _grid(x, size[0], size[1])
    gx = torch.clamp(gx + ox - size[0] // 2, min=0, max=x.size(2) - 1)
    gy = torch.clamp(gy + oy - size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


_FNS = {"color": [_brightness, _saturation, _contrast], "crop": [_crop], "cutout": [_cutout],
        "flip": [_flip], "scale": [_scale], "rotate": [_rotate]}
