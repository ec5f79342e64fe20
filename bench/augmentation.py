"""Differentiable Siamese Augmentation (DSA) and CutMix.

DSA (Zhao & Bilen, ICML 2021) augments the real and the synthetic batch with the *same*
sampled transform, and every op is differentiable w.r.t. the pixels, so gradient matching
can back-propagate through the augmentation into the synthetic images. This module follows
the reference ``DiffAugment`` / ``ParamDiffAug`` of VICO-UoE/DatasetCondensation (utils.py,
copied into GeorgeCazenavette/mtt-distillation):

* six ops: ``color`` (brightness, then saturation, then contrast), ``crop`` (translation
  with zero padding, pad ratio 0.125), ``cutout`` (a 0.5 x 0.5 zero box), ``flip``
  (horizontal, p = 0.5), ``scale`` (per-axis factor in [1/1.2, 1.2]) and ``rotate``
  (angle in [-15, 15] degrees);
* mode ``'S'`` (the reference default): ONE op drawn per call from the strategy string;
  mode ``'M'``: every op of the strategy, in order;
* Siamese: the reference re-seeds the global RNG with the same seed for the real and the
  synthetic call and copies sample 0's parameters to the whole batch. Here the same thing
  is explicit: :meth:`DSA.sample` draws one :class:`DSATransform` from a
  ``torch.Generator`` and that object is applied to both batches.

Only the *distributions* match the reference, not its random streams (it draws with
``torch.rand``/``torch.randint`` on the global RNG, re-seeded before every op).

Example::

    import torch
    from bench.augmentation import DSA, strategy_for

    dsa = DSA(strategy_for("cifar10"))
    g = torch.Generator().manual_seed(0)
    t = dsa.sample(g)              # one op + its parameters
    real_aug, syn_aug = t(real), t(syn)   # identical transform, any batch sizes
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.errors import BenchError

__all__ = [
    "DEFAULT_STRATEGY",
    "DIGIT_DATASETS",
    "DSA",
    "DSAParams",
    "DSATransform",
    "ComposedDSA",
    "PerImageChoice",
    "cutmix",
    "strategy_for",
]

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"

# How many U[0, 1) numbers each op consumes per parameter set. Parameters are stored as raw
# uniforms and mapped to pixels/angles at apply time, so one sample works for any image size.
_NUM_DRAWS: dict[str, int] = {
    "color": 3,   # brightness, saturation, contrast
    "crop": 2,    # row shift, column shift
    "cutout": 2,  # row centre, column centre
    "flip": 1,    # coin
    "scale": 2,   # x (width) factor, y (height) factor
    "rotate": 1,  # angle
}

# Datasets for which horizontal flips change the class meaning (digits). The DSA README says
# "use color_crop_cutout_scale_rotate for the digit datasets (MNIST and SVHN), as flip
# augmentation is not good for digit datasets"; IDC's argument.py drops flip for ``svhn``
# and every name starting with ``mnist``. FashionMNIST keeps flip in both. We add our
# embedded 8x8 ``digits`` set and USPS (also digits) for the same reason.
DIGIT_DATASETS: frozenset[str] = frozenset({"digits", "svhn", "usps"})


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


def _parse_strategy(strategy: str) -> tuple[str, ...]:
    """Split ``"color_crop"`` into ops; ``""``/``"none"`` mean no augmentation."""
    if strategy.strip().lower() in ("", "none"):
        return ()
    ops = tuple(strategy.strip().lower().split("_"))
    unknown = [op for op in ops if op not in _NUM_DRAWS]
    if unknown:
        raise BenchError(f"unknown DSA op(s) {unknown} in strategy {strategy!r}; "
                         f"known: {sorted(_NUM_DRAWS)}")
    return ops


def strategy_for(dataset_name: str, cutout: bool = True) -> str:
    """The reference DSA strategy for a dataset.

    Drops ``flip`` for digit datasets (``digits``, ``svhn``, ``usps`` and any name starting
    with ``mnist`` such as ``mnist5k``; see :data:`DIGIT_DATASETS`) and drops ``cutout`` when
    ``cutout=False`` (IDC evaluates with CutMix and removes DSA's cutout).

    Example::

        strategy_for("cifar10")             # 'color_crop_cutout_flip_scale_rotate'
        strategy_for("mnist5k")             # 'color_crop_cutout_scale_rotate'
        strategy_for("svhn", cutout=False)  # 'color_crop_scale_rotate'
    """
    name = dataset_name.strip().lower()
    drop = set()
    if name in DIGIT_DATASETS or name.startswith("mnist"):
        drop.add("flip")
    if not cutout:
        drop.add("cutout")
    return "_".join(op for op in DEFAULT_STRATEGY.split("_") if op not in drop)


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


_OP_FNS = {"color": _color, "crop": _crop, "cutout": _cutout,
           "flip": _flip, "scale": _scale, "rotate": _rotate}


# ----------------------------------------------------------------------------- API

class DSATransform:
    """One sampled transform; apply it to the real batch and to the synthetic batch.

    Built by :meth:`DSA.sample`. Siamese transforms (``batch_size is None``) hold one
    parameter set shared by every image, so they apply identically to batches of any size.
    Per-sample transforms hold one parameter set per image and only accept batches of the
    size they were sampled for (a mismatch raises ``ValueError`` rather than silently
    broadcasting or truncating).

    Example::

        t = DSA(strategy="rotate").sample(torch.Generator().manual_seed(1))
        a, b = t(real_batch), t(syn_batch)   # same rotation angle for both
    """

    def __init__(self, ops: tuple[tuple[str, Tensor], ...], params: DSAParams,
                 batch_size: int | None) -> None:
        self.ops = ops                # ((op name, uniforms of shape (n, k)), ...)
        self.params = params
        self.batch_size = batch_size  # None: Siamese (n = 1, broadcast over any batch)

    @property
    def op_names(self) -> tuple[str, ...]:
        """The op(s) this transform applies, in order."""
        return tuple(name for name, _ in self.ops)

    def __call__(self, x: Tensor) -> Tensor:
        """Augment ``x`` (N, C, H, W), differentiably; returns a new tensor."""
        if x.ndim != 4:
            raise ValueError(f"DSA expects N,C,H,W images, got shape {tuple(x.shape)}")
        if self.batch_size is not None and x.shape[0] != self.batch_size:
            raise ValueError(f"per-sample DSA transform was sampled for {self.batch_size} "
                             f"images but got {x.shape[0]}; sample one per batch")
        for name, u in self.ops:
            x = _OP_FNS[name](x, u.to(x.device), self.params)
        return x.contiguous()

    def __repr__(self) -> str:
        mode = "siamese" if self.batch_size is None else f"per-sample[{self.batch_size}]"
        return f"DSATransform({'+'.join(self.op_names) or 'identity'}, {mode})"


class DSA:
    """Seeded, differentiable, siamese augmentation.

    ``siamese=True`` (matching): every image gets the same parameters, so one
    :class:`DSATransform` applied to the real and the synthetic batch is the same transform.
    ``siamese=False`` (evaluation training, where the reference samples per image): each
    image gets its own parameters; :meth:`sample` then needs ``batch_size`` and the
    transform is bound to that size (``__call__`` does this for you).

    All randomness comes from the ``torch.Generator`` passed in (or PyTorch's default CPU
    generator if none), so runs are reproducible and independent of the device of ``x``.

    Example::

        dsa = DSA()                                     # reference strategy, mode 'S'
        g = torch.Generator().manual_seed(0)
        t = dsa.sample(g); xr, xs = t(x_real), t(x_syn)  # siamese pair
        x_train = DSA(siamese=False)(x, g)              # fresh per-image augmentation
    """

    def __init__(self, strategy: str = DEFAULT_STRATEGY, params: DSAParams = DSAParams(),
                 siamese: bool = True, mode: Literal["S", "M"] = "S") -> None:
        if mode not in ("S", "M"):
            raise BenchError(f"unknown DSA mode {mode!r}: 'S' (one op per call) or 'M' (all ops)")
        self.strategy = strategy
        self.ops = _parse_strategy(strategy)
        self.params = params
        self.siamese = siamese
        self.mode = mode

    def sample(self, generator: torch.Generator | None = None,
               batch_size: int | None = None) -> DSATransform:
        """Draw the op(s) and their parameters once.

        ``batch_size`` is ignored when Siamese and required otherwise.
        """
        if self.siamese:
            n, bound = 1, None
        else:
            if batch_size is None or batch_size < 1:
                raise ValueError("a per-sample (siamese=False) DSA transform needs batch_size >= 1")
            n, bound = batch_size, batch_size
        if not self.ops:
            return DSATransform((), self.params, bound)
        dev = generator.device if generator is not None else torch.device("cpu")
        if self.mode == "S":
            # One op for the whole batch, as the reference draws it once per call.
            idx = int(torch.randint(len(self.ops), (1,), generator=generator, device=dev))
            chosen = (self.ops[idx],)
        else:
            chosen = self.ops
        drawn = tuple(
            (op, torch.rand(n, _NUM_DRAWS[op], generator=generator, device=dev).cpu())
            for op in chosen
        )
        return DSATransform(drawn, self.params, bound)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Sample a fresh transform for this batch and apply it."""
        return self.sample(generator, batch_size=x.shape[0])(x)

    def __repr__(self) -> str:
        return f"DSA(strategy={self.strategy!r}, siamese={self.siamese}, mode={self.mode!r})"


class ComposedDSA:
    """IDC's ``DiffAug`` order (snu-mllab/Efficient-Dataset-Condensation, ``misc/augment.py``
    ``DiffAug.__call__``): flip (if listed) and color (if listed) on EVERY call, then ONE of the
    remaining ops drawn per call (``np.random.randint(len(self.strategy))``), then cutout (if
    listed). With ``siamese=False`` (IDC's ``batch=False``) every image gets its own parameters.
    DC's ``DiffAugment`` (mode 'S') instead draws one op of the whole strategy: use :class:`DSA`.

    Example::

        aug = ComposedDSA("color_crop_cutout", siamese=True)
        t = aug.sample(g); xr, xs = t(x_real), t(x_syn)
        x_train = ComposedDSA("color_crop_flip_scale_rotate", siamese=False)(x, g)
    """

    _FIXED_FIRST = ("flip", "color")
    _FIXED_LAST = ("cutout",)

    def __init__(self, strategy: str, siamese: bool, params: DSAParams = DSAParams()) -> None:
        ops = _parse_strategy(strategy)
        self.strategy = strategy
        self.siamese = siamese
        middle = "_".join(op for op in ops if op not in self._FIXED_FIRST + self._FIXED_LAST)
        parts = [op for op in self._FIXED_FIRST if op in ops]
        self.parts = [DSA(op, params, siamese=siamese) for op in parts]
        if middle:
            self.parts.append(DSA(middle, params, siamese=siamese, mode="S"))
        self.parts += [DSA(op, params, siamese=siamese) for op in self._FIXED_LAST if op in ops]

    def sample(self, generator: torch.Generator | None, batch_size: int | None = None) -> Callable[[Tensor], Tensor]:
        transforms: list[DSATransform] = [p.sample(generator, batch_size) for p in self.parts]

        def apply(x: Tensor) -> Tensor:
            for t in transforms:
                x = t(x)
            return x

        return apply

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.sample(generator, batch_size=x.shape[0])(x)

    def __repr__(self) -> str:
        return f"ComposedDSA(strategy={self.strategy!r}, siamese={self.siamese})"


class PerImageChoice:
    """DC's non-differentiable evaluation augmentation (VICO-UoE/DatasetCondensation, ``utils.py``
    ``augment``): for EACH image, one op drawn from the strategy (``np.random.permutation(augs)[0]``
    per image). ``get_daparam`` sets it to ``crop_scale_rotate`` for MNIST with crop 4 px, scale
    0.2 and rotate 45 degrees; the ops here are our DSA ops at those magnitudes (see
    :func:`dc_mnist_params`), so the fill is zero (the normalised mean) rather than the batch mean.

    Example::

        x_train = PerImageChoice("crop_scale_rotate", dc_mnist_params(28))(x, g)
    """

    def __init__(self, strategy: str, params: DSAParams = DSAParams()) -> None:
        self.strategy = strategy
        self.ops = [DSA(op, params, siamese=False) for op in _parse_strategy(strategy)]

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.ops:
            return x
        dev = generator.device if generator is not None else torch.device("cpu")
        choice = torch.randint(len(self.ops), (x.shape[0],), generator=generator, device=dev).to(x.device)
        out = x.clone()
        for k, op in enumerate(self.ops):
            sel = torch.nonzero(choice == k, as_tuple=False).flatten()
            if len(sel):
                out[sel] = op(x[sel], generator)
        return out

    def __repr__(self) -> str:
        return f"PerImageChoice(strategy={self.strategy!r})"


def dc_mnist_params(image_size: int) -> DSAParams:
    """DC's MNIST augmentation magnitudes (``get_daparam``: crop 4 px of 28, scale 0.2, rotate 45)
    expressed as :class:`DSAParams`: pad ratio 4/28, scale factor 1.2, 45 degrees."""
    return DSAParams(ratio_crop_pad=4 / 28, ratio_scale=1.2, ratio_rotate=45.0)


def cutmix(x: Tensor, y: Tensor, generator: torch.Generator | None = None,
           beta: float = 1.0, prob: float = 0.5) -> tuple[Tensor, Tensor, Tensor, float]:
    """CutMix as IDC's evaluation training does it (``train.py`` / ``rand_bbox``).

    With probability ``prob``: ``lam ~ Beta(beta, beta)``, a random permutation of the batch,
    and a box of side ``int(side * sqrt(1 - lam))`` centred uniformly (clipped at the
    border, half-sides rounded down) pasted from the permuted images. The returned ``lam``
    is recomputed from the clipped box area, as in IDC. Otherwise returns ``(x, y, y, 1.0)``
    with ``x`` itself. The mix is out-of-place and differentiable w.r.t. ``x``.

    Use as ``loss = lam * CE(out, y_a) + (1 - lam) * CE(out, y_b)``.

    Example::

        xm, ya, yb, lam = cutmix(x, y, torch.Generator().manual_seed(0))
    """
    if beta <= 0:
        raise ValueError(f"cutmix beta must be > 0, got {beta}")
    if x.ndim != 4:
        raise ValueError(f"cutmix expects N,C,H,W images, got shape {tuple(x.shape)}")
    dev = generator.device if generator is not None else torch.device("cpu")

    def rand() -> float:
        return float(torch.rand((), generator=generator, device=dev))

    if not rand() < prob:
        return x, y, y, 1.0
    # Beta from the stdlib, seeded from the torch generator: torch's Beta sampler cannot take
    # a generator, and this keeps the draw reproducible without numpy.
    seed = int(torch.randint(2**62, (1,), generator=generator, device=dev))
    lam = random.Random(seed).betavariate(beta, beta)
    n, _, h, w = x.shape
    perm = torch.randperm(n, generator=generator, device=dev).to(x.device)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=generator, device=dev))
    cx = int(torch.randint(w, (1,), generator=generator, device=dev))
    y1, y2 = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    x1, x2 = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    box = torch.zeros(1, 1, h, w, dtype=torch.bool, device=x.device)
    box[..., y1:y2, x1:x2] = True
    mixed = torch.where(box, x.index_select(0, perm), x)
    lam = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    return mixed, y, y.index_select(0, perm.to(y.device)), lam
