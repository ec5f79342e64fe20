"""Flat parameter vectors of a model: MTT's expert trajectories and student runs live in them.

:class:`ParamLayout` maps ``model.named_parameters()`` onto one flat vector and runs the model
with the parameters taken from such a vector (``torch.func.functional_call``), as the MTT
reference's ``ReparamModule`` (GeorgeCazenavette/mtt-distillation, ``reparam_module.py``) does.

Example::

    layout = ParamLayout(model)
    logits = layout.forward(layout.flatten(model), x)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bench.errors import BenchError


class ParamLayout:
    """How a model's parameters map onto one flat vector (``named_parameters`` order).

    ``forward(flat, x)`` runs the model with the parameters taken from ``flat`` through
    ``torch.func.functional_call`` (the reference's ``ReparamModule``); gradients flow into ``flat``.

    Example::

        layout = ParamLayout(model)
        logits = layout.forward(layout.flatten(model), x)
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = [n for n, _ in model.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in model.named_parameters()]
        self.numels = [math.prod(s) for s in self.shapes]
        self.size = sum(self.numels)

    def flatten(self, model: nn.Module | None = None) -> Tensor:
        params = dict((model or self.model).named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        if flat.numel() != self.size:
            raise BenchError(f"flat parameter vector has {flat.numel()} values, the model needs {self.size}")
        return {n: chunk.view(s) for n, chunk, s in zip(self.names, flat.split(self.numels), self.shapes)}

    def forward(self, flat: Tensor, x: Tensor) -> Tensor:
        return torch.func.functional_call(self.model, self.unflatten(flat), (x,))

    def describe(self) -> list[list]:
        return [[n, list(s)] for n, s in zip(self.names, self.shapes)]
