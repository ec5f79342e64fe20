"""ZCA whitening: a data transform the harness and MTT share.

The MTT reference (GeorgeCazenavette/mtt-distillation, ``buffer.py`` / ``distill.py``) fits
kornia's ``ZCAWhitening(eps=0.1)`` on the training images in [0, 1] pixel space (no mean/std
normalisation), trains experts and distils in whitened space, and evaluates its sets there.
:class:`ZCAWhitening` re-implements that transform (unbiased covariance,
``T = U (S + eps)^-1/2 U^T``) and stores it as a safetensors file (``mean`` 1xD, ``transform``
DxD, ``inverse`` DxD). :func:`to_pixels` / :func:`from_pixels` map the harness's normalised
images to and from the pixel space it is fitted in.

Two kinds of set live in whitened space, and :func:`evaluation_space` gives the evaluation
(``bench.train.evaluation``) the same space for both, under every protocol: our MTT's sets (images
stored normalised, ``metadata["zca_file"]`` naming the expert buffer's transform) and imported
sets (images stored whitened, as MTT/DATM save them; ``metadata["zca"]`` = :func:`zca_record`),
for which the transform is fitted here on the dataset's whole training split, as the references
fit it. A ZCA record this module cannot reproduce is refused, never tested on unwhitened images.

Example::

    from bench.data.datasets import load_dataset
    from bench.data.zca import ZCAWhitening, to_pixels

    data = load_dataset("digits")
    zca = ZCAWhitening.fit(to_pixels(data.train.images, data))
    z = zca.whiten_normalised(data.test.images, data)
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench.bounds import check_number
from bench.data.datasets import Dataset, ImageSet
from bench.errors import BenchError
from bench.files import write_atomically

ZCA_FORMAT = "dasm-bench/zca"
ZCA_EPS = 0.1  # the reference's kornia ZCAWhitening(eps=0.1)
ZCA_FIT = "whole training split, [0, 1] pixels"  # what an imported set's transform is fitted on


@dataclass
class ZCAWhitening:
    """ZCA whitening of flattened images, as kornia's ``ZCAWhitening`` that the MTT reference uses.

    Fitted on images in [0, 1] pixel space: ``z = (x - mean) @ T`` with
    ``T = U diag((S + eps)^-1/2) U^T`` from the SVD of the unbiased covariance; ``inverse`` is
    ``U diag((S + eps)^1/2) U^T`` so ``unwhiten(whiten(x)) == x`` up to rounding.

    Example::

        zca = ZCAWhitening.fit(pixels)              # pixels: N,C,H,W in [0, 1]
        z = zca.whiten(pixels); x = zca.unwhiten(z)
    """

    mean: Tensor        # 1 x D
    transform: Tensor   # D x D
    inverse: Tensor     # D x D
    eps: float = ZCA_EPS

    @classmethod
    def fit(cls, pixels: Tensor, eps: float = ZCA_EPS, chunk: int = 4096) -> "ZCAWhitening":
        """Fit on N,C,H,W pixel images (float64 accumulation: CIFAR has D = 3072)."""
        flat = pixels.reshape(len(pixels), -1)
        n, d = flat.shape
        if n < 2:
            raise BenchError("ZCA needs at least two images to fit")
        mean = flat.double().mean(0, keepdim=True)
        cov = torch.zeros(d, d, dtype=torch.float64)
        for s in range(0, n, chunk):
            centred = flat[s:s + chunk].double() - mean
            cov += centred.T @ centred
        cov /= n - 1  # kornia's default unbiased estimate
        u, s, _ = torch.linalg.svd(cov)
        transform = u @ torch.diag(torch.rsqrt(s + eps)) @ u.T
        inverse = u @ torch.diag(torch.sqrt(s + eps)) @ u.T
        return cls(mean.float(), transform.float(), inverse.float(), float(eps))

    def whiten(self, pixels: Tensor) -> Tensor:
        shape = pixels.shape
        flat = pixels.reshape(shape[0], -1)
        out = (flat - self.mean.to(flat)) @ self.transform.to(flat)
        return out.reshape(shape)

    def unwhiten(self, z: Tensor) -> Tensor:
        shape = z.shape
        out = z.reshape(shape[0], -1) @ self.inverse.to(z) + self.mean.to(z)
        return out.reshape(shape)

    # Our images live in the dataset's normalised space; the reference fits ZCA on raw pixels.
    def whiten_normalised(self, x: Tensor, data: Dataset) -> Tensor:
        """Normalised images (bench convention) -> whitened images (what experts/students see)."""
        return self.whiten(to_pixels(x, data))

    def unwhiten_to_normalised(self, z: Tensor, data: Dataset) -> Tensor:
        """Whitened images -> the dataset's normalised space (how a SyntheticSet stores them)."""
        return from_pixels(self.unwhiten(z), data)

    def save(self, path: Path) -> None:
        from safetensors.torch import save as st_save

        blob = st_save({"mean": self.mean.contiguous(), "transform": self.transform.contiguous(),
                        "inverse": self.inverse.contiguous()},
                       metadata={"format": ZCA_FORMAT, "eps": repr(self.eps), "space": "pixels in [0, 1]"})
        write_atomically(path, blob)

    @classmethod
    def load(cls, path: Path) -> "ZCAWhitening":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != ZCA_FORMAT:
                    raise BenchError(f"{path} is not a dasm-bench ZCA file")
                mean, transform, inverse = (f.get_tensor(k) for k in ("mean", "transform", "inverse"))
                eps = float(meta["eps"])
        except BenchError:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise BenchError(f"ZCA file {path} cannot be read: {str(exc).splitlines()[0]}") from None
        # a 1 x D mean and D x D maps of finite floats: anything else is a matmul traceback or NaN images
        d = mean.shape[-1] if mean.ndim == 2 and len(mean) == 1 else 0
        if not d or transform.shape != (d, d) or inverse.shape != (d, d):
            raise BenchError(f"ZCA file {path}: expected a 1 x D mean and D x D transforms, got shapes "
                             f"{tuple(mean.shape)}, {tuple(transform.shape)}, {tuple(inverse.shape)}")
        for name, t in (("mean", mean), ("transform", transform), ("inverse", inverse)):
            if not t.is_floating_point() or not torch.isfinite(t.float()).all():
                raise BenchError(f"ZCA file {path}: {name} must hold finite floats ({t.dtype})")
        check_number(eps, f"ZCA file {path}: eps", 0, None, low_open=True)
        return cls(mean.float(), transform.float(), inverse.float(), eps)


def to_pixels(x: Tensor, data: Dataset) -> Tensor:
    """Normalised -> [0, 1]-range pixels (no clamping: the map must stay invertible)."""
    mean = torch.tensor(data.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * std + mean


def from_pixels(p: Tensor, data: Dataset) -> Tensor:
    mean = torch.tensor(data.mean, dtype=p.dtype, device=p.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=p.dtype, device=p.device).view(1, -1, 1, 1)
    return (p - mean) / std


# ----------------------------------------------------------------------------- sets in whitened space

def zca_record(eps: float = ZCA_EPS) -> dict[str, Any]:
    """What a set whose images are stored whitened records as ``metadata["zca"]``."""
    return {"space": "whitened", "eps": float(eps), "fit": ZCA_FIT}


def set_zca_record(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The set's ZCA record (None: not whitened); one this harness cannot reproduce is a BenchError."""
    record = metadata.get("zca")
    if record is None or record is False:
        return None
    eps = record.get("eps") if isinstance(record, dict) else None
    if (not isinstance(record, dict) or record.get("space") != "whitened" or record.get("fit") != ZCA_FIT
            or isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0):
        raise BenchError(f"the set records ZCA whitening as {record!r}, which cannot be reproduced here "
                         f"(expected {zca_record()!r}); refusing to test it against unwhitened images")
    return record


_FITTED: "weakref.WeakKeyDictionary[ImageSet, dict[float, ZCAWhitening]]" = weakref.WeakKeyDictionary()


def fit_on_training_split(data: Dataset, eps: float = ZCA_EPS) -> ZCAWhitening:
    """The references' transform for ``data``: fitted on the WHOLE training split in [0, 1] pixels.

    GeorgeCazenavette/mtt-distillation ``utils.py`` ``get_dataset``: under ``--zca`` the transform
    is ``ToTensor()`` alone (L58-59, no ``Normalize``), and ``ZCAWhitening(eps=0.1)`` is fitted on
    every training image (L137-150) and applied to train and test; NUS-HPC-AI-Lab/DATM
    ``utils/utils_baseline.py`` does the same (L107-108, L233-246). A ``"train-val"`` dataset
    (val held out) is refitted on train + val. Fitted once per training split and process.
    """
    cached = _FITTED.setdefault(data.train, {})
    if eps not in cached:
        parts = [data.train] if data.train_split == "full" else [data.train, data.val]
        pixels = torch.cat([_raw_pixels(p) for p in parts])
        cached[eps] = ZCAWhitening.fit(pixels, eps=eps)
    return cached[eps]


def _raw_pixels(split: ImageSet) -> Tensor:
    """A split's stored images in [0, 1] (uint8 / 255 or the stored floats), not normalised."""
    return split.data.float() / 255.0 if split.data.dtype == torch.uint8 else split.data.float()


def _whitened_split(whitened: Tensor, split: ImageSet, data: Dataset) -> ImageSet:
    identity = ((0.0,) * data.channels, (1.0,) * data.channels)  # already in the space models see
    return ImageSet(whitened, split.labels, data.num_classes, *identity)


def evaluation_space(metadata: dict[str, Any], data: Dataset, images: Tensor,
                     split: str) -> tuple[Tensor, ImageSet | None]:
    """(training images, real split to test on) in the space the set was distilled in.

    None for the split: the dataset's own (normalised) one. A set stored normalised with a
    ``zca_file`` (our MTT) is whitened with that transform; a set stored whitened (``zca`` record,
    an imported MTT/DATM ``--zca`` set) keeps its images and is tested on the split whitened with
    :func:`fit_on_training_split`.

    Example::

        images, target = evaluation_space(syn.metadata, data, syn.images, "test")
    """
    record = set_zca_record(metadata)
    real = {"test": data.test, "val": data.val}[split]
    if metadata.get("zca_file"):
        if record is not None:
            raise BenchError("the set records both a ZCA file and whitened images; cannot tell its space")
        path = Path(metadata["zca_file"])
        if not path.exists():
            raise BenchError(f"the synthetic set needs its ZCA transform {path}, which is missing")
        zca = ZCAWhitening.load(path)
        if zca.mean.shape[1] != images[0].numel():
            raise BenchError(f"the set's ZCA transform {path} is for {zca.mean.shape[1]} values per image, "
                             f"its images have {images[0].numel()}")
        return zca.whiten_normalised(images, data), _whitened_split(zca.whiten_normalised(real.images, data),
                                                                    real, data)
    if record is None:
        return images, None
    zca = fit_on_training_split(data, float(record["eps"]))
    return images, _whitened_split(zca.whiten(_raw_pixels(real)), real, data)
