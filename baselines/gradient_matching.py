"""Shared pieces of the gradient-matching family (DC, DSA, IDC).

The gradient distance of DC (VICO-UoE/DatasetCondensation ``utils.match_loss`` /
``distance_wb``), the reference's outer/inner loop table (``get_loops``) and the building
blocks of a matching loop: a per-class real-image pool on the device, the synthetic
images of earlier (frozen) segments, per-class gradient matching, BatchNorm statistics
freezing and the inner network training.

Example::

    net = create_model("convnet", 1, 10, 8)
    params = list(net.parameters())
    loss = class_matching_loss(net, params, x_real, y_real, x_syn, y_syn, metric="ours")
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.data.datasets import Dataset
from bench.errors import BenchError, DivergedError
from bench.methods.registry import DistillRequest
from bench.store.synthetic import SyntheticSet
from bench.train.augmentation import ComposedDSA  # noqa: F401 (re-exported: it moved to the harness)
from bench.train.loop import guarded_step

METRICS = ("ours", "mse", "cos", "l1")

# DC's reference (utils.get_loops): outer loops (net-update rounds per iteration) and
# inner loops (epochs over the synthetic set per round), tabulated by IPC.
LOOPS_BY_IPC: dict[int, tuple[int, int]] = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20),
                                            40: (40, 15), 50: (50, 10)}

_EPS = 1e-6  # the reference's denominator guard in every cosine


# ----------------------------------------------------------------------------- distance

def _layer_cosine_distance(g_syn: Tensor, g_real: Tensor) -> Tensor:
    """DC's ``distance_wb``: rows = output units; sum over rows of 1 - cosine."""
    shape = g_real.shape
    if g_real.ndim == 1:
        # The reference reshapes 1-D tensors (biases, norm weights) to one row and then
        # returns 0 (utils.py distance_wb, every release): they do not take part.
        return g_real.new_zeros(())
    if g_real.ndim > 2:  # conv (out, in, h, w) or layernorm (C, h, w): (out, rest)
        g_real = g_real.reshape(shape[0], -1)
        g_syn = g_syn.reshape(shape[0], -1)
    cos = (g_real * g_syn).sum(-1) / (g_real.norm(dim=-1) * g_syn.norm(dim=-1) + _EPS)
    return (1 - cos).sum()


def gradient_distance(grads_syn: Sequence[Tensor], grads_real: Sequence[Tensor], metric: str = "ours") -> Tensor:
    """Distance between two lists of per-parameter gradients (DC's ``match_loss``).

    - ``"ours"``: per layer, sum over output units (rows of the gradient reshaped to
      (out, rest)) of 1 - cosine; 1-D parameters contribute 0, as in the reference.
    - ``"mse"``: sum of squared differences over all parameters (reference: a sum, not a mean).
    - ``"cos"``: 1 - cosine between the two concatenated gradient vectors.
    - ``"l1"``: sum of absolute differences (IDC's ``dist(method='l1')``).

    Example::

        d = gradient_distance(torch.autograd.grad(l_syn, ps, create_graph=True),
                              [g.detach() for g in torch.autograd.grad(l_real, ps)], "ours")
    """
    if len(grads_syn) != len(grads_real):
        raise ValueError(f"{len(grads_syn)} synthetic but {len(grads_real)} real gradients")
    if not grads_real:
        raise ValueError("no gradients to compare")
    if metric == "ours":
        return torch.stack([_layer_cosine_distance(s, r) for s, r in zip(grads_syn, grads_real)]).sum()
    syn = torch.cat([g.reshape(-1) for g in grads_syn])
    real = torch.cat([g.reshape(-1) for g in grads_real])
    if metric == "mse":
        return ((syn - real) ** 2).sum()
    if metric == "l1":
        return (syn - real).abs().sum()
    if metric == "cos":
        return 1 - (syn * real).sum() / (syn.norm() * real.norm() + _EPS)
    raise BenchError(f"unknown gradient distance {metric!r}; use one of {', '.join(METRICS)}")


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise BenchError(f"unknown gradient distance {metric!r}; use one of {', '.join(METRICS)}")


# ----------------------------------------------------------------------------- loops

def get_loops(ipc: int) -> tuple[int, int]:
    """DC's (outer_loop, inner_loop) for ``ipc`` synthetic images per class.

    The reference defines IPC 1/10/20/30/40/50 only and exits otherwise. Our rule outside
    the table: the NEAREST tabulated IPC (ties go to the smaller one), and (50, 10) above
    50 (VICO-UoE/DatasetCondensation ``utils.py`` ``get_loops`` stops at 50; (50, 10) is its largest
    tabulated setting).

    Example::

        get_loops(10)   # (10, 50)
        get_loops(15)   # (10, 50): 10 and 20 tie, the smaller wins
        get_loops(100)  # (50, 10)
    """
    if ipc < 1:
        raise BenchError(f"ipc must be >= 1, got {ipc}")
    if ipc > 50:
        return LOOPS_BY_IPC[50]
    nearest = min(LOOPS_BY_IPC, key=lambda k: (abs(k - ipc), k))
    return LOOPS_BY_IPC[nearest]


# ----------------------------------------------------------------------------- real data

class RealPool:
    """The real images a request allows, per class, cached on the device (as the reference
    keeps ``images_all`` on the GPU); every draw uses the given CPU generator."""

    def __init__(self, request: DistillRequest, device: torch.device) -> None:
        self.device = device
        self.num_classes = request.data.num_classes
        self.indices = [request.pool_indices(c) for c in range(self.num_classes)]
        # one tensor, class-major; per-class views avoid a second copy
        self.all_images = request.data.train.get(torch.cat(self.indices)).to(device)
        self.all_labels = torch.cat([torch.full((len(ix),), c, dtype=torch.long)
                                     for c, ix in enumerate(self.indices)]).to(device)
        sizes = [len(ix) for ix in self.indices]
        starts = [sum(sizes[:c]) for c in range(self.num_classes)]
        self.images = [self.all_images[s:s + n] for s, n in zip(starts, sizes)]

    def size(self, c: int) -> int:
        return len(self.indices[c])

    def sample(self, c: int, n: int, generator: torch.Generator) -> Tensor:
        """``min(n, pool size)`` distinct random images of class ``c`` (reference ``get_images``)."""
        perm = torch.randperm(self.size(c), generator=generator)[:n]
        return self.images[c][perm.to(self.device)]

    def sample_filled(self, c: int, n: int, generator: torch.Generator) -> Tensor:
        """Exactly ``n`` random images of class ``c``: distinct while the pool lasts, then the
        pool is cycled (a DASM window may hold fewer images than the set being initialised)."""
        perm = torch.randperm(self.size(c), generator=generator)
        reps = -(-n // len(perm))
        return self.images[c][perm.repeat(reps)[:n].to(self.device)]

    def sample_any(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``min(n, total)`` distinct random images over all classes, with labels (IDC's real loader)."""
        perm = torch.randperm(len(self.all_labels), generator=generator)[:n].to(self.device)
        return self.all_images[perm], self.all_labels[perm]


# ----------------------------------------------------------------------------- frozen segments

class FrozenImages:
    """Decoded images of earlier segments: they join the synthetic side (inner-network
    training and per-class gradients) but never receive gradients.

    The decoded tensors are new tensors (the SyntheticSet is never touched); labels must
    be hard (the matching loss uses one class per batch).
    """

    def __init__(self, frozen: SyntheticSet | None, data: Dataset, factor: int, device: torch.device) -> None:
        c, s = data.channels, data.image_size
        if frozen is None:
            self.images = torch.zeros(0, c, s, s, device=device)
            self.labels = torch.zeros(0, dtype=torch.long, device=device)
        else:
            if frozen.factor != factor:
                raise BenchError(f"frozen segments use decoder factor {frozen.factor} but this run uses {factor}")
            if tuple(frozen.images.shape[1:]) != (c, s, s):
                raise BenchError(f"frozen images are {tuple(frozen.images.shape[1:])}, "
                                 f"{data.name} needs {(c, s, s)}")
            if frozen.labels.ndim != 1:
                raise BenchError("gradient matching needs frozen segments with hard labels")
            x, y = frozen.decode()
            self.images = x.detach().to(device)
            self.labels = y.to(device)
        self._by_class = [self.images[self.labels == k] for k in range(data.num_classes)]
        # per earlier segment and class, for IDC's per-segment cap (SeqMatch samples each segment alone)
        self._by_segment: list[list[Tensor]] = [[] for _ in range(data.num_classes)]
        if frozen is not None:
            ids = frozen.segment_ids if frozen.segment_ids is not None else torch.zeros(len(frozen), dtype=torch.long)
            for s in torch.unique(ids).tolist():
                part = SyntheticSet(frozen.images[ids == s], frozen.labels[ids == s], frozen.factor)
                xs, ys = part.decode()
                xs, ys = xs.detach().to(device), ys.to(device)
                for k in range(data.num_classes):
                    self._by_segment[k].append(xs[ys == k])

    def __len__(self) -> int:
        return len(self.labels)

    def of_class(self, c: int) -> Tensor:
        return self._by_class[c]

    def of_class_by_segment(self, c: int) -> list[Tensor]:
        """Class ``c``'s decoded frozen images, one tensor per earlier segment (in segment order)."""
        return self._by_segment[c]


# ----------------------------------------------------------------------------- networks

def seeded_model(factory: Callable[[], nn.Module], generator: torch.Generator, device: torch.device) -> nn.Module:
    """A freshly initialised network; its init seed comes from ``generator`` so a rerun with
    the same request seed builds the same networks."""
    torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    return factory().to(device).train()


def freeze_batchnorm(net: nn.Module, real_images: Tensor) -> None:
    """DC's BatchNorm handling: one train-mode pass over a real batch (16 per class in the
    reference) sets the running statistics, then every BatchNorm layer goes to eval mode,
    because a synthetic batch (1 image per class) is too small for batch statistics."""
    net.train()
    with torch.no_grad():
        net(real_images)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def select_parameters(net: nn.Module, include_1d: bool = True, include_2d: bool = True) -> list[nn.Parameter]:
    """The parameters whose gradients are matched. DC: all. IDC (``bias=False, fc=False``):
    only tensors of 3+ dims, i.e. conv kernels (1-D: biases and norms; 2-D: the linear head)."""
    chosen = [p for p in net.parameters()
              if (p.ndim != 1 or include_1d) and (p.ndim != 2 or include_2d)]
    if not chosen:
        raise BenchError("no network parameters left to match (the model has no conv layers?)")
    return chosen


def class_matching_loss(net: nn.Module, params: Sequence[nn.Parameter], x_real: Tensor, y_real: Tensor,
                        x_syn: Tensor, y_syn: Tensor, metric: str) -> Tensor:
    """Distance between the gradients of the CE loss on a real and a synthetic batch; the
    result is differentiable w.r.t. ``x_syn`` (the real gradient is a constant)."""
    g_real = torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)
    g_real = [g.detach() for g in g_real]
    g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), y_syn), params, create_graph=True)
    return gradient_distance(g_syn, g_real, metric)


def check_finite(loss: Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise DivergedError(f"{where}: matching loss became {loss.item()}; lower lr_img")


def train_on_tensors(net: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, labels: Tensor,
                     epochs: int, batch_size: int, generator: torch.Generator,
                     augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
                     cutmix_prob: float = 0.0, cutmix_beta: float = 1.0) -> None:
    """``epochs`` shuffled passes of SGD on (images, labels): the inner network update.

    ``augment(x, generator)`` is applied per batch (per-sample DSA in the references);
    with ``cutmix_prob > 0`` each batch is CutMix-ed with that probability (IDC).
    """
    from bench.train.augmentation import cutmix

    n = len(images)
    if n == 0 or epochs <= 0:
        return
    net.train()  # as the reference's epoch('train'): also lifts a BatchNorm freeze
    bs = max(1, min(batch_size, n))
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(images.device)
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            x, y = images[idx], labels[idx]
            if augment is not None:
                x = augment(x, generator)
            if cutmix_prob > 0:
                x, y_a, y_b, lam = cutmix(x, y, generator, beta=cutmix_beta, prob=cutmix_prob)
                out = net(x)
                loss = lam * F.cross_entropy(out, y_a) + (1 - lam) * F.cross_entropy(out, y_b)
            else:
                loss = F.cross_entropy(net(x), y)
            guarded_step(optimizer, loss, lambda v: f"inner network training diverged (loss {v}); lower lr_net")


# ----------------------------------------------------------------------------- augmentation
# ComposedDSA (IDC's DiffAug order) lives in the harness (bench.train.augmentation), which the `idc`
# evaluation protocol uses too; imported above so `from baselines.gradient_matching import ComposedDSA`
# keeps working.


def loss_curve(values: Sequence[float]) -> list[float]:
    """Per-iteration matching losses for the metadata sidecar (4 significant digits)."""
    return [float(f"{v:.4g}") for v in values]
