"""The six differentiable DSA ops and their magnitudes: the pixel-level half of :mod:`bench.train.augmentation`.

Each op takes images ``x`` (N, C, H, W) and raw uniforms ``u`` (n, k) and maps the uniforms to its
parameters at apply time (so one sample works for any image size); n is 1 (Siamese: one parameter
set broadcast over the batch) or N (one set per image). The distributions follow the reference
``DiffAugment`` / ``ParamDiffAug`` of VICO-UoE/DatasetCondensation (``utils.py``). How ops are
drawn, shared and composed (DC's one op per call, IDC's fixed order, per-image choice) is
:mod:`bench.train.augmentation`, which re-exports :class:`DSAParams`.

Example::

    u = torch.rand(1, NUM_DRAWS["rotate"])
    y = OP_FNS["rotate"](x, u, DSAParams())     # the same rotation for every image of x
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.errors import BenchError

# How many U[0, 1) numbers each op consumes per parameter set. Parameters are stored as raw
# uniforms and mapped to pixels/angles at apply time, so one sample works for any image size.
NUM_DRAWS: dict[str, int] = {
    "color": 3,   # brightness, saturation, contrast
    "crop": 2,    # row shift, column shift
    "cutout": 2,  # row centre, column centre
    "flip": 1,    # coin
    "scale": 2,   # x (width) factor, y (height) factor
    "rotate": 1,  # angle
}


@dataclass(frozen=True)
class DSAParams:
    """Augmentation magnitudes; defaults are the reference ``ParamDiffAug`` values.

    ``align_corners`` is not in ``ParamDiffAug``: the DatasetCondensation code calls
    ``affine_grid``/``grid_sample`` without it (PyTorch >= 1.3 default: ``False``) while the
    MTT copy passes ``align_corners=True``. ``False`` follows DatasetCondensation.

    Example::

        DSAParams(prob_flip=1.0)   # always flip when the flip op is drawn
    """

    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0      # degrees
    ratio_crop_pad: float = 0.125   # max shift as a fraction of the side
    ratio_cutout: float = 0.5       # box side as a fraction of the image side
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    align_corners: bool = False


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """Split ``"color_crop"`` into ops; ``""``/``"none"`` mean no augmentation."""
    if strategy.strip().lower() in ("", "none"):
        return ()
    ops = tuple(strategy.strip().lower().split("_"))
    unknown = [op for op in ops if op not in NUM_DRAWS]
    if unknown:
        raise BenchError(f"unknown DSA op(s) {unknown} in strategy {strategy!r}; "
                         f"known: {sorted(NUM_DRAWS)}")
    return ops


# ----------------------------------------------------------------------------- ops
# Each op takes x (N, C, H, W) and u (n, k) uniforms on x.device, where n is 1 (Siamese:
# one parameter set broadcast over the batch) or N (one set per sample).

def _col(u: Tensor, j: int, x: Tensor) -> Tensor:
    """Column ``j`` of ``u`` shaped (n, 1, 1, 1) in x's dtype, for broadcasting."""
    return u[:, j].to(x.dtype).view(-1, 1, 1, 1)


def _color(x: Tensor, u: Tensor, p: DSAParams) -> Tensor:
    # brightness: shift by U(-0.5, 0.5) * brightness
    x = x + (_col(u, 0, x) - 0.5) * p.brightness
    # saturation: scale the deviation from the channel mean by U(0, 1) * saturation.
    # With one channel the deviation is zero, so this is exactly the identity (as in the
    # reference, which does the same arithmetic).
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (_col(u, 1, x) * p.saturation) + mean_c
    # contrast: scale the deviation from the per-image mean by U(0, 1) + contrast
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean_all) * (_col(u, 2, x) + p.contrast) + mean_all


def _uniform_int(u: Tensor, low: int, high: int) -> Tensor:
    """Map U[0, 1) to integers in [low, high] (inclusive), like ``randint(low, high + 1)``."""
    span = high - low + 1
    # float32 on purpose (float64 is missing on some devices); the clamp catches u * span
    # rounding up to span for u just below 1
    k = torch.floor(u.float() * span).long().clamp_(0, span - 1)
    return k + low


def _crop(x: Tensor, u: Tensor, p: DSAParams) -> Tensor:
    # Translate by up to round(side * ratio) pixels, filling with zeros (the reference pads
    # one zero pixel and clamps indices into the pad). Gathering from the padded input keeps
    # the gradient for every pixel that stays in view.
    n_img, _, h, w = x.shape
    sh, sw = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
    th = _uniform_int(u[:, 0], -sh, sh)
    tw = _uniform_int(u[:, 1], -sw, sw)
    rows = (torch.arange(h, device=x.device)[None, :] + th[:, None] + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device)[None, :] + tw[:, None] + 1).clamp(0, w + 1)
    x_pad = F.pad(x, (1, 1, 1, 1))
    c = x.shape[1]
    # two gathers (rows, then columns); gather is differentiable and, unlike advanced
    # indexing, stays fast on CPU when threads are contended
    row_idx = rows.view(-1, 1, h, 1).expand(n_img, c, h, w + 2)
    col_idx = cols.view(-1, 1, 1, w).expand(n_img, c, h, w)
    return x_pad.gather(2, row_idx).gather(3, col_idx)


def _cutout(x: Tensor, u: Tensor, p: DSAParams) -> Tensor:
    # Zero a (side * ratio)-sized box whose centre is uniform over the image (the reference's
    # offset range is [0, side] for even box sizes, [0, side - 1] for odd); the box is
    # clipped at the border. Multiplying by a constant mask keeps x differentiable.
    _, _, h, w = x.shape
    ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
    top = _uniform_int(u[:, 0], 0, h - ch % 2) - ch // 2
    left = _uniform_int(u[:, 1], 0, w - cw % 2) - cw // 2
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    in_rows = (r >= top[:, None]) & (r < top[:, None] + ch)   # (n, H)
    in_cols = (c >= left[:, None]) & (c < left[:, None] + cw)  # (n, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])        # (n, H, W)
    return x * keep.unsqueeze(1).to(x.dtype)


def _flip(x: Tensor, u: Tensor, p: DSAParams) -> Tensor:
    flip = (u[:, 0] < p.prob_flip).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def _affine(x: Tensor, theta: Tensor, p: DSAParams) -> Tensor:
    """Resample x through ``theta`` (n, 2, 3), bilinear with zero padding, differentiable."""
    theta = theta.to(x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=p.align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=p.align_corners)


def _scale(x: Tensor, u: Tensor, p: DSAParams) -> Tensor:
    # sx, sy ~ U(1/r, r); theta maps output to input coordinates, so s > 1 zooms out.
    r = p.ratio_scale
    s = u * (r - 1.0 / r) + 1.0 / r
    zero = torch.zeros_like(s[:, 0])
    theta = torch.stack([torch.stack([s[:, 0], zero, zero], dim=1),
                         torch.stack([zero, s[:, 1], zero], dim=1)], dim=1)
    return _affine(x, theta, p)


def _rotate(x: Tensor, u: Tensor, p: DSAParams) -> Tensor:
    # angle ~ U(-ratio, ratio) degrees
    a = (u[:, 0] - 0.5) * 2.0 * p.ratio_rotate / 180.0 * math.pi
    zero = torch.zeros_like(a)
    theta = torch.stack([torch.stack([torch.cos(a), -torch.sin(a), zero], dim=1),
                         torch.stack([torch.sin(a), torch.cos(a), zero], dim=1)], dim=1)
    return _affine(x, theta, p)


OP_FNS = {"color": _color, "crop": _crop, "cutout": _cutout,
           "flip": _flip, "scale": _scale, "rotate": _rotate}
