"""Small training-loop pieces every method and the evaluation share.

- :func:`has_batchnorm`: whether a network has BatchNorm layers (DC freezes their statistics on
  real data, DM embeds all classes in one batch for them);
- :func:`guarded_step`: one optimiser step that first refuses a non-finite loss with a one-line
  :class:`bench.errors.DivergedError` naming what diverged and what to lower;
- :func:`resolve_dsa_strategy`: a config's ``dsa_strategy`` with :data:`DSA_REFERENCE` ("auto")
  turned into the reference strategy for the dataset.

Example::

    loss = F.cross_entropy(net(x), y)
    guarded_step(opt, loss, lambda value: f"expert 3 diverged (loss {value}); lower the expert lr")
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from bench.errors import DivergedError

DSA_REFERENCE = "auto"  # a dsa_strategy value: the reference strategy for the dataset


def has_batchnorm(net: nn.Module) -> bool:
    """True when ``net`` holds any BatchNorm layer (1d, 2d or 3d).

    Example::

        has_batchnorm(create_model("convnet_bn", 1, 10, 8))   # True
    """
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def guarded_step(optimizer: torch.optim.Optimizer, loss: Tensor, diverged: Callable[[float], str]) -> None:
    """``zero_grad``, ``backward`` and ``step`` on ``loss``; a NaN/inf loss raises
    ``DivergedError(diverged(loss_value))`` before anything is changed.

    Example::

        guarded_step(opt, loss, lambda v: f"dm diverged: loss {v}; lower lr_img")
    """
    if not torch.isfinite(loss):
        raise DivergedError(diverged(loss.item()))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def resolve_dsa_strategy(value: str, dataset: str) -> str:
    """The DSA op string a config's ``dsa_strategy`` stands for: :data:`DSA_REFERENCE` ("auto")
    is the reference strategy for ``dataset`` (``bench.train.augmentation.strategy_for``: no flip on
    digit datasets); anything else ("none", "color_crop", ...) is taken as written.

    Example::

        resolve_dsa_strategy("auto", "digits")        # 'color_crop_cutout_scale_rotate'
    """
    if value == DSA_REFERENCE:
        from bench.train.augmentation import strategy_for

        return strategy_for(dataset)
    return value
