"""Datasets stored as image files: Tiny ImageNet (its zip layout) and a generic
``train/<class>/``, ``test/<class>/`` image folder. Files are decoded with PIL in threads.
Importing this module registers ``tinyimagenet`` and ``imagefolder``.

Example::

    from bench.data.folders import load_imagefolder
    data = load_imagefolder(data_root="my_images")   # my_images/train/<class>/*.png, my_images/test/...
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from bench.data.core import Dataset, register_dataset
from bench.data.locations import (assemble, download_failed, labels_tensor, not_found, one_line,
                                 resolve_data_root, unreadable)
from bench.errors import BenchError

TINYIMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINYIMAGENET_FOLDER = "tiny-imagenet-200"

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
def _read_images(name: str, paths: Sequence[str], mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode image files into one uint8 N,H,W,C array (threads: PIL releases the GIL)."""
    from PIL import Image

    channels = 1 if mode == "L" else 3
    if size is None:
        with Image.open(paths[0]) as im:
            size = im.size
    out = np.empty((len(paths), size[1], size[0], channels), dtype=np.uint8)

    def read(i: int) -> None:
        path = paths[i]
        try:
            with Image.open(path) as im:
                if im.size != size:
                    raise BenchError(f"{name}: {path} is {im.size[0]}x{im.size[1]}, expected "
                                     f"{size[0]}x{size[1]} like the other images")
                arr = np.asarray(im.convert(mode), dtype=np.uint8)
        except BenchError:
            raise
        except Exception as exc:  # PIL.UnidentifiedImageError, truncated files, ...
            raise BenchError(f"{name}: cannot read image {path} ({one_line(exc)})") from exc
        out[i] = arr.reshape(size[1], size[0], channels)

    if len(paths):
        workers = min(16, os.cpu_count() or 1, len(paths))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(read, range(len(paths))):
                pass
    return out


def _to_nchw(arr: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


def _is_image(filename: str) -> bool:
    return filename.lower().endswith(IMAGE_EXTENSIONS) and not filename.startswith(".")


def _tinyimagenet_dir(root: str) -> str:
    """``<root>/tiny-imagenet-200``, or ``root`` itself when it already is that folder."""
    if os.path.isfile(os.path.join(root, "wnids.txt")):
        return root
    return os.path.join(root, TINYIMAGENET_FOLDER)


def _tinyimagenet_present(base: str) -> bool:
    return (os.path.isfile(os.path.join(base, "wnids.txt"))
            and os.path.isdir(os.path.join(base, "train"))
            and os.path.isfile(os.path.join(base, "val", "val_annotations.txt")))


@register_dataset("tinyimagenet",
                  "Tiny ImageNet: 110,000 64x64 RGB images, 200 classes (official val is the test split)",
                  num_classes=200)
def load_tinyimagenet(data_root: str | None = None, download: bool = False) -> Dataset:
    """Tiny ImageNet-200 from its zip layout; the labelled official ``val`` serves as test.

    Classes are the wnids of ``wnids.txt`` in sorted order (ImageFolder's order, as in the
    dataset-distillation literature); names are the first synonym in ``words.txt`` if present.
    Decoding the 110k JPEGs takes a while; ``load_dataset`` caches the result per process.
    """
    name = "tinyimagenet"
    root = resolve_data_root(data_root)
    base = _tinyimagenet_dir(root)
    if not _tinyimagenet_present(base) and download:
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(TINYIMAGENET_URL, download_root=root, md5=TINYIMAGENET_MD5)
        except Exception as exc:
            raise download_failed(name, root, exc) from exc
        base = os.path.join(root, TINYIMAGENET_FOLDER)
    if not _tinyimagenet_present(base):
        raise not_found(name, root)

    try:
        with open(os.path.join(base, "wnids.txt")) as f:
            wnids = sorted({line.strip() for line in f if line.strip()})
        words: dict[str, str] = {}
        words_path = os.path.join(base, "words.txt")
        if os.path.isfile(words_path):
            with open(words_path) as f:
                for line in f:
                    wnid, _, text = line.rstrip("\n").partition("\t")
                    words[wnid.strip()] = text.split(",")[0].strip()
        index = {w: i for i, w in enumerate(wnids)}

        train_paths, train_y = [], []
        for wnid in wnids:
            folder = os.path.join(base, "train", wnid, "images")
            if not os.path.isdir(folder):
                raise BenchError(f"{name}: class folder {folder} is missing (listed in wnids.txt)")
            files = sorted(f for f in os.listdir(folder) if _is_image(f))
            train_paths += [os.path.join(folder, f) for f in files]
            train_y += [index[wnid]] * len(files)

        test_paths, test_y = [], []
        with open(os.path.join(base, "val", "val_annotations.txt")) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split("\t")
                if not line.strip():
                    continue
                if len(fields) < 2 or fields[1].strip() not in index:
                    raise BenchError(f"{name}: val_annotations.txt line {lineno} does not map a file "
                                     f"to a known wnid: {line.strip()!r}")
                test_paths.append(os.path.join(base, "val", "images", fields[0].strip()))
                test_y.append(index[fields[1].strip()])
    except OSError as exc:
        raise unreadable(name, root, exc) from exc
    if not train_paths or not test_paths:
        raise BenchError(f"{name}: no images found under {base}/train or {base}/val")

    size = (64, 64)
    train_x = _to_nchw(_read_images(name, train_paths, "RGB", size))  # some JPEGs are grayscale
    test_x = _to_nchw(_read_images(name, test_paths, "RGB", size))
    return assemble(name, (train_x, labels_tensor(train_y)), (test_x, labels_tensor(test_y)),
                     [words.get(w) or w for w in wnids], TINYIMAGENET_STATS, root,
                     wnids=wnids, test_split="official val (test labels are not public)")


def _scan_class_folders(split_dir: str) -> dict[str, list[str]]:
    out = {}
    for cls in sorted(os.listdir(split_dir)):
        folder = os.path.join(split_dir, cls)
        if os.path.isdir(folder) and not cls.startswith("."):
            out[cls] = sorted(os.path.join(folder, f) for f in os.listdir(folder) if _is_image(f))
    return out


@register_dataset("imagefolder", "Your own images: <data-root>/train/<class>/*.png and <data-root>/test/<class>/*.png")
def load_imagefolder(data_root: str | None = None, download: bool = False) -> Dataset:
    """Square images of one size in ``train/<class>/`` and ``test/<class>/`` under ``data_root``.

    Classes are the sorted ``train`` sub-folders. Grayscale if every sampled image is
    grayscale, else RGB. Normalisation constants are the per-channel train mean/std.
    """
    from PIL import Image

    name = "imagefolder"
    root = resolve_data_root(data_root)
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    if not (os.path.isdir(train_dir) and os.path.isdir(test_dir)):
        raise BenchError(f"{name} not found under {root}: expected train/<class>/ and test/<class>/ "
                         f"image folders (nothing to --download; point --data-root at your folder)")
    train, test = _scan_class_folders(train_dir), _scan_class_folders(test_dir)
    class_names = [c for c, files in train.items() if files]
    if not class_names:
        raise BenchError(f"{name}: no images in class folders under {train_dir}")
    unknown = sorted(set(c for c, files in test.items() if files) - set(class_names))
    if unknown:
        raise BenchError(f"{name}: test classes {', '.join(unknown)} have no training images in {train_dir}")

    index = {c: i for i, c in enumerate(class_names)}
    train_paths = [p for c in class_names for p in train[c]]
    train_y = [index[c] for c in class_names for _ in train[c]]
    test_paths = [p for c in class_names for p in test.get(c, [])]
    test_y = [index[c] for c in class_names for _ in test.get(c, [])]
    if not test_paths:
        raise BenchError(f"{name}: no test images under {test_dir}")

    def header(path: str) -> tuple[tuple[int, int], str]:
        try:
            with Image.open(path) as im:  # reads the header only
                return im.size, im.mode
        except Exception as exc:
            raise BenchError(f"{name}: cannot read image {path} ({one_line(exc)})") from exc

    size, _ = header(train_paths[0])
    if size[0] != size[1]:
        raise BenchError(f"{name}: images must be square, {train_paths[0]} is {size[0]}x{size[1]}")
    # Peek at a spread of images to pick grayscale vs RGB without decoding everything twice.
    probe = train_paths[:: max(1, len(train_paths) // 32)]
    gray = all(header(p)[1] in ("1", "L", "LA", "I", "I;16", "F") for p in probe)
    mode = "L" if gray else "RGB"

    train_np = _read_images(name, train_paths, mode, size)
    test_np = _read_images(name, test_paths, mode, size)
    pixels = train_np.reshape(-1, train_np.shape[-1]).astype(np.float64) / 255.0
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return assemble(name, (_to_nchw(train_np), labels_tensor(train_y)), (_to_nchw(test_np), labels_tensor(test_y)),
                     class_names, (mean.tolist(), std.tolist()), root)
