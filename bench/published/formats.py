"""Where the files of a published distilled set are, and what they need to be read: the layouts
:mod:`bench.published.importers` reads beside its own, without reading any tensor itself.

- MTT / DATM / TESLA save directories at any iteration: ``images_<it>.pt``, ``labels_<it>.pt``
  and optionally ``lr_<it>.pt`` with ``<it>`` = ``best`` or an iteration number
  (GeorgeCazenavette/mtt-distillation ``distill.py`` L238-243, NUS-HPC-AI-Lab/DATM
  ``distill/DATM.py`` L397-404). :func:`save_dir_files` chooses one file set deterministically.
- DD-Ranking's layout: ``images.pt``, ``labels.pt`` and optionally ``lr.pt`` (format ``ddranking``).
- The pickle globals the DC/DSA/DM result files need beyond tensors (:func:`result_file_globals`).
- Whether a set lives in ZCA-whitened space (:func:`zca_choice`): a flag, else the source's own
  markers, with a one-line note saying which.

Example::

    images, labels, lr = save_dir_files(Path("logged_files/CIFAR10/run"), "mtt", iteration=None)
    zca, note = zca_choice(Path("TrajectoryMatching/CIFAR10/IPC10/NO_ZCA"), "mtt", flag=None)
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any, ContextManager

from bench.errors import BenchError

# MTT's iteration saves; images_zca_<it>.pt is not one: under --zca MTT also writes the images
# mapped back to pixels with zca_trans.inverse_transform (distill.py L266-271), for pictures
_SAVE_IMAGES = re.compile(r"^images_(best|\d+)\.pt$")
_ZCA_PIXEL_COPY = re.compile(r"^images_zca_(\d+)\.pt$")
_NO_ZCA = re.compile(r"(?:^|[^a-z])no[_-]?zca(?:$|[^a-z])")
_ZCA = re.compile(r"(?:^|[^a-z])zca(?:$|[^a-z])")
# VICO-UoE/DatasetCondensation main.py / main_DM.py save 'res_%s_%s_%s_%dipc.pt' (method, dataset, model, ipc)
_DC_RESULT = re.compile(r"^res_.*\.pt$")
DDRANKING_FILES = ("images.pt", "labels.pt", "lr.pt")


def result_file_globals() -> list[Any]:
    """The pickle globals a DC/DSA/DM result file needs beyond what ``weights_only`` allows, each
    under the name the file uses: exactly those found in the published files' GLOBAL opcodes
    (``pickletools``; ``tests/test_published.py`` re-derives them) and nothing else.

    The reference code stores its accuracies as numpy float64 scalars (``np.mean`` results):
    ``numpy.core.multiarray.scalar(dtype, bytes)`` rebuilds one from its raw bytes, and
    ``numpy.dtype('f8')`` plus its state (BUILD, hence ``Float64DType``) the dtype it names. None of
    them runs code: they rebuild a number from bytes. ``_codecs.encode`` (the bytes) torch allows
    already.

    Example::

        with torch.serialization.safe_globals(result_file_globals()):
            torch.load(path, weights_only=True)
    """
    import numpy as np

    try:  # numpy >= 2 keeps it in numpy._core; the files (numpy 1 pickles) name numpy.core
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    allowed: list[Any] = [(scalar, "numpy.core.multiarray.scalar"), np.dtype]
    float64_dtype = getattr(getattr(np, "dtypes", None), "Float64DType", None)  # numpy >= 1.25
    if float64_dtype is not None:
        allowed.append(float64_dtype)
    return allowed


def allow_result_file_globals() -> ContextManager[Any]:
    """``torch.serialization.safe_globals(result_file_globals())``; a no-op before torch 2.5, which
    lacks it (a result file is then refused, naming the numpy global it needs)."""
    import torch

    safe_globals = getattr(torch.serialization, "safe_globals", None)
    return safe_globals(result_file_globals()) if safe_globals is not None else contextlib.nullcontext()


def check_regular(path: Path) -> Path:
    """``path``, or a one-line BenchError when it is missing or not a regular file (a FIFO would
    block a reader for good, a device never ends).

    Example::

        check_regular(folder / "lr.pt")     # BenchError: ... is not a regular file
    """
    if not path.exists():
        raise BenchError(f"{path} does not exist" + (" (a broken link)" if path.is_symlink() else ""))
    if not path.is_file():
        raise BenchError(f"{path} is not a regular file (a directory, FIFO, socket or device); refusing to read it")
    return path


def detect_dir_format(folder: Path) -> str | None:
    """``mtt`` (an ``images_<it>.pt``), ``ddranking`` (``images.pt``), ``dc`` (a ``res_*.pt``
    result file) or None (none of them). A name that is not a regular file (a FIFO) still counts:
    reading it is then refused in one line, not mistaken for an image folder."""
    if os.path.lexists(folder / "images.pt"):
        return "ddranking"
    files = [p.name for p in folder.iterdir() if not p.is_dir()]
    if any(_SAVE_IMAGES.match(n) for n in files):
        return "mtt"
    if any(_DC_RESULT.match(n) for n in files):
        return "dc"
    return None


def dc_result_file(source: Path) -> Path:
    """The result file itself, or the one ``res_*.pt`` in a folder (several: a one-line error)."""
    if not source.is_dir():
        return source
    found = sorted(p for p in source.iterdir() if p.is_file() and _DC_RESULT.match(p.name))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise BenchError(f"{source} holds {len(found)} DC/DSA/DM result files ({names}); pass the file itself")
    return found[0]


_DC_METHOD = re.compile(r"^res_(DC|DSA|DM)_")


def dc_source_protocol(path: Path, dataset: str) -> str:
    """The protocol a DC/DSA/DM result file's own numbers were measured under, from its name
    (``res_<method>_<dataset>_<model>_<n>ipc.pt``, VICO-UoE/DatasetCondensation main.py:225).

    DC sets were evaluated without DSA: main.py:38 turns DSA on only for ``--method DSA``, and
    main.py:117-123 trains 300 epochs unless ``get_daparam`` (utils.py:428) picks an augmentation,
    which it does for MNIST only (crop/scale/rotate, 1000 epochs): our ``dc-nodsa`` / ``dc-aug``.
    DSA and DM (main_DM.py:21, 38: 1000 epochs, DSA on by default) were evaluated with DSA: ``dc``."""
    from bench.data.datasets import settings_name

    found = _DC_METHOD.match(path.name)
    if found is None or found.group(1) != "DC":
        return "dc"
    return "dc-aug" if settings_name(dataset) == "mnist" else "dc-nodsa"


def detect_file_format(path: Path) -> str | None:
    """The format a single named file belongs to (its save directory's), or None."""
    if _SAVE_IMAGES.match(path.name):
        return "mtt"
    if path.name == "images.pt":
        return "ddranking"
    return None


def save_dir_files(source: Path, fmt: str, iteration: str | None = None) -> tuple[Path, Path, Path]:
    """(images, labels, lr) paths of the chosen file set; ``lr`` may not exist (no learned lr saved).

    ``mtt``: ``iteration`` (``"best"`` or a number) picks ``images_<it>.pt``; without it a named
    ``images_<it>.pt`` file picks itself, else ``best`` when saved (the set the source keeps as its
    result and DC-Benchmark's ``tm_data_loader.py`` loads), else the only saved iteration; several
    iterations and no ``best`` is a one-line error naming them. ``ddranking``: fixed names.
    """
    folder = source if source.is_dir() else source.parent
    if fmt == "ddranking":
        if iteration is not None:
            raise BenchError("--iteration applies to MTT save directories; DD-Ranking's layout has one file set")
        images, labels, lr = (folder / n for n in DDRANKING_FILES)
        for f in (images, labels):
            if not os.path.lexists(f):
                raise BenchError(f"{folder} is not a DD-Ranking set: it has no {f.name}")
            check_regular(f)
        return images, labels, lr
    if iteration is None and source.is_file():
        match = _SAVE_IMAGES.match(source.name)
        iteration = match.group(1) if match else None
    # names, not kinds: a FIFO among them is refused when read (check_regular), not taken for a missing save
    saved = sorted((m.group(1) for p in folder.iterdir() if not p.is_dir() and (m := _SAVE_IMAGES.match(p.name))
                    and os.path.lexists(folder / f"labels_{m.group(1)}.pt")), key=_iteration_order)
    if iteration is not None:
        tag = str(iteration).strip().lower()
        if tag not in saved:
            listed = ", ".join(saved) or "none"
            raise BenchError(f"{folder} has no images_{tag}.pt with labels_{tag}.pt (saved iterations: {listed})")
    elif not saved:
        raise BenchError(f"{folder} holds no MTT save (images_<best|N>.pt with labels_<best|N>.pt)")
    elif "best" in saved:
        tag = "best"
    elif len(saved) == 1:
        tag = saved[0]
    else:
        names = ", ".join(f"images_{t}.pt" for t in saved)
        raise BenchError(f"{folder} holds {len(saved)} saved iterations ({names}) and no images_best.pt; "
                         f"choose one with --iteration {'|'.join(saved)}")
    return tuple(folder / f"{n}_{tag}.pt" for n in ("images", "labels", "lr"))  # type: ignore[return-value]


def _iteration_order(tag: str) -> tuple[int, int]:
    return (1, 0) if tag == "best" else (0, int(tag))


def zca_choice(source: Path, fmt: str, flag: bool | None) -> tuple[bool, str]:
    """Whether the set's images are ZCA-whitened, and a one-line note saying how that was decided.

    ``flag`` (``--zca`` / ``--no-zca``) wins. Otherwise the source's own markers: a folder or file
    named ``no_zca`` / ``nozca`` / ``NO_ZCA`` says no, one named ``zca`` says yes (DC-Benchmark keeps
    ``TrajectoryMatching/.../ZCA`` and ``.../NO_ZCA``), and so does an ``images_zca_<it>.pt`` beside
    the images, which MTT writes only under ``--zca``. No marker: not whitened, said in the note.
    DC/DSA/DM never whiten; PNG folders hold pixels, which cannot be whitened images.
    """
    if fmt == "folder":
        if flag:
            raise BenchError("--zca does not apply to an image folder: PNG/JPEG files hold pixels, "
                             "not ZCA-whitened values")
        return False, "ZCA: no (an image folder holds pixels)"
    if flag is not None:
        return flag, f"ZCA: {'yes' if flag else 'no'} (--{'' if flag else 'no-'}zca)"
    if fmt == "dc":
        return False, "ZCA: no (DC/DSA/DM result files are in the dataset's normalised space)"
    folder = source if source.is_dir() else source.parent
    names = [folder.name, source.name] if source.is_file() else [folder.name]
    for name in names:
        if _NO_ZCA.search(name.lower()):
            return False, f"ZCA: no (detected from the name {name!r}; --zca to override)"
    for name in names:
        if _ZCA.search(name.lower()):
            return True, f"ZCA: yes (detected from the name {name!r}; --no-zca to override)"
    copies = sorted(p.name for p in folder.iterdir() if p.is_file() and _ZCA_PIXEL_COPY.match(p.name))
    if copies:
        return True, f"ZCA: yes (detected: {copies[0]} is MTT's --zca pixel copy; --no-zca to override)"
    return False, ("ZCA: no (no ZCA marker in the folder's name or files; read as the dataset's normalised "
                   "space; --zca if the source ran with --zca)")
