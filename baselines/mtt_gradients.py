"""MTT's matching loss and its gradients w.r.t. the synthetic images and the learned step size.

A student starts from an expert's parameters at a start epoch, takes ``syn_steps`` SGD steps on the
synthetic set (:func:`plan_student_steps` draws the minibatches and DSA transforms up front), and the
loss is ``||end - target||^2 / ||start - target||^2`` (GeorgeCazenavette/mtt-distillation
``distill.py``). :func:`trajectory_gradients` returns the loss and its gradients in one of three
modes (see :mod:`baselines.mtt`): ``"unrolled"`` (the reference), ``"checkpointed"`` (the same
gradient in one step's activation memory) and ``"tesla"`` (TESLA's constant-memory approximation,
justincui03/tesla ``distill.py``).

Example::

    plan = plan_student_steps(len(labels), syn_steps=20, batch_syn=None, dsa=None, generator=g)
    res = trajectory_gradients(layout.forward, start, target, images, labels, torch.tensor(0.01), plan)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.errors import BenchError
from bench.train.augmentation import DSA, DSATransform

GRADIENT_MODES = ("unrolled", "checkpointed", "tesla")


def trajectory_matching_loss(end: Tensor, start: Tensor, target: Tensor) -> Tensor:
    """``||end - target||^2 / ||start - target||^2`` (the reference's 1/num_params factors cancel)."""
    return (end - target).pow(2).sum() / (start - target).pow(2).sum()


@dataclass
class StudentStep:
    """One student update: which images of the training pool, and the DSA transform drawn for it."""

    indices: Tensor
    augment: DSATransform | None = None

    def batch(self, pool: Tensor) -> Tensor:
        x = pool[self.indices]
        return self.augment(x) if self.augment is not None else x


def plan_student_steps(pool_size: int, syn_steps: int, batch_syn: int | None, dsa: DSA | None,
                       generator: torch.Generator) -> list[StudentStep]:
    """Minibatches as the reference draws them (a permutation split into chunks, popped from the
    end, redrawn when used up) plus one DSA transform per step, drawn up front so that a
    recomputation replays exactly the same batches."""
    size = batch_syn or pool_size
    steps, chunks = [], []
    for _ in range(syn_steps):
        if not chunks:
            chunks = list(torch.split(torch.randperm(pool_size, generator=generator), size))
        idx = chunks.pop()
        aug = dsa.sample(generator, batch_size=len(idx)) if dsa is not None else None
        steps.append(StudentStep(idx, aug))
    return steps


@dataclass
class MatchResult:
    loss: float
    grad_images: Tensor
    grad_lr: Tensor
    extra: dict = field(default_factory=dict)


Forward = Callable[[Tensor, Tensor], Tensor]  # (flat parameters, images) -> logits


def trajectory_gradients(forward: Forward, start: Tensor, target: Tensor, images: Tensor, labels: Tensor,
                         syn_lr: Tensor, plan: list[StudentStep], fixed_images: Tensor | None = None,
                         mode: str = "unrolled") -> MatchResult:
    """Loss and its gradients w.r.t. ``images`` and ``syn_lr`` for one student run.

    The student trains on ``pool = cat(fixed_images, images)`` (fixed = DASM's frozen images, no
    gradient) with labels ``labels`` (for the whole pool), following ``plan``.

    Example::

        res = trajectory_gradients(layout.forward, start, target, images, labels, torch.tensor(0.01), plan)
        images.grad = res.grad_images
    """
    if mode == "unrolled":
        return _unrolled(forward, start, target, images, labels, syn_lr, plan, fixed_images)
    if mode in ("checkpointed", "tesla"):
        return _reverse_walk(forward, start, target, images, labels, syn_lr, plan, fixed_images,
                             exact=(mode == "checkpointed"))
    raise BenchError(f"mtt: unknown gradient_mode {mode!r}; use {', '.join(GRADIENT_MODES)}")


def _pool(fixed: Tensor | None, images: Tensor) -> Tensor:
    return images if fixed is None or len(fixed) == 0 else torch.cat([fixed, images])


def _unrolled(forward: Forward, start: Tensor, target: Tensor, images: Tensor, labels: Tensor, syn_lr: Tensor,
              plan: list[StudentStep], fixed: Tensor | None) -> MatchResult:
    x_leaf = images.detach().requires_grad_(True)
    lr = syn_lr.detach().requires_grad_(True)
    pool = _pool(fixed, x_leaf)
    w = start.detach().requires_grad_(True)
    for step in plan:
        ce = F.cross_entropy(forward(w, step.batch(pool)), labels[step.indices])
        g = torch.autograd.grad(ce, w, create_graph=True)[0]
        w = w - lr * g
    loss = trajectory_matching_loss(w, start, target)
    gx, glr = torch.autograd.grad(loss, (x_leaf, lr), allow_unused=True)
    return MatchResult(float(loss.detach()), _zeros_if_none(gx, images), _zeros_if_none(glr, syn_lr))


def _reverse_walk(forward: Forward, start: Tensor, target: Tensor, images: Tensor, labels: Tensor,
                  syn_lr: Tensor, plan: list[StudentStep], fixed: Tensor | None, exact: bool) -> MatchResult:
    """Gradients from a forward that keeps only parameter vectors and a backward that recomputes one
    step at a time. With w_{i+1} = w_i - a g_i(w_i, X_i) and adjoint l_{i+1} = dL/dw_{i+1}:

        dL/dX_i = -a (dg_i/dX_i)^T l_{i+1},  dL/da = -sum_i g_i . l_{i+1},
        l_i = l_{i+1} - a H_i l_{i+1}   (exact; TESLA keeps l_i = l_N)
    """
    lr = float(syn_lr)
    images = images.detach()
    pool_const = _pool(fixed, images)
    weights = [start.detach()]
    for step in plan:  # forward: no graph kept beyond one step
        w = weights[-1].clone().requires_grad_(True)
        ce = F.cross_entropy(forward(w, step.batch(pool_const)), labels[step.indices])
        g = torch.autograd.grad(ce, w)[0]
        weights.append((weights[-1] - lr * g).detach())
    end = weights[-1]
    loss = trajectory_matching_loss(end, start, target)
    adjoint = 2.0 * (end - target) / (start - target).pow(2).sum()
    grad_images = torch.zeros_like(images)
    grad_lr = torch.zeros((), dtype=syn_lr.dtype, device=syn_lr.device)
    for i in reversed(range(len(plan))):
        step = plan[i]
        w = weights[i].clone().requires_grad_(True)
        x_leaf = images.clone().requires_grad_(True)
        ce = F.cross_entropy(forward(w, step.batch(_pool(fixed, x_leaf))), labels[step.indices])
        g = torch.autograd.grad(ce, w, create_graph=True)[0]
        # one double-backward gives both the batch's gradient and (exact mode) the HVP H_i l_{i+1}
        directional = (g * adjoint).sum()
        wrt = (x_leaf, w) if exact else (x_leaf,)
        grads = torch.autograd.grad(directional, wrt, allow_unused=True)
        grad_lr = grad_lr - (g.detach() * adjoint).sum().to(grad_lr)
        if grads[0] is not None:  # None when the batch held only fixed (frozen) images
            grad_images -= lr * grads[0]
        if exact and grads[1] is not None:
            adjoint = adjoint - lr * grads[1]
    return MatchResult(float(loss), grad_images, grad_lr)


def _zeros_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad
