"""ZCA whitening: a data transform the harness and MTT share.

The MTT reference (GeorgeCazenavette/mtt-distillation, ``buffer.py`` / ``distill.py``) fits
kornia's ``ZCAWhitening(eps=0.1)`` on the training images in [0, 1] pixel space (no mean/std
normalisation), trains experts and distils in whitened space, and evaluates its sets there.
:class:`ZCAWhitening` re-implements that transform (unbiased covariance,
``T = U (S + eps)^-1/2 U^T``) and stores it as a safetensors file (``mean`` 1xD, ``transform``
DxD, ``inverse`` DxD). :func:`to_pixels` / :func:`from_pixels` map the harness's normalised
images to and from the pixel space it is fitted in. The evaluation (``bench.evaluation``) reads
the file a set names in ``metadata["zca_file"]`` to train and test in the same space.

Example::

    from bench.data import load_dataset
    from bench.zca import ZCAWhitening, to_pixels

    data = load_dataset("digits")
    zca = ZCAWhitening.fit(to_pixels(data.train.images, data))
    z = zca.whiten_normalised(data.test.images, data)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bench.data import Dataset
from bench.errors import BenchError
from bench.files import write_atomically

ZCA_FORMAT = "dasm-bench/zca"
ZCA_EPS = 0.1  # the reference's kornia ZCAWhitening(eps=0.1)


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
                return cls(f.get_tensor("mean"), f.get_tensor("transform"), f.get_tensor("inverse"),
                           float(meta["eps"]))
        except BenchError:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise BenchError(f"ZCA file {path} cannot be read: {str(exc).splitlines()[0]}") from None


def to_pixels(x: Tensor, data: Dataset) -> Tensor:
    """Normalised -> [0, 1]-range pixels (no clamping: the map must stay invertible)."""
    mean = torch.tensor(data.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * std + mean


def from_pixels(p: Tensor, data: Dataset) -> Tensor:
    mean = torch.tensor(data.mean, dtype=p.dtype, device=p.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=p.dtype, device=p.device).view(1, -1, 1, 1)
    return (p - mean) / std
