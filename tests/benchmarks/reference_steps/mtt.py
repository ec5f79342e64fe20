"""MTT's student unroll and meta-gradient as GeorgeCazenavette/mtt-distillation runs them, re-stated.

Sources (GeorgeCazenavette/mtt-distillation): ``distill.py`` lines 294-301 (a fresh network
wrapped in ``ReparamModule`` every iteration), 330-396 (the ``syn_steps`` student updates on
minibatches popped from a permutation, per-sample DSA, the normalised parameter distance, one
step of the image and learning-rate optimisers); ``reparam_module.py`` lines 9-159 (one flat
parameter; every forward splits it and ``setattr``s a view per parameter, then restores them).
Our ``ParamLayout.forward`` goes through ``torch.func.functional_call`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .diffaugment import ParamDiffAug, diff_augment


class ReparamModule(nn.Module):
    """reparam_module.py 9-75 and 110-159, without tracing, shared parameters or buffers (none here)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        infos, params = [], []
        for mn, m in self.named_modules():
            for n, p in m.named_parameters(recurse=False):
                infos.append((mn, n))
                params.append(p.detach())
        self._param_infos = tuple(infos)
        self._param_numels = tuple(p.numel() for p in params)
        self._param_shapes = tuple(p.size() for p in params)
        self.register_parameter("flat_param", nn.Parameter(torch.cat([p.reshape(-1) for p in params], 0)))
        for mn, n in self._param_infos:
            delattr(self._module(mn), n)
        self._unflatten(self.flat_param)

    def _module(self, mn: str) -> nn.Module:
        m = self
        for p in mn.split(".") if mn else []:
            m = getattr(m, p)
        return m

    def _unflatten(self, flat: Tensor) -> None:
        views = (t.view(s) for t, s in zip(flat.split(self._param_numels), self._param_shapes))
        for (mn, n), p in zip(self._param_infos, views):
            setattr(self._module(mn), n, p)

    @contextmanager
    def _unflattened(self, flat: Tensor):
        saved = [getattr(self._module(mn), n) for mn, n in self._param_infos]
        self._unflatten(flat)
        yield
        for (mn, n), p in zip(self._param_infos, saved):
            setattr(self._module(mn), n, p)

    def forward(self, *inputs, flat_param: Tensor | None = None):
        flat_param = self.flat_param if flat_param is None else torch.squeeze(flat_param)
        with self._unflattened(flat_param):
            return self.module(*inputs)


def student_run(make_net: Callable[[], nn.Module], image_syn: Tensor, syn_lr: Tensor, label_syn: Tensor,
                starting: Tensor, target: Tensor, syn_steps: int, batch_syn: int, dsa_strategy: str,
                optimizer_img, optimizer_lr, batches: Sequence[Tensor] | None = None,
                dsa_param: ParamDiffAug | None = None) -> float:
    """distill.py 294-396 for one iteration (flat ``starting``/``target`` already on the device).

    ``batches`` replaces the reference's ``torch.randperm`` minibatches (equal-work checks only).
    """
    student_net = ReparamModule(make_net())
    student_net.train()
    num_params = sum(p.numel() for p in student_net.parameters())
    criterion = nn.CrossEntropyLoss()
    student_params = [starting.clone().requires_grad_(True)]
    indices_chunks: list[Tensor] = []
    dsa_param = dsa_param or ParamDiffAug()
    for step in range(syn_steps):
        if batches is not None:
            these_indices = batches[step]
        else:
            if not indices_chunks:
                indices_chunks = list(torch.split(torch.randperm(len(image_syn)), batch_syn))
            these_indices = indices_chunks.pop()
        x = image_syn[these_indices]
        this_y = label_syn[these_indices]
        if dsa_strategy:
            x = diff_augment(x, dsa_strategy, param=dsa_param)
        out = student_net(x, flat_param=student_params[-1])
        ce_loss = criterion(out, this_y)
        grad = torch.autograd.grad(ce_loss, student_params[-1], create_graph=True)[0]
        student_params.append(student_params[-1] - syn_lr * grad)
    param_loss = torch.tensor(0.0)
    param_dist = torch.tensor(0.0)
    param_loss += torch.nn.functional.mse_loss(student_params[-1], target, reduction="sum")
    param_dist += torch.nn.functional.mse_loss(starting, target, reduction="sum")
    param_loss /= num_params
    param_dist /= num_params
    param_loss /= param_dist
    optimizer_img.zero_grad()
    optimizer_lr.zero_grad()
    param_loss.backward()
    optimizer_img.step()
    optimizer_lr.step()
    return float(param_loss.detach())
