"""Datasets read through torchvision: MNIST, FashionMNIST and SVHN. The other file-backed loaders
live beside it: CIFAR-10/100 in :mod:`bench.data.cifar` (our own reader, :mod:`bench.data.cifar_files`,
which runs no code from the pickled batches), TinyImageNet and image folders in
:mod:`bench.data.folders`, the shared data root, checksum switch and errors in
:mod:`bench.data.locations`; their public names stay importable from here.

Importing these modules registers the loaders; ``bench.data.datasets`` does so on first use. Each loader
has the registry signature ``loader(data_root=None, download=False) -> Dataset`` and returns
uint8 N,C,H,W images (``ImageSet`` normalises per batch) with the reference normalisation
constants of the dataset. torchvision is imported inside the loaders only.

Files are looked for under ``data_root``, else ``$DASM_DATA``, else ``~/.cache/dasm-bench/data``,
in torchvision's own layout::

    <root>/MNIST/raw/train-images-idx3-ubyte ...     mnist
    <root>/FashionMNIST/raw/...                      fashionmnist
    <root>/train_32x32.mat, <root>/test_32x32.mat    svhn
    <root>/cifar-10-batches-py/data_batch_1 ...      cifar10
    <root>/cifar-100-python/train, test, meta        cifar100
    <root>/tiny-imagenet-200/{wnids.txt,train,val}   tinyimagenet

A missing dataset (or a failed ``--download``) is a one-line :class:`BenchError`. The published
MD5s of the CIFAR-10/100 and SVHN files are checked on every load; ``verify=False`` (or
``$DASM_VERIFY_CHECKSUMS=0``, which ``--no-verify-checksums`` sets) skips only that check, for
re-packed copies. No file is ever unpickled with plain ``pickle`` or ``torch.load``.

Example::

    from bench.data.torchvision_sets import load_mnist
    data = load_mnist(data_root="~/data", download=True)
    data.train.data.shape        # torch.Size([60000, 1, 28, 28]), uint8
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import numpy as np
import torch

from bench.data.core import Dataset, register_dataset
from bench.data.locations import (DEFAULT_DATA_ROOT, VERIFY_ENV, DownloadFailed,  # noqa: F401 (public here too)
                                 assemble, checksum_mismatch, checksums_verified, download_failed, labels_tensor,
                                 not_found, one_line, resolve_data_root, unreadable)

MNIST_STATS = ((0.1307,), (0.3081,))
FASHIONMNIST_STATS = ((0.2861,), (0.3530,))
SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


def _open(name: str, root: str, build: Callable[[], object], download: bool) -> object:
    """Construct a torchvision dataset, turning its failures into one-line BenchErrors."""
    try:
        return build()
    except DownloadFailed as exc:
        raise download_failed(name, root, exc.__cause__ or exc) from exc
    except RuntimeError as exc:
        # torchvision: "Dataset not found or corrupted. You can use download=True ...".
        # Without download our presence-only checks make this mean "files absent"; with
        # download, the fetched files failed their checksum.
        if download:
            raise download_failed(name, root, exc) from exc
        raise not_found(name, root) from exc
    except Exception as exc:  # truncated/garbled files: EOFError, UnpicklingError, ValueError, MatReadError...
        raise unreadable(name, root, exc) from exc


# ----------------------------------------------------------------------------- torchvision subclasses

@functools.cache
def _tv() -> dict[str, type]:
    """torchvision dataset classes, adapted (built on first use: torchvision imports lazily).

    * ``download`` wraps any failure in :class:`DownloadFailed`, so a network error is reported
      as a failed download and not as a missing dataset.
    * SVHN: torchvision verifies the MD5 of ``<split>_32x32.mat`` on every construction; we check
      presence only there, because :func:`load_svhn` has already compared the MD5 itself (unless
      ``--no-verify-checksums``), with an error that says so. With ``download=True`` torchvision's
      own check runs, so a corrupt or partial file is fetched again.
    * MNIST/FashionMNIST: never the legacy ``processed/*.pt`` files (``torch.load``); always the
      raw IDX files, which torchvision parses as plain bytes.

    CIFAR is not read through torchvision at all: its ``CIFAR10`` unpickles the batches with
    ``pickle.load``, which can run code; see :mod:`bench.data.cifar_files`.
    """
    from torchvision import datasets as tvd
    from torchvision.datasets.utils import check_integrity

    class _DownloadErrors:
        def download(self) -> None:
            try:
                super().download()  # type: ignore[misc]
            except Exception as exc:
                raise DownloadFailed(one_line(exc)) from exc

    class SVHN(_DownloadErrors, tvd.SVHN):
        # Set before torchvision's __init__ runs, since that is where the check happens.
        def __init__(self, *args, download: bool = False, **kwargs) -> None:
            self._verify_md5 = bool(download)
            super().__init__(*args, download=download, **kwargs)

        def _check_integrity(self) -> bool:
            if self._verify_md5:
                return super()._check_integrity()
            return check_integrity(os.path.join(self.root, self.filename))  # md5=None: presence

    class _RawFilesOnly:
        def _check_legacy_exist(self) -> bool:
            return False  # legacy files would be read with torch.load: use the raw IDX files only

    # torchvision derives the MNIST folders from the class name (<root>/<ClassName>/raw), so
    # these subclasses must keep the exact names MNIST and FashionMNIST.
    class MNIST(_RawFilesOnly, _DownloadErrors, tvd.MNIST):
        pass

    class FashionMNIST(_RawFilesOnly, _DownloadErrors, tvd.FashionMNIST):
        pass

    return {"SVHN": SVHN, "MNIST": MNIST, "FashionMNIST": FashionMNIST}

# ----------------------------------------------------------------------------- MNIST family

def _load_mnist_like(name: str, cls_name: str, stats, data_root, download) -> Dataset:
    root = resolve_data_root(data_root)
    cls = _tv()[cls_name]
    splits = []
    for train in (True, False):
        ds = _open(name, root, lambda: cls(root, train=train, download=download), download)
        x = torch.as_tensor(ds.data, dtype=torch.uint8)  # N,H,W uint8 (read straight from the IDX file)
        splits.append((x.unsqueeze(1).contiguous(), labels_tensor(ds.targets)))
    return assemble(name, splits[0], splits[1], list(ds.classes), stats, root,
                     source=f"torchvision.datasets.{cls_name}")


@register_dataset("mnist", "MNIST: 70,000 28x28 grayscale handwritten digits, 10 classes (torchvision)",
                  num_classes=10)
def load_mnist(data_root: str | None = None, download: bool = False) -> Dataset:
    """MNIST (60k train / 10k test); 10% of train held out as validation."""
    return _load_mnist_like("mnist", "MNIST", MNIST_STATS, data_root, download)


@register_dataset("fashionmnist", "Fashion-MNIST: 70,000 28x28 grayscale clothing images, 10 classes (torchvision)",
                  num_classes=10)
def load_fashionmnist(data_root: str | None = None, download: bool = False) -> Dataset:
    """Fashion-MNIST (60k train / 10k test); 10% of train held out as validation."""
    return _load_mnist_like("fashionmnist", "FashionMNIST", FASHIONMNIST_STATS, data_root, download)


# ----------------------------------------------------------------------------- SVHN

@register_dataset("svhn", "SVHN: 99,289 32x32 RGB house-number digits, 10 classes (torchvision, no 'extra')",
                  num_classes=10)
def load_svhn(data_root: str | None = None, download: bool = False, verify: bool | None = None) -> Dataset:
    """SVHN train (73,257) / test (26,032); digit 0 is label 0 (torchvision remaps 10 -> 0).
    ``verify=False`` skips the published-MD5 check (default: ``checksums_verified()``)."""
    from bench.data.cifar_files import md5_matches

    root = resolve_data_root(data_root)
    cls = _tv()["SVHN"]
    splits = []
    for split in ("train", "test"):
        _url, filename, md5 = cls.split_list[split]
        path = os.path.join(root, filename)
        if checksums_verified(verify) and not download and os.path.isfile(path) and not md5_matches(path, md5):
            raise checksum_mismatch("svhn", path)
        ds = _open("svhn", root, lambda: cls(root, split=split, download=download), download)
        x = torch.from_numpy(np.ascontiguousarray(ds.data, dtype=np.uint8))  # torchvision: N,C,H,W
        splits.append((x, labels_tensor(ds.labels)))
    # torchvision's SVHN has no ``classes``; the labels are the digits themselves.
    return assemble("svhn", splits[0], splits[1], [str(d) for d in range(10)], SVHN_STATS, root,
                     source="torchvision.datasets.SVHN")


# The CIFAR and image-file loaders live in their own modules; their names stay importable from here.
from bench.data.cifar import CIFAR10_STATS, CIFAR100_STATS, load_cifar10, load_cifar100  # noqa: E402,F401
from bench.data.folders import (IMAGE_EXTENSIONS, TINYIMAGENET_STATS,  # noqa: E402,F401
                                    load_imagefolder, load_tinyimagenet)
