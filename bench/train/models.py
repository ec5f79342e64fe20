"""Models: the reference ConvNet and every timm model, created by name.

Example::

    from bench.train.models import create_model
    net = create_model("convnet", channels=1, num_classes=10, image_size=8)
    vit = create_model("vit_tiny_patch16_224", channels=3, num_classes=10, image_size=32)
    vgg = create_model("vgg11_dc", channels=1, num_classes=10, image_size=8)  # resized to 32x32
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.metadata
import importlib.util
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.errors import BenchError
from bench.suggest import unknown_name_error

WIDTH = 128  # reference net_width


def default_depth(image_size: int) -> int:
    """Reference depths (3 at 28/32, 4 at 64, 5 at 128), reduced so the last map stays >= 2x2."""
    effective = 32 if image_size == 28 else image_size  # DC pads 28x28 to 32x32
    depth = 3 if effective <= 32 else max(3, int(round(math.log2(effective))) - 2)
    while depth > 1 and effective // (2 ** depth) < 2:
        depth -= 1
    return depth


def _norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)  # the reference's "instancenorm"
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise BenchError(f"unknown ConvNet norm {norm!r}; use instancenorm, batchnorm or none")


class _StridedAvgPool2x2(torch.autograd.Function):
    """2x2/stride-2 average pooling, bit-identical to ``F.avg_pool2d(x, 2, 2)`` and faster on CPU.

    PyTorch's NCHW CPU ``avg_pool2d`` is slow on small maps: 1.32 ms forward at (126, 128, 8, 8)
    against 0.42 ms for four strided adds, which sum each window in the kernel's own order (x00 +
    x01 + x10 + x11, then / 4: dividing by 4 is exact); its backward 1.18 ms at (100, 128, 8, 8)
    against 0.25 ms for four strided writes of grad / 4, the same values. Each is the other's
    derivative, so the double backward of gradient matching is bit-identical too (``tests/test_models.py``).
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return (((x[:, :, 0::2, 0::2] + x[:, :, 0::2, 1::2]) + x[:, :, 1::2, 0::2]) + x[:, :, 1::2, 1::2]) / 4

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return _AvgUnpool2x2.apply(grad)


class _AvgUnpool2x2(torch.autograd.Function):
    """The adjoint of :class:`_StridedAvgPool2x2`: each input cell gets grad / 4, the values of
    ``avg_pool2d_backward``."""

    @staticmethod
    def forward(ctx, grad: Tensor) -> Tensor:
        n, c, h, w = grad.shape
        share = grad / 4
        out = grad.new_empty((n, c, 2 * h, 2 * w))
        for dy in (0, 1):
            for dx in (0, 1):
                out[:, :, dy::2, dx::2] = share
        return out

    @staticmethod
    def backward(ctx, grad_grad: Tensor) -> Tensor:
        return _StridedAvgPool2x2.apply(grad_grad)


# torch.compiler.is_compiling is torch >= 2.3 (pyproject allows 2.2, where dynamo traces the Function)
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


class AvgPool2x2(nn.AvgPool2d):
    """``nn.AvgPool2d(2, 2)`` with the faster, bit-identical forward and backward of
    :class:`_StridedAvgPool2x2` on 4-D CPU inputs of even height and width. Others take the native
    op: traced graphs (inductor fuses it there) and CUDA, where neither the gain nor the
    bit-identity was measured.

    Example::

        pool = AvgPool2x2()
        x = torch.randn(4, 8, 6, 6)
        assert torch.equal(pool(x), torch.nn.functional.avg_pool2d(x, 2, 2))
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        if (not x.is_cpu or x.dim() != 4 or x.shape[-1] % 2 or x.shape[-2] % 2
                or _is_compiling()):
            return super().forward(x)
        return _StridedAvgPool2x2.apply(x)


class ConvNet(nn.Module):
    """The ConvNet of DC/DSA/DM/IDC/MTT: [conv3x3 -> norm -> ReLU -> avgpool2] x depth -> linear.

    ``embed(x)`` returns the flattened features before the head (DM matches their means).
    """

    def __init__(self, channels: int, num_classes: int, image_size: int, width: int = WIDTH,
                 depth: int | None = None, norm: str = "instancenorm") -> None:
        super().__init__()
        depth = depth or default_depth(image_size)
        layers: list[nn.Module] = []
        size = image_size
        in_ch = channels
        for d in range(depth):
            # the reference pads 28x28 single-channel inputs by 3 so they behave as 32x32
            pad = 3 if (d == 0 and image_size == 28) else 1
            layers += [nn.Conv2d(in_ch, width, 3, padding=pad), _norm_layer(norm, width), nn.ReLU(inplace=True),
                       AvgPool2x2()]
            size = (size + 2 * pad - 2) // 2
            in_ch = width
        if size < 1:
            raise BenchError(f"ConvNet depth {depth} is too deep for {image_size}x{image_size} inputs")
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        self.depth, self.width, self.norm = depth, width, norm

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


# VGG-11 of the DC benchmark (networks.py), the "VGG-11" column of the DC/DSA/DM/IDC/MTT and
# DASM cross-architecture tables; timm's ImageNet vgg11 differs by its 4096-wide 7x7 head.
VGG11_LAYERS: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """VGG-11 as in the DC benchmark: conv3x3 -> norm -> ReLU with max-pooling, then one linear layer.

    It is built for 32x32 inputs (28x28 ones get first-conv padding 3, as in the reference);
    ``create_model("vgg11_dc", ...)`` resizes smaller inputs up. Larger inputs (64x64) keep their
    resolution and the last feature map is average-pooled to 1x1, so the head stays 512 wide.
    """

    def __init__(self, channels: int, num_classes: int, image_size: int = 32,
                 norm: str = "instancenorm") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, size = channels, image_size
        for i, v in enumerate(VGG11_LAYERS):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                size //= 2
                continue
            pad = 3 if (i == 0 and image_size == 28) else 1
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=pad), _norm_layer(norm, int(v)), nn.ReLU(inplace=True)]
            size += 2 * pad - 2
            in_ch = int(v)
        if size < 1:
            raise BenchError(f"vgg11_dc needs inputs of at least 32x32 (or 28x28), got {image_size}x{image_size}")
        if size > 1:
            layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_ch, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


_VGG11S = {"vgg11_dc": {}, "vgg11_dc_bn": {"norm": "batchnorm"}}


class ResizeInput(nn.Module):
    """Bilinearly resizes inputs to the size an architecture needs (e.g. 8x8 digits -> 32x32)."""

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.model = model
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.model(x)


# ConvNet variants by name; "convnet" is the reference default (instance norm, depth by resolution).
_CONVNETS = {
    "convnet": {},
    "convnet_bn": {"norm": "batchnorm"},
    "convnet_nn": {"norm": "none"},
    "convnet_d1": {"depth": 1},
    "convnet_d2": {"depth": 2},
    "convnet_d3": {"depth": 3},
    "convnet_d4": {"depth": 4},
    "convnet_w64": {"width": 64},
}

# Architectures added by users (`register_architecture`): name -> factory(channels, num_classes, image_size).
_REGISTERED: dict = {}


def register_architecture(name: str):
    """Decorator: make ``factory(channels, num_classes, image_size, **kwargs) -> nn.Module`` an
    architecture by name, usable wherever ``convnet`` is (``--arch``, specs, cross-architecture tables).

    Example::

        @register_architecture("mlp")
        def mlp(channels, num_classes, image_size):
            return nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size ** 2, num_classes))
    """

    def wrap(factory):
        _REGISTERED[name.lower()] = factory
        return factory

    return wrap


# Smallest input each timm family handles well; smaller inputs are resized up to this.
MIN_TIMM_SIZE = 32


def _timm_names_cache() -> Path | None:
    """Where this timm install's model names are cached: importing timm (and with it torchvision and
    torch._dynamo) only to list or check names costs seconds of start-up. Keyed by timm's version and
    the mtime of its models folder, so an upgrade or a changed install reads fresh names."""
    try:
        spec = importlib.util.find_spec("timm")
        if spec is None or not spec.submodule_search_locations:
            return None
        registry = Path(next(iter(spec.submodule_search_locations))) / "models"  # a model file added or removed
        key = f"{importlib.metadata.version('timm')}-{registry.stat().st_mtime_ns}"
    except (OSError, ValueError, importlib.metadata.PackageNotFoundError):
        return None
    root = os.environ.get("DASM_CACHE") or os.path.join("~", ".cache", "dasm-bench")
    return Path(root).expanduser() / f"timm-models-{key}.txt"


@functools.lru_cache(maxsize=1)
def _timm_names() -> tuple[str, ...]:
    cache = _timm_names_cache()
    if cache is not None and cache.is_file():
        names = tuple(cache.read_text(encoding="utf-8").split())
        if names:
            return names
    import timm

    names = tuple(timm.list_models())
    if cache is not None:
        from bench.files import write_atomically

        try:
            write_atomically(cache, "\n".join(names) + "\n")
        except OSError:
            pass  # a read-only home only costs the next start-up the import
    return names


def list_architectures(timm_filter: str | None = None) -> list[str]:
    """ConvNet variants, registered architectures and timm model names (optionally filtered by a
    wildcard, as timm's ``list_models(filter)``: fnmatch over the sorted names)."""
    names = list(_CONVNETS) + list(_VGG11S) + sorted(_REGISTERED)
    timm_names = _timm_names()
    names += fnmatch.filter(timm_names, timm_filter) if timm_filter else list(timm_names)
    return names


def _vit_patch(image_size: int) -> int:
    # a patch size that tiles the resolution into a 4x4..8x8 token grid
    for p in (16, 8, 4, 2, 1):
        if image_size % p == 0 and image_size // p >= 4:
            return p
    return 1


def create_model(name: str, channels: int, num_classes: int, image_size: int, **kwargs) -> nn.Module:
    """Create a ConvNet variant, the DC benchmark's VGG-11 or any timm model (random init, no downloads).

    timm models get ``num_classes`` and ``in_chans``; models that take ``img_size`` (ViTs)
    get it with a patch size fitted to the resolution; inputs smaller than 32x32 are
    resized up for timm models. An unknown name gives a one-line error with close names.
    """
    key = name.lower()
    if key in _REGISTERED:
        return _REGISTERED[key](channels, num_classes, image_size, **kwargs)
    if key in _CONVNETS:
        return ConvNet(channels, num_classes, image_size, **{**_CONVNETS[key], **kwargs})
    if key in _VGG11S:
        size = image_size if image_size == 28 or image_size >= 32 else 32
        vgg = VGG11(channels, num_classes, size, **{**_VGG11S[key], **kwargs})
        return ResizeInput(vgg, size) if size != image_size else vgg
    import timm

    if key not in _timm_names():
        raise unknown_name_error("architecture", name, [*_CONVNETS, *_VGG11S, *_timm_names()],
                                 otherwise="see `dasm-bench list`")
    size = max(image_size, MIN_TIMM_SIZE)
    args = dict(pretrained=False, num_classes=num_classes, in_chans=channels, **kwargs)
    if key.startswith(("vit_", "deit_", "cait_", "xcit_")):
        args.update(img_size=size, patch_size=_vit_patch(size))
    try:
        model = timm.create_model(key, **args)
    except TypeError:
        args.pop("img_size", None)
        args.pop("patch_size", None)
        model = timm.create_model(key, **args)
    return ResizeInput(model, size) if size != image_size else model


def model_name_ok(name: str) -> None:
    """Raise the one-line unknown-architecture error early (before any work is done)."""
    key = name.lower()
    if key in _CONVNETS or key in _VGG11S or key in _REGISTERED or key in _timm_names():
        return
    create_model(name, 1, 2, 32)
