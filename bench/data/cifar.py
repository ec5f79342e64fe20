"""CIFAR-10 and CIFAR-100, read from the python batches by our own reader (:mod:`bench.data.cifar_files`),
which runs no code from the pickled files; torchvision supplies the published file list, MD5s and
URL only. Importing this module registers ``cifar10`` and ``cifar100``.

Example::

    from bench.data.cifar import load_cifar10
    data = load_cifar10(data_root="~/data", download=True)
    data.train.data.shape        # torch.Size([45000, 3, 32, 32]), uint8
"""

from __future__ import annotations

import os

import numpy as np
import torch

from bench.data.core import Dataset, register_dataset
from bench.data.locations import (assemble, checksum_mismatch, checksums_verified, download_failed,
                                 labels_tensor, not_found, resolve_data_root, unreadable)

CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_STATS = ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))


def _load_cifar(name: str, cls_name: str, stats, data_root, download, verify: bool | None) -> Dataset:
    """Read the python batches ourselves, through :mod:`bench.data.cifar_files` (no code runs from a file).

    torchvision's class is used for its published file list, MD5s and URL only (never instantiated:
    its constructor unpickles with ``pickle.load``)."""
    from torchvision import datasets as tvd

    from bench.data.cifar_files import md5_matches, read_batch, read_names

    tv = getattr(tvd, cls_name)
    root = resolve_data_root(data_root)
    folder = os.path.join(root, tv.base_folder)
    files = list(tv.train_list) + list(tv.test_list) + [(tv.meta["filename"], tv.meta["md5"])]
    verify = checksums_verified(verify)

    def bad() -> list[str]:
        absent = [f for f, _ in files if not os.path.isfile(os.path.join(folder, f))]
        if absent or not verify:
            return absent
        return [f for f, md5 in files if not md5_matches(os.path.join(folder, f), md5)]

    problems = bad()
    if problems and download:
        from torchvision.datasets import utils as tv_utils

        try:
            tv_utils.download_and_extract_archive(tv.url, root, filename=tv.filename, md5=tv.tgz_md5)
        except Exception as exc:
            raise download_failed(name, root, exc) from exc
        problems = bad()
        if problems:
            raise download_failed(name, root, RuntimeError(f"{problems[0]} is missing or corrupt after extracting"))
    if problems:
        if os.path.isfile(os.path.join(folder, problems[0])):
            raise checksum_mismatch(name, os.path.join(folder, problems[0]))
        raise not_found(name, root)

    label_key = "labels" if cls_name == "CIFAR10" else "fine_labels"
    try:
        splits = []
        for batch_list in (tv.train_list, tv.test_list):
            parts = [read_batch(os.path.join(folder, f), label_key) for f, _ in batch_list]
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            splits.append((torch.from_numpy(np.ascontiguousarray(x)), labels_tensor(y)))
        names = read_names(os.path.join(folder, tv.meta["filename"]), tv.meta["key"])
    except Exception as exc:  # UnpicklingError (truncated or refused), EOFError, ValueError, OSError...
        raise unreadable(name, root, exc) from exc
    return assemble(name, splits[0], splits[1], names, stats, root,
                     source=f"{tv.base_folder} python batches (torchvision's file list and MD5s)")


@register_dataset("cifar10", "CIFAR-10: 60,000 32x32 RGB images, 10 classes (torchvision)",
                  num_classes=10)
def load_cifar10(data_root: str | None = None, download: bool = False, verify: bool | None = None) -> Dataset:
    """CIFAR-10 (50k train / 10k test); 10% of train held out as validation. ``verify=False``
    skips the published-MD5 check (default: ``checksums_verified()``, i.e. checked)."""
    return _load_cifar("cifar10", "CIFAR10", CIFAR10_STATS, data_root, download, verify)


@register_dataset("cifar100", "CIFAR-100: 60,000 32x32 RGB images, 100 fine classes (torchvision)",
                  num_classes=100)
def load_cifar100(data_root: str | None = None, download: bool = False, verify: bool | None = None) -> Dataset:
    """CIFAR-100 fine labels (50k train / 10k test); 10% of train held out as validation.
    ``verify=False`` skips the published-MD5 check (default: checked)."""
    return _load_cifar("cifar100", "CIFAR100", CIFAR100_STATS, data_root, download, verify)
