"""Where dataset files live and how a loader fails: the data root, the published-checksum switch,
one-line errors for a missing, undownloadable, unreadable or corrupt dataset, and the final
assembly of loaded arrays into a :class:`Dataset`. Shared by every file-backed loader module
(:mod:`bench.data.torchvision_sets`, :mod:`bench.data.cifar`, :mod:`bench.data.folders`).

Example::

    root = resolve_data_root(None)          # $DASM_DATA or ~/.cache/dasm-bench/data
    if not os.path.isdir(root):
        raise not_found("mydata", root)     # "mydata not found under ...; pass --download ..."
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from bench.data.core import Dataset, make_dataset
from bench.errors import BenchError

DEFAULT_DATA_ROOT = os.path.join("~", ".cache", "dasm-bench", "data")
VERIFY_ENV = "DASM_VERIFY_CHECKSUMS"


def resolve_data_root(data_root: str | os.PathLike | None) -> str:
    """``data_root``, else ``$DASM_DATA``, else ``~/.cache/dasm-bench/data`` (user-expanded)."""
    root = data_root if data_root is not None else (os.environ.get("DASM_DATA") or DEFAULT_DATA_ROOT)
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


# ----------------------------------------------------------------------------- errors

class DownloadFailed(Exception):
    """Raised by a loader's download step when fetching fails (kept apart from 'not found')."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, cut to ``limit`` characters (for ``error: ...``)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def not_found(name: str, root: str) -> BenchError:
    """The error for a dataset whose files are absent."""
    return BenchError(f"{name} not found under {root}; pass --download to fetch it "
                      f"(or --data-root to point at it)")


def download_failed(name: str, root: str, exc: BaseException) -> BenchError:
    """The error for a ``--download`` that failed (network, server, a bad archive)."""
    return BenchError(f"{name}: --download into {root} failed ({one_line(exc)}); "
                      f"check the network, or put the files there and use --data-root")


def unreadable(name: str, root: str, exc: BaseException) -> BenchError:
    """The error for files that are present but cannot be parsed (truncated, garbled)."""
    return BenchError(f"{name} files under {root} could not be read ({type(exc).__name__}: "
                      f"{one_line(exc)}); delete them and pass --download to fetch them again")


def checksums_verified(verify: bool | None = None) -> bool:
    """``verify``, else ``$DASM_VERIFY_CHECKSUMS`` (``0`` is what ``--no-verify-checksums`` sets,
    so spawned workers inherit it), else True: published MD5s are checked by default."""
    if verify is not None:
        return bool(verify)
    return os.environ.get(VERIFY_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def checksum_mismatch(name: str, path: str) -> BenchError:
    """The error for a file whose MD5 is not the published one."""
    return BenchError(f"{name}: {path} does not match its published MD5 (a corrupt, partial or re-packed "
                      f"copy); delete it and pass --download to fetch it again, or pass "
                      f"--no-verify-checksums to skip only this check (files are still parsed without "
                      f"running code from them)")


def labels_tensor(values) -> Tensor:
    """Labels as a flat int64 tensor, whatever sequence or array they came as."""
    return torch.as_tensor(np.asarray(values), dtype=torch.int64).flatten()


def assemble(name: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], class_names: list[str],
             stats: tuple[Sequence[float], Sequence[float]], root: str, **extra) -> Dataset:
    """Check the labels against the class count, then build the :class:`Dataset` (10% of train
    held out as validation); ``extra`` is recorded with the data root."""
    (train_x, train_y), (test_x, test_y) = train, test
    n = len(class_names)
    for split, y in (("train", train_y), ("test", test_y)):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= n):
            raise BenchError(f"{name} files under {root}: {split} labels span {int(y.min())}..{int(y.max())} "
                             f"but there are {n} classes")
    return make_dataset(name, train_x, train_y, test_x, test_y, class_names, stats[0], stats[1],
                        extra={"root": root, **extra})
