"""The dataset type, its splits and the loader registry: what a loader module needs to define and
register a dataset, with nothing that imports a loader (so ``bench.data.datasets``, which imports the loader
modules to register them, and those modules never import each other in a circle).

Import these from :mod:`bench.data.datasets`, which re-exports them; a new loader module imports this one::

    from bench.data.core import Dataset, make_dataset, register_dataset

    @register_dataset("bars", "two classes of 8x8 bars", num_classes=2)
    def load_bars(data_root=None, download=False) -> Dataset:
        return make_dataset("bars", train_x, train_y, test_x, test_y, ["h", "v"], [0.5], [0.5])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from bench.errors import BenchError

SPLIT_SEED = 0  # the splits are part of the benchmark: fixed, never the experiment seed
TRAIN_SPLITS = ("full", "train-val")


class ImageSet:
    """Images and integer labels of one split, normalised on access.

    ``data`` is either uint8 in [0, 255] (kept compact for large datasets, normalised per
    batch by :meth:`get`) or float in [0, 1]. ``images`` materialises the whole normalised
    split once and caches it; :meth:`get` never does.
    """

    def __init__(self, data: Tensor, labels: Tensor, num_classes: int,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        if data.ndim != 4:
            raise ValueError(f"images must be N,C,H,W, got shape {tuple(data.shape)}")
        if len(data) != len(labels):
            raise ValueError(f"{len(data)} images but {len(labels)} labels")
        self.data = data
        self.labels = labels.long()
        self.num_classes = num_classes
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self._images: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def _normalise(self, raw: Tensor) -> Tensor:
        x = raw.float() / 255.0 if raw.dtype == torch.uint8 else raw.float()
        return (x - self._mean) / self._std

    def get(self, indices: Tensor | Sequence[int]) -> Tensor:
        """Normalised float images at ``indices`` (no whole-split copy)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self._images is not None:
            return self._images[idx]
        return self._normalise(self.data[idx])

    @property
    def images(self) -> Tensor:
        """The whole split, normalised, float32 N,C,H,W (cached)."""
        if self._images is None:
            self._images = self._normalise(self.data)
        return self._images

    @functools.cached_property
    def indices_by_class(self) -> list[Tensor]:
        """For each class, the indices of its images: class-conditional sampling in O(1)."""
        return [torch.nonzero(self.labels == c, as_tuple=False).flatten() for c in range(self.num_classes)]

    def class_counts(self) -> list[int]:
        return [len(ix) for ix in self.indices_by_class]

    def subset(self, indices: Tensor) -> "ImageSet":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageSet(self.data[idx], self.labels[idx], self.num_classes,
                        self._mean.flatten().tolist(), self._std.flatten().tolist())


@dataclass
class Dataset:
    """A benchmark dataset: three splits plus what a model and a picture need to know."""

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    class_names: list[str]
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra: dict = field(default_factory=dict)
    train_split: str = "train-val"
    _holdout: "Dataset | None" = field(default=None, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def denormalise(self, x: Tensor) -> Tensor:
        """Back to [0, 1] pixel space (for pictures)."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x * std + mean).clamp(0, 1)

    def holdout_view(self) -> "Dataset":
        """The ``"train-val"`` view (``train`` without ``val``), for selections on ``val``; a
        ``"train-val"`` dataset is its own view."""
        return self if self._holdout is None else self._holdout

    def smallest_class_size(self) -> int:
        return min(self.train.class_counts())

    def check_ipc(self, ipc: int) -> None:
        """One-line error for an IPC the training split cannot supply."""
        if not isinstance(ipc, int) or ipc <= 0:
            raise BenchError(f"IPC must be a positive integer, got {ipc!r}")
        smallest = self.smallest_class_size()
        if ipc > smallest:
            raise BenchError(f"IPC {ipc} exceeds the smallest class of {self.name!r} "
                             f"({smallest} training images)")


# ----------------------------------------------------------------------------- registry

DatasetLoader = Callable[..., Dataset]
_DATASETS: dict[str, DatasetLoader] = {}
_DESCRIPTIONS: dict[str, str] = {}
_NUM_CLASSES: dict[str, int] = {}
_SETTINGS_AS: dict[str, str] = {}


def register_dataset(name: str, description: str = "", num_classes: int | None = None,
                     settings_as: str | None = None) -> Callable[[DatasetLoader], DatasetLoader]:
    """Decorator: make a loader findable by name (``loader(data_root, download) -> Dataset``).

    ``num_classes``, when fixed, lets results be read (e.g. chance level) without loading the data.
    ``settings_as`` names the dataset whose per-dataset settings (method configs, augmentation,
    published hyper-parameters) this one uses: another copy of the same data under its own name,
    e.g. ``cifar10-jpeg`` uses ``cifar10``'s, while its results never share a cell with ``cifar10``'s.
    """

    def wrap(fn: DatasetLoader) -> DatasetLoader:
        _DATASETS[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        if num_classes:
            _NUM_CLASSES[name] = num_classes
        if settings_as:
            _SETTINGS_AS[name] = settings_as
        return fn

    return wrap


# ----------------------------------------------------------------------------- splitting

def stratified_split(labels: np.ndarray, fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (rest, held_out) with ``fraction`` of every class held out."""
    rng = np.random.default_rng(seed)
    rest, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        held.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(held))


def make_dataset(name: str, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                 class_names: list[str], mean: Sequence[float], std: Sequence[float],
                 val_fraction: float = 0.1, extra: dict | None = None) -> Dataset:
    """Assemble a :class:`Dataset`, carving a stratified validation split out of train."""
    num_classes = len(class_names)
    rest, held = stratified_split(train_y.numpy(), val_fraction)
    rest_t, held_t = torch.from_numpy(rest), torch.from_numpy(held)
    mk = functools.partial(ImageSet, num_classes=num_classes, mean=mean, std=std)
    return Dataset(
        name=name,
        train=mk(train_x[rest_t], train_y[rest_t]),
        val=mk(train_x[held_t], train_y[held_t]),
        test=mk(test_x, test_y),
        class_names=class_names,
        channels=train_x.shape[1],
        image_size=train_x.shape[-1],
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        extra=extra or {},
    )
