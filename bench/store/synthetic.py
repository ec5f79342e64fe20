"""The synthetic set: one type for every method's output, saved as safetensors + a JSON sidecar.

Example::

    syn = SyntheticSet(images, labels, metadata={"method": "random", "dataset": "digits", "ipc": 1})
    syn.save("out/random-digits-ipc1.safetensors")     # + out/random-digits-ipc1.json
    syn = SyntheticSet.load("out/random-digits-ipc1.safetensors")
    x, y = syn.decode()                                   # what a model trains on
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.bounds import MAX_FACTOR, MAX_IPC, MAX_LR, MAX_SEED, check_int, check_number
from bench.data.core import TRAIN_SPLITS
from bench.errors import BenchError
from bench.files import read_regular, write_atomically  # noqa: F401  (write_atomically: re-exported)

FORMAT = "dasm-bench/synthetic-set"
FORMAT_VERSION = 1


def decode_multi_formation(images: Tensor, labels: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """IDC's decoder: split each stored image into factor x factor tiles, upsample each to full size.

    Tile-major order as in the reference (`decode_zoom`): all images' tile (0,0), then (0,1), ...
    A resolution not divisible by ``factor`` is padded (value 0.5 in the reference's pixel
    space; here 0 in normalised space) before splitting.
    """
    if factor == 1:
        return images, labels
    size = images.shape[-1]
    tile = math.ceil(size / factor)
    pad = tile * factor - size
    if pad:
        images = F.pad(images, (0, pad, 0, pad))
    tiles = [images[:, :, i * tile:(i + 1) * tile, j * tile:(j + 1) * tile]
             for i in range(factor) for j in range(factor)]
    decoded = F.interpolate(torch.cat(tiles), size=(size, size), mode="bilinear", align_corners=False)
    return decoded, labels.repeat(factor * factor, *([1] * (labels.ndim - 1)))


@dataclass
class SyntheticSet:
    """Images (normalised space; ZCA-whitened when ``metadata["zca"]`` says so, see ``bench.data.zca``),
    labels (hard int64 ``K`` or soft float ``K x C``), a decoder factor,
    optional per-image segment ids (DASM) and metadata (method, dataset, ipc, seed, config, version)."""

    images: Tensor
    labels: Tensor
    factor: int = 1
    segment_ids: Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ invariants
    def validate(self) -> None:
        if self.images.ndim != 4:
            raise BenchError(f"synthetic images must be K,C,H,W; got shape {tuple(self.images.shape)}")
        if not self.images.is_floating_point():
            raise BenchError(f"synthetic images must be floating point, got {self.images.dtype}")
        k = self.images.shape[0]
        if self.images.shape[-1] != self.images.shape[-2]:
            # every model and the decoder assume square images (the datasets' are)
            raise BenchError(f"synthetic images must be square, got {self.images.shape[-2]}x{self.images.shape[-1]}")
        if self.labels.ndim not in (1, 2) or self.labels.shape[0] != k:
            raise BenchError(f"labels shape {tuple(self.labels.shape)} does not fit {k} images")
        if self.labels.ndim == 1 and self.labels.dtype != torch.int64:
            raise BenchError(f"hard labels must be int64, got {self.labels.dtype}")
        if self.labels.ndim == 2 and not self.labels.is_floating_point():
            raise BenchError(f"soft labels must be floating point, got {self.labels.dtype}")
        if self.labels.ndim == 1 and k and int(self.labels.min()) < 0:
            raise BenchError(f"hard labels must be class indices >= 0, got {int(self.labels.min())}")
        if self.labels.ndim == 2 and not torch.isfinite(self.labels).all():
            raise BenchError("soft labels contain NaN or inf")
        if self.labels.ndim == 2 and k:
            # cross-entropy targets: an all-zero (or negative) row trains on nothing and fails silently;
            # logits are turned into rows by the importer (softmax), never stored as labels
            rows = self.labels.double().sum(1)
            if bool((self.labels < 0).any()) or not bool(torch.allclose(rows, torch.ones_like(rows), atol=1e-3)):
                bad = int(((rows - 1).abs() > 1e-3).nonzero()[0]) if bool(((rows - 1).abs() > 1e-3).any()) else 0
                raise BenchError(f"soft labels must be probability rows (>= 0, each summing to 1); row {bad} "
                                 f"sums to {float(rows[bad]):.4g}")
        if self.segment_ids is not None and tuple(self.segment_ids.shape) != (k,):
            raise BenchError(f"segment_ids shape {tuple(self.segment_ids.shape)} does not fit {k} images")
        check_int(self.factor, "decoder factor", 1, min(MAX_FACTOR, max(1, self.images.shape[-1])))
        if not torch.isfinite(self.images).all():
            raise BenchError("synthetic images contain NaN or inf")

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def hard_labels(self) -> Tensor:
        return self.labels if self.labels.ndim == 1 else self.labels.argmax(1)

    def decode(self) -> tuple[Tensor, Tensor]:
        """The images and labels a model trains on (multi-formation decoded when factor > 1)."""
        return decode_multi_formation(self.images, self.labels, self.factor)

    def per_class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.hard_labels, minlength=num_classes).tolist()

    def detach(self) -> "SyntheticSet":
        return SyntheticSet(self.images.detach().cpu().clone(), self.labels.detach().cpu().clone(), self.factor,
                            None if self.segment_ids is None else self.segment_ids.cpu().clone(),
                            dict(self.metadata))

    @staticmethod
    def concat(parts: Sequence["SyntheticSet"], metadata: dict[str, Any] | None = None) -> "SyntheticSet":
        """Join sets (e.g. DASM's segments); segment ids default to the part's position."""
        if not parts:
            raise BenchError("nothing to concatenate")
        factors = {p.factor for p in parts}
        if len(factors) != 1:
            raise BenchError(f"cannot join synthetic sets with different decoder factors {sorted(factors)}")
        seg = [p.segment_ids if p.segment_ids is not None else torch.full((len(p),), i, dtype=torch.long)
               for i, p in enumerate(parts)]
        return SyntheticSet(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                            parts[0].factor, torch.cat(seg), dict(metadata or parts[-1].metadata))

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Atomically write ``path`` (.safetensors) and its JSON sidecar; returns the tensor path."""
        from safetensors.torch import save as st_save

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"images": self.images.detach().cpu().contiguous().float(),
                   "labels": self.labels.detach().cpu().contiguous()}
        if self.segment_ids is not None:
            tensors["segment_ids"] = self.segment_ids.detach().cpu().long().contiguous()
        # the decoder factor decides how many training images each stored one becomes: inside the
        # checksummed bytes, so an edited sidecar cannot change it unnoticed (the sidecar keeps a copy)
        tensors["factor"] = torch.tensor([self.factor], dtype=torch.int64)
        blob = st_save(tensors)
        sidecar = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "factor": self.factor,
            "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
            "shapes": {k: list(v.shape) for k, v in tensors.items()},
            "dtypes": {k: str(v.dtype).replace("torch.", "") for k, v in tensors.items()},
            "metadata": _jsonable(self.metadata),
        }
        write_atomically(path, blob)
        write_atomically(sidecar_path(path), json.dumps(sidecar, indent=2, sort_keys=True).encode())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SyntheticSet":
        """Load and validate; a missing, truncated or corrupt file raises a one-line BenchError."""
        from safetensors.torch import load as st_load

        path = Path(path)
        if not path.exists():
            raise BenchError(f"synthetic set {path} does not exist")
        if not path.is_file():
            raise BenchError(f"synthetic set {path} is not a file")
        side = sidecar_path(path)
        if not side.exists():
            raise BenchError(f"synthetic set {path} has no sidecar {side.name}")
        try:
            meta = json.loads(read_regular(side, "sidecar"))
        # JSONDecodeError, UnicodeDecodeError, an integer of 5,000 digits (int_max_str_digits)
        except ValueError as exc:
            raise BenchError(f"sidecar {side} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
        except RecursionError:
            raise BenchError(f"sidecar {side} is nested too deeply to be a sidecar") from None
        except IsADirectoryError:
            raise BenchError(f"synthetic set {path} has no sidecar {side.name} (a folder of that name)") from None
        _check_sidecar(meta, side)
        blob = read_regular(path, "synthetic set")
        if len(blob) != meta.get("bytes") or hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise BenchError(f"synthetic set {path} is corrupt or truncated (checksum mismatch)")
        try:
            tensors = st_load(blob)
        except Exception as exc:  # safetensors raises its own error types
            raise BenchError(f"synthetic set {path} cannot be parsed: {str(exc).splitlines()[0]}") from None
        for key in ("images", "labels"):
            if key not in tensors:
                raise BenchError(f"synthetic set {path} lacks the {key!r} tensor")
        for key, t in tensors.items():
            if (list(t.shape) != meta["shapes"].get(key)
                    or str(t.dtype).replace("torch.", "") != meta["dtypes"].get(key)):
                raise BenchError(f"synthetic set {path}: tensor {key!r} does not match its sidecar")
        images = tensors["images"]
        if images.ndim != 4 or not len(images):
            raise BenchError(f"synthetic set {path} holds no images (shape {tuple(images.shape)})")
        if images.is_floating_point() and images.dtype != torch.float32:
            # save() writes float32; a set written elsewhere in float16/64 or bfloat16 trains as float32
            # (values beyond float32's range become inf and are refused by validate())
            images = images.float()
        labels = tensors["labels"]
        if labels.is_floating_point() and labels.ndim == 2 and labels.dtype != torch.float32:
            labels = labels.float()
        factor = meta.get("factor", 1)
        stored = tensors.get("factor")
        if stored is not None:  # sets saved before the factor moved into the checksummed bytes have none
            if stored.shape != (1,) or stored.dtype != torch.int64 or int(stored[0]) != factor:
                raise BenchError(f"sidecar {side}: factor {factor!r} disagrees with the set's checksummed "
                                 f"factor {stored.tolist()}")
        return cls(images, labels, factor, tensors.get("segment_ids"), meta.get("metadata", {}))


def _check_sidecar(meta: Any, side: Path) -> None:
    """The sidecar's checksum covers only the tensor bytes: every field read from it is checked
    here, so a hand-edited sidecar is a one-line error, never a traceback or a wrong result."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BenchError(f"{side} is not a dasm-bench synthetic-set sidecar")
    version = meta.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION or isinstance(version, bool):
        # a later format may store what this code would misread: refuse rather than guess
        raise BenchError(f"sidecar {side}: format_version {version!r} is not one this code reads "
                         f"(it reads version {FORMAT_VERSION}); use the dasm-bench that wrote it")
    for key in ("shapes", "dtypes"):
        if not isinstance(meta.get(key), dict):
            raise BenchError(f"sidecar {side} lacks its {key!r} table")
    factor = meta.get("factor", 1)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise BenchError(f"sidecar {side}: factor must be a positive integer in [1, {MAX_FACTOR}], got {factor!r}")
    # each stored image decodes to factor**2: a huge factor would ask for terabytes
    check_int(factor, f"sidecar {side}: factor", 1, MAX_FACTOR)
    if not isinstance(meta.get("bytes"), int) or not isinstance(meta.get("sha256"), str):
        raise BenchError(f"sidecar {side} lacks the size and checksum of its tensors")
    metadata = meta.get("metadata", {})
    if not isinstance(metadata, dict):
        raise BenchError(f"sidecar {side}: metadata must be a JSON object")
    for key, kinds in (("method", str), ("dataset", str), ("eval_protocol", str), ("ipc", int), ("seed", int),
                       ("config_hash", str), ("train_split", str), ("zca_file", str)):
        value = metadata.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise BenchError(f"sidecar {side}: metadata {key!r} must be a {kinds.__name__}, got {value!r}")
    # ipc and seed key results cells and seed generators: the same ranges as the command line's
    for key, low, high in (("ipc", 1, MAX_IPC), ("seed", 0, MAX_SEED)):
        if metadata.get(key) is not None:
            check_int(metadata[key], f"sidecar {side}: metadata {key!r}", low, high)
    if metadata.get("train_split") is not None and metadata["train_split"] not in TRAIN_SPLITS:
        # becomes the row's train_split, which says whether the test split stayed unseen
        raise BenchError(f"sidecar {side}: metadata 'train_split' must be one of {', '.join(TRAIN_SPLITS)}, "
                         f"got {metadata['train_split']!r}")
    if metadata.get("seconds") is not None:  # becomes the row's distill_seconds
        check_number(metadata["seconds"], f"sidecar {side}: metadata 'seconds'", 0, None)
    if "syn_lr" in metadata:  # MTT's learned learning rate: the evaluation trains at it
        check_number(metadata["syn_lr"], f"sidecar {side}: metadata 'syn_lr'", 0, MAX_LR, low_open=True)


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
