"""Differentiable Siamese Augmentation (DSA) and CutMix.

DSA (Zhao & Bilen, ICML 2021) augments the real and the synthetic batch with the *same*
sampled transform, and every op is differentiable w.r.t. the pixels, so gradient matching
can back-propagate through the augmentation into the synthetic images. This module follows
the reference ``DiffAugment`` / ``ParamDiffAug`` of VICO-UoE/DatasetCondensation (utils.py,
copied into GeorgeCazenavette/mtt-distillation):

* six ops (defined in :mod:`bench.train.dsa_ops`): ``color`` (brightness, then saturation, then
  contrast), ``crop`` (translation with zero padding, pad ratio 0.125), ``cutout`` (a 0.5 x 0.5
  zero box), ``flip`` (horizontal, p = 0.5), ``scale`` (per-axis factor in [1/1.2, 1.2]) and
  ``rotate`` (angle in [-15, 15] degrees);
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
    from bench.train.augmentation import DSA, strategy_for

    dsa = DSA(strategy_for("cifar10"))
    g = torch.Generator().manual_seed(0)
    t = dsa.sample(g)              # one op + its parameters
    real_aug, syn_aug = t(real), t(syn)   # identical transform, any batch sizes
"""

from __future__ import annotations

import math
import random
from typing import Callable, Literal

import torch
from torch import Tensor

from bench.errors import BenchError

# the ops themselves (and their magnitudes) live in bench.train.dsa_ops; this module draws and composes them
from bench.train.dsa_ops import NUM_DRAWS, OP_FNS, DSAParams, parse_strategy

_OP_FNS = OP_FNS  # the same table under its old name (tests wrap its ops to count which ones ran)

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

# Datasets for which horizontal flips change the class meaning (digits). The DSA README says
# "use color_crop_cutout_scale_rotate for the digit datasets (MNIST and SVHN), as flip
# augmentation is not good for digit datasets"; IDC's argument.py drops flip for ``svhn``
# and every name starting with ``mnist``. FashionMNIST keeps flip in both. We add our
# embedded 8x8 ``digits`` set and USPS (also digits) for the same reason.
DIGIT_DATASETS: frozenset[str] = frozenset({"digits", "svhn", "usps"})


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
            x = OP_FNS[name](x, u.to(x.device), self.params)
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
        self.ops = parse_strategy(strategy)
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
            (op, torch.rand(n, NUM_DRAWS[op], generator=generator, device=dev).cpu())
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
        ops = parse_strategy(strategy)
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
        self.ops = [DSA(op, params, siamese=False) for op in parse_strategy(strategy)]

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
