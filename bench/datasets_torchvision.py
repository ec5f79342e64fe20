"""File-backed datasets: MNIST, FashionMNIST, SVHN (via torchvision), CIFAR-10/100 (our own
reader, :mod:`bench.cifar_files`, which runs no code from the pickled batches), TinyImageNet and a
generic image folder.

Importing this module registers the loaders; ``bench.data`` does so on first use. Each loader
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

    from bench.datasets_torchvision import load_cifar10
    data = load_cifar10(data_root="~/data", download=True)
    data.train.data.shape        # torch.Size([45000, 3, 32, 32]), uint8
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from bench.data import Dataset, make_dataset, register_dataset
from bench.errors import BenchError

DEFAULT_DATA_ROOT = os.path.join("~", ".cache", "dasm-bench", "data")
VERIFY_ENV = "DASM_VERIFY_CHECKSUMS"

MNIST_STATS = ((0.1307,), (0.3081,))
FASHIONMNIST_STATS = ((0.2861,), (0.3530,))
SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_STATS = ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))
TINYIMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINYIMAGENET_FOLDER = "tiny-imagenet-200"

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def resolve_data_root(data_root: str | os.PathLike | None) -> str:
    """``data_root``, else ``$DASM_DATA``, else ``~/.cache/dasm-bench/data`` (user-expanded)."""
    root = data_root if data_root is not None else (os.environ.get("DASM_DATA") or DEFAULT_DATA_ROOT)
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


# ----------------------------------------------------------------------------- errors

class _DownloadFailed(Exception):
    """Raised by our torchvision subclasses when fetching fails (kept apart from 'not found')."""


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _not_found(name: str, root: str) -> BenchError:
    return BenchError(f"{name} not found under {root}; pass --download to fetch it "
                      f"(or --data-root to point at it)")


def _download_failed(name: str, root: str, exc: BaseException) -> BenchError:
    return BenchError(f"{name}: --download into {root} failed ({_one_line(exc)}); "
                      f"check the network, or put the files there and use --data-root")


def _unreadable(name: str, root: str, exc: BaseException) -> BenchError:
    return BenchError(f"{name} files under {root} could not be read ({type(exc).__name__}: "
                      f"{_one_line(exc)}); delete them and pass --download to fetch them again")


def _open(name: str, root: str, build: Callable[[], object], download: bool) -> object:
    """Construct a torchvision dataset, turning its failures into one-line BenchErrors."""
    try:
        return build()
    except _DownloadFailed as exc:
        raise _download_failed(name, root, exc.__cause__ or exc) from exc
    except RuntimeError as exc:
        # torchvision: "Dataset not found or corrupted. You can use download=True ...".
        # Without download our presence-only checks make this mean "files absent"; with
        # download, the fetched files failed their checksum.
        if download:
            raise _download_failed(name, root, exc) from exc
        raise _not_found(name, root) from exc
    except Exception as exc:  # truncated/garbled files: EOFError, UnpicklingError, ValueError, MatReadError...
        raise _unreadable(name, root, exc) from exc


# ----------------------------------------------------------------------------- torchvision subclasses

@functools.cache
def _tv() -> dict[str, type]:
    """torchvision dataset classes, adapted (built on first use: torchvision imports lazily).

    * ``download`` wraps any failure in :class:`_DownloadFailed`, so a network error is reported
      as a failed download and not as a missing dataset.
    * SVHN: torchvision verifies the MD5 of ``<split>_32x32.mat`` on every construction; we check
      presence only there, because :func:`load_svhn` has already compared the MD5 itself (unless
      ``--no-verify-checksums``), with an error that says so. With ``download=True`` torchvision's
      own check runs, so a corrupt or partial file is fetched again.
    * MNIST/FashionMNIST: never the legacy ``processed/*.pt`` files (``torch.load``); always the
      raw IDX files, which torchvision parses as plain bytes.

    CIFAR is not read through torchvision at all: its ``CIFAR10`` unpickles the batches with
    ``pickle.load``, which can run code; see :mod:`bench.cifar_files`.
    """
    from torchvision import datasets as tvd
    from torchvision.datasets.utils import check_integrity

    class _DownloadErrors:
        def download(self) -> None:
            try:
                super().download()  # type: ignore[misc]
            except Exception as exc:
                raise _DownloadFailed(_one_line(exc)) from exc

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


def checksums_verified(verify: bool | None = None) -> bool:
    """``verify``, else ``$DASM_VERIFY_CHECKSUMS`` (``0`` is what ``--no-verify-checksums`` sets,
    so spawned workers inherit it), else True: published MD5s are checked by default."""
    if verify is not None:
        return bool(verify)
    return os.environ.get(VERIFY_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _checksum_mismatch(name: str, path: str) -> BenchError:
    return BenchError(f"{name}: {path} does not match its published MD5 (a corrupt, partial or re-packed "
                      f"copy); delete it and pass --download to fetch it again, or pass "
                      f"--no-verify-checksums to skip only this check (files are still parsed without "
                      f"running code from them)")


def _labels(values) -> Tensor:
    return torch.as_tensor(np.asarray(values), dtype=torch.int64).flatten()


def _assemble(name: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], class_names: list[str],
              stats: tuple[Sequence[float], Sequence[float]], root: str, **extra) -> Dataset:
    (train_x, train_y), (test_x, test_y) = train, test
    n = len(class_names)
    for split, y in (("train", train_y), ("test", test_y)):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= n):
            raise BenchError(f"{name} files under {root}: {split} labels span {int(y.min())}..{int(y.max())} "
                             f"but there are {n} classes")
    return make_dataset(name, train_x, train_y, test_x, test_y, class_names, stats[0], stats[1],
                        extra={"root": root, **extra})


# ----------------------------------------------------------------------------- MNIST family

def _load_mnist_like(name: str, cls_name: str, stats, data_root, download) -> Dataset:
    root = resolve_data_root(data_root)
    cls = _tv()[cls_name]
    splits = []
    for train in (True, False):
        ds = _open(name, root, lambda: cls(root, train=train, download=download), download)
        x = torch.as_tensor(ds.data, dtype=torch.uint8)  # N,H,W uint8 (read straight from the IDX file)
        splits.append((x.unsqueeze(1).contiguous(), _labels(ds.targets)))
    return _assemble(name, splits[0], splits[1], list(ds.classes), stats, root,
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
    from bench.cifar_files import md5_matches

    root = resolve_data_root(data_root)
    cls = _tv()["SVHN"]
    splits = []
    for split in ("train", "test"):
        _url, filename, md5 = cls.split_list[split]
        path = os.path.join(root, filename)
        if checksums_verified(verify) and not download and os.path.isfile(path) and not md5_matches(path, md5):
            raise _checksum_mismatch("svhn", path)
        ds = _open("svhn", root, lambda: cls(root, split=split, download=download), download)
        x = torch.from_numpy(np.ascontiguousarray(ds.data, dtype=np.uint8))  # torchvision: N,C,H,W
        splits.append((x, _labels(ds.labels)))
    # torchvision's SVHN has no ``classes``; the labels are the digits themselves.
    return _assemble("svhn", splits[0], splits[1], [str(d) for d in range(10)], SVHN_STATS, root,
                     source="torchvision.datasets.SVHN")


# ----------------------------------------------------------------------------- CIFAR

def _load_cifar(name: str, cls_name: str, stats, data_root, download, verify: bool | None) -> Dataset:
    """Read the python batches ourselves, through :mod:`bench.cifar_files` (no code runs from a file).

    torchvision's class is used for its published file list, MD5s and URL only (never instantiated:
    its constructor unpickles with ``pickle.load``)."""
    from torchvision import datasets as tvd

    from bench.cifar_files import md5_matches, read_batch, read_names

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
            raise _download_failed(name, root, exc) from exc
        problems = bad()
        if problems:
            raise _download_failed(name, root, RuntimeError(f"{problems[0]} is missing or corrupt after extracting"))
    if problems:
        if os.path.isfile(os.path.join(folder, problems[0])):
            raise _checksum_mismatch(name, os.path.join(folder, problems[0]))
        raise _not_found(name, root)

    label_key = "labels" if cls_name == "CIFAR10" else "fine_labels"
    try:
        splits = []
        for batch_list in (tv.train_list, tv.test_list):
            parts = [read_batch(os.path.join(folder, f), label_key) for f, _ in batch_list]
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            splits.append((torch.from_numpy(np.ascontiguousarray(x)), _labels(y)))
        names = read_names(os.path.join(folder, tv.meta["filename"]), tv.meta["key"])
    except Exception as exc:  # UnpicklingError (truncated or refused), EOFError, ValueError, OSError...
        raise _unreadable(name, root, exc) from exc
    return _assemble(name, splits[0], splits[1], names, stats, root,
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


# ----------------------------------------------------------------------------- image files

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
            raise BenchError(f"{name}: cannot read image {path} ({_one_line(exc)})") from exc
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
            raise _download_failed(name, root, exc) from exc
        base = os.path.join(root, TINYIMAGENET_FOLDER)
    if not _tinyimagenet_present(base):
        raise _not_found(name, root)

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
        raise _unreadable(name, root, exc) from exc
    if not train_paths or not test_paths:
        raise BenchError(f"{name}: no images found under {base}/train or {base}/val")

    size = (64, 64)
    train_x = _to_nchw(_read_images(name, train_paths, "RGB", size))  # some JPEGs are grayscale
    test_x = _to_nchw(_read_images(name, test_paths, "RGB", size))
    return _assemble(name, (train_x, _labels(train_y)), (test_x, _labels(test_y)),
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
            raise BenchError(f"{name}: cannot read image {path} ({_one_line(exc)})") from exc

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
    return _assemble(name, (_to_nchw(train_np), _labels(train_y)), (_to_nchw(test_np), _labels(test_y)),
                     class_names, (mean.tolist(), std.tolist()), root)
