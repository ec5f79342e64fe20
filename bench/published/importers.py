"""Bring distilled sets published by other code bases into the synthetic-set format.

Four source formats (where their files are: :mod:`bench.published.formats`):

- ``mtt``: MTT / DATM / TESLA save directories: ``images_<it>.pt`` (K,C,H,W in the dataset's
  normalised space, or ZCA-whitened under the source's ``--zca``), ``labels_<it>.pt`` (hard int
  labels, or DATM's learned soft labels K,C) and optionally ``lr_<it>.pt`` (the learned evaluation
  learning rate, a float or 0-d tensor), ``<it>`` = ``best`` or an iteration (``--iteration``);
- ``ddranking``: DD-Ranking's layout, the same three as ``images.pt``, ``labels.pt``, ``lr.pt``;
- ``dc``: the result files of the DC/DSA/DM reference code (VICO-UoE/DatasetCondensation,
  main.py / main_DM.py): ``{'data': [[image_syn, label_syn], ...], 'accs_all_exps': {...}}``, one
  pair per experiment;
- ``folder``: an image folder, one sub-folder per class (PNG/JPEG), as DD-Ranking accepts; pixels are
  scaled to [0, 1] and normalised with the dataset's mean and std.

Every ``.pt`` file is read with ``torch.load(weights_only=True)``: tensors, numbers, lists and dicts,
plus the numpy float scalars DC/DSA/DM result files hold, so a file cannot run code; one that needs
more pickle than that is refused with a one-line error. A set in ZCA-whitened space (``--zca``, or
detected from the source's names with a note) records ``metadata["zca"]`` and is evaluated against
whitened real images (``bench.data.zca.evaluation_space``). The imported set records its provenance
(source format, paths, sha256 of every input file, date, the ZCA decision) in ``metadata["import"]``.

Example::

    syn = import_set("runs/datm-cifar10-ipc10", "cifar10", fmt="mtt")
    syn.save("datm-cifar10-ipc10.safetensors")     # then: dasm-bench evaluate datm-cifar10-ipc10.safetensors
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench.bounds import MAX_LR, check_number
from bench.data.datasets import Dataset
from bench.errors import BenchError
from bench.files import sha256_file
from bench.store.synthetic import SyntheticSet

FORMATS = ("auto", "mtt", "ddranking", "dc", "folder")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
# the protocol a source's sets are evaluated with unless told otherwise (as `dasm-bench evaluate` does for ours)
_PROTOCOL = {"mtt": "dc", "ddranking": "dc", "dc": "dc", "folder": "dc"}
_CLASS_NUMBER = re.compile(r"[0-9]{1,6}")


def load_plain(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers; anything else is a BenchError."""
    import pickle
    import warnings

    from bench.published.formats import allow_result_file_globals, check_regular

    check_regular(path)  # a FIFO would block torch.load for good
    try:
        # torch warns about pickle protocols and deprecated dtypes on stderr: the one line is ours
        with allow_result_file_globals(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only names the global it refused ("Unsupported global: GLOBAL argparse.Namespace ...")
        # ... or the class a BUILD would set state on ("Can only build Tensor, ... but got <class 'X'>")
        refused = re.search(r"GLOBAL (\S+)", str(exc)) or re.search(r"but got <class '([^']+)'>", str(exc))
        if refused is None:
            # not torch's first line, "Re-running `torch.load` with `weights_only` set to False will
            # likely succeed": that would run the file's code; the unpickler's own reason instead
            said = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
            reason = said.group(1).strip()[:160] if said else _first_line(exc)
            raise BenchError(f"{path} cannot be read as a torch file ({reason}; only plain tensors, numbers, "
                             "lists and dicts are loaded)") from None
        raise BenchError(f"{path} needs pickle beyond tensors, refused (only plain tensors, numbers, lists, "
                         f"dicts and numpy float scalars are loaded; it asks for {refused.group(1)})") from None
    except Exception as exc:  # not a torch file, truncated zip, ...
        raise BenchError(f"{path} cannot be read as a torch file: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def detect_format(path: Path) -> str:
    from bench.published.formats import detect_dir_format, detect_file_format

    if path.is_dir():
        return detect_dir_format(path) or "folder"
    named = detect_file_format(path)  # images_<it>.pt (mtt) or images.pt (ddranking)
    if named:
        return named
    if path.suffix == ".pt":
        return "dc"
    raise BenchError(f"cannot tell the format of {path}; pass --format mtt|ddranking|dc|folder")


def _tensor(value: Any, what: str, path: Path) -> Tensor:
    if not isinstance(value, Tensor):
        raise BenchError(f"{path}: {what} is a {type(value).__name__}, expected a tensor")
    if value.is_complex():  # .float() would drop the imaginary part without a word
        raise BenchError(f"{path}: {what} holds complex values ({value.dtype}), expected real numbers")
    # a sparse, quantized or meta tensor (shape without data) is no set: refused before it is indexed
    if value.layout != torch.strided or value.is_quantized or value.is_meta:
        kind = "a meta tensor (no data)" if value.is_meta else f"a {value.layout}/{value.dtype} tensor"
        raise BenchError(f"{path}: {what} is {kind}, expected a dense tensor")
    return value.detach().cpu()


def _labels(raw: Tensor, k: int, num_classes: int, soft: str, path: Path) -> tuple[Tensor, str]:
    """Hard labels as int64; soft (K,C) labels kept soft, as probabilities (logits go through softmax)."""
    if raw.ndim == 1:
        if raw.is_floating_point():
            if not torch.isfinite(raw).all():
                raise BenchError(f"{path}: labels contain NaN or inf")
            if not torch.equal(raw, raw.round()):
                raise BenchError(f"{path}: 1-d labels must be class indices, got fractional values")
        labels = raw.long()
        if len(labels) != k:
            raise BenchError(f"{path}: {len(labels)} labels for {k} images")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise BenchError(f"{path}: labels outside 0..{num_classes - 1}")
        return labels, "hard"
    if raw.ndim != 2 or raw.shape != (k, num_classes):
        raise BenchError(f"{path}: labels of shape {tuple(raw.shape)} fit neither {k} hard labels "
                         f"nor {k}x{num_classes} soft labels")
    raw = raw.float()
    if not torch.isfinite(raw).all():
        raise BenchError(f"{path}: soft labels contain NaN or inf")
    is_probs = bool((raw >= 0).all() and torch.allclose(raw.sum(1), torch.ones(k), atol=1e-3))
    if soft == "probs" and not is_probs:
        raise BenchError(f"{path}: --soft-labels probs, but the rows are not probability vectors")
    if soft == "logits" or (soft == "auto" and not is_probs):
        # DATM learns its labels as logits; our soft labels are probability rows (cross entropy targets)
        return torch.softmax(raw, 1), "soft (softmax of stored logits)"
    return raw / raw.sum(1, keepdim=True), "soft (probabilities)"


def _read_mtt(path: Path, fmt: str = "mtt", iteration: str | None = None) -> tuple[Tensor, Tensor, float | None,
                                                                                  list[Path]]:
    from bench.published.formats import save_dir_files

    images_file, labels_file, lr_file = save_dir_files(path, fmt, iteration)
    images = _tensor(load_plain(images_file), images_file.name, images_file)
    labels = _tensor(load_plain(labels_file), labels_file.name, labels_file)
    inputs = [images_file, labels_file]
    lr = None
    if os.path.lexists(lr_file):  # one that is not a regular file is refused, not skipped: its rate would be lost
        value = load_plain(lr_file)
        if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
            value = value.item()
        # the `mtt` protocol trains at this rate: an overflowing or complex value is refused here
        lr = check_number(value, f"{lr_file}: the learning rate", 0, MAX_LR, low_open=True)
        inputs.append(lr_file)
    return images, labels, lr, inputs


def _read_dc(path: Path, index: int) -> tuple[Tensor, Tensor, dict[str, Any]]:
    raw = load_plain(path)
    if not isinstance(raw, dict) or "data" not in raw:
        raise BenchError(f"{path}: expected a DC/DSA/DM result dict with a 'data' entry")
    runs = raw["data"]
    if not isinstance(runs, (list, tuple)) or not runs:
        raise BenchError(f"{path}: 'data' holds no [images, labels] pair")
    if not -len(runs) <= index < len(runs):
        raise BenchError(f"{path}: --index {index} out of range ({len(runs)} experiments stored)")
    pair = runs[index]
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise BenchError(f"{path}: data[{index}] is not an [images, labels] pair")
    extra: dict[str, Any] = {"experiment_index": index, "experiments_stored": len(runs)}
    accs = raw.get("accs_all_exps")
    if isinstance(accs, dict):  # the reference code's own accuracies, kept for comparison (finite fractions only)
        extra["reported_accuracies"] = {str(k): [float(a) for a in v] for k, v in accs.items()
                                        if isinstance(v, (list, tuple)) and all(_fraction(a) for a in v)}
    return _tensor(pair[0], "data[i][0]", path), _tensor(pair[1], "data[i][1]", path), extra


def _fraction(value: Any) -> bool:
    """An accuracy as the reference code stores it: a real number in [0, 1] (no bool, NaN or
    integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return 0.0 <= float(value) <= 1.0
    except OverflowError:
        return False


def _class_index(folder_names: list[str], data: Dataset) -> dict[str, int]:
    """Sub-folder -> class: the dataset's class names, else integer names, else sorted order."""
    names = {n: i for i, n in enumerate(data.class_names)}
    if all(f in names for f in folder_names):
        return {f: names[f] for f in folder_names}
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses
    numeric = [f for f in folder_names if _CLASS_NUMBER.fullmatch(f)]
    if numeric and len(numeric) < len(folder_names):
        # sorting "10", "2" and "misc" as text would file "10" under class 0 without a word
        named = sorted(set(folder_names) - set(numeric))
        raise BenchError(f"class folders mix class numbers ({', '.join(sorted(numeric)[:3])}) and other names "
                         f"({', '.join(named[:3])}): name every folder by its class index or by its class name")
    if numeric:
        mapping = {f: int(f) for f in folder_names}
    else:
        mapping = {f: i for i, f in enumerate(sorted(folder_names))}
    if max(mapping.values()) >= data.num_classes:
        raise BenchError(f"{len(folder_names)} class folders do not fit the {data.num_classes} classes of {data.name}")
    first: dict[int, str] = {}
    for folder, cls in mapping.items():  # "1" and "01": one class from two folders, silently merged
        if cls in first:
            raise BenchError(f"class folders {first[cls]!r} and {folder!r} both name class {cls}; keep one")
        first[cls] = folder
    return mapping


def _read_folder(path: Path, data: Dataset) -> tuple[Tensor, Tensor, list[Path], dict[str, int]]:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise BenchError(f"image folder {path} does not exist")
    subdirs = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        raise BenchError(f"{path} has no class sub-folders")
    mapping = _class_index(subdirs, data)
    mode = "L" if data.channels == 1 else "RGB"
    images, labels, files = [], [], []
    for sub in subdirs:
        for f in sorted((path / sub).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if not f.is_file():  # a FIFO would block the decoder
                raise BenchError(f"{f} is not a regular file")
            try:
                with Image.open(f) as im:
                    # the size is in the header: checked before decoding, so a decompression bomb
                    # (a small file that decodes to gigapixels) is never decoded
                    if im.size != (data.image_size, data.image_size):
                        raise BenchError(f"{f} is {im.size[0]}x{im.size[1]}, {data.name} images are "
                                         f"{data.image_size}x{data.image_size} (no silent resize)")
                    arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
                raise BenchError(f"{f} is not a readable image ({str(exc).splitlines()[0][:80]})") from None
            images.append(torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()))
            labels.append(mapping[sub])
            files.append(f)
    if not images:
        raise BenchError(f"{path} holds no PNG or JPEG image in its class folders")
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return (torch.stack(images) - mean) / std, torch.tensor(labels, dtype=torch.long), files, mapping


def import_set(path: str | os.PathLike, data: Dataset, fmt: str = "auto", method: str | None = None,
               index: int = 0, soft_labels: str = "auto", seed: int | None = None,
               iteration: str | None = None, zca: bool | None = None) -> SyntheticSet:
    """Read a published set into a :class:`SyntheticSet` for ``data`` (validated against its shape).

    ``iteration`` picks an MTT save (``best`` or a number); ``zca`` says whether its images are
    ZCA-whitened (None: :func:`bench.published.formats.zca_choice` decides; its note is kept in
    ``metadata["import"]["zca"]``)."""
    from bench.data.zca import zca_record
    from bench.methods.registry import config_hash
    from bench.published.formats import zca_choice
    from bench.train.evaluation import check_compatible
    from bench.version import code_version

    if not str(path).strip():  # Path("") is ".": the working directory would be read as an image folder
        raise BenchError("the source is an empty path; give a published set's folder or file")
    source = Path(path)
    if fmt not in FORMATS:
        raise BenchError(f"unknown import format {fmt!r}; known: {', '.join(FORMATS[1:])}")
    if not source.exists():
        raise BenchError(f"{source} does not exist")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if iteration is not None and fmt != "mtt":
        raise BenchError(f"--iteration picks an MTT save; {source} is read as {fmt}")
    whitened, zca_note = zca_choice(source, fmt, zca)
    extra: dict[str, Any] = {"zca": zca_note}
    lr = None
    protocol = _PROTOCOL[fmt]
    if fmt in ("mtt", "ddranking"):
        images, raw_labels, lr, inputs = _read_mtt(source, fmt, iteration)
    elif fmt == "dc":
        from bench.published.formats import dc_result_file, dc_source_protocol

        source = dc_result_file(source)
        protocol = dc_source_protocol(source, data.name)
        images, raw_labels, dc_extra = _read_dc(source, index)
        extra.update(dc_extra)
        inputs = [source]
    else:
        images, raw_labels, inputs, mapping = _read_folder(source, data)
        extra["class_folders"] = mapping
    if images.ndim != 4:
        raise BenchError(f"{source}: images must be K,C,H,W, got shape {tuple(images.shape)}")
    if not len(images):
        raise BenchError(f"{source} holds no images")
    if not images.is_floating_point():  # integer pixels are not the normalised space sets are stored in
        raise BenchError(f"{source}: images must be floating point in the dataset's normalised space, "
                         f"got {images.dtype}")
    images = images.float()  # float64 beyond float32's range becomes inf: refused by SyntheticSet
    labels, label_kind = _labels(raw_labels, len(images), data.num_classes, soft_labels, source)
    hard = labels if labels.ndim == 1 else labels.argmax(1)
    counts = torch.bincount(hard, minlength=data.num_classes).tolist()
    ipc = counts[0] if len(set(counts)) == 1 else None
    digests = {str(p): sha256_file(p) for p in inputs}
    name = method or f"imported-{fmt}"
    provenance = {"format": fmt, "source": str(source), "inputs": digests, "labels": label_kind,
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "per_class_counts": counts, **extra}
    metadata: dict[str, Any] = {
        "method": name, "dataset": data.name, "ipc": ipc, "seed": seed, "import": provenance,
        "config": {"import_format": fmt, "inputs": sorted(digests.values())},
        "config_hash": config_hash({"method": name, "dataset": data.name, "inputs": sorted(digests.values()),
                                    "index": index, "labels": label_kind, **({"zca": True} if whitened else {})}),
        "code_version": code_version(), "seconds": 0.0,
        "eval_protocol": "mtt" if lr is not None else protocol,
        "image_size": data.image_size, "channels": data.channels, "num_classes": data.num_classes,
    }
    if lr is not None:
        metadata["syn_lr"] = lr  # the `mtt` protocol trains at the set's learned learning rate
    if whitened:
        metadata["zca"] = zca_record()  # images stay whitened; the evaluation whitens the real data
    syn = SyntheticSet(images.contiguous(), labels.contiguous(), metadata=metadata)
    check_compatible(syn, data)
    return syn
