"""CIFAR-10/100 "python version" files, read without running any code from them.

The batches are Python pickles (dicts of a uint8 ``data`` array, label lists and file names). A
plain ``pickle.load`` - which torchvision's ``CIFAR10`` uses - runs whatever callable a file names,
so a replaced ``data_batch_1`` could run a shell command. Here the unpickler only resolves the few
globals the real files reference, verified on the published archives' headers::

    numpy.core.multiarray._reconstruct   numpy.ndarray   numpy.dtype     (the ``data`` array)

plus ``numpy._core.multiarray._reconstruct`` (numpy 2 writers) and ``_codecs.encode`` (how Python 3
writes ``bytes`` at protocol 2, e.g. test files in the same format). Dicts, lists, ints and strings
are pickle opcodes, not globals. Any other global - ``os.system``, ``builtins.eval``,
``subprocess.Popen`` - is refused before it is looked up, whatever the file holds.

The published MD5s of the extracted files are checked by default (``verify=True``); re-packed copies
can skip that with ``verify=False`` (``--no-verify-checksums``): they are still parsed safely.

Example::

    from bench.data.cifar_files import read_batch
    images, labels = read_batch("~/data/cifar-10-batches-py/data_batch_1", "labels")
    images.shape, images.dtype      # (10000, 3, 32, 32), uint8
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
from typing import Any

import numpy as np

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}

IMAGE_BYTES = 3 * 32 * 32


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR batch needs (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR file holds only "
                                         f"arrays, lists and strings") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: not part of the CIFAR format")


def load_pickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (latin1 strings, as the Python 2 originals)."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh, encoding="latin1").load()


def _as_str_keys(entry: Any, path: str | os.PathLike) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError(f"{os.fspath(path)} holds a {type(entry).__name__}, not a CIFAR dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in entry.items()}


def read_batch(path: str | os.PathLike, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N,3,32,32 images, int64 N labels) of one batch file; ``label_key`` is ``labels``
    (CIFAR-10) or ``fine_labels`` (CIFAR-100). A malformed file raises ValueError."""
    entry = _as_str_keys(load_pickle(path), path)
    data, labels = entry.get("data"), entry.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        raise ValueError(f"{os.fspath(path)}: 'data' must be a uint8 N x {IMAGE_BYTES} array")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
        raise ValueError(f"{os.fspath(path)}: {label_key!r} must list one label per image")
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise ValueError(f"{os.fspath(path)}: {label_key!r} must hold integers")
    return data.reshape(-1, 3, 32, 32), y.astype(np.int64)


def read_names(path: str | os.PathLike, key: str) -> list[str]:
    """Class names from a meta file (``label_names`` for CIFAR-10, ``fine_label_names`` for CIFAR-100)."""
    names = _as_str_keys(load_pickle(path), path).get(key)
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
        raise ValueError(f"{os.fspath(path)}: {key!r} must be a list of class names")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def md5_matches(path: str | os.PathLike, md5: str, chunk: int = 1 << 20) -> bool:
    """Whether the file's MD5 is ``md5`` (an integrity check against the published value)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest() == md5
